// The inbound stack (mesh → app): the layers a request arriving on the tunnel passes through, in order.
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { forwardHttpToApp, forwardTcpToApp, type AppContext } from '../layers/forward/index.ts';
import { inboundPort, type InboundPorts } from '../layers/inbound-port/index.ts';
import { stripMeshHeaders } from '../layers/mesh-headers/index.ts';
import { rateLimit, type RateLimitContext, type RateLimitTarget } from '../layers/rate-limit/index.ts';
import { stack, type Step } from '../stack.ts';

/** `limits`: the proxy's rate limit buckets; the limits themselves come with `ports` (RateLimitPolicies on this workload's Services). */
export function buildInboundHttp(ports: InboundPorts & RateLimitTarget, context: AppContext, limits?: RateLimitContext): Step<HttpExchange> {
  return stack(ports, [
    inboundPort(), // 404 WEFT_ERR_INBOUND_PORT unless the workload serves the port
    limits ? rateLimit(limits) : (_target, next) => next, // 429 per caller identity, header, ... before the app does any work
    stripMeshHeaders, // weft-* headers are for proxies only
    forwardHttpToApp(context),
  ]);
}

export function buildInboundTcp(ports: InboundPorts, context: AppContext): Step<TcpExchange> {
  return stack(ports, [
    inboundPort(),
    forwardTcpToApp(context),
  ]);
}
