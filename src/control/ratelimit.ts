// The control plane's side of global rate limits: the demand every proxy reports per (limit, key), and each proxy's share of it.
//
// Quota leasing rather than a counter per request: a proxy enforces a Global
// limit with its own token bucket, refilled at the limit's rate times the
// share leased here. Shares follow demand (what each proxy was asked for in
// its last reports, smoothed), so a replica behind an uneven load balancer
// gets the part of the limit its clients need, and the shares of one key add
// up to one: together the proxies admit the limit's rate. A tenth of the mean
// demand is spread evenly, so that a proxy whose traffic just started is not
// starved until its next report.
import { QUOTA_LIMITS, type QuotaAnswer, type QuotaReport } from '../api/rate-limit-quota.ts';
import type { Clock } from '../telemetry/clock.ts';

/** A proxy silent this long stops counting (three missed reports at the default interval). */
export const DEFAULT_QUOTA_TTL_MS = 3000;
/** At most this many limits, and keys per limit, are tracked; beyond it the least recently reported go. */
const MAX_LIMITS = 10_000;
const MAX_KEYS_PER_LIMIT = 100_000;
/** The evenly spread part of a key's demand (see above). */
const EVEN_SHARE = 0.1;

interface KeyState {
  /** Proxy id → smoothed demand per report and when it was reported. */
  byProxy: Map<string, { demand: number; at: number }>;
}

interface LimitState {
  /** Proxy id → last report. */
  proxies: Map<string, number>;
  keys: Map<string, KeyState>;
  at: number;
}

export class GlobalRateLimitLedger {
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly limits = new Map<string, LimitState>();

  constructor(clock: Clock, ttlMs = DEFAULT_QUOTA_TTL_MS) {
    this.clock = clock;
    this.ttlMs = ttlMs;
  }

  /** Problems with a report's shape; empty when it can be taken. */
  static check(body: unknown): string | undefined {
    const report = body as Partial<QuotaReport> | undefined;
    if (!report || typeof report !== 'object' || typeof report.proxy !== 'string' || typeof report.namespace !== 'string' || !Array.isArray(report.limits)) {
      return 'a quota report is {proxy, namespace, limits: [{id, keys: [{key, demand}]}]}';
    }
    if (report.limits.length > QUOTA_LIMITS.limitsPerReport) return `a report carries at most ${QUOTA_LIMITS.limitsPerReport} limits`;
    for (const limit of report.limits) {
      if (!limit || typeof limit.id !== 'string' || !Array.isArray(limit.keys)) return 'each limit is {id, keys}';
      if (limit.keys.length > QUOTA_LIMITS.keysPerLimit) return `a limit carries at most ${QUOTA_LIMITS.keysPerLimit} keys`;
      for (const k of limit.keys) {
        if (!k || typeof k.key !== 'string' || k.key.length > QUOTA_LIMITS.keyLength || typeof k.demand !== 'number' || !(k.demand >= 0)) {
          return `each key is {key (at most ${QUOTA_LIMITS.keyLength} characters), demand >= 0}`;
        }
      }
    }
    return undefined;
  }

  report(report: QuotaReport): QuotaAnswer {
    const now = this.clock.monotonic();
    const answer: QuotaAnswer = { ttlMs: this.ttlMs, limits: [] };
    for (const { id, keys } of report.limits) {
      let state = this.limits.get(id);
      if (!state) {
        if (this.limits.size >= MAX_LIMITS) this.evictOldestLimit();
        state = { proxies: new Map(), keys: new Map(), at: now };
      }
      this.limits.delete(id);
      this.limits.set(id, state);
      state.at = now;
      state.proxies.set(report.proxy, now);
      for (const [proxy, at] of state.proxies) if (now - at > this.ttlMs) state.proxies.delete(proxy);
      const proxies = state.proxies.size;
      const shares: { key: string; share: number }[] = [];
      for (const { key, demand } of keys) {
        let keyState = state.keys.get(key);
        if (keyState) state.keys.delete(key);
        else {
          keyState = { byProxy: new Map() };
          if (state.keys.size >= MAX_KEYS_PER_LIMIT) {
            const oldest = state.keys.keys().next();
            if (!oldest.done) state.keys.delete(oldest.value);
          }
        }
        state.keys.set(key, keyState);
        const previous = keyState.byProxy.get(report.proxy);
        const smoothed = previous && now - previous.at <= this.ttlMs ? (previous.demand + demand) / 2 : demand;
        keyState.byProxy.set(report.proxy, { demand: smoothed, at: now });
        shares.push({ key, share: this.shareOf(keyState, report.proxy, proxies, now) });
      }
      answer.limits.push({ id, proxies, keys: shares });
    }
    return answer;
  }

  /** This proxy's part of the key's demand, with EVEN_SHARE of the mean spread over every proxy enforcing the limit. */
  private shareOf(keyState: KeyState, proxy: string, proxies: number, now: number): number {
    let total = 0;
    for (const [other, entry] of keyState.byProxy) {
      if (now - entry.at > this.ttlMs) keyState.byProxy.delete(other);
      else total += entry.demand;
    }
    const n = Math.max(1, proxies);
    if (total <= 0) return 1 / n;
    const even = (EVEN_SHARE * total) / n;
    const own = keyState.byProxy.get(proxy)?.demand ?? 0;
    return (own + even) / (total + n * even);
  }

  private evictOldestLimit(): void {
    const oldest = this.limits.keys().next();
    if (!oldest.done) this.limits.delete(oldest.value);
  }
}
