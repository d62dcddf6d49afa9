// The resource index: an in-memory view of the store kept current by a watch, and the compiler's input built from it.
import type { CompilerInput } from '../compiler/types.ts';
import type { ApiPortal, FaultInjection, GraphQLApi, RateLimitPolicy, Transformation } from '../api/resources.ts';
import type { BackendTrafficPolicy, EndpointSlice, Gateway, GatewayClass, GRPCRoute, HTTPRoute, MeshConfig, ReferenceGrant, Secret, Service, Workload } from '../api/resources.ts';
import type { TCPRoute, TLSRoute } from '../api/resources.ts';
import type { AuthorizationPolicy } from '../api/resources.ts';
import type { PeerAuthentication } from '../api/resources.ts';
import type { RequestAuthentication } from '../api/resources.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { sameJson } from './store/canonical.ts';
import { keyOf } from './store/local-store.ts';
import type { Store, StoredResource, WatchEvent } from './store/types.ts';

export interface IndexChange {
  type: 'put' | 'delete';
  key: string;
  object: StoredResource;
  previous?: StoredResource | undefined;
}

export type IndexListener = (changes: readonly IndexChange[]) => void;

export interface ResourceIndexOptions {
  store: Store;
  logger: Logger;
  clock: Clock;
  /** First delay before re-listing after a failed watch or list; doubles up to 5 s. Default 100 ms. */
  relistDelayMs?: number | undefined;
}

const MAX_RELIST_DELAY_MS = 5000;

/**
 * Lists, then watches from the list's revision. When the watch fails (events
 * compacted away, store hiccup) it lists again and reports the difference as
 * changes, so listeners never need to know a re-list happened.
 */
export class ResourceIndex {
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly baseRelistDelayMs: number;
  private relistDelayMs: number;
  private readonly objects = new Map<string, StoredResource>();
  /** Objects by kind, and each kind's sorted list until that kind changes: a change rebuilds one list, not sixteen scans of the store. */
  private readonly byKind = new Map<string, Map<string, StoredResource>>();
  private readonly sortedByKind = new Map<string, readonly StoredResource[]>();
  private readonly listeners = new Set<IndexListener>();
  private stopWatch: (() => void) | undefined;
  private relistTimer: Timer | undefined;
  private currentRevision = 0;
  private cachedInput: CompilerInput | undefined;
  private transformInput: ((input: CompilerInput) => CompilerInput) | undefined;
  private stopped = false;
  private generationOfWatch = 0;

  constructor(options: ResourceIndexOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.clock = options.clock;
    this.baseRelistDelayMs = options.relistDelayMs ?? 100;
    this.relistDelayMs = this.baseRelistDelayMs;
  }

  /** Resolves once the first list is in; rejects if that list fails. */
  async start(): Promise<void> {
    await this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
    this.stopWatch = undefined;
    this.relistTimer?.cancel();
    this.listeners.clear();
  }

  /** The store revision this view reflects. */
  get revision(): number {
    return this.currentRevision;
  }

  get(key: string): StoredResource | undefined {
    return this.objects.get(key);
  }

  /** Every object of a kind (all groups), sorted by key; the same frozen array until an object of that kind changes. */
  list(kind: string): readonly StoredResource[] {
    let sorted = this.sortedByKind.get(kind);
    if (!sorted) {
      const entries = [...(this.byKind.get(kind) ?? [])];
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      sorted = Object.freeze(entries.map((entry) => entry[1]));
      this.sortedByKind.set(kind, sorted);
    }
    return sorted;
  }

  private put(key: string, object: StoredResource): void {
    const previous = this.objects.get(key);
    if (previous && previous.kind !== object.kind) this.remove(key);
    this.objects.set(key, object);
    let ofKind = this.byKind.get(object.kind);
    if (!ofKind) this.byKind.set(object.kind, (ofKind = new Map()));
    ofKind.set(key, object);
    this.sortedByKind.delete(object.kind);
  }

  private remove(key: string): void {
    const previous = this.objects.get(key);
    if (!previous) return;
    this.objects.delete(key);
    this.byKind.get(previous.kind)?.delete(key);
    this.sortedByKind.delete(previous.kind);
  }

