// The snapshot cache: one compiled, checked snapshot per distinct proxy input, recompiled (debounced) when the index changes.
import type { NodeInfo, ProxySnapshot } from '../api/snapshot.ts';
import { computeSnapshotDelta } from '../api/snapshot-delta.ts';
import type { CompilerInput } from '../compiler/types.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CompilerFunctions } from './compiler-functions.ts';
import type { ResourceIndex } from './index.ts';

export interface PublishedSnapshot {
  snapshot: ProxySnapshot;
  /** Increases with every snapshot the cache publishes, across keys: a stream never sends a lower one after a higher one. */
  seq: number;
  publishedAt: string;
  /** The snapshot as JSON, serialized once and shared by every stream that sends it. */
  json(): string;
  /**
   * The tail of a snapshot line, `<json>}\n`, as UTF-8 bytes encoded once:
   * writing the string to each of hundreds of streams would encode a large
   * snapshot again per stream, which was most of a push's time (issue #8).
   */
  lineTail(): Buffer;
  /** The version this key published before this one: the base of `deltaTail()`. */
  base: string | undefined;
  /**
   * The tail of a delta line from `base` to this version,
   * `"base":"<base>","delta":{…}}\n`, computed and encoded once on first use
   * and shared by every stream whose proxy holds `base` (most of them, after a
   * change): a small change then costs each stream the bytes of the change,
   * not of the whole snapshot. Undefined without a base.
   */
  deltaTail(): Buffer | undefined;
}

export interface CompileFailure {
  key: string;
  at: string;
  /** The version that failed its check, when compile got that far. */
  version?: string | undefined;
  problems: string[];
}

export interface SnapshotSubscription {
  readonly key: string;
  /** The snapshot to serve: the latest one that passed its check. */
  current(): PublishedSnapshot | undefined;
  /** Why the latest compile for this key was not published; undefined after a good one. */
  lastError(): CompileFailure | undefined;
  close(): void;
}

export interface SnapshotEntryStatus {
  key: string;
  version?: string | undefined;
  publishedAt?: string | undefined;
  proxies: number;
  lastError?: CompileFailure | undefined;
}

export interface SnapshotCacheOptions {
  index: ResourceIndex;
  compiler: Pick<CompilerFunctions, 'compile' | 'snapshotInputKey' | 'checkSnapshot'>;
  logger: Logger;
  clock: Clock;
  /** Changes closer together than this are compiled once. Default 50 ms. */
  debounceMs?: number | undefined;
  /** A steady stream of changes still gets compiled at least this often. Default 10 × debounceMs. */
  maxWaitMs?: number | undefined;
}

interface Entry {
  key: string;
  /** Any proxy with this key: equal keys mean equal compiler input, so which one does not matter. */
  node: NodeInfo;
  published: PublishedSnapshot | undefined;
  lastError: CompileFailure | undefined;
  listeners: Set<() => void>;
  /** How many of the listeners take deltas: without any, no previous snapshot is kept for one. */
  deltaListeners: number;
}

const RECENT_ERRORS = 20;

export class SnapshotCache {
  private readonly index: ResourceIndex;
  private readonly compiler: SnapshotCacheOptions['compiler'];
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly passListeners = new Set<(input: CompilerInput) => void>();
  private readonly recent: CompileFailure[] = [];
  private seq = 0;
  private timer: Timer | undefined;
  private pendingSince: number | undefined;
  private stopIndex: (() => void) | undefined;
  private closed = false;

  constructor(options: SnapshotCacheOptions) {
    this.index = options.index;
    this.compiler = options.compiler;
    this.logger = options.logger;
    this.clock = options.clock;
    this.debounceMs = Math.max(0, options.debounceMs ?? 50);
    this.maxWaitMs = Math.max(this.debounceMs, options.maxWaitMs ?? this.debounceMs * 10);
    this.stopIndex = this.index.onChange(() => this.requestPass());
  }

