// The store interface every backend implements (memory, SQLite, later etcd): revisions, CAS, watch, leases.
import type { Resource } from '../../api/meta.ts';

/**
 * Every write bumps one store-wide revision (as etcd does). An object's
 * `metadata.resourceVersion` is the revision of its last write, as a string;
 * `metadata.generation` goes up by one whenever its spec changes.
 */
export interface StoredResource extends Resource {
  metadata: Resource['metadata'] & { resourceVersion: string; generation: number; uid: string; creationTimestamp: string };
}

export type LeaseId = string;

export interface PutOptions {
  /** Compare-and-swap: fail with WEFT_ERR_CONFLICT unless the stored resourceVersion equals this ("0" or "" = must not exist). */
  expectedResourceVersion?: string;
  /**
   * Bind the object to a lease: it is deleted when the lease expires or is
   * revoked. A later put without a lease unbinds it (as in etcd); a statusOnly
   * put keeps the binding.
   */
  lease?: LeaseId;
  /** Write only `status`: keeps spec and generation, still bumps resourceVersion. */
  statusOnly?: boolean;
}

export interface DeleteOptions {
  expectedResourceVersion?: string;
}

export type WatchEvent =
  | { type: 'put'; revision: number; object: StoredResource; previous?: StoredResource }
  | { type: 'delete'; revision: number; object: StoredResource };

export interface ListResult {
  items: StoredResource[];
  /** The store revision the list reflects; watch from this revision (exclusive) to follow on. */
  revision: number;
}

export interface ListFilter {
  /** Store key prefix parts: group ("core" for v1), kind, namespace. */
  group?: string;
  kind?: string;
  namespace?: string;
}

export interface Store {
  readonly kind: 'memory' | 'sqlite' | 'etcd';
  get(key: string): Promise<StoredResource | undefined>;
  list(filter?: ListFilter): Promise<ListResult>;
  /** Creates or replaces; fills resourceVersion, generation, uid and creationTimestamp. */
  put(resource: Resource, options?: PutOptions): Promise<StoredResource>;
  /** Returns the deleted object, or undefined when there was none. */
  delete(key: string, options?: DeleteOptions): Promise<StoredResource | undefined>;
  /**
   * Calls `onEvent` for every change after `fromRevision` (exclusive), in
   * revision order, then for every new one. Events older than the store keeps
   * make it call `onError` with WEFT_ERR_CONFLICT (the watcher must re-list).
   */
  watch(fromRevision: number, onEvent: (event: WatchEvent) => void, onError?: (error: Error) => void): () => void;
  grantLease(ttlMs: number): Promise<LeaseId>;
  /** Extends the lease by its TTL; WEFT_ERR_NOT_FOUND when it has already expired. */
  keepAlive(lease: LeaseId): Promise<void>;
  /** Deletes every object bound to the lease. */
  revokeLease(lease: LeaseId): Promise<void>;
  revision(): Promise<number>;
  close(): Promise<void>;
}
