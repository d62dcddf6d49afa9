// Control-plane replicas find each other through the store: each keeps one lease-bound record saying where its stream port is, so that any replica can show the whole mesh.
import { networkInterfaces } from 'node:os';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ResourceIndex } from './index.ts';
import type { LeaseId, Store } from './store/types.ts';

/** Not a kind of the API: the REST API and the compiler never list it. */
export const REPLICA_API_VERSION = 'internal.weft.dev/v1';
export const REPLICA_KIND = 'ControlPlaneReplica';

/** Another replica, as its record says. */
export interface Replica {
  name: string;
  /** Its stream port over TLS (https://address:port), where replicas ask each other for their proxies. */
  stream: string;
}

export interface ReplicaRegistryOptions {
  store: Store;
  index: ResourceIndex;
  self: Replica;
  /** The record lives this long after this replica stops renewing it; renewed every third of it. */
  ttlMs: number;
  clock: Clock;
  logger: Logger;
}

/**
 * The record sits under this replica's own store lease (an etcd lease on
 * etcd), so a replica that dies without stopping drops out of the others'
 * views within the TTL; one that stops revokes it at once. The others read
 * the records from their index, which follows the store's watch.
 */
export class ReplicaRegistry {
  private readonly options: ReplicaRegistryOptions;
  private lease: LeaseId | undefined;
  private timer: Timer | undefined;
  private closed = false;

  private constructor(options: ReplicaRegistryOptions) {
    this.options = options;
  }

  static async start(options: ReplicaRegistryOptions): Promise<ReplicaRegistry> {
    const registry = new ReplicaRegistry(options);
    await registry.register();
    registry.schedule();
    return registry;
  }

  /** The other replicas with a live record, by name. */
  peers(): Replica[] {
    const peers: Replica[] = [];
    for (const object of this.options.index.list(REPLICA_KIND)) {
      const spec = object.spec as Partial<Replica> | undefined;
      if (object.apiVersion !== REPLICA_API_VERSION || typeof spec?.stream !== 'string' || typeof spec.name !== 'string') continue;
      if (spec.name === this.options.self.name) continue;
      peers.push({ name: spec.name, stream: spec.stream });
    }
    return peers;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    const lease = this.lease;
    this.lease = undefined;
    if (lease !== undefined) await this.options.store.revokeLease(lease).catch(() => {});
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      void this.renew().finally(() => this.schedule());
    }, Math.max(50, Math.floor(this.options.ttlMs / 3)));
  }

  private async register(): Promise<void> {
    const { store, self, ttlMs } = this.options;
    const lease = await store.grantLease(ttlMs);
    try {
      await store.put({ apiVersion: REPLICA_API_VERSION, kind: REPLICA_KIND, metadata: { name: self.name }, spec: { ...self } }, { lease });
    } catch (error) {
      await store.revokeLease(lease).catch(() => {});
      throw error;
    }
    this.lease = lease;
  }

  /** Keeps the lease; one that expired (the store was out of reach too long) is replaced with a new record. */
  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.lease === undefined) return await this.register();
      await this.options.store.keepAlive(this.lease);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not renew this replica\'s record; registering it again');
      this.lease = undefined;
    }
  }
}

/**
 * The host other replicas reach this one's stream port by: the bind address
 * when it is one, else this host's first non-internal address (IPv4 first).
 */
export function advertisedHost(bindHost: string): string | undefined {
  if (bindHost !== '0.0.0.0' && bindHost !== '::' && bindHost !== '') return bindHost;
  const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((a) => !a.internal);
  const v4 = addresses.find((a) => a.family === 'IPv4');
  if (v4) return v4.address;
  const v6 = addresses.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'));
  return bindHost === '::' ? v6?.address : undefined;
}