  /**
   * Starts serving a proxy. A key nobody had yet is compiled at once, so the
   * proxy gets its snapshot without waiting for the next change. `deltas`:
   * the proxy takes deltas, so its key's snapshots carry one from the
   * previous version.
   */
  subscribe(node: NodeInfo, onChange: () => void, options: { deltas?: boolean } = {}): SnapshotSubscription {
    const key = this.compiler.snapshotInputKey(node);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, node, published: undefined, lastError: undefined, listeners: new Set(), deltaListeners: 0 };
      this.entries.set(key, entry);
      this.build(entry, this.index.input());
    }
    const listener = () => onChange();
    entry.listeners.add(listener);
    const deltas = options.deltas === true;
    if (deltas) entry.deltaListeners++;
    const owner = entry;
    let open = true;
    return {
      key,
      current: () => owner.published,
      lastError: () => owner.lastError,
      close: () => {
        if (!open) return;
        open = false;
        if (deltas) owner.deltaListeners--;
        owner.listeners.delete(listener);
        if (owner.listeners.size === 0 && this.entries.get(key) === owner) this.entries.delete(key);
      },
    };
  }

  /** Called after every compile pass with the input it compiled, also when no snapshot changed (the status writer uses it). */
  onPass(listener: (input: CompilerInput) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  /** Schedules a pass: after debounceMs of quiet, or maxWaitMs after the first change still waiting, whichever comes first. */
  requestPass(): void {
    if (this.closed) return;
    const now = this.clock.monotonic();
    this.pendingSince ??= now;
    const delay = Math.max(0, Math.min(this.debounceMs, this.pendingSince + this.maxWaitMs - now));
    this.timer?.cancel();
    this.timer = this.clock.setTimeout(() => this.passNow(), delay);
  }

  /** Recompiles every key now. */
  passNow(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.pendingSince = undefined;
    if (this.closed) return;
    const input = this.index.input();
    const started = this.clock.monotonic();
    const changed: Entry[] = [];
    for (const entry of this.entries.values()) if (this.build(entry, input, false)) changed.push(entry);
    this.logger.debug({ keys: this.entries.size, changed: changed.length, ms: this.clock.monotonic() - started, revision: this.index.revision }, 'compile pass');
    for (const entry of changed) this.notify(entry);
    for (const listener of this.passListeners) {
      try {
        listener(input);
      } catch (error) {
        this.logger.error({ err: error }, 'compile pass listener threw');
      }
    }
  }

  status(): SnapshotEntryStatus[] {
    return [...this.entries.values()]
      .map((e) => ({
        key: e.key,
        version: e.published?.snapshot.version,
        publishedAt: e.published?.publishedAt,
        proxies: e.listeners.size,
        lastError: e.lastError,
      }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The last few failed compiles or checks, newest last. */
  recentErrors(): CompileFailure[] {
    return [...this.recent];
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.stopIndex?.();
    this.entries.clear();
    this.passListeners.clear();
  }

  /** Compiles one key; returns whether something its listeners should see changed. */
  private build(entry: Entry, input: CompilerInput, notifyNow = true): boolean {
    let snapshot: ProxySnapshot | undefined;
    let problems: string[];
    try {
      snapshot = this.compiler.compile(input, entry.node);
      problems = this.compiler.checkSnapshot(snapshot, { versionTrusted: true });
    } catch (error) {
      problems = [`compile failed: ${(error as Error).message}`];
      this.logger.error({ err: error, key: entry.key }, 'compile threw');
    }
    if (problems.length || !snapshot) {
      const failure: CompileFailure = { key: entry.key, at: new Date(this.clock.now()).toISOString(), version: snapshot?.version, problems };
      const repeated = entry.lastError && entry.lastError.version === failure.version && sameList(entry.lastError.problems, problems);
      entry.lastError = failure;
      if (repeated) return false;
      this.recent.push(failure);
      if (this.recent.length > RECENT_ERRORS) this.recent.shift();
      this.logger.error(
        { key: entry.key, version: failure.version, problems, serving: entry.published?.snapshot.version },
        'snapshot failed its check; the previous snapshot stays in service',
      );
      // Only a proxy with nothing at all needs telling; the others keep their last good snapshot.
      if (!entry.published && notifyNow) this.notify(entry);
      return !entry.published;
    }
    entry.lastError = undefined;
    if (entry.published?.snapshot.version === snapshot.version) return false;
    let json: string | undefined;
    let lineTail: Buffer | undefined;
    const published = snapshot;
    // Held only until the delta is computed (at most two snapshots per key stay alive), and only for proxies that take deltas.
    let previous = entry.deltaListeners > 0 ? entry.published?.snapshot : undefined;
    const base = previous?.version;
    let deltaTail: Buffer | undefined;
    entry.published = {
      snapshot: published,
      seq: ++this.seq,
      publishedAt: new Date(this.clock.now()).toISOString(),
      json: () => (json ??= JSON.stringify(published)),
      lineTail: () => (lineTail ??= Buffer.from(`${(json ??= JSON.stringify(published))}}\n`)),
      base,
      deltaTail: () => {
        if (deltaTail || !previous || base === undefined) return deltaTail;
        const delta = computeSnapshotDelta(previous, published) ?? {};
        previous = undefined;
        deltaTail = Buffer.from(`"base":${JSON.stringify(base)},"delta":${JSON.stringify(delta)}}\n`);
        return deltaTail;
      },
    };
    if (notifyNow) this.notify(entry);
    return true;
  }

  private notify(entry: Entry): void {
    for (const listener of [...entry.listeners]) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ err: error, key: entry.key }, 'snapshot listener threw');
      }
    }
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
