// The outbound stack (app → mesh): the layers a request to a mesh service port passes through, in order.
import type { HttpRouteRule, RouteTable, SnapshotBackend, SnapshotEndpoint } from '../../api/snapshot.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { weightedBackends, type BackendTarget } from '../layers/backend/index.ts';
import { balance } from '../layers/balancer/index.ts';
import type { BalancerRegistry } from '../layers/balancer/balancers.ts';
import { bufferBody, DEFAULT_BUFFER_LIMIT_BYTES } from '../layers/body-buffer/index.ts';
import { circuitBreaker } from '../layers/circuit-breaker/index.ts';
import { outlierDetection } from '../layers/outlier/index.ts';
import { retryBudget } from '../layers/retry-budget/index.ts';
import { cors } from '../layers/cors/index.ts';
import { faultInjection } from '../layers/fault/index.ts';
import { graphqlEndpoint } from '../layers/graphql/index.ts';
import { apiPortal } from '../layers/portal/index.ts';
import { rateLimit, RateLimiterRegistry } from '../layers/rate-limit/index.ts';
import { JwksCache } from '../layers/request-authn/jwks.ts';
import { pinEndpoint } from '../layers/endpoint/index.ts';
import { forwardHttp, forwardTcp, type ForwardContext } from '../layers/forward/index.ts';
import { forwardedHeaders } from '../layers/forwarded-headers/index.ts';
import { requestHeaderModifier, responseHeaderModifier } from '../layers/header-modifier/index.ts';
import { DEFAULT_MIRRORS_IN_FLIGHT, MirrorBudget, requestMirror, type MirrorContext } from '../layers/mirror/index.ts';
import { requestRedirect } from '../layers/redirect/index.ts';
import { retryConnectFailures, routeRetry } from '../layers/retry/index.ts';
import { route } from '../layers/route/index.ts';
import { routeBySni } from '../layers/sni-route/index.ts';
import { sessionPersistence } from '../layers/session/index.ts';
import { backendRequestTimeout, requestTimeout } from '../layers/timeout/index.ts';
import { transformation } from '../layers/transformation/index.ts';
import { urlRewrite } from '../layers/url-rewrite/index.ts';
import { stack, type Step } from '../stack.ts';

/** Attempts per request when endpoints refuse connections (a mesh default; BackendTrafficPolicy will tune it). */
const CONNECT_ATTEMPTS = 2;

export interface OutboundContext {
  backends: Readonly<Record<string, SnapshotBackend>>;
  balancers: BalancerRegistry;
  forward: ForwardContext;
  clock: Clock;
  /** Mirror copies in flight, shared by every snapshot of one proxy; one per balancer registry when absent. */
  mirrors?: MirrorBudget;
  /** Rate limit buckets (and the global quota client), kept across snapshots; one local-only registry per balancer registry when absent. */
  rateLimits?: RateLimiterRegistry;
  /** JWKS by URI (RequestAuthentication at gateways and inbound), kept across snapshots; one per balancer registry when absent. */
  jwks?: JwksCache;
}

const limiters = new WeakMap<BalancerRegistry, RateLimiterRegistry>();

/** The proxy's rate limit registry; a local-only one per balancer registry for contexts built without one (tests). */
export function rateLimiterRegistry(context: Pick<OutboundContext, 'rateLimits' | 'balancers'>): RateLimiterRegistry {
  if (context.rateLimits) return context.rateLimits;
  let registry = limiters.get(context.balancers);
  if (!registry) limiters.set(context.balancers, (registry = new RateLimiterRegistry()));
  return registry;
}

const jwksCaches = new WeakMap<BalancerRegistry, JwksCache>();

/** The proxy's JWKS cache; one per balancer registry for contexts built without one (tests). */
export function jwksCache(context: Pick<OutboundContext, 'jwks' | 'balancers' | 'clock'>): JwksCache {
  if (context.jwks) return context.jwks;
  let cache = jwksCaches.get(context.balancers);
  if (!cache) jwksCaches.set(context.balancers, (cache = new JwksCache({ clock: context.clock })));
  return cache;
}

const budgets = new WeakMap<BalancerRegistry, MirrorBudget>();

function mirrorContext(context: OutboundContext): MirrorContext {
  let budget = context.mirrors ?? budgets.get(context.balancers);
  if (!budget) budgets.set(context.balancers, (budget = new MirrorBudget(DEFAULT_MIRRORS_IN_FLIGHT)));
  return { backends: context.backends, balancers: context.balancers, forward: context.forward, clock: context.clock, budget };
}

