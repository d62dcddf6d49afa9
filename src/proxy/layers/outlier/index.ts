// Outlier detection (BackendTrafficPolicy outlierDetection): endpoints that fail in a row are ejected for a growing time.
//
// Envoy's passive health checking, per proxy: an endpoint whose answers are
// `consecutive5xx` 5xx in a row (connection failures, resets and timeouts
// count as 5xx too), or `consecutiveGatewayErrors` 502/503/504 or connection
// failures/resets/timeouts in a row, or `consecutiveConnectFailures` refused
// connections in a row, is ejected: the balancer leaves it out for
// baseEjection × (times ejected), at most maxEjection, then takes it back.
// Never more than maxEjectionPercent of the endpoints are out at once (at
// least one may be). Each baseEjection the endpoint stays back, its count of
// ejections drops by one. A response below 500 resets its counters.
import { ErrorCodes, isWeftError } from '../../../api/errors.ts';
import type { BackendTraffic, SnapshotBackend } from '../../../api/snapshot.ts';
import type { Exchange } from '../../exchange.ts';
import { HttpExchange } from '../../exchange.ts';
import { httpStatusForGrpc } from '../../errors.ts';
import type { Layer } from '../../stack.ts';
import type { BackendState, BalancerRegistry } from '../balancer/balancers.ts';

type OutlierConfig = NonNullable<BackendTraffic['outlierDetection']>;

/** What one attempt came to: an HTTP status, or a failure before any. */
export type Outcome = { status: number } | { failure: 'connect' | 'gateway' };

export function outlierDetection<X extends Exchange>(registry: BalancerRegistry): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    const config = target.backend.traffic?.outlierDetection;
    if (!config) return next;
    const state = registry.stateOf(target.backend.key);
    return async (ex) => {
      const endpointId = ex.endpoint!.id;
      let outcome: Outcome | undefined;
      try {
        await next(ex);
        outcome = ex instanceof HttpExchange ? { status: answeredStatus(ex) } : { status: 200 };
      } catch (error) {
        outcome = outcomeOf(error, ex);
        throw error;
      } finally {
        if (outcome) recordOutcome(registry, state, endpointId, outcome, config);
      }
    };
  };
}

/**
 * The status an answer counts as: its HTTP status, or for a gRPC call (always
 * HTTP 200) the HTTP status its grpc-status stands for, as Envoy maps them for
 * outlier detection: UNAVAILABLE → 503, DEADLINE_EXCEEDED → 504, INTERNAL →
 * 500; the others (NOT_FOUND, RESOURCE_EXHAUSTED...) are the app speaking and
 * say nothing about the endpoint's health.
 */
export function answeredStatus(ex: HttpExchange): number {
  const grpcStatus = ex.answeredGrpcStatus;
  if (grpcStatus === undefined || grpcStatus === '0') return ex.res.statusCode;
  const mapped = httpStatusForGrpc(grpcStatus);
  return mapped !== undefined && mapped >= 500 ? mapped : ex.res.statusCode;
}

function outcomeOf(error: unknown, ex: Exchange): Outcome | undefined {
  if (isWeftError(error, ErrorCodes.UPSTREAM_CONNECT)) return { failure: 'connect' };
  if (isWeftError(error, ErrorCodes.UPSTREAM_RESET)) return { failure: 'gateway' };
  // The route's backendRequest timeout; a client that went away says nothing about the endpoint.
  if (isWeftError(error, ErrorCodes.TIMEOUT)) return { failure: 'gateway' };
  // A response the retry layer refused (it carries the status it saw).
  const status = (error as { status?: unknown } | undefined)?.status;
  if (typeof status === 'number' && ex instanceof HttpExchange) return { status };
  return undefined;
}

/** Counts one outcome for an endpoint and ejects it when a threshold is reached. */
export function recordOutcome(registry: BalancerRegistry, state: BackendState, endpointId: string, outcome: Outcome, config: OutlierConfig): void {
  const h = registry.healthOf(state, endpointId);
  if ('status' in outcome) {
    if (outcome.status < 500) {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      h.consecutiveConnect = 0;
      return;
    }
    h.consecutive5xx++;
    if (outcome.status >= 502 && outcome.status <= 504) h.consecutiveGateway++;
    else h.consecutiveGateway = 0;
    h.consecutiveConnect = 0;
  } else {
    h.consecutive5xx++;
    h.consecutiveGateway++;
    if (outcome.failure === 'connect') h.consecutiveConnect++;
    else h.consecutiveConnect = 0;
  }
  const tripped =
    (config.consecutive5xx !== undefined && h.consecutive5xx >= config.consecutive5xx) ||
    (config.consecutiveGatewayErrors !== undefined && h.consecutiveGateway >= config.consecutiveGatewayErrors) ||
    (config.consecutiveConnectFailures !== undefined && h.consecutiveConnect >= config.consecutiveConnectFailures);
  if (!tripped) return;
  const now = registry.clock.monotonic();
  if (h.ejectedUntil > now) return;
  let ejected = 0;
  for (const other of state.health.values()) if (other.ejectedUntil > now) ejected++;
  const allowed = config.maxEjectionPercent <= 0 ? 0 : Math.max(1, Math.floor((state.endpointCount * config.maxEjectionPercent) / 100));
  if (ejected >= allowed) return;
  // Good behaviour since the last ejection ended earns back one step per base ejection time.
  if (h.ejections > 0 && h.ejectedUntil > 0 && config.baseEjectionMs > 0) {
    h.ejections = Math.max(0, h.ejections - Math.floor((now - h.ejectedUntil) / config.baseEjectionMs));
  }
  h.ejections++;
  h.ejectedUntil = now + Math.min(config.maxEjectionMs, config.baseEjectionMs * h.ejections);
  h.consecutive5xx = 0;
  h.consecutiveGateway = 0;
  h.consecutiveConnect = 0;
  state.version++;
}
