// The store logic shared by the memory and SQLite stores: objects live in memory, every write goes through to an optional persistence first.
import { checkExpected, matchesFilter } from './rules.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import { objectKey, type Resource } from '../../api/meta.ts';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { deepFreeze, sameJson } from './canonical.ts';
import type { DeleteOptions, LeaseId, ListFilter, ListResult, PutOptions, Store, StoredResource, WatchEvent } from './types.ts';

export interface PersistedObject {
  key: string;
  object: StoredResource;
  lease?: LeaseId | undefined;
}

export interface PersistedLease {
  id: LeaseId;
  ttlMs: number;
  expiresAt: number;
}

/** One write, applied by the persistence in a single transaction before memory changes. */
export interface Commit {
  revision: number;
  putObjects: PersistedObject[];
  deleteObjects: string[];
  putLeases: PersistedLease[];
  deleteLeases: LeaseId[];
}

export interface Persistence {
  /** Must be atomic: all of it or, by throwing, none of it. */
  commit(commit: Commit): void;
  close(): void;
}

export interface InitialState {
  revision: number;
  objects: PersistedObject[];
  leases: PersistedLease[];
}

export interface LocalStoreOptions {
  clock: Clock;
  logger?: Logger | undefined;
  /** How many past events a watcher can resume from; older revisions make watch report CONFLICT. Default 10,000. */
  eventLogSize?: number | undefined;
  /** How often expired leases are looked for. Default 250 ms. */
  leaseSweepMs?: number | undefined;
}

interface Lease {
  id: LeaseId;
  ttlMs: number;
  expiresAt: number;
  keys: Set<string>;
}

interface Watcher {
  cursor: number;
  queue: WatchEvent[];
  flushing: boolean;
  closed: boolean;
  onEvent: (event: WatchEvent) => void;
  onError: ((error: Error) => void) | undefined;
}

export const DEFAULT_EVENT_LOG_SIZE = 10_000;

/**
 * A complete Store over an in-memory map. Every operation runs to completion
 * without yielding, so writes are atomic with respect to each other; the
 * persistence (SQLite) sees each write as one transaction before memory is
 * touched, so a failed disk write leaves both unchanged.
 */
export class LocalStore implements Store {
  readonly kind: 'memory' | 'sqlite';
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly persistence: Persistence | undefined;
  private readonly objects = new Map<string, StoredResource>();
  private readonly objectLease = new Map<string, LeaseId>();
  private readonly leases = new Map<LeaseId, Lease>();
  private readonly watchers = new Set<Watcher>();
  private readonly eventLogSize: number;
  /** Events with revision > compactedThrough, in order, one per revision. */
  private log: WatchEvent[] = [];
  private compactedThrough: number;
  private currentRevision: number;
  private readonly sweeper: Timer;
  private closed = false;

  constructor(kind: 'memory' | 'sqlite', options: LocalStoreOptions, persistence?: Persistence, initial?: InitialState) {
    this.kind = kind;
    this.clock = options.clock;
    this.logger = options.logger;
    this.persistence = persistence;
    this.eventLogSize = Math.max(1, options.eventLogSize ?? DEFAULT_EVENT_LOG_SIZE);
    this.currentRevision = initial?.revision ?? 0;
    // Events from before this process are gone: watchers from older revisions must re-list.
    this.compactedThrough = this.currentRevision;
    for (const lease of initial?.leases ?? []) this.leases.set(lease.id, { ...lease, keys: new Set() });
    for (const { key, object, lease } of initial?.objects ?? []) {
      this.objects.set(key, deepFreeze(object));
      const bound = lease === undefined ? undefined : this.leases.get(lease);
      if (bound) {
        bound.keys.add(key);
        this.objectLease.set(key, bound.id);
      }
    }
    const sweepMs = Math.max(1, options.leaseSweepMs ?? 250);
    this.sweeper = this.clock.setInterval(() => this.expireLeases(), sweepMs).unref();
  }

  async get(key: string): Promise<StoredResource | undefined> {
    this.assertOpen();
    return this.objects.get(key);
  }

  async list(filter: ListFilter = {}): Promise<ListResult> {
    this.assertOpen();
    const matching: [string, StoredResource][] = [];
    for (const entry of this.objects) if (matchesFilter(entry[0], filter)) matching.push(entry);
    matching.sort((a, b) => compareKeys(a[0], b[0]));
    return { items: matching.map((entry) => entry[1]), revision: this.currentRevision };
  }

