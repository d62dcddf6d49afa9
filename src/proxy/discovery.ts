// The discovery client: one HTTP/2 stream to a control plane (of several, failing over) carrying hello/ack/nack/ready/heartbeat up and snapshots (whole, or as deltas from the one it runs) down.
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { ErrorCodes, isWeftError, WeftError } from '../api/errors.ts';
import type { NodeInfo, ProxySnapshot } from '../api/snapshot.ts';
import { applySnapshotDelta } from '../api/snapshot-delta.ts';
import { STREAM_PATH, type ControlMessage, type ProxyMessage } from '../api/stream.ts';
import { canonicalJson } from '../api/canonical-json.ts';
import type { TelemetryReport } from '../api/topology.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ProxyMetrics } from './metrics.ts';
import { connectControlPlane, type ControlPlaneTls } from './identity/control-plane-tls.ts';

/**
 * Receive window for the config stream. A snapshot of a large mesh is
 * hundreds of KiB; with HTTP/2's default 64 KiB window each push waited for
 * several window updates from a busy proxy (issue #8's scale check).
 */
const CONFIG_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

export interface DiscoveryOptions {
  /** The control planes' stream URLs, e.g. http://127.0.0.1:15010; any one of them serves this proxy. */
  urls: readonly string[];
  /** For https:// control planes: the roots to verify them with. */
  controlPlaneTls?: ControlPlaneTls | undefined;
  node: NodeInfo;
  /** The bootstrap token, sent in every hello (the control plane requires it of proxies on other hosts). */
  token?: string | undefined;
  /** The version running now (from disk or an earlier stream), sent in every hello. */
  runningVersion: () => string | undefined;
  /**
   * Applies a snapshot (a no-op when it is the running version); throws (a
   * WeftError) to NACK it. A delta reaches it already applied: a whole snapshot.
   */
  apply: (snapshot: ProxySnapshot, version: string) => Promise<void>;
  /** Say `delta: true` in the hello, so that changes may come as deltas. Default true. */
  deltas?: boolean;
  clock: Clock;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Reconnect backoff: doubles from initialMs up to maxMs, with jitter, once per round through every control plane. */
  backoff?: { initialMs: number; maxMs: number };
  /** How long a new stream may wait for its welcome before the next control plane is tried. Default 5000. */
  welcomeTimeoutMs?: number;
  /** The longest line the control plane may send. Default 64 MiB. */
  maxLineBytes?: number;
  random?: () => number;
  /**
   * A tap was asked for or stopped (proxy/tap.ts). `reply` sends on the stream
   * that asked and returns false once that stream is gone, which ends the tap.
   */
  onTap?: (message: Extract<ControlMessage, { type: 'tap-start' | 'tap-stop' }>, reply: (message: Extract<ProxyMessage, { type: 'tap' }>) => boolean) => void;
}

type SnapshotMessage = Extract<ControlMessage, { type: 'snapshot' }>;
type DeltaMessage = Extract<ControlMessage, { type: 'delta' }>;

const DEFAULT_WELCOME_TIMEOUT_MS = 5000;

/**
 * Parses `--control-plane`: one or more comma-separated stream addresses, each
 * a URL (http://host:port) or a bare host:port. Throws a WeftError naming the
 * item that is not an address.
 */
export function parseControlPlanes(spec: string, defaultScheme: 'http' | 'https' = 'http'): string[] {
  const items = spec
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw new WeftError(ErrorCodes.INVALID, 'no control plane address given');
  return items.map((item) => {
    const url = item.includes('://') ? item : `${defaultScheme}://${item}`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new WeftError(ErrorCodes.INVALID, `"${item}" is not a control plane address (want http://host:port, https://host:port or host:port)`);
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.port) {
      throw new WeftError(ErrorCodes.INVALID, `"${item}" is not a control plane address (want http://host:port, https://host:port or host:port)`);
    }
    return `${parsed.protocol}//${parsed.host}`;
  });
}

interface Connection {
  url: string;
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  /** The readiness this stream was last told, so that each change is sent once. */
  sentReady: boolean | undefined;
  welcomed: boolean;
  buffered: string;
}

