// Retries: a rule's `retry` policy (Gateway API), and without one the mesh's own retry of refused connections.
//
// Without a policy, only an attempt that never reached the app (connection
// refused, unreachable) is made again, on another endpoint, and only for a
// request that can be replayed: it covers the window between an endpoint
// dying and the snapshot that removes it, and can never apply a request twice.
//
// With a policy, an attempt is retried (up to `attempts` more times, after a
// backoff that starts at `backoffMs` and doubles up to 10×, with up to 50 %
// jitter on top) when:
// - the connection could not be made (any method);
// - the answer's status is in `codes` (any method: the user listed it);
// - the connection broke before an answer, or the rule's backendRequest
//   timeout passed, but only for idempotent methods (GET, HEAD, OPTIONS,
//   PUT, DELETE, TRACE): the backend may have acted on the request, which
//   the Gateway API asks implementations to say out loud when they retry it.
// A peer proxy's own "connect failed" / "reset" answer counts as that failure.
// Only replayable requests are retried: no body, or a body the body-buffer
// layer kept (Content-Length up to its limit). When every attempt has failed,
// the last failing status is passed on; a connection failure answers 503
// (WEFT_ERR_UPSTREAM_CONNECT or WEFT_ERR_UPSTREAM_RESET) and a timeout 504.
// The rule's request timeout bounds every attempt and every backoff.
//
// gRPC: a call's answer is HTTP 200 with a grpc-status. A trailers-only
// answer (the status in the head, as errors are sent) is matched against
// `codes` through the HTTP status its gRPC status stands for (UNAVAILABLE
// 14 → 503, DEADLINE_EXCEEDED 4 → 504, RESOURCE_EXHAUSTED 8 → 429, INTERNAL
// 13 → 500, ...), so `codes: [503]` retries UNAVAILABLE as Envoy's
// `retry_on: unavailable` does. A status in trailers comes after the body
// started, when nothing can be retried any more.
import { ErrorCodes, REASON_HEADER, WeftError, isWeftError } from '../../../api/errors.ts';
import type { RetryPolicy, SnapshotBackend } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import type { Exchange, Headers, HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { httpStatusForGrpc } from '../../errors.ts';
import { retryPermitted } from '../retry-budget/index.ts';

export function retryConnectFailures<X extends Exchange>(maxAttempts: number): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    if (maxAttempts <= 1 || target.backend.endpoints.length <= 1) return next;
    const attempts = Math.min(maxAttempts, target.backend.endpoints.length);
    return async (ex) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await next(ex);
          return;
        } catch (error) {
          if (attempt >= attempts || !ex.replayable || !isWeftError(error, ErrorCodes.UPSTREAM_CONNECT)) throw error;
          ex.avoid = ex.endpoint;
        }
      }
    };
  };
}

/** A response turned down so that the request can be tried again; never reaches the client. */
class RetryableResponse extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`the backend answered ${status}, which the route retries`);
    this.status = status;
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const BACKOFF_CAP_FACTOR = 10;

export interface RouteRetryOptions {
  clock: Clock;
  /** Attempts for refused connections when the rule has no policy. */
  connectAttempts: number;
  random?: () => number;
}

/** A rule's retry policy around one backend's attempts; without a policy, the connect-failure retry. */
export function routeRetry(options: RouteRetryOptions): Layer<{ backend: SnapshotBackend; retry?: RetryPolicy }, HttpExchange> {
  const fallback = retryConnectFailures<HttpExchange>(options.connectAttempts);
  const random = options.random ?? Math.random;
  return (target, next) => {
    const policy = target.retry;
    if (!policy) return fallback(target, next);
    return withPolicy(policy, next, options.clock, random);
  };
}

