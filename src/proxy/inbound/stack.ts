// The inbound stack (mesh → app): the layers a request arriving on the tunnel passes through, in order.
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { forwardHttpToApp, forwardTcpToApp, type AppContext } from '../layers/forward/index.ts';
import { inboundPort, type InboundPorts } from '../layers/inbound-port/index.ts';
import { stripMeshHeaders } from '../layers/mesh-headers/index.ts';
import { rateLimit, type RateLimitContext, type RateLimitTarget } from '../layers/rate-limit/index.ts';
import { authorizeHttp, authorizeTcp, type AuthorizationContext, type AuthorizationTarget } from '../layers/authorization/index.ts';
import { requestAuthentication, type RequestAuthnContext, type RequestAuthnTarget } from '../layers/request-authn/index.ts';
import { stack, type Step } from '../stack.ts';

/**
 * `limits`: the proxy's rate limit buckets; the limits themselves come with `ports` (RateLimitPolicies on this workload's Services).
 * `authn`: the proxy's JWKS cache; the JWT rules come with `ports` (RequestAuthentications on this workload).
 */
export function buildInboundHttp(
  ports: InboundPorts & RateLimitTarget & AuthorizationTarget & RequestAuthnTarget,
  context: AppContext,
  limits?: RateLimitContext,
  authz?: AuthorizationContext,
  authn?: RequestAuthnContext,
): Step<HttpExchange> {
  return stack(ports, [
    inboundPort(), // 404 WEFT_ERR_INBOUND_PORT unless the workload serves the port
    authn ? requestAuthentication(authn) : (_target, next) => next, // 401 for an invalid JWT; a valid one sets ex.requestPrincipal and ex.jwtClaims, which authorization reads
    authz ? authorizeHttp(authz) : (_target, next) => next, // 403 WEFT_ERR_RBAC_DENIED when an AuthorizationPolicy denies the caller
    limits ? rateLimit(limits) : (_target, next) => next, // 429 per caller identity, header, ... before the app does any work
    stripMeshHeaders, // weft-* headers are for proxies only
    forwardHttpToApp(context),
  ]);
}

export function buildInboundTcp(ports: InboundPorts & AuthorizationTarget, context: AppContext, authz?: AuthorizationContext): Step<TcpExchange> {
  return stack(ports, [
    inboundPort(),
    authz ? authorizeTcp(authz) : (_target, next) => next, // a denied connection is refused before the app is dialled
    forwardTcpToApp(context),
  ]);
}
