// JWKS cache: one entry per key set URI, shared by every snapshot and listener of a proxy; fetched off the request path, refreshed in the background, kept while refreshes fail.
import type { JWTVerifyGetKey } from 'jose';
import { ErrorCodes } from '../../../api/errors.ts';
import type { Clock, Timer } from '../../../telemetry/clock.ts';
import type { Logger } from '../../../telemetry/logger.ts';
import { proxyError } from '../../errors.ts';
import { jose } from './jose.ts';

/** A key set document larger than this is refused: a JWKS is a few kilobytes. */
const MAX_JWKS_BYTES = 1 << 20;
/** An unknown `kid` triggers a refetch at most this often per URI (a flood of made-up kids must not become a flood of fetches). */
const DEFAULT_UNKNOWN_KID_COOLDOWN_MS = 30_000;
/** After a failed fetch the next background attempt waits this long, doubling up to the cache duration. */
const FIRST_RETRY_MS = 1000;

export type FetchFunction = (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;

export interface JwksCacheOptions {
  clock: Clock;
  logger?: Logger;
  /** Global fetch when absent. */
  fetch?: FetchFunction;
  unknownKidCooldownMs?: number;
}

/** How one user of a URI wants it kept; the entry honours the shortest cache duration and timeout asked of it. */
export interface JwksUse {
  cacheMs: number;
  timeoutMs: number;
}

/**
 * Key sets by URI. Entries start fetching as soon as a snapshot names them
 * (warm), so that the first request rarely waits; a request waits only when
 * no keys were ever fetched (at most the fetch timeout, then 401). Stale keys
 * keep verifying while refreshes fail: an issuer's JWKS endpoint being down
 * for a while must not log everyone out, but a proxy that never got keys
 * fails closed.
 */
export class JwksCache {
  private readonly entries = new Map<string, JwksEntry>();
  private readonly options: Required<Pick<JwksCacheOptions, 'clock' | 'fetch' | 'unknownKidCooldownMs'>> & { logger: Logger | undefined };
  private closed = false;
  /** Between stage() and commit()/rollback(): entries the snapshot being compiled adds (not fetched yet), and its changes to existing ones. */
  private staged: { entries: Map<string, JwksEntry>; actions: (() => void)[] } | undefined;

  constructor(options: JwksCacheOptions) {
    this.options = {
      clock: options.clock,
      logger: options.logger,
      fetch: options.fetch ?? ((url, init) => fetch(url, init)),
      unknownKidCooldownMs: options.unknownKidCooldownMs ?? DEFAULT_UNKNOWN_KID_COOLDOWN_MS,
    };
  }

  /** The entry for a URI, created (and its first fetch started) on first use. */
  source(uri: string, use: JwksUse): JwksEntry {
    const staged = this.staged;
    let entry = this.entries.get(uri) ?? staged?.entries.get(uri);
    if (!entry) {
      const created = new JwksEntry(uri, use, this.options);
      entry = created;
      if (staged) {
        staged.entries.set(uri, created);
        staged.actions.push(() => this.add(uri, created));
      } else this.add(uri, created);
    } else if (staged) {
      const existing = entry;
      staged.actions.push(() => existing.adopt(use));
    } else entry.adopt(use);
    return entry;
  }

  /** From now until commit() or rollback(), new URIs are neither kept nor fetched, and existing entries keep their settings. */
  stage(): void {
    this.staged = { entries: new Map(), actions: [] };
  }

  commit(): void {
    const staged = this.staged;
    this.staged = undefined;
    for (const action of staged?.actions ?? []) action();
  }

  rollback(): void {
    this.staged = undefined;
  }

  private add(uri: string, entry: JwksEntry): void {
    this.entries.set(uri, entry);
    if (!this.closed) entry.warm();
  }

  /** What each entry holds, for the admin page and tests. */
  describe(): { uri: string; keys: number; fetchedAt: number | undefined; lastError: string | undefined }[] {
    return [...this.entries.values()].map((e) => e.describe());
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) entry.stop();
    this.entries.clear();
  }
}

export class JwksEntry {
  readonly uri: string;
  private cacheMs: number;
  private timeoutMs: number;
  private readonly options: JwksCache['options'];
  private keys: JWTVerifyGetKey | undefined;
  private keyCount = 0;
  private fetchedAt: number | undefined;
  private lastError: string | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: Timer | undefined;
  private retryMs = FIRST_RETRY_MS;
  /** When an unknown kid last caused a refetch. */
  private lastKidRefetch = Number.NEGATIVE_INFINITY;
  private stopped = false;
  /** When a snapshot or a request last used the entry: an entry nobody uses stops refreshing in the background. */
  private lastUsed: number;