/**
 * Keeps one stream open for as long as the proxy runs: reconnects forever,
 * moving to the next control plane after every failure (a quick step while
 * others are left to try, capped exponential backoff once a whole round has
 * failed), says hello with its running version (so a control plane that has
 * the same config pushes nothing) and its readiness on every new stream,
 * heartbeats at the rate the control plane asks for, and answers every
 * snapshot with an ACK or a NACK naming its version and nonce.
 */
export class DiscoveryClient {
  private readonly options: DiscoveryOptions;
  private connection: Connection | undefined;
  private ready = false;
  /** Failed attempts since the last welcome. */
  private failures = 0;
  /** Which of `urls` the next attempt goes to. */
  private next = 0;
  private welcomeTimer: Timer | undefined;
  private reconnectTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private closed = false;
  /**
   * What came since the last apply, and the connection it came on: the newest
   * full snapshot (older ones are skipped) and the deltas that follow it, or
   * deltas alone (they start from `held`).
   */
  private pending: { messages: (SnapshotMessage | DeltaMessage)[]; connection: Connection } | undefined;
  private applying = false;
  /** The snapshot last applied from a control plane (the one the proxy runs, unless something else replaced it): deltas start from it. */
  private held: ProxySnapshot | undefined;

  constructor(options: DiscoveryOptions) {
    if (options.urls.length === 0) throw new WeftError(ErrorCodes.INVALID, 'the discovery client needs at least one control plane URL');
    this.options = options;
  }

  get connected(): boolean {
    return this.connection?.welcomed === true;
  }

  /** The control plane this proxy is connected (or connecting) to. */
  get url(): string | undefined {
    return this.connection?.url;
  }

  start(): void {
    this.connect();
  }

  /** Tells the control plane (now, and after every reconnect) whether the app is ready. */
  setReady(ready: boolean): void {
    this.ready = ready;
    const connection = this.connection;
    if (connection && connection.sentReady !== ready) {
      connection.sentReady = ready;
      this.send(connection, { type: 'ready', ready });
    }
  }

  /** Sends a telemetry report once a control plane has welcomed this proxy; false otherwise (the caller keeps its deltas). */
  sendTelemetry(report: TelemetryReport): boolean {
    const connection = this.connection;
    if (!connection?.welcomed || connection.stream.destroyed || !connection.stream.writable) return false;
    this.send(connection, { type: 'telemetry', ...report });
    return true;
  }