  async put(resource: Resource, options: PutOptions = {}): Promise<StoredResource> {
    this.assertOpen();
    const key = keyOf(resource);
    const existing = this.objects.get(key);
    checkExpected(key, existing, options.expectedResourceVersion);
    const revision = this.currentRevision + 1;
    let stored: StoredResource;
    let lease: LeaseId | undefined;
    if (options.statusOnly) {
      if (!existing) throw new WeftError(ErrorCodes.NOT_FOUND, `${key} not found`);
      stored = { ...existing, metadata: { ...existing.metadata, resourceVersion: String(revision) } };
      if (resource.status === undefined) delete stored.status;
      else stored.status = structuredClone(resource.status);
      lease = this.objectLease.get(key);
    } else {
      if (options.lease !== undefined) {
        this.liveLease(options.lease);
        lease = options.lease;
      }
      const incoming = structuredClone(resource);
      const generation = !existing ? 1 : sameJson(existing.spec, incoming.spec) ? existing.metadata.generation : existing.metadata.generation + 1;
      stored = {
        apiVersion: incoming.apiVersion,
        kind: incoming.kind,
        metadata: {
          ...incoming.metadata,
          resourceVersion: String(revision),
          generation,
          uid: existing?.metadata.uid ?? randomUUID(),
          creationTimestamp: existing?.metadata.creationTimestamp ?? new Date(this.clock.now()).toISOString(),
        },
        spec: incoming.spec,
      };
      // Status belongs to the control plane: a write that carries none keeps the one stored.
      const status = incoming.status !== undefined ? incoming.status : existing?.status;
      if (status !== undefined) stored.status = status;
    }
    deepFreeze(stored);
    this.commit({ revision, putObjects: [{ key, object: stored, lease }], deleteObjects: [], putLeases: [], deleteLeases: [] });
    this.objects.set(key, stored);
    this.bind(key, lease);
    const event: WatchEvent = existing ? { type: 'put', revision, object: stored, previous: existing } : { type: 'put', revision, object: stored };
    this.currentRevision = revision;
    this.emit([event]);
    return stored;
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<StoredResource | undefined> {
    this.assertOpen();
    const existing = this.objects.get(key);
    if (!existing) {
      if (options.expectedResourceVersion) throw new WeftError(ErrorCodes.NOT_FOUND, `${key} not found`);
      return undefined;
    }
    checkExpected(key, existing, options.expectedResourceVersion);
    const [event] = this.deleteObjects([key], []);
    return event?.object;
  }

  watch(fromRevision: number, onEvent: (event: WatchEvent) => void, onError?: (error: Error) => void): () => void {
    if (this.closed || fromRevision < this.compactedThrough) {
      const error = this.closed
        ? new WeftError(ErrorCodes.STORE_UNAVAILABLE, 'the store is closed')
        : new WeftError(ErrorCodes.CONFLICT, `revision ${fromRevision} is too old to watch from (oldest kept: ${this.compactedThrough}); list again`);
      queueMicrotask(() => onError?.(error));
      return () => {};
    }
    const watcher: Watcher = { cursor: fromRevision, queue: [], flushing: false, closed: false, onEvent, onError };
    const start = fromRevision - this.compactedThrough;
    for (let i = Math.max(0, start); i < this.log.length; i++) this.enqueue(watcher, this.log[i]!);
    this.watchers.add(watcher);
    return () => {
      watcher.closed = true;
      watcher.queue = [];
      this.watchers.delete(watcher);
    };
  }

  async grantLease(ttlMs: number): Promise<LeaseId> {
    this.assertOpen();
    if (!(ttlMs > 0)) throw new WeftError(ErrorCodes.INVALID, `lease TTL must be positive, got ${ttlMs}`);
    const lease: Lease = { id: randomBytes(8).toString('hex'), ttlMs, expiresAt: this.clock.now() + ttlMs, keys: new Set() };
    this.commit({
      revision: this.currentRevision,
      putObjects: [],
      deleteObjects: [],
      putLeases: [{ id: lease.id, ttlMs, expiresAt: lease.expiresAt }],
      deleteLeases: [],
    });
    this.leases.set(lease.id, lease);
    return lease.id;
  }

  async keepAlive(id: LeaseId): Promise<void> {
    this.assertOpen();
    const lease = this.liveLease(id);
    // Not written through: reopening a store extends every lease anyway, so the on-disk expiry never matters.
    lease.expiresAt = this.clock.now() + lease.ttlMs;
  }

  async revokeLease(id: LeaseId): Promise<void> {
    this.assertOpen();
    const lease = this.leases.get(id);
    if (lease) this.endLease(lease);
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.currentRevision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sweeper.cancel();
    for (const watcher of this.watchers) watcher.closed = true;
    this.watchers.clear();
    this.persistence?.close();
  }

  /** The expiry of a lease (for tests and the status page); undefined when it does not exist. */
  leaseExpiry(id: LeaseId): number | undefined {
    return this.leases.get(id)?.expiresAt;
  }

  private liveLease(id: LeaseId): Lease {
    const lease = this.leases.get(id);
    if (lease && lease.expiresAt > this.clock.now()) return lease;
    // Expired but not swept yet: end it now so callers never see a lease outlive its TTL.
    if (lease) this.endLease(lease);
    throw new WeftError(ErrorCodes.NOT_FOUND, `lease ${id} not found or expired`);
  }

  private expireLeases(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const lease of [...this.leases.values()]) {
      if (lease.expiresAt > now) continue;
      try {
        this.endLease(lease);
      } catch (error) {
        // The sweeper runs again shortly; a disk error now must not kill the timer.
        this.logger?.error({ err: error, lease: lease.id }, 'could not expire lease');
      }
    }
  }

