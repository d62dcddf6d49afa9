// A retry budget (Linkerd's, Envoy's retry_budget): retries may add at most a share of the request rate, plus a floor per second.
import type { Clock } from '../../../telemetry/clock.ts';

const BUCKETS = 10;

/**
 * Counts requests and retries over a sliding window (ten buckets). A retry
 * is allowed while retries in the window stay below `percent` % of the
 * requests in it plus `minRetriesPerSecond` × the window's seconds, so a
 * quiet backend can still be retried and a failing busy one is not flooded.
 */
export class RetryBudget {
  private readonly ratio: number;
  private readonly floor: number;
  private readonly bucketMs: number;
  private readonly clock: Clock;
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private bucketStart = 0;
  private current = 0;

  constructor(config: { percent: number; minRetriesPerSecond: number; windowMs: number }, clock: Clock) {
    this.ratio = config.percent / 100;
    this.floor = (config.minRetriesPerSecond * config.windowMs) / 1000;
    this.bucketMs = config.windowMs / BUCKETS;
    this.clock = clock;
    this.bucketStart = clock.monotonic();
  }

  /** One request (its first attempt). */
  deposit(): void {
    this.advance();
    this.requests[this.current]!++;
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  tryWithdraw(): boolean {
    this.advance();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    if (retries + 1 > this.floor + this.ratio * requests) return false;
    this.retries[this.current]!++;
    return true;
  }

  private advance(): void {
    const now = this.clock.monotonic();
    let steps = Math.floor((now - this.bucketStart) / this.bucketMs);
    if (steps <= 0) return;
    this.bucketStart += steps * this.bucketMs;
    if (steps > BUCKETS) steps = BUCKETS;
    for (let s = 0; s < steps; s++) {
      this.current = (this.current + 1) % BUCKETS;
      this.requests[this.current] = 0;
      this.retries[this.current] = 0;
    }
  }
}
