// Load balancers (round-robin, least-request) whose state outlives snapshots while their backend's endpoints stay.
import type { SnapshotBackend, SnapshotEndpoint } from '../../../api/snapshot.ts';

/** In-flight requests to one endpoint; shared by every balancer built for its backend, old or new. */
export interface Load {
  inFlight: number;
}

export interface Pick {
  endpoint: SnapshotEndpoint;
  load: Load;
}

export interface Balancer {
  pick(): Pick | undefined;
  /** The endpoint with this id, for a persistent session that goes back to it. */
  find(endpointId: string): Pick | undefined;
}

function findIn(picks: readonly Pick[], endpointId: string): Pick | undefined {
  for (const p of picks) if (p.endpoint.id === endpointId) return p;
  return undefined;
}

interface BackendState {
  cursor: { next: number };
  loads: Map<string, Load>;
}

class RoundRobin implements Balancer {
  private readonly picks: Pick[];
  private readonly cursor: { next: number };
  constructor(picks: Pick[], cursor: { next: number }) {
    this.picks = picks;
    this.cursor = cursor;
  }
  find(endpointId: string): Pick | undefined {
    return findIn(this.picks, endpointId);
  }
  pick(): Pick | undefined {
    const n = this.picks.length;
    if (n === 0) return undefined;
    const i = this.cursor.next % n;
    this.cursor.next = i + 1;
    return this.picks[i];
  }
}

/** Power of two random choices on in-flight requests: near least-loaded, without herding onto one endpoint. */
class LeastRequest implements Balancer {
  private readonly picks: Pick[];
  private readonly random: () => number;
  constructor(picks: Pick[], random: () => number) {
    this.picks = picks;
    this.random = random;
  }
  find(endpointId: string): Pick | undefined {
    return findIn(this.picks, endpointId);
  }
  pick(): Pick | undefined {
    const n = this.picks.length;
    if (n <= 1) return this.picks[0];
    const a = Math.floor(this.random() * n);
    let b = Math.floor(this.random() * (n - 1));
    if (b >= a) b++;
    const first = this.picks[a]!;
    const second = this.picks[b]!;
    return second.load.inFlight < first.load.inFlight ? second : first;
  }
}

/**
 * Keeps per-backend balancing state (round-robin position, in-flight counts)
 * across snapshots: a new snapshot with the same or overlapping endpoints
 * continues where the old one was.
 */
export class BalancerRegistry {
  private readonly states = new Map<string, BackendState>();
  private readonly random: () => number;

  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  /** A balancer for this snapshot's view of the backend. */
  balancerFor(backend: SnapshotBackend): Balancer {
    let state = this.states.get(backend.key);
    if (!state) {
      // Start round-robin at a random place so that many proxies don't all begin on the same endpoint.
      state = { cursor: { next: Math.floor(this.random() * 1024) }, loads: new Map() };
      this.states.set(backend.key, state);
    }
    const loads = new Map<string, Load>();
    const picks = backend.endpoints.map((endpoint) => {
      const load = state.loads.get(endpoint.id) ?? loads.get(endpoint.id) ?? { inFlight: 0 };
      loads.set(endpoint.id, load);
      return { endpoint, load };
    });
    state.loads = loads;
    return backend.lb === 'least-request' ? new LeastRequest(picks, this.random) : new RoundRobin(picks, state.cursor);
  }

  /** Forgets backends the applied snapshot no longer has. */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.states.keys()) if (!keys.has(key)) this.states.delete(key);
  }

  /** In-flight count of one endpoint of one backend (for tests and the admin page). */
  inFlight(backendKey: string, endpointId: string): number {
    return this.states.get(backendKey)?.loads.get(endpointId)?.inFlight ?? 0;
  }
}
