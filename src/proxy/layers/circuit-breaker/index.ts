// Circuit breaker (BackendTrafficPolicy circuitBreaker): over a backend's limit of requests or pending requests, 503 at once.
//
// Envoy's thresholds, per proxy and backend: `maxRequests` bounds the
// requests in flight to the backend; `maxPendingRequests` bounds those
// waiting for a connection, which with one request per HTTP/1.1 connection
// is every request to an endpoint beyond its `maxConnections` (the pool's
// size). An overflowing request is answered 503 WEFT_ERR_CIRCUIT_OPEN
// without touching the backend, and the limit recovers as soon as requests
// finish. (Parallel retries are limited by the retry-budget layer.)
import { ErrorCodes } from '../../../api/errors.ts';
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { BalancerRegistry } from '../balancer/balancers.ts';

export function circuitBreaker<X extends Exchange>(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    const breaker = target.backend.traffic?.circuitBreaker;
    const maxRequests = breaker?.maxRequests;
    const maxConnections = breaker?.maxConnections;
    const maxPending = maxConnections !== undefined ? breaker?.maxPendingRequests : undefined;
    if (maxRequests === undefined && maxPending === undefined) return next;
    const key = target.backend.key;
    const state = registry.stateOf(key);
    const counters = state.counters;
    return async (ex) => {
      if (maxRequests !== undefined && counters.requests >= maxRequests) {
        throw proxyError(ErrorCodes.CIRCUIT_OPEN, `${key} has ${counters.requests} requests in flight, its limit (maxParallelRequests)`, 503);
      }
      // The balancer has counted this request already: beyond maxConnections in flight, it waits for a connection.
      const inFlight = state.loads.get(ex.endpoint!.id)?.inFlight ?? 1;
      const pending = maxPending !== undefined && inFlight > maxConnections!;
      if (pending && counters.pending >= maxPending) {
        throw proxyError(ErrorCodes.CIRCUIT_OPEN, `${key} has ${counters.pending} requests waiting for a connection, its limit (maxPendingRequests)`, 503);
      }
      counters.requests++;
      if (pending) counters.pending++;
      try {
        await next(ex);
      } finally {
        counters.requests--;
        if (pending) counters.pending--;
      }
    };
  };
}
