// Last known good versions of routes and policies: remembered per object, kept in the store, and compiled in place of a version that cannot be compiled.
import { createHash } from 'node:crypto';
import { objectKey } from '../api/meta.ts';
import { LAST_GOOD_KINDS, selfContainedProblems, type FallBack } from '../compiler/last-good.ts';
import type { CompilerInput } from '../compiler/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { IndexChange, ResourceIndex } from './index.ts';
import { keyOf } from './store/local-store.ts';
import type { Store, StoredResource } from './store/types.ts';

/** Not a kind of the API: the REST API and the compiler never list it. */
export const LAST_GOOD_API_VERSION = 'internal.weft.dev/v1';
export const LAST_GOOD_KIND = 'LastGoodVersion';

/** What a LastGoodVersion record holds: the object's key and its last version without self-contained problems. */
export interface LastGoodRecord {
  key: string;
  object: StoredResource;
}

/** The CompilerInput lists that hold kinds with a last good version. */
const LISTS = {
  HTTPRoute: 'httpRoutes',
  GRPCRoute: 'grpcRoutes',
  BackendTrafficPolicy: 'backendTrafficPolicies',
  RateLimitPolicy: 'rateLimitPolicies',
  FaultInjection: 'faultInjections',
  GraphQLApi: 'graphqlApis',
  ApiPortal: 'apiPortals',
} as const satisfies Record<string, keyof CompilerInput>;

export interface LastGoodOptions {
  index: ResourceIndex;
  store: Store;
  logger: Logger;
  /** Problems of one version that no other object can cure; empty when good (the compiler's selfContainedProblems by default). */
  check?: (object: StoredResource) => string[] | undefined;
}

/**
 * Keeps, per route and policy, the last version with no self-contained
 * problems: in memory as this replica sees versions go by, and in the store
 * (one internal LastGoodVersion object per route or policy, written by the
 * leader) so that a restart, or another replica, knows it too. The index's
 * input() goes through substitute(): a version that cannot be compiled is
 * replaced by its last good version, and CompilerInput.fallBacks says so for
 * the statuses. The compiler stays pure: it only ever sees objects.
 */
export class LastGoodVersions {
  private readonly index: ResourceIndex;
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly check: (object: StoredResource) => string[] | undefined;
  private readonly seen = new Map<string, StoredResource>();
  private readonly problems = new WeakMap<StoredResource, string[] | undefined>();
  private readonly stopListening: () => void;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(options: LastGoodOptions) {
    this.index = options.index;
    this.store = options.store;
    this.logger = options.logger;
    this.check = options.check ?? selfContainedProblems;
    // Registered before the index starts, so that the first list's objects are seen too.
    this.stopListening = this.index.onChange((changes) => this.observe(changes));
    this.index.setInputTransform((input) => this.substitute(input));
  }

  /** Stops listening and waits for a store write in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopListening();
    this.index.setInputTransform(undefined);
    await this.reconciling;
  }

  /** The problems of one version (cached per version: stored objects are never mutated). */
  problemsOf(object: StoredResource): string[] | undefined {
    if (this.problems.has(object)) return this.problems.get(object);
    let problems: string[] | undefined;
    try {
      problems = this.check(object);
    } catch (error) {
      problems = [`checking it failed: ${(error as Error).message}`];
    }
    this.problems.set(object, problems);
    return problems;
  }

  /** The input with every version that cannot be compiled replaced by its last good one, where there is one. */
  substitute(input: CompilerInput): CompilerInput {
    const fallBacks = new Map<string, FallBack>();
    const replaced: Partial<Record<(typeof LISTS)[keyof typeof LISTS], readonly StoredResource[]>> = {};
    for (const list of Object.values(LISTS)) {
      const objects = (input[list] ?? []) as readonly StoredResource[];
      let changed = false;
      const inForce = objects.map((object) => {
        const problems = this.problemsOf(object);
        if (!problems || problems.length === 0) return object;
        const key = keyOf(object);
        const good = this.lastGood(key, object);
        if (!good) return object;
        changed = true;
        fallBacks.set(key, { generation: object.metadata.generation, inForceGeneration: good.metadata.generation, problems });
        return good;
      });
      if (changed) replaced[list] = Object.freeze(inForce);
    }
    if (fallBacks.size === 0) return input;
    return Object.freeze({ ...input, ...replaced, fallBacks }) as CompilerInput;
  }

