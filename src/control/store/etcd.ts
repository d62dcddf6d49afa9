// The distributed store: one etcd key per object, etcd revisions as resourceVersions, CAS in etcd transactions, etcd leases and watches.
import { randomUUID } from 'node:crypto';
import type { Etcd3, ICompare, IKeyValue, IPutRequest } from 'etcd3';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Resource } from '../../api/meta.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { deepFreeze, sameJson } from './canonical.ts';
import { createEtcdClient, isCompacted, isLeaseNotFound, normalizeEndpoint, unavailable, type EtcdTls, type WatchBackoff } from './etcd-client.ts';
import { KeepAliveChannel } from './etcd-keepalive.ts';
import { normalizeEtcdPrefix } from './etcd-url.ts';
import { EtcdWatch, rangeEndOf } from './etcd-watch.ts';
import { keyOf } from './local-store.ts';
import { checkExpected, matchesFilter } from './rules.ts';
import type { DeleteOptions, LeaseId, ListFilter, ListResult, PutOptions, Store, StoredResource, WatchEvent } from './types.ts';

export { DEFAULT_ETCD_PREFIX } from './etcd-url.ts';

export interface EtcdStoreOptions {
  /** http://host:port or host:port, one per etcd member. */
  endpoints: string[];
  /** Every key lives under `<prefix>/objects/`. Default /weft: several meshes can share one etcd with different prefixes. */
  prefix?: string | undefined;
  /** For creationTimestamp; leases expire on etcd's clock, not this one. */
  clock: Clock;
  logger?: Logger | undefined;
  /** Deadline of each etcd request. Default 5000 ms. */
  requestTimeoutMs?: number | undefined;
  /** Delays before a lost watch stream is reopened. Default 100 ms doubling to 5 s. */
  watchBackoff?: { initialMs?: number | undefined; maxMs?: number | undefined } | undefined;
  /** TLS to etcd (CA, and a client certificate when etcd wants one). */
  tls?: EtcdTls | undefined;
  /** etcd user and password, when etcd has auth enabled. */
  auth?: { username: string; password: string } | undefined;
}

/** Writers racing on one key retry their read-modify-write this many times before giving up with CONFLICT. */
const MAX_CAS_ATTEMPTS = 16;
/** Objects per range request when listing; pages after the first are read at the first page's revision. */
const LIST_PAGE_SIZE = 500;
const MAX_LEASE_ID = (1n << 63n) - 1n;

interface Current {
  kv: IKeyValue;
  object: StoredResource;
}

/**
 * Everything lives in etcd; this process keeps no copy, so any number of
 * control planes can share one etcd. A write reads the key, computes the new
 * object (generation, uid, creation time, kept status) and commits it in a
 * transaction that succeeds only if the key's mod_revision is still the one
 * read; a lost race reads again. resourceVersion is the key's mod_revision,
 * so it is not stored in the value (it is unknown until etcd commits).
 *
 * Unlike the local stores, one lease revocation deletes all its objects in
 * one etcd revision: watchers then see several delete events with the same
 * revision, in key order.
 */
export class EtcdStore implements Store {
  readonly kind = 'etcd' as const;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  private readonly client: Etcd3;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly objectsPrefix: string;
  private readonly watchBackoff: WatchBackoff;
  private readonly keepAlives: KeepAliveChannel;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  /** Connects lazily; prefer `EtcdStore.open`, which fails at once when etcd cannot be reached. */
  constructor(options: EtcdStoreOptions) {
    this.prefix = normalizeEtcdPrefix(options.prefix);
    this.objectsPrefix = `${this.prefix}/objects/`;
    this.endpoints = options.endpoints.map((e) => normalizeEndpoint(e, options.tls !== undefined));
    this.clock = options.clock;
    this.logger = options.logger;
    const { client, backoff } = createEtcdClient(options);
    this.client = client;
    this.watchBackoff = backoff;
    this.keepAlives = new KeepAliveChannel(client, options.requestTimeoutMs ?? 5000);
  }

