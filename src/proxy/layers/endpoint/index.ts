// Endpoint layer: for a request addressed to one endpoint (a pod address), that endpoint is the destination; no route, no balancer.
import type { SnapshotEndpoint } from '../../../api/snapshot.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

export function pinEndpoint<X extends Exchange>(): Layer<SnapshotEndpoint, X> {
  return (endpoint, next) => (ex) => {
    ex.endpoint = endpoint;
    return next(ex);
  };
}