  /** Objects per kind, for the status page. */
  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const object of this.objects.values()) counts[object.kind] = (counts[object.kind] ?? 0) + 1;
    return counts;
  }

  /** A read-only view for the compiler, rebuilt only after a change. Arrays are sorted by key so equal stores give equal input. */
  input(): CompilerInput {
    if (!this.cachedInput) {
      const meshConfig = this.objects.get('weft.dev/MeshConfig//default');
      const input: CompilerInput = Object.freeze({
        services: this.list('Service') as readonly Service[],
        workloads: this.list('Workload') as readonly Workload[],
        httpRoutes: this.list('HTTPRoute') as readonly HTTPRoute[],
        backendTrafficPolicies: this.list('BackendTrafficPolicy') as readonly BackendTrafficPolicy[],
        grpcRoutes: this.list('GRPCRoute') as readonly GRPCRoute[],
        tcpRoutes: this.list('TCPRoute') as readonly TCPRoute[],
        tlsRoutes: this.list('TLSRoute') as readonly TLSRoute[],
        faultInjections: this.list('FaultInjection') as readonly FaultInjection[],
        graphqlApis: this.list('GraphQLApi') as readonly GraphQLApi[],
        apiPortals: this.list('ApiPortal') as readonly ApiPortal[],
        transformations: this.list('Transformation') as readonly Transformation[],
        rateLimitPolicies: this.list('RateLimitPolicy') as readonly RateLimitPolicy[],
        authorizationPolicies: this.list('AuthorizationPolicy') as readonly AuthorizationPolicy[],
        peerAuthentications: this.list('PeerAuthentication') as readonly PeerAuthentication[],
        requestAuthentications: this.list('RequestAuthentication') as readonly RequestAuthentication[],
        meshConfig: meshConfig as MeshConfig | undefined,
        namespaces: this.list('Namespace'),
        gatewayClasses: this.list('GatewayClass') as readonly GatewayClass[],
        gateways: this.list('Gateway') as readonly Gateway[],
        referenceGrants: this.list('ReferenceGrant') as readonly ReferenceGrant[],
        secrets: this.list('Secret') as readonly Secret[],
        endpointSlices: this.list('EndpointSlice') as readonly EndpointSlice[],
      });
      this.cachedInput = this.transformInput ? this.transformInput(input) : input;
    }
    return this.cachedInput;
  }

  /**
   * A last step for input(), run once per rebuilt input: the control plane's
   * last-good versions (last-good.ts) replace versions that cannot be compiled.
   */
  setInputTransform(transform: ((input: CompilerInput) => CompilerInput) | undefined): void {
    this.transformInput = transform;
    this.cachedInput = undefined;
  }

  /**
   * Called after changes that matter to the compiler: creations, deletions and
   * writes that change the spec (generation) or labels. Status-only writes are
   * absorbed silently, so the status writer cannot trigger a recompilation.
   */
  onChange(listener: IndexListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async relist(): Promise<void> {
    this.stopWatch?.();
    this.stopWatch = undefined;
    const { items, revision } = await this.store.list();
    if (this.stopped) return;
    const seen = new Set<string>();
    const changes: IndexChange[] = [];
    for (const object of items) {
      const key = keyOf(object);
      seen.add(key);
      const previous = this.objects.get(key);
      if (previous?.metadata.resourceVersion === object.metadata.resourceVersion) continue;
      this.put(key, object);
      if (!previous || matters(previous, object)) changes.push({ type: 'put', key, object, previous });
    }
    for (const [key, object] of [...this.objects]) {
      if (seen.has(key)) continue;
      this.remove(key);
      changes.push({ type: 'delete', key, object });
    }
    this.currentRevision = revision;
    this.cachedInput = undefined;
    const watchId = ++this.generationOfWatch;
    this.stopWatch = this.store.watch(
      revision,
      (event) => {
        if (watchId === this.generationOfWatch) this.apply(event);
      },
      (error) => {
        if (watchId === this.generationOfWatch) this.watchFailed(error);
      },
    );
    this.relistDelayMs = this.baseRelistDelayMs;
    if (changes.length) this.notify(changes);
  }

  private apply(event: WatchEvent): void {
    const key = keyOf(event.object);
    this.currentRevision = event.revision;
    this.cachedInput = undefined;
    if (event.type === 'delete') {
      const previous = this.objects.get(key);
      this.remove(key);
      if (previous) this.notify([{ type: 'delete', key, object: event.object }]);
      return;
    }
    const previous = this.objects.get(key);
    this.put(key, event.object);
    if (!previous || matters(previous, event.object)) this.notify([{ type: 'put', key, object: event.object, previous }]);
  }

  private watchFailed(error: Error): void {
    if (this.stopped) return;
    this.stopWatch?.();
    this.stopWatch = undefined;
    this.generationOfWatch++;
    this.logger.warn({ err: error, delayMs: this.relistDelayMs }, 'store watch failed; listing again');
    this.scheduleRelist();
  }

  private scheduleRelist(): void {
    this.relistTimer?.cancel();
    const delay = this.relistDelayMs;
    this.relistDelayMs = Math.min(MAX_RELIST_DELAY_MS, this.relistDelayMs * 2);
    this.relistTimer = this.clock.setTimeout(() => {
      this.relistTimer = undefined;
      if (this.stopped) return;
      this.relist().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'listing the store failed; trying again');
        this.scheduleRelist();
      });
    }, delay);
  }

  private notify(changes: IndexChange[]): void {
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.logger.error({ err: error }, 'index listener threw');
      }
    }
  }
}

/** Whether a write could change what the compiler produces; only status and bookkeeping changed otherwise. */
function matters(previous: StoredResource, next: StoredResource): boolean {
  return (
    previous.metadata.generation !== next.metadata.generation ||
    previous.metadata.uid !== next.metadata.uid ||
    previous.apiVersion !== next.apiVersion ||
    !sameJson(previous.metadata.labels ?? {}, next.metadata.labels ?? {})
  );
}