  /** Opens the store and checks that etcd answers; STORE_UNAVAILABLE when it does not. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(options);
    try {
      await store.revision();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  async get(key: string): Promise<StoredResource | undefined> {
    this.assertOpen();
    return (await this.read(key, `read ${key}`))?.object;
  }

  async list(filter: ListFilter = {}): Promise<ListResult> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listOnce(filter);
      } catch (error) {
        // A compaction between two pages: the whole list must come from one revision, so start over.
        if (isCompacted(error) && attempt < 3) continue;
        throw unavailable(error, this.endpoints, 'list objects');
      }
    }
  }

  async put(resource: Resource, options: PutOptions = {}): Promise<StoredResource> {
    this.assertOpen();
    const key = keyOf(resource);
    const etcdKey = this.etcdKey(key);
    let lease = '0';
    if (!options.statusOnly && options.lease !== undefined) lease = this.leaseNumber(options.lease);
    const incoming = options.statusOnly ? undefined : structuredClone(resource);
    const incomingStatus = options.statusOnly && resource.status !== undefined ? structuredClone(resource.status) : undefined;
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(key, `read ${key}`);
      checkExpected(key, current?.object, options.expectedResourceVersion);
      let next: StoredResource;
      if (!incoming) {
        if (!current) throw new WeftError(ErrorCodes.NOT_FOUND, `${key} not found`);
        next = { ...current.object, metadata: { ...current.object.metadata } };
        if (incomingStatus === undefined) delete next.status;
        else next.status = incomingStatus;
      } else {
        const existing = current?.object;
        const generation = !existing ? 1 : sameJson(existing.spec, incoming.spec) ? existing.metadata.generation : existing.metadata.generation + 1;
        next = {
          apiVersion: incoming.apiVersion,
          kind: incoming.kind,
          metadata: {
            ...incoming.metadata,
            resourceVersion: '',
            generation,
            uid: existing?.metadata.uid ?? randomUUID(),
            creationTimestamp: existing?.metadata.creationTimestamp ?? new Date(this.clock.now()).toISOString(),
          },
          spec: incoming.spec,
        };
        // Status belongs to the control plane: a write that carries none keeps the one stored.
        const status = incoming.status !== undefined ? incoming.status : existing?.status;
        if (status !== undefined) next.status = status;
      }
      // A statusOnly write keeps whatever lease the key has; any other write binds to its own lease or to none.
      const request: IPutRequest = incoming ? { key: etcdKey, value: encode(next), lease } : { key: etcdKey, value: encode(next), ignore_lease: true };
      const unchanged: ICompare = current
        ? { key: etcdKey, target: 'Mod', result: 'Equal', mod_revision: current.kv.mod_revision }
        : { key: etcdKey, target: 'Create', result: 'Equal', create_revision: 0 };
      let response;
      try {
        response = await this.client.kv.txn({ compare: [unchanged], success: [{ request_put: request }], failure: [] });
      } catch (error) {
        if (isLeaseNotFound(error)) throw new WeftError(ErrorCodes.NOT_FOUND, `lease ${options.lease} not found or expired`);
        if (error instanceof Error && error.message.includes('request is too large')) {
          throw new WeftError(ErrorCodes.INVALID, `${key} is too large for etcd (its --max-request-bytes, 1.5 MiB by default)`);
        }
        throw unavailable(error, this.endpoints, `write ${key}`);
      }
      if (response.succeeded) {
        next.metadata.resourceVersion = String(response.header.revision);
        return deepFreeze(next);
      }
      if (attempt >= MAX_CAS_ATTEMPTS) {
        throw new WeftError(ErrorCodes.CONFLICT, `${key} kept changing under ${MAX_CAS_ATTEMPTS} attempts to write it; try again`);
      }
    }
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<StoredResource | undefined> {
    this.assertOpen();
    const etcdKey = this.etcdKey(key);
    if (options.expectedResourceVersion === undefined) {
      let response;
      try {
        response = await this.client.kv.deleteRange({ key: etcdKey, prev_kv: true });
      } catch (error) {
        throw unavailable(error, this.endpoints, `delete ${key}`);
      }
      const previous = response.prev_kvs?.[0];
      return previous ? this.decodeOrThrow(previous, String(response.header.revision)) : undefined;
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(key, `read ${key}`);
      if (!current) {
        if (options.expectedResourceVersion) throw new WeftError(ErrorCodes.NOT_FOUND, `${key} not found`);
        return undefined;
      }
      checkExpected(key, current.object, options.expectedResourceVersion);
      let response;
      try {
        response = await this.client.kv.txn({
          compare: [{ key: etcdKey, target: 'Mod', result: 'Equal', mod_revision: current.kv.mod_revision }],
          success: [{ request_delete_range: { key: etcdKey, prev_kv: true } }],
          failure: [],
        });
      } catch (error) {
        throw unavailable(error, this.endpoints, `delete ${key}`);
      }
      if (response.succeeded) {
        const previous = response.responses[0]?.response_delete_range?.prev_kvs?.[0] ?? current.kv;
        // As in the local stores, the deleted object carries the revision of its deletion.
        return this.decodeOrThrow(previous, String(response.header.revision));
      }
      if (attempt >= MAX_CAS_ATTEMPTS) {
        throw new WeftError(ErrorCodes.CONFLICT, `${key} kept changing under ${MAX_CAS_ATTEMPTS} attempts to delete it; try again`);
      }
    }
  }

  watch(fromRevision: number, onEvent: (event: WatchEvent) => void, onError?: (error: Error) => void): () => void {
    if (this.closed || !(fromRevision >= 0)) {
      const error = this.closed
        ? new WeftError(ErrorCodes.STORE_UNAVAILABLE, 'the store is closed')
        : new WeftError(ErrorCodes.CONFLICT, `revision ${fromRevision} is too old to watch from; list again`);
      queueMicrotask(() => onError?.(error));
      return () => {};
    }
    const watch: EtcdWatch = new EtcdWatch({
      client: this.client,
      keyPrefix: Buffer.from(this.objectsPrefix),
      fromRevision: Math.floor(fromRevision),
      decode: (kv, resourceVersion) => this.decodeOrLog(kv, resourceVersion),
      onEvent,
      onError,
      backoff: this.watchBackoff,
      logger: this.logger,
      onEnd: () => this.watches.delete(watch),
    });
    this.watches.add(watch);
    return () => watch.stop();
  }

  async grantLease(ttlMs: number): Promise<LeaseId> {
    this.assertOpen();
    if (!(ttlMs > 0)) throw new WeftError(ErrorCodes.INVALID, `lease TTL must be positive, got ${ttlMs}`);
    // etcd counts in whole seconds (and may raise a short TTL to its minimum, 1.5 election timeouts).
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    let response;
    try {
      response = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    } catch (error) {
      throw unavailable(error, this.endpoints, 'grant a lease');
    }
    if (response.error) throw new WeftError(ErrorCodes.STORE_UNAVAILABLE, `etcd refused a lease: ${response.error}`);
    return String(response.ID);
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    this.assertOpen();
    const id = this.leaseNumber(lease);
    let ttl: number;
    try {
      ttl = await this.keepAlives.renew(id);
    } catch (error) {
      if (isLeaseNotFound(error)) ttl = 0;
      else throw unavailable(error, this.endpoints, `renew lease ${lease}`);
    }
    if (!(ttl > 0)) throw new WeftError(ErrorCodes.NOT_FOUND, `lease ${lease} not found or expired`);
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    this.assertOpen();
    let id: string;
    try {
      id = this.leaseNumber(lease);
    } catch {
      return; // never a lease, so nothing is bound to it
    }
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch (error) {
      if (isLeaseNotFound(error)) return;
      throw unavailable(error, this.endpoints, `revoke lease ${lease}`);
    }
  }

  async revision(): Promise<number> {
    this.assertOpen();
    try {
      // Any linearizable read carries the current revision; a key that never exists costs the least.
      const response = await this.client.kv.range({ key: Buffer.from(this.objectsPrefix), keys_only: true, limit: 1 });
      return Number(response.header.revision);
    } catch (error) {
      throw unavailable(error, this.endpoints, 'read the revision');
    }
  }

  /**
   * Drops etcd's history up to `revision`: watchers from before it get
   * CONFLICT and re-list. etcd can do this itself (--auto-compaction-*);
   * this is for operators and tests.
   */
  async compact(revision: number): Promise<void> {
    this.assertOpen();
    try {
      await this.client.kv.compact({ revision, physical: true });
    } catch (error) {
      throw unavailable(error, this.endpoints, `compact to revision ${revision}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watches]) watch.stop();
    this.keepAlives.close();
    this.client.close();
  }

  private async listOnce(filter: ListFilter): Promise<ListResult> {
    const start = Buffer.from(this.objectsPrefix + rangePrefix(filter));
    const end = rangeEndOf(start);
    const items: StoredResource[] = [];
    let revision: string | undefined;
    let from = start;
    for (;;) {
      const response = await this.client.kv.range({ key: from, range_end: end, limit: LIST_PAGE_SIZE, revision: revision ?? 0 });
      revision ??= String(response.header.revision);
      for (const kv of response.kvs) {
        if (!matchesFilter(kv.key.toString('utf8').slice(this.objectsPrefix.length), filter)) continue;
        const object = this.decodeOrLog(kv, kv.mod_revision);
        if (object) items.push(object);
      }
      const last = response.kvs[response.kvs.length - 1];
      if (!response.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { items, revision: Number(revision) };
  }

  private async read(key: string, what: string): Promise<Current | undefined> {
    let response;
    try {
      response = await this.client.kv.range({ key: this.etcdKey(key) });
    } catch (error) {
      throw unavailable(error, this.endpoints, what);
    }
    const kv = response.kvs[0];
    return kv ? { kv, object: this.decodeOrThrow(kv, kv.mod_revision) } : undefined;
  }

  private etcdKey(key: string): Buffer {
    return Buffer.from(this.objectsPrefix + key);
  }

  private decodeOrThrow(kv: IKeyValue, resourceVersion: string): StoredResource {
    const object = decode(kv, resourceVersion);
    if (!object) throw new WeftError(ErrorCodes.INTERNAL, `etcd key ${kv.key.toString()} does not hold a weft object`);
    return object;
  }

  private decodeOrLog(kv: IKeyValue, resourceVersion: string): StoredResource | undefined {
    const object = decode(kv, resourceVersion);
    if (!object) this.logger?.error({ key: kv.key.toString() }, 'etcd key under the weft prefix does not hold a weft object; skipped');
    return object;
  }

  /** Lease ids are etcd's int64 lease ids in decimal; anything else was never granted. */
  private leaseNumber(lease: LeaseId): string {
    if (typeof lease === 'string' && /^\d{1,19}$/.test(lease)) {
      const id = BigInt(lease);
      if (id > 0n && id <= MAX_LEASE_ID) return id.toString();
    }
    throw new WeftError(ErrorCodes.NOT_FOUND, `lease ${String(lease)} not found or expired`);
  }

  private assertOpen(): void {
    if (this.closed) throw new WeftError(ErrorCodes.STORE_UNAVAILABLE, 'the store is closed');
  }
}

/** The stored value: the object without resourceVersion, which etcd supplies as the key's mod_revision. */
function encode(object: StoredResource): Buffer {
  return Buffer.from(JSON.stringify({ ...object, metadata: { ...object.metadata, resourceVersion: undefined } }));
}

function decode(kv: IKeyValue, resourceVersion: string): StoredResource | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(kv.value.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const object = parsed as StoredResource;
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || !object.metadata || typeof object.metadata !== 'object') {
    return undefined;
  }
  return deepFreeze({ ...object, metadata: { ...object.metadata, resourceVersion: String(resourceVersion) } });
}

/** The longest key prefix the filter pins down (group, then kind, then namespace); the rest is filtered after reading. */
function rangePrefix(filter: ListFilter): string {
  if (filter.group === undefined) return '';
  if (filter.kind === undefined) return `${filter.group}/`;
  if (filter.namespace === undefined) return `${filter.group}/${filter.kind}/`;
  return `${filter.group}/${filter.kind}/${filter.namespace}/`;
}