  private endLease(lease: Lease): void {
    this.deleteObjects([...lease.keys].sort(compareKeys), [lease.id]);
    this.leases.delete(lease.id);
  }

  private deleteObjects(keys: string[], leaseIds: LeaseId[]): WatchEvent[] {
    const events: WatchEvent[] = [];
    let revision = this.currentRevision;
    for (const key of keys) {
      const existing = this.objects.get(key);
      if (!existing) continue;
      revision++;
      // As in Kubernetes, the deleted object carries the revision of its deletion so a watcher can resume after it.
      const object = deepFreeze({ ...existing, metadata: { ...existing.metadata, resourceVersion: String(revision) } });
      events.push({ type: 'delete', revision, object });
    }
    this.commit({ revision, putObjects: [], deleteObjects: events.map((e) => keyOf(e.object)), putLeases: [], deleteLeases: leaseIds });
    for (const event of events) {
      const key = keyOf(event.object);
      this.objects.delete(key);
      this.bind(key, undefined);
    }
    this.currentRevision = revision;
    this.emit(events);
    return events;
  }

  private bind(key: string, lease: LeaseId | undefined): void {
    const previous = this.objectLease.get(key);
    if (previous === lease) return;
    if (previous !== undefined) this.leases.get(previous)?.keys.delete(key);
    if (lease === undefined) this.objectLease.delete(key);
    else {
      this.objectLease.set(key, lease);
      this.leases.get(lease)?.keys.add(key);
    }
  }

  private commit(commit: Commit): void {
    if (!this.persistence) return;
    try {
      this.persistence.commit(commit);
    } catch (error) {
      throw new WeftError(ErrorCodes.STORE_UNAVAILABLE, `store write failed: ${(error as Error).message}`, error);
    }
  }

  private emit(events: WatchEvent[]): void {
    if (!events.length) return;
    this.log.push(...events);
    const limit = Math.max(this.eventLogSize + 1, Math.floor(this.eventLogSize * 1.25));
    if (this.log.length > limit) {
      this.log = this.log.slice(this.log.length - this.eventLogSize);
      this.compactedThrough = this.log[0]!.revision - 1;
    }
    for (const watcher of this.watchers) for (const event of events) this.enqueue(watcher, event);
  }

  /** Watchers are called from a microtask, never inside a write, so a watcher that writes cannot reorder what others see. */
  private enqueue(watcher: Watcher, event: WatchEvent): void {
    if (watcher.closed || event.revision <= watcher.cursor) return;
    watcher.cursor = event.revision;
    watcher.queue.push(event);
    if (watcher.flushing) return;
    watcher.flushing = true;
    queueMicrotask(() => {
      watcher.flushing = false;
      while (!watcher.closed && watcher.queue.length) {
        const next = watcher.queue.shift()!;
        try {
          watcher.onEvent(next);
        } catch (error) {
          this.logger?.error({ err: error }, 'store watcher threw');
        }
      }
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new WeftError(ErrorCodes.STORE_UNAVAILABLE, 'the store is closed');
  }
}

export function keyOf(resource: Resource): string {
  const meta = resource?.metadata as Resource['metadata'] | undefined;
  if (!resource || typeof resource.apiVersion !== 'string' || typeof resource.kind !== 'string' || typeof meta?.name !== 'string' || !meta.name) {
    throw new WeftError(ErrorCodes.INVALID, 'an object needs apiVersion, kind and metadata.name');
  }
  return objectKey({ apiVersion: resource.apiVersion, kind: resource.kind, namespace: meta.namespace, name: meta.name });
}



function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
