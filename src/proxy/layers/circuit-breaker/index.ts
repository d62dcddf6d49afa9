// Circuit breaker (BackendTrafficPolicy circuitBreaker): over a backend's limit of requests, pending requests or TCP connections, refuse at once.
//
// Envoy's thresholds, per proxy and backend, whatever carries the request:
// `maxRequests` bounds the requests in flight to the backend (HTTP/1.1
// requests and HTTP/2 streams alike); `maxPendingRequests` bounds those
// waiting for a connection. With one request per HTTP/1.1 connection that is
// every request to an endpoint beyond its `maxConnections` (the pool's size);
// HTTP/2 multiplexes, so a request waits only beyond maxConnections sessions
// full of streams (H2Sessions keeps to maxConnections sessions per peer).
// Opaque TCP (straight, or a CONNECT stream on the mesh tunnel) has no
// requests: `maxConnections` bounds the connections open to each endpoint,
// held until the client's side closes (Envoy's TCP proxy, upstream_cx_overflow).
// An overflowing request is answered 503 WEFT_ERR_CIRCUIT_OPEN (gRPC:
// RESOURCE_EXHAUSTED) and an overflowing TCP connection is refused (closed,
// or 503 to a CONNECT) without touching the backend; the limits recover as
// soon as requests finish or connections close. (Parallel retries are
// limited by the retry-budget layer.)
import { ErrorCodes } from '../../../api/errors.ts';
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import { TcpExchange, type Exchange, type HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { DEFAULT_H2_SETTINGS } from '../../transport/h2.ts';
import type { BalancerRegistry, Load } from '../balancer/balancers.ts';
import { sendsAsHttp2 } from '../forward/index.ts';

/** Streams one HTTP/2 session carries before H2Sessions opens another (up to maxConnections). */
const STREAMS_PER_SESSION = DEFAULT_H2_SETTINGS.maxStreamsPerSession;

export function circuitBreaker<X extends Exchange>(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    const breaker = target.backend.traffic?.circuitBreaker;
    const maxRequests = breaker?.maxRequests;
    const maxConnections = breaker?.maxConnections;
    const maxPending = maxConnections !== undefined ? breaker?.maxPendingRequests : undefined;
    if (maxRequests === undefined && maxConnections === undefined) return next;
    const key = target.backend.key;
    const state = registry.stateOf(key);
    const counters = state.counters;
    // Requests are counted only when a request limit applies (maxConnections alone is the pools' to keep).
    const limitsRequests = maxRequests !== undefined || maxPending !== undefined;
    const h2Capacity = maxConnections !== undefined ? maxConnections * STREAMS_PER_SESSION : 0;

    const tcp = async (ex: TcpExchange): Promise<void> => {
      if (maxConnections === undefined) return next(ex as unknown as X);
      const endpoint = ex.endpoint!;
      const load = state.loads.get(endpoint.id);
      if (!load) return next(ex as unknown as X);
      if (load.connections >= maxConnections) {
        throw proxyError(ErrorCodes.CIRCUIT_OPEN, `${endpoint.id} of ${key} has ${load.connections} connections open, its limit (maxConnections)`, 503);
      }
      load.connections++;
      try {
        await next(ex as unknown as X);
      } catch (error) {
        load.connections--;
        throw error;
      }
      // Connected: the connection counts until the client's side is gone.
      const socket = ex.socket;
      if (socket.closed || socket.destroyed) closeOne(load);
      else socket.once('close', () => closeOne(load));
    };

    return async (ex) => {
      if (ex instanceof TcpExchange) return tcp(ex);
      if (!limitsRequests) return next(ex);
      if (maxRequests !== undefined && counters.requests >= maxRequests) {
        throw proxyError(ErrorCodes.CIRCUIT_OPEN, `${key} has ${counters.requests} requests in flight, its limit (maxParallelRequests)`, 503);
      }
      let pending = false;
      if (maxPending !== undefined) {
        // The balancer has counted this request already: beyond what the endpoint's connections carry at once, it waits for one.
        const endpoint = ex.endpoint!;
        const inFlight = state.loads.get(endpoint.id)?.inFlight ?? 1;
        pending = inFlight > maxConnections! && (inFlight > h2Capacity || !sendsAsHttp2(ex as unknown as HttpExchange, endpoint));
        if (pending && counters.pending >= maxPending) {
          throw proxyError(ErrorCodes.CIRCUIT_OPEN, `${key} has ${counters.pending} requests waiting for a connection, its limit (maxPendingRequests)`, 503);
        }
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

function closeOne(load: Load): void {
  load.connections--;
}
