// Balancer layer: picks an endpoint of the chosen backend (by its policy's algorithm), counts the exchange as in flight on it, and times it.
import { ErrorCodes, isWeftError } from '../../../api/errors.ts';
import type { BackendTraffic, SnapshotBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import { HttpExchange, type Exchange, type TcpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { BalancerRegistry } from './balancers.ts';

/** The latency an attempt that failed counts as, for least-request. */
const FAILURE_PENALTY_MS = 1000;

export function balance<X extends Exchange>(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    const backend = target.backend;
    const balancer = registry.balancerFor(backend);
    const hashKey = backend.lb === 'consistent-hash' ? hashKeyReader(backend.traffic?.hash) : undefined;
    // Only least-request reads latencies; the others skip the clock.
    const timed = backend.lb === 'least-request';
    const clock = registry.clock;
    return async (ex) => {
      ex.backend = backend;
      // A persistent session goes back to its endpoint, unless that endpoint just refused a connection.
      const session = ex.session;
      const sticky = session !== undefined && session.backend === backend.key && ex.avoid?.id !== session.endpoint ? balancer.find(session.endpoint) : undefined;
      const key = hashKey?.(ex);
      let picked = sticky ?? balancer.pick(key);
      if (!picked) throw proxyError(ErrorCodes.NO_HEALTHY_UPSTREAM, `${backend.key} has no endpoints`, 503);
      // A retry after a connect failure: one more pick to get away from the endpoint that failed (a hashed key keeps its endpoint's neighbour).
      if (!sticky && ex.avoid !== undefined && picked.endpoint.id === ex.avoid.id) picked = balancer.pick(key === undefined ? undefined : `${key}\u0000retry`) ?? picked;
      ex.endpoint = picked.endpoint;
      const load = picked.load;
      load.inFlight++;
      const started = timed ? clock.monotonic() : 0;
      let failed = false;
      try {
        await next(ex);
      } catch (error) {
        failed = !isWeftError(error, ErrorCodes.CIRCUIT_OPEN);
        throw error;
      } finally {
        load.inFlight--;
        // A quick failure (a refused connection) must not make an endpoint look fast: it counts as a slow answer.
        if (timed) registry.observeLatency(load, failed ? Math.max(FAILURE_PENALTY_MS, clock.monotonic() - started) : clock.monotonic() - started);
      }
    };
  };
}

/** Reads the request's hash key once per request, as the policy says; undefined when the request has none. */
function hashKeyReader(hash: BackendTraffic['hash']): ((ex: Exchange) => string | undefined) | undefined {
  if (!hash) return undefined;
  const name = hash.name ?? '';
  switch (hash.source) {
    case 'header':
      return (ex) => {
        if (!(ex instanceof HttpExchange)) return undefined;
        const value = ex.headers[name];
        return Array.isArray(value) ? value.join(',') : value;
      };
    case 'query':
      return (ex) => (ex instanceof HttpExchange ? (ex.queryParams.get(name) ?? undefined) : undefined);
    case 'cookie':
      return (ex) => (ex instanceof HttpExchange ? cookieValue(ex.headers.cookie, name) : undefined);
    case 'source-ip':
      return (ex) => (ex instanceof HttpExchange ? ex.req.socket?.remoteAddress : (ex as TcpExchange).socket && remoteAddressOf((ex as TcpExchange).socket));
  }
}

function remoteAddressOf(socket: unknown): string | undefined {
  return (socket as { remoteAddress?: string }).remoteAddress;
}

function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}