  /** Ends the stream (after what was written, e.g. a last `ready: false`) and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    this.reconnectTimer?.cancel();
    this.heartbeatTimer?.cancel();
    this.welcomeTimer?.cancel();
    const connection = this.connection;
    this.connection = undefined;
    this.options.metrics.controlPlaneConnected.labels().set(0);
    if (!connection) return;
    const { session, stream } = connection;
    if (session.closed || session.destroyed) return;
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    try {
      stream.end();
      session.close();
    } catch {
      session.destroy();
    }
    // Wall clock on purpose: shutting down must finish even under a test's manual clock.
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([closed, grace]);
    if (!session.destroyed) session.destroy();
  }

  private connect(): void {
    if (this.closed) return;
    const { logger, node, urls } = this.options;
    const url = urls[this.next % urls.length]!;
    this.next = (this.next + 1) % urls.length;
    let session: http2.ClientHttp2Session;
    try {
      session = connectControlPlane(url, this.options.controlPlaneTls, { settings: { initialWindowSize: CONFIG_STREAM_WINDOW_BYTES } });
      // The connection's own window too: HTTP/2's 64 KiB default paces a large snapshot through a window update per 64 KiB.
      session.once('connect', () => session.setLocalWindowSize(CONFIG_STREAM_WINDOW_BYTES));
    } catch (error) {
      logger.warn({ err: error, url }, 'invalid control plane URL');
      this.failures++;
      this.scheduleReconnect();
      return;
    }
    session.on('error', (error) => logger.debug({ err: error, url }, 'control plane session error'));
    const stream = session.request({ ':method': 'POST', ':path': STREAM_PATH, 'content-type': 'application/x-ndjson' }, { endStream: false });
    const connection: Connection = { url, session, stream, sentReady: undefined, welcomed: false, buffered: '' };
    this.connection = connection;
    session.once('close', () => this.disconnected(connection));
    // A control plane that accepts the connection but never welcomes it (overloaded, wedged) must not hold this proxy.
    this.welcomeTimer?.cancel();
    this.welcomeTimer = this.options.clock.setTimeout(() => {
      this.welcomeTimer = undefined;
      if (this.connection === connection && !connection.welcomed) {
        logger.warn({ url }, 'the control plane did not welcome this proxy in time; trying the next one');
        session.destroy();
      }
    }, this.options.welcomeTimeoutMs ?? DEFAULT_WELCOME_TIMEOUT_MS);
    stream.setEncoding('utf8');
    stream.on('error', (error) => logger.debug({ err: error }, 'config stream error'));
    stream.on('response', (headers) => {
      const status = headers[':status'];
      if (status !== 200) {
        logger.warn({ status }, 'the control plane refused the config stream');
        session.close();
      }
    });
    stream.on('data', (chunk: string) => this.onData(connection, chunk));
    // The control plane ended its side (shutting down, or it dropped us): end ours and reconnect.
    stream.on('end', () => {
      if (!stream.writableEnded) stream.end();
      session.close();
    });
    stream.on('close', () => {
      if (!session.closed) session.close();
    });
    const runningVersion = this.options.runningVersion();
    const token = this.options.token;
    const delta = this.options.deltas ?? true;
    this.send(connection, { type: 'hello', node, ...(runningVersion ? { runningVersion } : {}), ...(token ? { token } : {}), ...(delta ? { delta } : {}) });
    connection.sentReady = this.ready;
    this.send(connection, { type: 'ready', ready: this.ready });
  }

  private disconnected(connection: Connection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.heartbeatTimer?.cancel();
    this.heartbeatTimer = undefined;
    this.welcomeTimer?.cancel();
    this.welcomeTimer = undefined;
    this.options.metrics.controlPlaneConnected.labels().set(0);
    if (connection.welcomed) this.options.logger.warn({ url: connection.url }, 'lost the control plane; serving the last good config');
    this.failures++;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 100, maxMs: 2000 };
    const random = this.options.random ?? Math.random;
    // The step grows once per full round of failures: another control plane is tried soon, a dead fleet slowly.
    const rounds = Math.floor(Math.max(0, this.failures - 1) / this.options.urls.length);
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(rounds, 30));
    // "Equal jitter": never sooner than half the step, so a restarting control plane is not stampeded.
    const delay = ceiling / 2 + random() * (ceiling / 2);
    this.reconnectTimer = this.options.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private onData(connection: Connection, chunk: string): void {
    connection.buffered += chunk;
    let newline: number;
    while ((newline = connection.buffered.indexOf('\n')) !== -1) {
      const line = connection.buffered.slice(0, newline).trim();
      connection.buffered = connection.buffered.slice(newline + 1);
      if (line) this.onLine(connection, line);
    }
    if (connection.buffered.length > (this.options.maxLineBytes ?? 64 * 1024 * 1024)) {
      this.options.logger.warn('the control plane sent an oversized message; reconnecting');
      connection.session.destroy();
    }
  }

  private onLine(connection: Connection, line: string): void {
    if (this.connection !== connection) return;
    let message: ControlMessage;
    try {
      message = JSON.parse(line) as ControlMessage;
    } catch {
      this.options.logger.warn('the control plane sent a line that is not JSON; ignoring it');
      return;
    }
    switch (message.type) {
      case 'welcome': {
        connection.welcomed = true;
        this.failures = 0;
        this.welcomeTimer?.cancel();
        this.welcomeTimer = undefined;
        // After a loss, try the one that served us first: it has this proxy's registration warm.
        this.next = Math.max(0, this.options.urls.indexOf(connection.url));
        this.options.metrics.controlPlaneConnected.labels().set(1);
        this.options.logger.info({ url: connection.url }, 'connected to the control plane');
        this.heartbeatTimer?.cancel();
        const every = Math.max(100, message.heartbeatMs || 1000);
        // A partition silences a stream without closing it (TCP would give up only after minutes), so each
        // heartbeat also PINGs the session: when pings stay unanswered for the lease TTL, the control plane has
        // given up this proxy's lease by now too, and the next control plane is tried.
        const missedLimit = Math.max(2, Math.ceil((message.leaseTtlMs || 3 * every) / every));
        let pingOutstanding = false;
        let missed = 0;
        this.heartbeatTimer = this.options.clock.setInterval(() => {
          if (this.connection !== connection) return;
          this.send(connection, { type: 'heartbeat' });
          if (pingOutstanding && ++missed >= missedLimit) {
            this.options.logger.warn({ url: connection.url }, 'the control plane stopped answering; trying the next one');
            connection.session.destroy();
            return;
          }
          if (pingOutstanding || connection.session.destroyed) return;
          try {
            pingOutstanding = connection.session.ping((error) => {
              if (error) return;
              pingOutstanding = false;
              missed = 0;
            });
          } catch {
            // The session is closing: its 'close' reconnects.
          }
        }, every);
        return;
      }
      case 'snapshot':
        this.pending = { messages: [message], connection };
        void this.applyPending();
        return;
      case 'delta':
        // A delta builds on what came before it, so it never replaces a pending message.
        if (this.pending?.connection === connection) this.pending.messages.push(message);
        else this.pending = { messages: [message], connection };
        void this.applyPending();
        return;
      case 'error':
        this.options.logger.warn({ code: message.code, message: message.message }, 'the control plane reported an error');
        return;
      case 'tap-start':
      case 'tap-stop':
        this.options.onTap?.(message, (reply) => {
          if (this.connection !== connection || connection.stream.destroyed || !connection.stream.writable) return false;
          this.send(connection, reply);
          return true;
        });
        return;
      default:
        this.options.logger.debug({ type: (message as { type?: unknown }).type }, 'ignoring an unknown control message');
    }
  }

  /** Applies snapshots one at a time; when several arrive during an apply, only the newest is applied and answered. */
  private async applyPending(): Promise<void> {
    if (this.applying) return;
    this.applying = true;
    try {
      while (this.pending) {
        const { messages, connection } = this.pending;
        this.pending = undefined;
        const message = messages[messages.length - 1]!;
        let reply: ProxyMessage;
        try {
          const snapshot = this.resolve(messages);
          await this.options.apply(snapshot, message.version);
          this.held = snapshot;
          reply = { type: 'ack', version: message.version, nonce: message.nonce };
        } catch (error) {
          const code = isWeftError(error) ? error.code : ErrorCodes.SNAPSHOT_INVALID;
          const text = error instanceof Error ? error.message : String(error);
          reply = { type: 'nack', version: message.version, nonce: message.nonce, error: { code: code === ErrorCodes.SNAPSHOT_INVALID ? code : ErrorCodes.SNAPSHOT_INVALID, message: text } };
        }
        if (this.connection === connection) this.send(connection, reply);
      }
    } finally {
      this.applying = false;
    }
  }