  constructor(uri: string, use: JwksUse, options: JwksCache['options']) {
    this.uri = uri;
    this.cacheMs = use.cacheMs;
    this.timeoutMs = use.timeoutMs;
    this.options = options;
    this.lastUsed = options.clock.monotonic();
  }

  adopt(use: JwksUse): void {
    this.cacheMs = Math.min(this.cacheMs, use.cacheMs);
    this.timeoutMs = Math.min(this.timeoutMs, use.timeoutMs);
  }

  /** Starts a fetch unless keys are fresh or one is running. */
  warm(): void {
    this.lastUsed = this.options.clock.monotonic();
    if (this.keys === undefined || this.stale()) void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  describe(): { uri: string; keys: number; fetchedAt: number | undefined; lastError: string | undefined } {
    return { uri: this.uri, keys: this.keyCount, fetchedAt: this.fetchedAt, lastError: this.lastError };
  }

  /**
   * jose's key lookup for one token: the cached set (refreshed in the
   * background when stale); the first fetch is awaited; an unknown kid
   * refetches once per cooldown before it is given up on.
   */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    this.lastUsed = this.options.clock.monotonic();
    if (this.keys === undefined) await this.refresh();
    else if (this.stale()) void this.refresh();
    const keys = this.keys;
    if (keys === undefined) throw proxyError(ErrorCodes.JWKS_UNAVAILABLE, `no keys from ${this.uri}: ${this.lastError ?? 'not fetched yet'}`, 401);
    try {
      return await keys(header, token);
    } catch (error) {
      if (!(error instanceof jose().errors.JWKSNoMatchingKey)) throw error;
      const now = this.options.clock.monotonic();
      if (now - this.lastKidRefetch < this.options.unknownKidCooldownMs) throw error;
      this.lastKidRefetch = now;
      await this.refresh();
      const refreshed = this.keys;
      if (refreshed === undefined || refreshed === keys) throw error;
      return refreshed(header, token);
    }
  };

  private stale(): boolean {
    return this.fetchedAt === undefined || this.options.clock.monotonic() - this.fetchedAt >= this.cacheMs;
  }

  /** One fetch at a time; resolves (never rejects) when it is over, with the keys replaced or kept. */
  refresh(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    const run = this.fetchOnce().finally(() => {
      this.inFlight = undefined;
    });
    this.inFlight = run;
    return run;
  }

  private async fetchOnce(): Promise<void> {
    const { clock, logger } = this.options;
    const controller = new AbortController();
    const timer = clock.setTimeout(() => controller.abort(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const response = await this.options.fetch(this.uri, { signal: controller.signal, headers: { accept: 'application/json, application/jwk-set+json' } });
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => {});
        throw new Error(`HTTP ${response.status}`);
      }
      const text = await readLimited(response, MAX_JWKS_BYTES);
      const set = JSON.parse(text) as unknown;
      const keys = (set as { keys?: unknown } | null)?.keys;
      if (!Array.isArray(keys)) throw new Error('not a JSON Web Key Set (no "keys" array)');
      // HMAC secrets are never fetched: a fetched set of public keys must not let a public key be used as an HMAC secret.
      const usable = keys.filter((k: unknown) => typeof k === 'object' && k !== null && (k as { kty?: unknown }).kty !== 'oct');
      this.keys = jose().createLocalJWKSet({ keys: usable });
      this.keyCount = usable.length;
      this.fetchedAt = clock.monotonic();
      this.lastError = undefined;
      this.retryMs = FIRST_RETRY_MS;
      this.schedule(this.cacheMs);
    } catch (error) {
      const why = controller.signal.aborted ? String((controller.signal.reason as Error | undefined)?.message ?? 'timed out') : error instanceof Error ? error.message : String(error);
      this.lastError = why;
      logger?.warn({ jwksUri: this.uri, err: why, keptKeys: this.keyCount }, this.keys ? 'cannot refresh a JWKS; keeping the keys fetched before' : 'cannot fetch a JWKS; tokens of its issuer are refused');
      this.schedule(Math.min(this.retryMs, this.cacheMs));
      this.retryMs = Math.min(this.retryMs * 2, this.cacheMs);
    } finally {
      timer.cancel();
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      // Unused for two cache durations (the snapshots that named it are gone): the next use fetches again.
      if (this.options.clock.monotonic() - this.lastUsed > 2 * this.cacheMs) return;
      void this.refresh();
    }, ms).unref();
  }
}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await response.body?.cancel().catch(() => {});
    throw new Error(`the key set is larger than ${limit} bytes`);
  }
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) throw new Error(`the key set is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
