// Balancer layer: picks an endpoint of the chosen backend and counts the exchange as in flight on it.
import { ErrorCodes } from '../../../api/errors.ts';
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { BalancerRegistry } from './balancers.ts';

export function balance<X extends Exchange>(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    const backend = target.backend;
    const balancer = registry.balancerFor(backend);
    return async (ex) => {
      ex.backend = backend;
      // A persistent session goes back to its endpoint, unless that endpoint just refused a connection.
      const session = ex.session;
      const sticky = session !== undefined && session.backend === backend.key && ex.avoid?.id !== session.endpoint ? balancer.find(session.endpoint) : undefined;
      let picked = sticky ?? balancer.pick();
      if (!picked) throw proxyError(ErrorCodes.NO_HEALTHY_UPSTREAM, `${backend.key} has no endpoints`, 503);
      // A retry after a connect failure: one more pick to get away from the endpoint that failed.
      if (!sticky && ex.avoid !== undefined && picked.endpoint.id === ex.avoid.id) picked = balancer.pick() ?? picked;
      ex.endpoint = picked.endpoint;
      picked.load.inFlight++;
      try {
        await next(ex);
      } finally {
        picked.load.inFlight--;
      }
    };
  };
}