  /**
   * The whole snapshot that pending messages add up to: the last full one,
   * with every delta after it applied in turn (deltas alone start from the
   * held snapshot). A delta must start from exactly the snapshot before it,
   * and the result must hash to the version it claims, so that what the proxy
   * runs (and saves to disk) is what the control plane compiled. Throws a
   * WeftError, which NACKs the newest message: the control plane then sends
   * the full snapshot.
   */
  private resolve(messages: readonly (SnapshotMessage | DeltaMessage)[]): ProxySnapshot {
    let current = this.held !== undefined && this.held.version === this.options.runningVersion() ? this.held : undefined;
    let applied = false;
    for (const message of messages) {
      if (message.type === 'snapshot') {
        current = message.snapshot;
        applied = false;
        continue;
      }
      if (current === undefined || current.version !== message.base) {
        throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `a delta from version ${String(message.base)}, but this proxy runs ${current?.version ?? 'no snapshot'}; the full snapshot is needed`);
      }
      current = applySnapshotDelta(current, message.delta, message.version);
      applied = true;
    }
    if (current === undefined) throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, 'no snapshot to apply');
    if (applied) {
      const { version, ...content } = current;
      const hash = createHash('sha256').update(canonicalJson(content)).digest('hex');
      if (hash !== version) throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `the snapshot a delta gave hashes to ${hash}, not to version ${version}; the full snapshot is needed`);
    }
    return current;
  }

  private send(connection: Connection, message: ProxyMessage): void {
    const stream = connection.stream;
    if (stream.destroyed || !stream.writable) return;
    try {
      stream.write(`${JSON.stringify(message)}\n`);
    } catch (error) {
      this.options.logger.debug({ err: error }, 'writing to the config stream failed');
    }
  }
}
