// Fault injection layer (FaultInjection ExtensionRef filters): delays and aborts a configured share of requests.
//
// Decided once per request, each with its own draw: the delay first (the
// request then goes on, or is aborted after the delay, as Envoy's fault filter
// does), then the abort. Percentages are probabilities, not a pattern, so that
// no client sequence can line up with them.
import { ErrorCodes, type WeftError } from '../../../api/errors.ts';
import type { FaultInjection, HttpFilter } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { compileMatch } from '../route/match.ts';
import { filtersOf } from '../filters.ts';

export interface FaultContext {
  clock: Clock;
  /** Uniform in [0, 1); tests pass a seeded one. */
  random?: () => number;
}

/**
 * HTTP status for a gRPC code, for an HTTP caller of a fault that only names
 * a grpcStatus (the mapping Google's API design guide gives); a gRPC caller
 * gets the grpcStatus itself.
 */
const HTTP_STATUS_OF_GRPC: Record<number, number> = {
  1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
};

export function faultInjection(context: FaultContext): Layer<{ filters: readonly HttpFilter[] }, HttpExchange> {
  const random = context.random ?? Math.random;
  return (target, next) => {
    const faults = filtersOf(target.filters, 'FaultInjection');
    if (faults.length === 0) return next;
    // Several ExtensionRefs in one list run in order, each around the rest.
    let step = next;
    for (let i = faults.length - 1; i >= 0; i--) step = oneFault(faults[i]!.fault, step, context, random);
    return step;
  };
}

function oneFault(fault: FaultInjection, next: Step<HttpExchange>, context: FaultContext, random: () => number): Step<HttpExchange> {
  const applies = fault.headers ? compileMatch({ headers: fault.headers }, `FaultInjection ${fault.name}.headers`) : undefined;
  const delay = fault.delay && fault.delay.percent > 0 ? fault.delay : undefined;
  const abort = fault.abort && fault.abort.percent > 0 ? fault.abort : undefined;
  if (!delay && !abort) return next;
  const { clock } = context;
  return async (ex) => {
    if (applies && !applies(ex)) return next(ex);
    if (delay && random() * 100 < delay.percent) await sleep(ex, clock, delay.ms);
    if (abort && random() * 100 < abort.percent) throw abortError(fault.name, abort);
    return next(ex);
  };
}

/** Waits, unless the exchange is given up meanwhile (timeout, client gone): then fails with its reason. */
function sleep(ex: HttpExchange, clock: Clock, ms: number): Promise<void> {
  if (ex.aborted) return Promise.reject(ex.aborted);
  return new Promise<void>((resolve, reject) => {
    const previous = ex.onAbort;
    const timer = clock.setTimeout(() => {
      ex.onAbort = previous;
      resolve();
    }, ms);
    ex.onAbort = (reason) => {
      timer.cancel();
      ex.onAbort = previous;
      reject(reason);
    };
  });
}

/** The abort as a typed error: the ErrorResponder answers it (HTTP status, or gRPC trailers-only with the fault's grpcStatus) and counts it. */
function abortError(name: string, abort: NonNullable<FaultInjection['abort']>): WeftError {
  const status = abort.httpStatus ?? HTTP_STATUS_OF_GRPC[abort.grpcStatus ?? 2] ?? 500;
  return proxyError(ErrorCodes.FAULT_INJECTED, `aborted by FaultInjection ${name}`, status, abort.grpcStatus);
}