  /** The newest good version of `current`'s object older than it: the one this replica saw, or the stored record. */
  lastGood(key: string, current: StoredResource): StoredResource | undefined {
    const candidates = [this.seen.get(key), this.storedRecord(key)?.object];
    let best: StoredResource | undefined;
    for (const candidate of candidates) {
      if (!candidate || candidate.metadata.uid !== current.metadata.uid || candidate.metadata.generation >= current.metadata.generation) continue;
      const problems = this.problemsOf(candidate);
      if (!problems || problems.length > 0) continue;
      if (!best || candidate.metadata.generation > best.metadata.generation) best = candidate;
    }
    return best;
  }

  /**
   * Brings the stored records in line with the objects (leader only, after a
   * compile pass): a record for every good current version, none for objects
   * that are gone. Runs never overlap; calls during a run make one more.
   */
  reconcile(): Promise<void> {
    if (this.reconciling) {
      this.again = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      try {
        do {
          this.again = false;
          await this.reconcileOnce();
        } while (this.again && !this.stopped);
      } catch (error) {
        this.logger.warn({ err: error }, 'writing last good versions failed; the next pass tries again');
      } finally {
        this.reconciling = undefined;
      }
    })();
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    const wanted = new Set<string>();
    for (const kind of LAST_GOOD_KINDS) {
      for (const object of this.index.list(kind)) {
        if (this.stopped) return;
        const key = keyOf(object);
        wanted.add(recordKey(key));
        const problems = this.problemsOf(object);
        if (!problems || problems.length > 0) continue;
        const stored = this.storedRecord(key)?.object;
        if (stored && stored.metadata.uid === object.metadata.uid && stored.metadata.generation === object.metadata.generation) continue;
        const record: LastGoodRecord = { key, object: recordedVersion(object) };
        await this.store.put({ apiVersion: LAST_GOOD_API_VERSION, kind: LAST_GOOD_KIND, metadata: { name: recordName(key) }, spec: record });
      }
    }
    for (const record of this.index.list(LAST_GOOD_KIND)) {
      if (this.stopped) return;
      if (record.apiVersion !== LAST_GOOD_API_VERSION) continue;
      const key = keyOf(record);
      const spec = record.spec as LastGoodRecord;
      const current = this.index.get(spec.key);
      // Deleted (or deleted and created again): its old versions must never come back.
      if (!wanted.has(key) || !current || current.metadata.uid !== spec.object.metadata.uid) await this.store.delete(key);
    }
  }

  private storedRecord(key: string): LastGoodRecord | undefined {
    const record = this.index.get(recordKey(key));
    return record?.apiVersion === LAST_GOOD_API_VERSION ? (record.spec as LastGoodRecord) : undefined;
  }

  /** Remembers every good version as it arrives, so that a bad one right after it still finds it before any record is written. */
  private observe(changes: readonly IndexChange[]): void {
    for (const change of changes) {
      if (!LAST_GOOD_KINDS.has(change.object.kind) || change.object.apiVersion === LAST_GOOD_API_VERSION) continue;
      if (change.type === 'delete') {
        this.seen.delete(change.key);
        continue;
      }
      const problems = this.problemsOf(change.object);
      if (problems && problems.length === 0) this.seen.set(change.key, change.object);
      else if (this.seen.get(change.key)?.metadata.uid !== change.object.metadata.uid) this.seen.delete(change.key);
    }
  }
}

/** The store key of the record for the object with key `key`. */
export function recordKey(key: string): string {
  return objectKey({ apiVersion: LAST_GOOD_API_VERSION, kind: LAST_GOOD_KIND, name: recordName(key) });
}

/** Object keys have slashes; record names are a hash of them. */
function recordName(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 40);
}

/** What the compiler needs of a version; its status is the store's business. */
function recordedVersion(object: StoredResource): StoredResource {
  return { apiVersion: object.apiVersion, kind: object.kind, metadata: object.metadata, spec: object.spec };
}