function withPolicy(policy: RetryPolicy, next: Step<HttpExchange>, clock: Clock, random: () => number): Step<HttpExchange> {
  const codes = new Set(policy.codes);
  const maxAttempts = 1 + Math.max(0, policy.attempts);
  return async (ex) => {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= maxAttempts;
      ex.refuseResponse = (status, headers, fromPeer) => {
        const peerFailure = fromPeer ? peerConnectionFailure(status, headers) : undefined;
        if (peerFailure) return peerFailure;
        const grpcStatus = headers['grpc-status'];
        const effective = typeof grpcStatus === 'string' && grpcStatus !== '0' ? (httpStatusForGrpc(grpcStatus) ?? status) : status;
        if (!last && codes.has(effective) && ex.replayable && retryPermitted(ex)) return new RetryableResponse(effective);
        return undefined;
      };
      let failure: unknown;
      try {
        await next(ex);
        return;
      } catch (error) {
        failure = error;
      } finally {
        ex.refuseResponse = undefined;
      }
      if (ex.aborted) throw ex.aborted;
      if (last || !ex.replayable || !retryable(failure, ex)) throw finalError(failure, attempt);
      // A refused response already asked the BackendTrafficPolicy's retry budget; other failures ask now.
      if (!(failure instanceof RetryableResponse) && !retryPermitted(ex)) throw finalError(failure, attempt);
      await backoff(ex, backoffMs(policy.backoffMs, attempt, random), clock);
      ex.avoid = ex.endpoint;
    }
  };
}

function retryable(error: unknown, ex: HttpExchange): boolean {
  if (error instanceof RetryableResponse) return true;
  if (isWeftError(error, ErrorCodes.UPSTREAM_CONNECT)) return true;
  if (isWeftError(error, ErrorCodes.UPSTREAM_RESET) || isWeftError(error, ErrorCodes.TIMEOUT)) return IDEMPOTENT.has(ex.method);
  return false;
}

/** What the client gets when no more attempts are made. */
function finalError(error: unknown, attempts: number): unknown {
  const tried = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  if (isWeftError(error, ErrorCodes.UPSTREAM_RESET) || isWeftError(error, ErrorCodes.UPSTREAM_CONNECT)) {
    // Retried (or retriable) connection failures say the service is unavailable, as Envoy does.
    return new WeftError(error.code, `${error.message}${tried}`, { status: 503 });
  }
  if (isWeftError(error, ErrorCodes.TIMEOUT) && tried) return new WeftError(error.code, `${error.message}${tried}`, error.details);
  return error;
}

/** A peer proxy's own answer that its app could not be reached, or reset: a connection failure of this attempt. */
function peerConnectionFailure(status: number, headers: Headers): WeftError | undefined {
  const reason = headers[REASON_HEADER];
  // A peer's proxy-made answer to a gRPC call is 200 with grpc-status UNAVAILABLE and the same reason.
  if (status === 200 && headers['grpc-status'] === '14') status = reason === ErrorCodes.UPSTREAM_CONNECT ? 503 : 502;
  if (status === 503 && reason === ErrorCodes.UPSTREAM_CONNECT) return new WeftError(ErrorCodes.UPSTREAM_CONNECT, 'the peer proxy could not connect to its app');
  if (status === 502 && reason === ErrorCodes.UPSTREAM_RESET) return new WeftError(ErrorCodes.UPSTREAM_RESET, 'the app behind the peer proxy closed the connection before answering');
  return undefined;
}

/** base × 2^(retry−1), capped at 10 × base, plus up to 50 % jitter: never less than the base the user set. */
export function backoffMs(baseMs: number, attempt: number, random: () => number): number {
  if (baseMs <= 0) return 0;
  const delay = Math.min(baseMs * 2 ** (attempt - 1), baseMs * BACKOFF_CAP_FACTOR);
  return delay * (1 + random() * 0.5);
}

/** Waits, unless the exchange is given up meanwhile (request timeout, client gone): then it throws that at once. */
function backoff(ex: HttpExchange, ms: number, clock: Clock): Promise<void> {
  if (ms <= 0) return ex.aborted ? Promise.reject(ex.aborted) : Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const finish = () => {
      timer.cancel();
      if (ex.onAbort === onAbort) ex.onAbort = undefined;
      if (ex.aborted) reject(ex.aborted);
      else resolve();
    };
    const onAbort = () => finish();
    const timer = clock.setTimeout(finish, ms);
    ex.onAbort = onAbort;
  });
}
