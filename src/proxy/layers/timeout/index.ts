// Route timeouts (Gateway API `timeouts.request` and `timeouts.backendRequest`): give up with 504 WEFT_ERR_TIMEOUT.
import { ErrorCodes } from '../../../api/errors.ts';
import type { HttpRouteRule } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';

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

/** The whole request, from the route match to the end of the response. */
export function requestTimeout(clock: Clock): Layer<Timeouts, HttpExchange> {
  return (target, next) => {
    const ms = target.timeouts?.requestMs;
    return ms ? withDeadline(ms, 'request', clock, next) : next;
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
