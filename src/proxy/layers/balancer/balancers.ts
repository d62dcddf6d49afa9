// Load balancers (least-request with a latency EWMA, round-robin, random, consistent hashing) and the per-backend state that outlives snapshots.
//
// Per proxy, one BalancerRegistry keeps what must survive a snapshot while a
// backend and its endpoints stay: in-flight counts and latency EWMAs,
// round-robin positions, outlier ejections and health-check results, circuit
// breaker counters, retry budgets, and when each endpoint first appeared
// (slow start). A snapshot's balancer reads the backend's BackendTraffic once
// and, per pick, only the endpoints that are available: not ejected, not
// failing their health check, and (with locality failover) in the nearest
// locality that has any. When none is available at all the balancer uses
// every endpoint (Envoy's panic mode): a guess beats a certain 503.
import type { LiveBackendState } from '../../../api/explain.ts';
import type { SnapshotBackend, SnapshotEndpoint, SnapshotLocality } from '../../../api/snapshot.ts';
import { systemClock, type Clock } from '../../../telemetry/clock.ts';
import { HealthChecker, type HealthProbe } from '../health-check/checker.ts';
import { RetryBudget } from '../retry-budget/budget.ts';
import { hash32, maglevTable, ringTable, type HashTable } from './hashing.ts';

/** In-flight requests and latency of one endpoint; shared by every balancer built for its backend, old or new. */
export interface Load {
  inFlight: number;
  /** Opaque TCP connections open to the endpoint now, for the circuit breaker's maxConnections (inFlight counts only their connecting). */
  connections: number;
  /** Peak-EWMA of response time (ms): jumps up to a slower sample at once, decays towards faster ones. */
  ewmaMs: number;
  /** When ewmaMs was last updated (monotonic ms). */
  sampledAt: number;
  /** When this proxy first saw the endpoint in a backend it already had (monotonic ms); -Infinity for the first set. */
  addedAt: number;
}

/** What outlier detection and active health checks know about one endpoint. */
export interface EndpointHealth {
  /** Ejected until then (monotonic ms); 0: not ejected. */
  ejectedUntil: number;
  /** Ejections so far; each lasts base × this (capped), decaying while the endpoint behaves. */
  ejections: number;
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveConnect: number;
  /** False once the active health check failed `unhealthyThreshold` times in a row. */
  healthy: boolean;
}

/** Circuit-breaker counters of one backend, across snapshots. */
export interface BreakerCounters {
  requests: number;
  pending: number;
  retries: number;
}

export interface BackendState {
  readonly key: string;
  cursor: { next: number };
  loads: Map<string, Load>;
  health: Map<string, EndpointHealth>;
  /** Bumped whenever an endpoint's availability changes, so balancers recompute their candidates. */
  version: number;
  /** Endpoints in the latest snapshot (for the max ejection percent). */
  endpointCount: number;
  readonly counters: BreakerCounters;
  budget: RetryBudget | undefined;
  budgetConfig: string;
  checker: HealthChecker | undefined;
}

export interface Pick {
  endpoint: SnapshotEndpoint;
  load: Load;
}

export interface Balancer {
  /** An endpoint; with consistent hashing, `hashKey` (absent: the request has no key) decides which. */
  pick(hashKey?: string): Pick | undefined;
  /** The endpoint with this id, for a persistent session that goes back to it. */
  find(endpointId: string): Pick | undefined;
}

/** RTT assumed for an endpoint nothing was measured for yet (Linkerd uses a default RTT the same way). */
const DEFAULT_RTT_MS = 10;
/** How fast the latency EWMA forgets (Linkerd's default decay is 10 s). */
const EWMA_DECAY_MS = 10_000;
/** Share of its traffic an endpoint gets when its slow start begins. */
const SLOW_START_MIN = 0.1;

export interface BalancerRegistryOptions {
  random?: () => number;
  clock?: Clock;
  /** Runs active health checks; without it, backends with a healthCheck are not checked. */
  probe?: HealthProbe;
  /** Told the connection settings (BackendTrafficPolicy connection / maxConnections) for each endpoint's pool; undefined resets. */
  configurePeer?: (endpoint: SnapshotEndpoint, settings: PeerSettings | undefined) => void;
}

export interface PeerSettings {
  connections?: number;
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxRequestsPerConnection?: number;
}

