// Route timeouts (Gateway API `timeouts.request` and `timeouts.backendRequest`) and gRPC's grpc-timeout: give up with 504 WEFT_ERR_TIMEOUT (DEADLINE_EXCEEDED to gRPC callers).
import { ErrorCodes } from '../../../api/errors.ts';
import type { HttpRouteRule } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { grpcTimeoutMs } from '../../../api/http-filters.ts';

export { grpcTimeoutMs } from '../../../api/http-filters.ts';

type Timeouts = { timeouts?: HttpRouteRule['timeouts'] };

/**
 * Aborts the exchange when `ms` pass before the response has been written.
 * Before the first byte the client gets a 504; after it, the connection is cut.
 */
function withDeadline(ms: number, what: string, clock: Clock, next: Step<HttpExchange>): Step<HttpExchange> {
  return async (ex) => {
    const timer = clock.setTimeout(() => ex.abort(proxyError(ErrorCodes.TIMEOUT, `${what} timeout of ${ms} ms passed`, 504)), ms);
    try {
      await next(ex);
    } finally {
      timer.cancel();
    }
  };
}

/**
 * The whole request, from the route match to the end of the response. A
 * gRPC call's grpc-timeout is a deadline too: the earlier of the two wins,
 * and the header travels on unchanged so the app sees the caller's deadline.
 */
export function requestTimeout(clock: Clock): Layer<Timeouts, HttpExchange> {
  return (target, next) => {
    const ms = target.timeouts?.requestMs;
    const routeDeadline = ms ? withDeadline(ms, 'request', clock, next) : next;
    return (ex) => {
      const grpcMs = grpcTimeoutMs(ex.req.headers['grpc-timeout']);
      if (grpcMs === undefined || (ms && ms <= grpcMs)) return routeDeadline(ex);
      return withDeadline(grpcMs, 'grpc-timeout', clock, next)(ex);
    };
  };
}

/**
 * One attempt at one backend. Only the attempt is cut, not the exchange, so
 * that a retry policy can try again; the attempt fails with 504 WEFT_ERR_TIMEOUT.
 */
export function backendRequestTimeout(clock: Clock): Layer<Timeouts, HttpExchange> {
  return (target, next) => {
    const ms = target.timeouts?.backendRequestMs;
    if (!ms) return next;
    return async (ex) => {
      // The transport installs onAbort synchronously when it sends, and clears it when the response is done.
      const timer = clock.setTimeout(() => ex.onAbort?.(proxyError(ErrorCodes.TIMEOUT, `backend request timeout of ${ms} ms passed`, 504)), ms);
      try {
        await next(ex);
      } finally {
        timer.cancel();
      }
    };
  };
}
