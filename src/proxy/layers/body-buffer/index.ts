// Body buffering: reads a small request body in full, so that retries and mirrors can send it again.
//
// The proxy streams bodies; one that is streamed is gone once sent. A rule
// that retries or mirrors therefore reads bodies up to `limitBytes` first:
// at once when a Content-Length says it fits, and otherwise (HTTP/1.1
// chunked, HTTP/2 without content-length, as every gRPC call is) by reading
// until the body ends or passes the limit. A larger body is still streamed
// (what was read is put back in front of the rest): such a request is not
// retried (not even after a refused connection) and is not mirrored. A body
// that announces trailers is streamed too, since a buffered body drops them.
// An undeclared body that pauses (a gRPC bidi or client-streaming call
// waiting for an answer before it sends more, a slow chunked upload) is
// streamed on after `idleMs` without new bytes, rather than held until a
// timeout: it is then not replayable, as a long body is not.
import { ErrorCodes } from '../../../api/errors.ts';
import type { HttpFilter, RetryPolicy } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { Clock, Timer } from '../../../telemetry/clock.ts';

/** The largest body a retrying or mirroring rule keeps in memory per request. */
export const DEFAULT_BUFFER_LIMIT_BYTES = 64 * 1024;
/** How long an undeclared body may pause before it is streamed on instead of kept. */
export const DEFAULT_BUFFER_IDLE_MS = 100;

/** What tells whether a rule needs bodies kept: a retry policy, or a mirror on the rule or on one of its backendRefs. */
export interface BufferTarget {
  filters: readonly HttpFilter[];
  backends?: readonly { filters: readonly HttpFilter[] }[];
  retry?: RetryPolicy;
}

export function bufferBody(limitBytes: number, clock: Clock, idleMs = DEFAULT_BUFFER_IDLE_MS): Layer<BufferTarget, HttpExchange> {
  return (target, next) => {
    const mirrors = (filters: readonly HttpFilter[]) => filters.some((f) => f.type === 'RequestMirror');
    const needed = target.retry !== undefined || mirrors(target.filters) || (target.backends ?? []).some((b) => mirrors(b.filters));
    if (!needed) return next;
    return async (ex) => {
      if (ex.bufferedBody === undefined && ex.hasBody) {
        const h = ex.req.headers;
        const declared = h['content-length'];
        const length = Number(declared);
        if (declared !== undefined && h['transfer-encoding'] === undefined) {
          if (Number.isInteger(length) && length >= 0 && length <= limitBytes) ex.bufferedBody = await readBody(ex, length);
        } else if (h.trailer === undefined) {
          ex.bufferedBody = await readBody(ex, undefined, limitBytes, { clock, idleMs });
        }
      }
      return next(ex);
    };
  };
}

/**
 * The whole body: `length` bytes when declared, else up to `limitBytes`;
 * undefined (the bytes read put back, the request paused for whoever pipes
 * it on) when an undeclared body turns out longer. Rejects when the client
 * goes away or the exchange is given up (a request timeout) first.
 */
function readBody(ex: HttpExchange, length: number | undefined, limitBytes = Infinity, pause?: { clock: Clock; idleMs: number }): Promise<Buffer | undefined> {
  const req = ex.body;
  return new Promise<Buffer | undefined>((resolve, reject) => {
    if (req === undefined) {
      // No stream: the fast path's body came whole and is bufferedBody already (callers check it first).
      resolve(ex.bufferedBody ?? Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let idle: Timer | undefined;
    /** Hands the body on as a stream, starting with what was read: too long or too slow to keep. */
    const streamOn = () => {
      stop();
      req.pause();
      if (size > 0) req.unshift(Buffer.concat(chunks, size));
      resolve(undefined);
    };
    const armIdle = () => {
      if (!pause) return;
      idle?.cancel();
      idle = pause.clock.setTimeout(streamOn, pause.idleMs);
    };
    const stop = () => {
      idle?.cancel();
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (ex.onAbort === onAbort) ex.onAbort = undefined;
    };
    const done = (error: Error | undefined) => {
      stop();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (length === undefined && size > limitBytes) streamOn();
      else armIdle();
    };
    const onEnd = () =>
      done(length === undefined || size === length ? undefined : proxyError(ErrorCodes.BAD_REQUEST, `the request body had ${size} bytes, not ${length}`, 400));
    const onError = (error: Error) => done(proxyError(ErrorCodes.BAD_REQUEST, `reading the request body failed: ${error.message}`, 400));
    const onClose = () => done(proxyError(ErrorCodes.BAD_REQUEST, 'the client closed the connection before sending its body', 400));
    const onAbort = (reason: Error) => done(reason);
    if (ex.aborted) {
      reject(ex.aborted);
      return;
    }
    ex.onAbort = onAbort;
    armIdle();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}

/**
 * The request body in full, however it arrives, for a layer that must read
 * all of it (a GraphQL request, a Transformation). Rejects with `tooLarge()`
 * past `limitBytes`, and as readBody does when the client goes away or the
 * exchange is given up first.
 */
export function readWholeBody(ex: HttpExchange, limitBytes: number, tooLarge: () => Error): Promise<Buffer> {
  if (ex.bufferedBody !== undefined || ex.body === undefined || !ex.hasBody) {
    const whole = ex.bufferedBody ?? Buffer.alloc(0);
    return whole.length > limitBytes ? Promise.reject(tooLarge()) : Promise.resolve(whole);
  }
  const declared = ex.req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limitBytes) return Promise.reject(tooLarge());
  return readBody(ex, undefined, limitBytes).then((body) => body ?? Promise.reject(tooLarge()));
}