interface StagedChanges {
  /** Backends the staged snapshot brings that the registry does not have yet. */
  states: Map<string, BackendState>;
  /** Per backend, the loads its staged balancers use. */
  loads: Map<string, Map<string, Load>>;
  /** Each staged balancerFor's changes to its backend's state, health checks and pools. */
  actions: (() => void)[];
}

function findIn(picks: readonly Pick[], endpointId: string): Pick | undefined {
  for (const p of picks) if (p.endpoint.id === endpointId) return p;
  return undefined;
}

/** 0: same subzone, 1: same zone, 2: same region, 3: elsewhere (or either side has no locality). */
export function localityTier(local: SnapshotLocality | undefined, other: SnapshotLocality | undefined): number {
  if (!local?.region || !other?.region || local.region !== other.region) return 3;
  if (!local.zone || local.zone !== other.zone) return 2;
  if (!local.subzone || local.subzone !== other.subzone) return 1;
  return 0;
}

class TrafficBalancer implements Balancer {
  private readonly picks: Pick[];
  private readonly backend: SnapshotBackend;
  private readonly state: BackendState;
  private readonly registry: BalancerRegistry;
  private readonly random: () => number;
  private readonly clock: Clock;
  /** Only backends with outlier detection, health checks or slow start read the clock per pick. */
  private readonly timed: boolean;
  private readonly slowStartMs: number;
  private candidates: Pick[];
  private candidatesVersion = -1;
  /** The candidates must be recomputed then (an ejection ends). */
  private candidatesUntil = Infinity;
  private table: HashTable | undefined;

  constructor(backend: SnapshotBackend, picks: Pick[], state: BackendState, registry: BalancerRegistry) {
    this.backend = backend;
    this.picks = picks;
    this.state = state;
    this.registry = registry;
    this.random = registry.random;
    this.clock = registry.clock;
    const traffic = backend.traffic;
    this.slowStartMs = traffic?.slowStartMs ?? 0;
    this.timed = traffic !== undefined && (traffic.outlierDetection !== undefined || traffic.healthCheck !== undefined || this.slowStartMs > 0);
    this.candidates = picks;
    // Built with the snapshot, not by the first request after it; a change of candidates (ejections) rebuilds it on demand.
    if (backend.lb === 'consistent-hash' && picks.length > 1) this.table = this.hashTable(picks);
  }

  private hashTable(candidates: readonly Pick[]): HashTable {
    const ids = candidates.map((c) => c.endpoint.id);
    return this.backend.traffic?.hash?.algorithm === 'ring-hash' ? ringTable(ids) : maglevTable(ids);
  }

  find(endpointId: string): Pick | undefined {
    return findIn(this.picks, endpointId);
  }

  pick(hashKey?: string): Pick | undefined {
    const now = this.timed ? this.clock.monotonic() : 0;
    const candidates = this.timed || this.backend.traffic?.localityFailover ? this.refresh(now) : this.picks;
    const n = candidates.length;
    if (n === 0) return undefined;
    if (n === 1) return candidates[0];
    switch (this.backend.lb) {
      case 'consistent-hash': {
        if (hashKey === undefined) return candidates[Math.floor(this.random() * n)];
        this.table ??= this.hashTable(candidates);
        return candidates[this.table.lookup(hash32(hashKey))] ?? candidates[0];
      }
      case 'round-robin': {
        let chosen = this.nextInTurn(candidates);
        for (let tries = 0; tries < 3 && this.slowStartMs > 0 && this.random() > this.weight(chosen, now); tries++) chosen = this.nextInTurn(candidates);
        return chosen;
      }
      case 'random': {
        let chosen = candidates[Math.floor(this.random() * n)]!;
        for (let tries = 0; tries < 3 && this.slowStartMs > 0 && this.random() > this.weight(chosen, now); tries++) chosen = candidates[Math.floor(this.random() * n)]!;
        return chosen;
      }
      default:
        return this.leastRequest(candidates, now);
    }
  }

  private nextInTurn(candidates: Pick[]): Pick {
    const i = this.state.cursor.next % candidates.length;
    this.state.cursor.next = i + 1;
    return candidates[i]!;
  }

