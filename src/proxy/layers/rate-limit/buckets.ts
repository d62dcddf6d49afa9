// Token buckets for one rate limit: one per descriptor key, at most maxKeys of them, the least recently used forgotten first.
import type { LiveRateLimitState } from '../../../api/explain.ts';
import type { SnapshotRateLimit } from '../../../api/snapshot.ts';

/** What a global limit's quota says for one key: the share of the limit this proxy may use, until `until` (monotonic ms). */
export interface Lease {
  share: number;
  until: number;
}

/** Where a Global limit gets its leases and reports its demand (quota-client.ts); Local limits have none. */
export interface QuotaSource {
  /** The current lease for (limit, key), or undefined: then the limit applies in full locally (fail open to local limits). */
  lease(limitId: string, key: string, now: number): Lease | undefined;
  /** One request asked for a token of (limit, key); a limit the source forgot (idle) is taken up again. */
  demand(limit: SnapshotRateLimit, key: string): void;
  /** A snapshot brought this Global limit: the control plane should count this proxy in its share at once. */
  register(limit: SnapshotRateLimit): void;
}

interface Bucket {
  tokens: number;
  /** Monotonic ms of the last refill. */
  at: number;
}

export interface Decision {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Ms until the next token (0 when one is there). */
  retryAfterMs: number;
}

/**
 * The buckets of one limit. Memory is bounded whatever keys clients send:
 * beyond maxKeys the least recently used bucket is dropped (a Map keeps
 * insertion order, and every use moves a key to the end). A dropped key
 * comes back with a full bucket, which is the price of the bound.
 */
export class LimitBuckets {
  readonly limit: SnapshotRateLimit;
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;
  private readonly quota: QuotaSource | undefined;

  constructor(limit: SnapshotRateLimit, quota: QuotaSource | undefined) {
    this.limit = limit;
    this.ratePerMs = limit.requests / limit.intervalMs;
    this.quota = limit.scope === 'Global' ? quota : undefined;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** The emptiest `max` buckets, refilled to `now` without taking a token (the admin's /debug/backends). */
  describe(now: number, max: number): { key: string; tokens: number }[] {
    const rows: { key: string; tokens: number }[] = [];
    for (const [key, bucket] of this.buckets) {
      const share = this.quota?.lease(this.limit.id, key, now)?.share ?? 1;
      const tokens = Math.min(Math.max(1, this.limit.burst * share), bucket.tokens + (now - bucket.at) * this.ratePerMs * share);
      rows.push({ key, tokens: Math.floor(tokens * 100) / 100 });
    }
    return rows.sort((a, b) => a.tokens - b.tokens).slice(0, max);
  }

  take(key: string, now: number): Decision {
    let share = 1;
    if (this.quota) {
      this.quota.demand(this.limit, key);
      const lease = this.quota.lease(this.limit.id, key, now);
      if (lease) share = lease.share;
    }
    const rate = this.ratePerMs * share;
    // At least one token, so that a small share still lets a request through now and then.
    const capacity = Math.max(1, this.limit.burst * share);
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
      bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.at) * rate);
      bucket.at = now;
    } else {
      bucket = { tokens: capacity, at: now };
      if (this.buckets.size >= this.limit.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterMs: 0 };
    }
    return { allowed: false, remaining: 0, retryAfterMs: rate > 0 ? Math.ceil((1 - bucket.tokens) / rate) : this.limit.intervalMs };
  }
}

/**
 * The buckets of every limit a proxy enforces, kept across snapshots: a push
 * that leaves a limit unchanged (same id, same numbers) keeps its buckets, so
 * a config change elsewhere does not hand every client a fresh burst.
 */
export class RateLimiterRegistry {
  private readonly limiters = new Map<string, { signature: string; buckets: LimitBuckets }>();
  /** Between stage() and commit()/rollback(): limits the snapshot being compiled adds or changes, not live yet. */
  private staged: Map<string, { signature: string; buckets: LimitBuckets }> | undefined;
  readonly quota: QuotaSource | undefined;

  constructor(quota?: QuotaSource) {
    this.quota = quota;
  }

  /** Every limit's emptiest buckets now, for the admin's /debug/backends. */
  describe(now: number, maxKeys = 100): LiveRateLimitState[] {
    return [...this.limiters.entries()].map(([id, { buckets }]) => ({ id, size: buckets.size, buckets: buckets.describe(now, maxKeys) }));
  }

  /** From now until commit() or rollback(), new or changed limits replace nothing live and are not registered with the quota. */
  stage(): void {
    this.staged = new Map();
  }

  commit(): void {
    const staged = this.staged;
    this.staged = undefined;
    for (const [id, entry] of staged ?? []) this.install(id, entry);
  }

  rollback(): void {
    this.staged = undefined;
  }

  buckets(limit: SnapshotRateLimit): LimitBuckets {
    const signature = `${limit.requests}/${limit.intervalMs}/${limit.burst}/${limit.scope}/${limit.maxKeys}/${JSON.stringify(limit.descriptors)}`;
    const existing = this.staged?.get(limit.id) ?? this.limiters.get(limit.id);
    if (existing && existing.signature === signature) return existing.buckets;
    const entry = { signature, buckets: new LimitBuckets(limit, this.quota) };
    if (this.staged) this.staged.set(limit.id, entry);
    else this.install(limit.id, entry);
    return entry.buckets;
  }

  private install(id: string, entry: { signature: string; buckets: LimitBuckets }): void {
    if (entry.buckets.limit.scope === 'Global') this.quota?.register(entry.buckets.limit);
    this.limiters.set(id, entry);
  }
}