/**
 * HTTP to one service port: route table → rule → backend → endpoint. A rule
 * and a backendRef run the same filters, in the same order: CORS (answers
 * preflights), request headers, URL rewrite, response headers, redirect
 * (answers), fault injection, transformations, mirrors; a rule's GraphQLApi answers after its timeout starts. A rule's rate limits come first, before
 * any of them.
 */
export function buildOutboundHttp(table: RouteTable, context: OutboundContext): Step<HttpExchange> {
  const mirrors = mirrorContext(context);
  const faults = faultInjection({ clock: context.clock });
  const transformations = transformation();
  const graphql = graphqlEndpoint({ backends: context.backends, balancers: context.balancers, forward: context.forward, clock: context.clock });
  const backendStack = (target: BackendTarget): Step<HttpExchange> =>
    stack(target, [
      cors, // the backendRef's own filters
      requestHeaderModifier,
      urlRewrite,
      responseHeaderModifier,
      requestRedirect,
      faults, // the backendRef's FaultInjection ExtensionRefs
      transformations, // the backendRef's Transformation ExtensionRefs: its response is rewritten before the rule's
      requestMirror(mirrors),
      retryBudget(context.balancers), // BackendTrafficPolicy: the retry budget and parallel-retry limit the retry layer asks
      routeRetry({ clock: context.clock, connectAttempts: CONNECT_ATTEMPTS }), // the rule's retry policy, else refused connections only
      backendRequestTimeout(context.clock), // per attempt
      balance(context.balancers),
      circuitBreaker(context.balancers), // 503 at once over the backend's limits
      outlierDetection(context.balancers), // ejects endpoints that fail in a row
      forwardHttp(context.forward),
    ]);

  const ruleStack = (rule: HttpRouteRule): Step<HttpExchange> =>
    stack(rule, [
      rateLimit({ registry: rateLimiterRegistry(context), clock: context.clock, source: context.forward.source }), // before any work is spent on the request
      cors,
      requestHeaderModifier,
      urlRewrite,
      responseHeaderModifier,
      requestRedirect,
      faults, // FaultInjection ExtensionRefs: after the rule's filters, before the backends (the delay is not counted in the request timeout, as in Envoy)
      requestTimeout(context.clock), // the whole exchange, retries and backoffs included
      transformations, // Transformation ExtensionRefs: within the request timeout, since they may read the whole request body
      graphql, // a GraphQLApi ExtensionRef: the proxy answers, calling the resolvers' services (within the request timeout)
      apiPortal, // an ApiPortal ExtensionRef: the proxy serves its pages
      bufferBody(DEFAULT_BUFFER_LIMIT_BYTES, context.clock), // only for rules that retry or mirror
      requestMirror(mirrors),
      sessionPersistence(context.clock), // back to the session's backend and endpoint
      weightedBackends(context.backends, backendStack),
    ]);

  return stack(table, [
    forwardedHeaders, // x-forwarded-proto, x-request-id
    route(ruleStack),
  ]);
}

/** Opaque TCP to one service port: the catch-all rule's weighted backends → endpoint. */
export function buildOutboundTcp(table: RouteTable, context: OutboundContext): Step<TcpExchange> {
  const backendStack = (target: BackendTarget): Step<TcpExchange> =>
    stack(target, [
      retryConnectFailures(CONNECT_ATTEMPTS),
      balance(context.balancers),
      circuitBreaker(context.balancers),
      outlierDetection(context.balancers),
      forwardTcp(context.forward),
    ]);

  const ruleStack = (rule: HttpRouteRule): Step<TcpExchange> => stack(rule, [weightedBackends(context.backends, backendStack)]);

  return stack(table, [routeBySni(ruleStack, context.clock)]); // TLSRoutes: by the ClientHello's SNI; else the catch-all rule
}

/** HTTP addressed to one endpoint (a pod address): straight to it, no route and no filters, as a mesh does for pod-IP traffic. */
export function buildEndpointHttp(endpoint: SnapshotEndpoint, context: OutboundContext): Step<HttpExchange> {
  return stack(endpoint, [forwardedHeaders, pinEndpoint<HttpExchange>(), forwardHttp(context.forward)]);
}

/** TCP (CONNECT) to one endpoint. */
export function buildEndpointTcp(endpoint: SnapshotEndpoint, context: OutboundContext): Step<TcpExchange> {
  return stack(endpoint, [pinEndpoint<TcpExchange>(), forwardTcp(context.forward)]);
}
