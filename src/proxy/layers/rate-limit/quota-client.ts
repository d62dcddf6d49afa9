// The proxy's side of global rate limits: counts each Global limit's demand per key, reports it to the control plane, keeps the leased shares.
//
// Reports go once per interval (and soon after a snapshot brings a new Global
// limit, so that the control plane counts this proxy before traffic comes).
// Requests never wait for them. When the control plane cannot be reached the
// leases run out after their TTL and every Global limit is enforced in full
// by each proxy on its own: fail open to local limits, never closed.
import { connectControlPlane, type ControlPlaneTls } from '../../identity/control-plane-tls.ts';
import http2 from 'node:http2';
import { RATE_LIMIT_QUOTA_PATH, QUOTA_LIMITS, type QuotaAnswer, type QuotaReport } from '../../../api/rate-limit-quota.ts';
import type { SnapshotRateLimit } from '../../../api/snapshot.ts';
import type { Clock, Timer } from '../../../telemetry/clock.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import type { Lease, QuotaSource } from './buckets.ts';

export const DEFAULT_QUOTA_INTERVAL_MS = 1000;
/** A limit neither used nor brought by a snapshot for this long is no longer reported. */
const IDLE_LIMIT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 2000;

export interface QuotaClientOptions {
  /** Control plane stream URLs (http://host:port), tried in turn. */
  urls: readonly string[];
  /** For https:// control planes: the roots to verify them with. */
  controlPlaneTls?: ControlPlaneTls | undefined;
  proxy: string;
  namespace: string;
  /** The workload the proxy serves (its token may be scoped to it). */
  workload?: string | undefined;
  token?: string | undefined;
  clock: Clock;
  logger: Logger;
  intervalMs?: number;
}

interface LimitEntry {
  limit: SnapshotRateLimit;
  lastUsed: number;
  /** Requests per key since the last report. */
  demand: Map<string, number>;
  /** Leased shares per key. */
  leases: Map<string, Lease>;
  /** From the last answer: 1/proxies for a key without its own lease. */
  fallback: Lease | undefined;
}

export class QuotaClient implements QuotaSource {
  private readonly options: QuotaClientOptions;
  private readonly limits = new Map<string, LimitEntry>();
  private timer: Timer | undefined;
  private soon: Timer | undefined;
  private session: http2.ClientHttp2Session | undefined;
  private next = 0;
  private inFlight = false;
  /** The report being sent, and the one queued behind it. */
  private current: Promise<void> | undefined;
  private followUp: Promise<void> | undefined;
  private stopped = false;
  /** Reports answered, for tests and the admin view. */
  answered = 0;

  constructor(options: QuotaClientOptions) {
    this.options = options;
  }

  start(): void {
    this.timer = this.options.clock.setInterval(() => void this.report(), this.options.intervalMs ?? DEFAULT_QUOTA_INTERVAL_MS).unref();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.soon?.cancel();
    this.session?.destroy();
    this.session = undefined;
  }

  register(limit: SnapshotRateLimit): void {
    const now = this.options.clock.monotonic();
    const entry = this.limits.get(limit.id);
    if (entry) {
      entry.limit = limit;
      entry.lastUsed = now;
      return;
    }
    this.limits.set(limit.id, { limit, lastUsed: now, demand: new Map(), leases: new Map(), fallback: undefined });
    // Be counted before the traffic comes, rather than at the next tick.
    if (!this.soon && !this.stopped) {
      this.soon = this.options.clock.setTimeout(() => {
        this.soon = undefined;
        void this.report();
      }, 10).unref();
    }
  }

  demand(limit: SnapshotRateLimit, key: string): void {
    let entry = this.limits.get(limit.id);
    if (!entry) {
      // Dropped while idle: report it again (its buckets outlived the entry).
      this.register(limit);
      entry = this.limits.get(limit.id)!;
    }
    const count = entry.demand.get(key);
    if (count !== undefined) entry.demand.set(key, count + 1);
    else if (entry.demand.size < Math.min(entry.limit.maxKeys, QUOTA_LIMITS.keysPerLimit)) entry.demand.set(key, 1);
  }

  lease(limitId: string, key: string, now: number): Lease | undefined {
    const entry = this.limits.get(limitId);
    if (!entry) return undefined;
    const own = entry.leases.get(key);
    if (own && own.until > now) return own;
    const fallback = entry.fallback;
    return fallback && fallback.until > now ? fallback : undefined;
  }

  /**
   * Sends the demand since the last report; its answer replaces the leases.
   * One report at a time: a call while one is in flight waits for it and then
   * sends one more (shared by every such caller), so that what was registered
   * or demanded before the call is always reported by the time it resolves.
   */
  report(): Promise<void> {
    if (this.inFlight) {
      this.followUp ??= (this.current ?? Promise.resolve()).then(() => {
        this.followUp = undefined;
        return this.report();
      });
      return this.followUp;
    }
    this.current = this.sendReport().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }

  private async sendReport(): Promise<void> {
    if (this.inFlight || this.stopped || this.limits.size === 0) return;
    const now = this.options.clock.monotonic();
    const body: QuotaReport = { proxy: this.options.proxy, namespace: this.options.namespace, limits: [] };
    if (this.options.workload !== undefined) body.workload = this.options.workload;
    for (const [id, entry] of this.limits) {
      if (entry.demand.size > 0) entry.lastUsed = now;
      else if (now - entry.lastUsed > IDLE_LIMIT_MS) {
        this.limits.delete(id);
        continue;
      }
      body.limits.push({ id, keys: [...entry.demand].map(([key, demand]) => ({ key, demand })) });
      entry.demand = new Map();
      if (body.limits.length >= QUOTA_LIMITS.limitsPerReport) break;
    }
    if (body.limits.length === 0) return;
    this.inFlight = true;
    try {
      const answer = await this.post(body);
      const until = this.options.clock.monotonic() + answer.ttlMs;
      for (const limit of answer.limits) {
        const entry = this.limits.get(limit.id);
        if (!entry) continue;
        entry.fallback = { share: 1 / Math.max(1, limit.proxies), until };
        for (const { key, share } of limit.keys) entry.leases.set(key, { share, until });
        // Leases of keys no longer asked for run out; drop them once they have.
        if (entry.leases.size > entry.limit.maxKeys) for (const [key, lease] of entry.leases) if (lease.until <= now) entry.leases.delete(key);
      }
      this.answered++;
    } catch (error) {
      this.options.logger.debug({ err: error }, 'rate limit quota report failed; limits fall back to local enforcement when their leases end');
      this.session?.destroy();
      this.session = undefined;
    } finally {
      this.inFlight = false;
    }
  }

  private post(report: QuotaReport): Promise<QuotaAnswer> {
    const urls = this.options.urls;
    if (!this.session || this.session.destroyed || this.session.closed) {
      const url = urls[this.next % urls.length]!;
      this.next++;
      this.session = connectControlPlane(url, this.options.controlPlaneTls);
      this.session.on('error', () => undefined);
      this.session.unref();
    }
    const session = this.session;
    return new Promise<QuotaAnswer>((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': RATE_LIMIT_QUOTA_PATH, 'content-type': 'application/json' };
      if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
      const stream = session.request(headers);
      stream.setTimeout(REQUEST_TIMEOUT_MS, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      let status = 0;
      let text = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (text += chunk));
      stream.on('error', reject);
      stream.on('close', () => {
        if (status !== 200) return reject(new Error(`quota report answered ${status || 'nothing'}: ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text) as QuotaAnswer);
        } catch (error) {
          reject(error as Error);
        }
      });
      stream.end(JSON.stringify(report));
    });
  }
}
