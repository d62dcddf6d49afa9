// The outbound stack (app → mesh): the layers a request to a mesh service port passes through, in order.
import type { HttpRouteRule, RouteTable, SnapshotBackend, SnapshotEndpoint } from '../../api/snapshot.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { weightedBackends, type BackendTarget } from '../layers/backend/index.ts';
import { balance } from '../layers/balancer/index.ts';
import type { BalancerRegistry } from '../layers/balancer/balancers.ts';
import { bufferBody, DEFAULT_BUFFER_LIMIT_BYTES } from '../layers/body-buffer/index.ts';
import { cors } from '../layers/cors/index.ts';
import { pinEndpoint } from '../layers/endpoint/index.ts';
import { forwardHttp, forwardTcp, type ForwardContext } from '../layers/forward/index.ts';
import { forwardedHeaders } from '../layers/forwarded-headers/index.ts';
import { requestHeaderModifier, responseHeaderModifier } from '../layers/header-modifier/index.ts';
import { DEFAULT_MIRRORS_IN_FLIGHT, MirrorBudget, requestMirror, type MirrorContext } from '../layers/mirror/index.ts';
import { requestRedirect } from '../layers/redirect/index.ts';
import { retryConnectFailures, routeRetry } from '../layers/retry/index.ts';
import { route, routeTcp } from '../layers/route/index.ts';
import { sessionPersistence } from '../layers/session/index.ts';
import { backendRequestTimeout, requestTimeout } from '../layers/timeout/index.ts';
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
 * (answers), mirrors.
 */
export function buildOutboundHttp(table: RouteTable, context: OutboundContext): Step<HttpExchange> {
  const mirrors = mirrorContext(context);
  const backendStack = (target: BackendTarget): Step<HttpExchange> =>
    stack(target, [
      cors, // the backendRef's own filters
      requestHeaderModifier,
      urlRewrite,
      responseHeaderModifier,
      requestRedirect,
      requestMirror(mirrors),
      routeRetry({ clock: context.clock, connectAttempts: CONNECT_ATTEMPTS }), // the rule's retry policy, else refused connections only
      backendRequestTimeout(context.clock), // per attempt
      balance(context.balancers),
      forwardHttp(context.forward),
    ]);

  const ruleStack = (rule: HttpRouteRule): Step<HttpExchange> =>
    stack(rule, [
      cors,
      requestHeaderModifier,
      urlRewrite,
      responseHeaderModifier,
      requestRedirect,
      requestTimeout(context.clock), // the whole exchange, retries and backoffs included
      bufferBody(DEFAULT_BUFFER_LIMIT_BYTES), // only for rules that retry or mirror
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
      forwardTcp(context.forward),
    ]);

  const ruleStack = (rule: HttpRouteRule): Step<TcpExchange> => stack(rule, [weightedBackends(context.backends, backendStack)]);

  return stack(table, [routeTcp(ruleStack)]);
}

/** HTTP addressed to one endpoint (a pod address): straight to it, no route and no filters, as a mesh does for pod-IP traffic. */
export function buildEndpointHttp(endpoint: SnapshotEndpoint, context: OutboundContext): Step<HttpExchange> {
  return stack(endpoint, [forwardedHeaders, pinEndpoint<HttpExchange>(), forwardHttp(context.forward)]);
}

/** TCP (CONNECT) to one endpoint. */
export function buildEndpointTcp(endpoint: SnapshotEndpoint, context: OutboundContext): Step<TcpExchange> {
  return stack(endpoint, [pinEndpoint<TcpExchange>(), forwardTcp(context.forward)]);
}
