// The outbound stack (app → mesh): the layers a request to a mesh service port passes through, in order.
import type { HttpRouteRule, RouteTable, SnapshotBackend } from '../../api/snapshot.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { weightedBackends, type BackendTarget } from '../layers/backend/index.ts';
import { balance } from '../layers/balancer/index.ts';
import type { BalancerRegistry } from '../layers/balancer/balancers.ts';
import { forwardHttp, forwardTcp, type ForwardContext } from '../layers/forward/index.ts';
import { forwardedHeaders } from '../layers/forwarded-headers/index.ts';
import { requestHeaderModifier, responseHeaderModifier } from '../layers/header-modifier/index.ts';
import { retryConnectFailures } from '../layers/retry/index.ts';
import { route, routeTcp } from '../layers/route/index.ts';
import { backendRequestTimeout, requestTimeout } from '../layers/timeout/index.ts';
import { stack, type Step } from '../stack.ts';

/** Attempts per request when endpoints refuse connections (a mesh default; BackendTrafficPolicy will tune it). */
const CONNECT_ATTEMPTS = 2;

export interface OutboundContext {
  backends: Readonly<Record<string, SnapshotBackend>>;
  balancers: BalancerRegistry;
  forward: ForwardContext;
  clock: Clock;
}

/** HTTP to one service port: route table → rule → backend → endpoint. */
export function buildOutboundHttp(table: RouteTable, context: OutboundContext): Step<HttpExchange> {
  const backendStack = (target: BackendTarget): Step<HttpExchange> =>
    stack(target, [
      requestHeaderModifier, // the backendRef's own filters
      responseHeaderModifier,
      retryConnectFailures(CONNECT_ATTEMPTS), // another endpoint when one refuses; bodiless requests only
      backendRequestTimeout(context.clock), // per attempt
      balance(context.balancers),
      forwardHttp(context.forward),
    ]);

  const ruleStack = (rule: HttpRouteRule): Step<HttpExchange> =>
    stack(rule, [
      requestHeaderModifier,
      responseHeaderModifier,
      requestTimeout(context.clock),
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