  /** Power of two random choices on in-flight × latency (Linkerd's peak-EWMA cost), divided by the slow-start weight. */
  private leastRequest(candidates: Pick[], now: number): Pick {
    const n = candidates.length;
    const a = Math.floor(this.random() * n);
    let b = Math.floor(this.random() * (n - 1));
    if (b >= a) b++;
    const first = candidates[a]!;
    const second = candidates[b]!;
    return this.cost(second, now) < this.cost(first, now) ? second : first;
  }

  private cost(pick: Pick, now: number): number {
    const load = pick.load;
    const cost = (load.inFlight + 1) * load.ewmaMs;
    return this.slowStartMs > 0 ? cost / this.weight(pick, now) : cost;
  }

  /** Slow start: a new endpoint's share grows linearly from 10 % to 100 % over the window. */
  private weight(pick: Pick, now: number): number {
    const age = now - pick.load.addedAt;
    if (age >= this.slowStartMs) return 1;
    return Math.max(SLOW_START_MIN, age / this.slowStartMs);
  }

  /** The endpoints to pick from now: available ones, nearest locality first; all of them when none is available. */
  private refresh(now: number): Pick[] {
    if (this.candidatesVersion === this.state.version && now < this.candidatesUntil) return this.candidates;
    this.candidatesVersion = this.state.version;
    this.candidatesUntil = Infinity;
    const available: Pick[] = [];
    for (const pick of this.picks) {
      const health = this.state.health.get(pick.endpoint.id);
      if (health) {
        if (health.ejectedUntil > now) {
          this.candidatesUntil = Math.min(this.candidatesUntil, health.ejectedUntil);
          continue;
        }
        if (!health.healthy) continue;
      }
      available.push(pick);
    }
    // Every endpoint available: keep the snapshot's own list, so that its hash table stays valid.
    let chosen = available.length > 0 && available.length < this.picks.length ? available : this.picks;
    if (this.backend.traffic?.localityFailover && this.registry.locality !== undefined) {
      let best = 4;
      for (const pick of chosen) best = Math.min(best, localityTier(this.registry.locality, pick.endpoint.locality));
      chosen = chosen.filter((pick) => localityTier(this.registry.locality, pick.endpoint.locality) === best);
    }
    if (chosen !== this.candidates) this.table = undefined;
    this.candidates = chosen;
    return chosen;
  }
}

/**
 * Keeps per-backend state across snapshots: a new snapshot with the same or
 * overlapping endpoints continues where the old one was.
 */
export class BalancerRegistry {
  private readonly states = new Map<string, BackendState>();
  readonly random: () => number;
  readonly clock: Clock;
  private readonly probe: HealthProbe | undefined;
  private readonly configurePeer: BalancerRegistryOptions['configurePeer'];
  /** Endpoints whose pools were given settings, by backend key, so that dropping the policy resets them. */
  private readonly configured = new Map<string, { signature: string; settings: PeerSettings; endpoints: SnapshotEndpoint[] }>();
  /** The caller's own locality (its Workload's), from the snapshot. */
  locality: SnapshotLocality | undefined;
  /** Between stage() and commit()/rollback(): what the snapshot being compiled would change, held back until it is applied. */
  private staged: StagedChanges | undefined;

  constructor(options: BalancerRegistryOptions | (() => number) = {}) {
    const opts = typeof options === 'function' ? { random: options } : options;
    this.random = opts.random ?? Math.random;
    this.clock = opts.clock ?? systemClock;
    this.probe = opts.probe;
    this.configurePeer = opts.configurePeer;
  }

  /**
   * From now until commit() or rollback(), balancerFor and stateOf change
   * nothing the running config sees (new backends' state, loads, health
   * checks, retry budgets, pool settings): a snapshot rejected after it was
   * compiled (an upstream port that cannot be bound) leaves them as they were.
   */
  stage(): void {
    this.staged = { states: new Map(), loads: new Map(), actions: [] };
  }

  /** Applies what was staged, in the order the balancers were built. */
  commit(): void {
    const staged = this.staged;
    this.staged = undefined;
    if (!staged) return;
    for (const [key, state] of staged.states) if (!this.states.has(key)) this.states.set(key, state);
    for (const action of staged.actions) action();
  }

  /** Forgets what was staged; the balancers built meanwhile are never used. */
  rollback(): void {
    this.staged = undefined;
  }

