// App readiness: the app is ready while every one of its ports accepts TCP connections; probed on the clock.
import { connect } from 'node:net';
import type { Clock, Timer } from '../telemetry/clock.ts';

export interface ReadinessOptions {
  /** Actual ports on 127.0.0.1; none means ready at once. */
  ports: readonly number[];
  clock: Clock;
  intervalMs: number;
  timeoutMs: number;
  onChange: (ready: boolean) => void;
}

export class AppReadiness {
  ready: boolean;
  private readonly options: ReadinessOptions;
  private timer: Timer | undefined;
  private probing = false;
  private stopped = false;

  constructor(options: ReadinessOptions) {
    this.options = options;
    this.ready = options.ports.length === 0;
  }

  start(): void {
    if (this.options.ports.length === 0 || this.timer) return;
    this.timer = this.options.clock.setInterval(() => void this.probe(), this.options.intervalMs);
    void this.probe();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One round of probes; overlapping rounds are skipped. Resolves with the readiness after it. */
  async probe(): Promise<boolean> {
    if (this.probing || this.stopped) return this.ready;
    this.probing = true;
    try {
      const results = await Promise.all(this.options.ports.map((port) => this.accepts(port)));
      const ready = results.every(Boolean);
      if (!this.stopped && ready !== this.ready) {
        this.ready = ready;
        this.options.onChange(ready);
      }
      return this.ready;
    } finally {
      this.probing = false;
    }
  }

  private accepts(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      const done = (ok: boolean) => {
        timer.cancel();
        socket.destroy();
        resolve(ok);
      };
      const timer = this.options.clock.setTimeout(() => done(false), this.options.timeoutMs);
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
    });
  }
}
