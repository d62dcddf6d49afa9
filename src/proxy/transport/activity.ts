// What is open and in flight across every listener: client connections and requests, for the gauge and for draining.
import type { Duplex } from 'node:stream';
import type { Clock } from '../../telemetry/clock.ts';
import type { Gauge, GaugeChild } from '../../telemetry/metrics.ts';
import type { DownstreamResponse } from '../exchange.ts';

export class Activity {
  draining = false;
  private readonly responses = new Set<DownstreamResponse>();
  private readonly sockets = new Set<Duplex>();
  private readonly gauge: Gauge;
  private readonly children = new Map<string, GaugeChild>();
  private idleWaiters: (() => void)[] = [];
  /** Upgraded connections (WebSocket...), each with how to close it gracefully. */
  private readonly upgraded = new Set<() => void>();
  private upgradedGone: (() => void) | undefined;

  constructor(gauge: Gauge) {
    this.gauge = gauge;
  }

  /** Counts a client connection until it closes. A socket handed from one server to another is counted once. */
  trackSocket(socket: Duplex, listener: string): void {
    if (this.sockets.has(socket)) return;
    this.sockets.add(socket);
    let child = this.children.get(listener);
    if (!child) {
      child = this.gauge.labels(listener);
      this.children.set(listener, child);
    }
    child.inc();
    const gauge = child;
    socket.once('close', () => {
      this.sockets.delete(socket);
      gauge.dec();
    });
  }

  /** Counts a request until its response is done; while draining, its connection closes after it. */
  trackRequest(res: DownstreamResponse): void {
    this.responses.add(res);
    if (this.draining) res.shouldKeepAlive = false;
    res.once('close', () => {
      this.responses.delete(res);
      if (this.responses.size === 0 && this.idleWaiters.length > 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const wake of waiters) wake();
      }
    });
  }

  get inFlight(): number {
    return this.responses.size;
  }

  /** From now on every response closes its connection; responses not yet started say so with Connection: close. */
  beginDrain(): void {
    this.draining = true;
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
  }

  /** Resolves when no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.responses.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counts an upgraded connection until the returned function is called; `closeGracefully` ends it when a drain runs out. */
  trackUpgraded(closeGracefully: () => void): () => void {
    this.upgraded.add(closeGracefully);
    return () => {
      this.upgraded.delete(closeGracefully);
      if (this.upgraded.size === 0) this.upgradedGone?.();
    };
  }

  /**
   * The end of a drain for upgraded connections: each is ended with a FIN
   * both ways (its peers see a clean close, not a reset); resolves when they
   * have all closed, or after `lingerMs`.
   */
  endUpgraded(lingerMs: number, clock: Clock): Promise<void> {
    if (this.upgraded.size === 0) return Promise.resolve();
    for (const close of [...this.upgraded]) close();
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        this.upgradedGone = undefined;
        resolve();
      };
      const timer = clock.setTimeout(done, lingerMs);
      this.upgradedGone = done;
    });
  }

  /** Ends every client connection still open (tunnels, keep-alive connections, stragglers past the drain). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
