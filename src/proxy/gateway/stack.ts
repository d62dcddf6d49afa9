// The gateway stack (edge → mesh): what a request accepted by a Gateway listener passes through, in order.
//
// After the gateway's own layer, a request takes exactly the path of a
// sidecar's outbound request: the same route → rule → backend → endpoint
// stack (outbound/stack.ts), built from the virtual host's route table, so
// that every filter, timeout, retry and balancer the mesh has, the gateway has.
import type { RouteTable } from '../../api/snapshot.ts';
import type { HttpExchange } from '../exchange.ts';
import { buildOutboundHttp, type OutboundContext } from '../outbound/stack.ts';
import { stack, type Layer, type Step } from '../stack.ts';

/**
 * What the edge tells the mesh about the client: x-forwarded-for gets the
 * client's address appended, x-forwarded-proto says how it reached the
 * gateway (a client's own claim is replaced: the gateway is where it is known).
 */
export const edgeForwardedHeaders: Layer<unknown, HttpExchange> = (_target, next) => (ex) => {
  const headers = ex.headers;
  const client = ex.req.socket?.remoteAddress;
  if (client) {
    const previous = headers['x-forwarded-for'];
    const list = Array.isArray(previous) ? previous.join(', ') : previous;
    headers['x-forwarded-for'] = list ? `${list}, ${client}` : client;
  }
  headers['x-forwarded-proto'] = ex.scheme;
  return next(ex);
};

/** The mesh's outbound stack for one route table, as the gateway's terminal layer. */
function meshRoute(context: OutboundContext): Layer<RouteTable, HttpExchange> {
  return (table) => buildOutboundHttp(table, context);
}

/**
 * HTTP through one virtual host of a Gateway listener; `authorize`: the Gateway's AuthorizationPolicies,
 * `authenticate`: its RequestAuthentications (each compiled once for every host).
 */
export function buildGatewayHttp(
  table: RouteTable,
  context: OutboundContext,
  authorize?: Layer<unknown, HttpExchange>,
  authenticate?: Layer<unknown, HttpExchange>,
): Step<HttpExchange> {
  return stack(table, [
    edgeForwardedHeaders,
    authenticate ?? ((_target, next) => next), // 401 for an invalid JWT; a valid one gives the request its principal and claims, which authorization reads
    authorize ?? ((_target, next) => next), // 403 WEFT_ERR_RBAC_DENIED when an AuthorizationPolicy on the Gateway denies the client
    meshRoute(context), // route → rule → backend → endpoint, shared with the sidecar's outbound: rate limits (Gateway and route RateLimitPolicies) and FaultInjection filters included
  ]);
}
