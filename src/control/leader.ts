// Leader election among control-plane replicas through the store: one lease-bound record, created only if absent; its holder runs the singleton jobs.
import { ErrorCodes, isWeftError } from '../api/errors.ts';
import { objectKey } from '../api/meta.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { LeaseId, Store } from './store/types.ts';

/** Not a kind of the API: the REST API and the compiler never list it. */
export const LEADER_API_VERSION = 'internal.weft.dev/v1';
export const LEADER_KIND = 'Leader';
const LEADER_NAME = 'control-plane';

export interface LeaderElectionOptions {
  store: Store;
  /** This replica's name, recorded in the leader object (`weft status` shows who leads). */
  identity: string;
  /** How long a dead leader keeps the role; renewed every third of it. */
  ttlMs: number;
  clock: Clock;
  logger: Logger;
  /**
   * The store cannot be shared (memory; SQLite, locked to one process): any
   * record found is a previous run's, held by a lease that outlived it, and
   * is taken over at once instead of waiting for it to expire.
   */
  sole?: boolean;
  /** Called with true when this replica becomes the leader, false when it stops being one. */
  onChange: (leading: boolean) => void;
}

export function leaderKey(): string {
  return objectKey({ apiVersion: LEADER_API_VERSION, kind: LEADER_KIND, name: LEADER_NAME });
}

/**
 * The record lives under the holder's store lease (an etcd lease on etcd),
 * so it vanishes when the holder stops renewing; the others watch for that
 * and race to create it again, and the store's create-only write lets
 * exactly one win. A holder that fails to renew steps down at once, before
 * its lease could have run out, so two replicas never both believe they lead
 * for longer than a renewal round trip.
 */
export class LeaderElection {
  private readonly options: LeaderElectionOptions;
  private lease: LeaseId | undefined;
  private leading = false;
  private closed = false;
  private timer: Timer | undefined;
  private stopWatch: (() => void) | undefined;
  private attempting: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Tries at once, then follows the record: a deletion (the leader gone) triggers a new attempt; a periodic retry covers a missed event. */
  async start(): Promise<void> {
    const { store } = this.options;
    if (this.options.sole) await store.delete(leaderKey()).catch(() => {});
    const revision = await store.revision();
    this.stopWatch = store.watch(
      revision,
      (event) => {
        if (event.type === 'delete' && objectKey({ apiVersion: event.object.apiVersion, kind: event.object.kind, name: event.object.metadata.name }) === leaderKey()) {
          void this.attempt();
        }
      },
      () => void this.attempt(),
    );
    await this.attempt();
    this.schedule();
  }

  /** Gives the role up (revoking the lease, so another replica takes over now rather than after the TTL). */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.stopWatch?.();
    await this.attempting;
    const lease = this.lease;
    this.lease = undefined;
    this.setLeading(false);
    if (lease !== undefined) await this.options.store.revokeLease(lease).catch(() => {});
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      void (this.leading ? this.renew() : this.attempt()).finally(() => this.schedule());
    }, Math.max(50, Math.floor(this.options.ttlMs / 3)));
  }

  private attempt(): Promise<void> {
    this.attempting ??= this.tryAcquire().finally(() => {
      this.attempting = undefined;
    });
    return this.attempting;
  }

  private async tryAcquire(): Promise<void> {
    if (this.closed || this.leading) return;
    const { store, identity, ttlMs, logger, clock } = this.options;
    try {
      if (await store.get(leaderKey())) return;
      const lease = await store.grantLease(ttlMs);
      try {
        await store.put(
          { apiVersion: LEADER_API_VERSION, kind: LEADER_KIND, metadata: { name: LEADER_NAME }, spec: { holder: identity, since: new Date(clock.now()).toISOString() } },
          { expectedResourceVersion: '0', lease },
        );
      } catch (error) {
        await store.revokeLease(lease).catch(() => {});
        if (isWeftError(error, ErrorCodes.ALREADY_EXISTS) || isWeftError(error, ErrorCodes.CONFLICT)) return;
        throw error;
      }
      if (this.closed) {
        await store.revokeLease(lease).catch(() => {});
        return;
      }
      this.lease = lease;
      logger.info({ identity }, 'this replica leads: it runs the singleton jobs');
      this.setLeading(true);
    } catch (error) {
      logger.warn({ err: error }, 'leader election attempt failed; retrying');
    }
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (lease === undefined || this.closed) return;
    try {
      await this.options.store.keepAlive(lease);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not renew the leader lease; stepping down');
      this.lease = undefined;
      this.setLeading(false);
      await this.options.store.revokeLease(lease).catch(() => {});
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.options.onChange(leading);
  }

  /** Who leads now, as the store says (for status). */
  static async holder(store: Store): Promise<string | undefined> {
    const object = await store.get(leaderKey());
    return (object?.spec as { holder?: string } | undefined)?.holder;
  }
}