  /** The state of a backend, created on first use (kept apart while staging). */
  stateOf(key: string): BackendState {
    let state = this.states.get(key) ?? this.staged?.states.get(key);
    if (!state) {
      // Start round-robin at a random place so that many proxies don't all begin on the same endpoint.
      state = {
        key,
        cursor: { next: Math.floor(this.random() * 1024) },
        loads: new Map(),
        health: new Map(),
        version: 0,
        endpointCount: 0,
        counters: { requests: 0, pending: 0, retries: 0 },
        budget: undefined,
        budgetConfig: '',
        checker: undefined,
      };
      (this.staged?.states ?? this.states).set(key, state);
    }
    return state;
  }

  /** A balancer for this snapshot's view of the backend. Also starts, updates or stops its health checks. */
  balancerFor(backend: SnapshotBackend): Balancer {
    const known = this.states.has(backend.key);
    const state = this.stateOf(backend.key);
    const now = this.clock.monotonic();
    // Balancers built for the same backend in one snapshot share their endpoints' loads, staged or not.
    const stagedLoads = this.staged?.loads.get(backend.key);
    const loads = new Map<string, Load>();
    const picks = backend.endpoints.map((endpoint) => {
      const load = stagedLoads?.get(endpoint.id) ?? state.loads.get(endpoint.id) ?? loads.get(endpoint.id) ?? { inFlight: 0, connections: 0, ewmaMs: DEFAULT_RTT_MS, sampledAt: now, addedAt: known ? now : -Infinity };
      loads.set(endpoint.id, load);
      return { endpoint, load };
    });
    const adopt = () => {
      const health = new Map<string, EndpointHealth>();
      for (const endpoint of backend.endpoints) {
        const h = state.health.get(endpoint.id);
        if (h) health.set(endpoint.id, h);
      }
      if (state.health.size !== health.size) state.version++;
      state.loads = loads;
      state.health = health;
      state.endpointCount = picks.length;
      this.updateBudget(state, backend);
      this.updateChecks(state, backend);
      this.updatePeers(backend);
    };
    if (this.staged) {
      this.staged.loads.set(backend.key, loads);
      this.staged.actions.push(adopt);
    } else adopt();
    return new TrafficBalancer(backend, picks, state, this);
  }

  /** Health of one endpoint of a backend, created (healthy, not ejected) on first use. */
  healthOf(state: BackendState, endpointId: string): EndpointHealth {
    let h = state.health.get(endpointId);
    if (!h) {
      h = { ejectedUntil: 0, ejections: 0, consecutive5xx: 0, consecutiveGateway: 0, consecutiveConnect: 0, healthy: true };
      state.health.set(endpointId, h);
    }
    return h;
  }

  /** Records how long an exchange with an endpoint took, for least-request's peak EWMA. */
  observeLatency(load: Load, ms: number): void {
    const now = this.clock.monotonic();
    if (ms > load.ewmaMs) load.ewmaMs = ms;
    else {
      const w = Math.exp(-Math.max(0, now - load.sampledAt) / EWMA_DECAY_MS);
      load.ewmaMs = load.ewmaMs * w + ms * (1 - w);
    }
    load.sampledAt = now;
  }

  private updateBudget(state: BackendState, backend: SnapshotBackend): void {
    const config = backend.traffic?.retryBudget;
    const signature = config ? `${config.percent}/${config.minRetriesPerSecond}/${config.windowMs}` : '';
    if (signature === state.budgetConfig) return;
    state.budgetConfig = signature;
    state.budget = config ? new RetryBudget(config, this.clock) : undefined;
  }

  private updateChecks(state: BackendState, backend: SnapshotBackend): void {
    const config = backend.traffic?.healthCheck;
    if (!config || !this.probe) {
      if (state.checker) {
        state.checker.stop();
        state.checker = undefined;
        for (const h of state.health.values()) h.healthy = true;
        state.version++;
      }
      return;
    }
    if (!state.checker) state.checker = new HealthChecker({ clock: this.clock, probe: this.probe, onChange: (id, healthy) => this.setHealthy(state, id, healthy) });
    state.checker.update(config, backend.endpoints);
  }

  private setHealthy(state: BackendState, endpointId: string, healthy: boolean): void {
    const h = this.healthOf(state, endpointId);
    if (h.healthy === healthy) return;
    h.healthy = healthy;
    state.version++;
  }

