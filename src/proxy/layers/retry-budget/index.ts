// Retry budget and max parallel retries (BackendTrafficPolicy): a gate the route's retry layer asks before each retry.
//
// The layer sits outside the retry layer, sees each request once, counts it
// into the backend's budget and leaves a gate for the exchange; the retry
// layer calls retryPermitted(ex) when it is about to try again. A refused
// retry is not an error: the attempt's own answer (or failure) goes back to
// the client, as when attempts run out.
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { BackendState, BalancerRegistry } from '../balancer/balancers.ts';

interface Gate {
  state: BackendState;
  maxRetries: number | undefined;
  /** Whether this exchange counts in the backend's retries in flight. */
  retrying: boolean;
}

const gates = new WeakMap<HttpExchange, Gate>();

export function retryBudget(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, HttpExchange> {
  return (target, next) => {
    const traffic = target.backend.traffic;
    const maxRetries = traffic?.circuitBreaker?.maxRetries;
    if (!traffic?.retryBudget && maxRetries === undefined) return next;
    const state = registry.stateOf(target.backend.key);
    return async (ex) => {
      state.budget?.deposit();
      const gate: Gate = { state, maxRetries, retrying: false };
      gates.set(ex, gate);
      try {
        await next(ex);
      } finally {
        gates.delete(ex);
        if (gate.retrying) state.counters.retries--;
      }
    };
  };
}

/** Asked by the retry layer before each retry: true (and the retry counted) when budget and parallel-retry limit allow it. */
export function retryPermitted(ex: HttpExchange): boolean {
  const gate = gates.get(ex);
  if (!gate) return true;
  const counters = gate.state.counters;
  if (!gate.retrying && gate.maxRetries !== undefined && counters.retries >= gate.maxRetries) return false;
  if (gate.state.budget && !gate.state.budget.tryWithdraw()) return false;
  if (!gate.retrying) {
    gate.retrying = true;
    counters.retries++;
  }
  return true;
}