  private updatePeers(backend: SnapshotBackend): void {
    if (!this.configurePeer) return;
    const connection = backend.traffic?.connection;
    const maxConnections = backend.traffic?.circuitBreaker?.maxConnections;
    const settings: PeerSettings = {};
    if (maxConnections !== undefined) settings.connections = maxConnections;
    if (connection?.connectTimeoutMs !== undefined) settings.connectTimeoutMs = connection.connectTimeoutMs;
    if (connection?.idleTimeoutMs !== undefined) settings.keepAliveTimeoutMs = connection.idleTimeoutMs;
    if (connection?.maxRequestsPerConnection !== undefined) settings.maxRequestsPerConnection = connection.maxRequestsPerConnection;
    const empty = Object.keys(settings).length === 0;
    const signature = empty ? '' : `${JSON.stringify(settings)} ${backend.endpoints.map((e) => e.id).join(',')}`;
    const previous = this.configured.get(backend.key);
    if ((previous?.signature ?? '') === signature) return;
    const current = new Set(backend.endpoints.map((e) => e.id));
    if (empty) this.configured.delete(backend.key);
    else this.configured.set(backend.key, { signature, settings, endpoints: [...backend.endpoints] });
    this.releasePeers((previous?.endpoints ?? []).filter((endpoint) => empty || !current.has(endpoint.id)));
    if (!empty) for (const endpoint of backend.endpoints) this.configurePeer(endpoint, settings);
  }

  /**
   * Endpoints a backend no longer configures: back to the defaults, unless
   * another backend still configures them (a route's variant of the same
   * Service port, another Service selecting the endpoint), whose settings
   * they then keep.
   */
  private releasePeers(endpoints: readonly SnapshotEndpoint[]): void {
    if (!this.configurePeer || endpoints.length === 0) return;
    for (const endpoint of endpoints) {
      let settings: PeerSettings | undefined;
      for (const other of this.configured.values()) if (other.endpoints.some((e) => e.id === endpoint.id)) settings = other.settings;
      this.configurePeer(endpoint, settings);
    }
  }

  /** Forgets backends the applied snapshot no longer has (and stops their health checks). */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, state] of this.states) {
      if (keys.has(key)) continue;
      state.checker?.stop();
      this.states.delete(key);
      const configured = this.configured.get(key);
      this.configured.delete(key);
      if (configured) this.releasePeers(configured.endpoints);
    }
  }

  /** Stops every health check (the proxy is closing). */
  close(): void {
    for (const state of this.states.values()) state.checker?.stop();
  }

  /** In-flight count of one endpoint of one backend (for tests and the admin page). */
  inFlight(backendKey: string, endpointId: string): number {
    return this.states.get(backendKey)?.loads.get(endpointId)?.inFlight ?? 0;
  }

  /** Every backend's endpoints and counters as they are now, for the admin's /debug/backends (`weft explain`). */
  describe(): LiveBackendState[] {
    const now = this.clock.monotonic();
    return [...this.states.values()].map((state) => {
      const ids = new Set([...state.loads.keys(), ...state.health.keys()]);
      return {
        key: state.key,
        requests: state.counters.requests,
        pending: state.counters.pending,
        retries: state.counters.retries,
        healthChecked: state.checker !== undefined,
        endpoints: [...ids].map((id) => {
          const h = state.health.get(id);
          return {
            id,
            inFlight: state.loads.get(id)?.inFlight ?? 0,
            ejectedForMs: h && h.ejectedUntil > now ? Math.ceil(h.ejectedUntil - now) : 0,
            ejections: h?.ejections ?? 0,
            healthy: h?.healthy ?? true,
            consecutive5xx: h?.consecutive5xx ?? 0,
            consecutiveGatewayErrors: h?.consecutiveGateway ?? 0,
            consecutiveConnectFailures: h?.consecutiveConnect ?? 0,
          };
        }),
      };
    });
  }

  /** Whether an endpoint is ejected or failing its health check now (for tests and the admin page). */
  unavailable(backendKey: string, endpointId: string): boolean {
    const h = this.states.get(backendKey)?.health.get(endpointId);
    return h !== undefined && (h.ejectedUntil > this.clock.monotonic() || !h.healthy);
  }
}
