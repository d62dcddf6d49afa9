// Sends one HTTP exchange over an undici dispatcher and streams the response back, with backpressure both ways.
import type { Dispatcher } from 'undici';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError } from '../errors.ts';
import type { Headers, HttpExchange } from '../exchange.ts';
import { stripResponseHopByHop } from './headers.ts';
import { isPeerConnectFailure, resetResponse, responseGone, writeResponseHead } from './response.ts';

/**
 * Resolves when the response has been written in full (or the client is
 * gone); rejects with a WeftError when nothing has been written yet, so that
 * the direction's error responder can answer. A failure after the response
 * started can only cut the client's connection. With `peer`, a peer proxy's
 * "my app refused" (503 WEFT_ERR_UPSTREAM_CONNECT) counts as a connect
 * failure of this attempt, so that a replayable request can be retried.
 */
export function sendHttp(ex: HttpExchange, dispatcher: Dispatcher, headers: Headers, where: string, peer = false): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ex.aborted) {
      reject(ex.aborted);
      return;
    }
    const res = ex.res;
    let settled = false;
    let responding = false;
    let waitingForDrain = false;
    /** A gRPC trailers-only answer was written with the head: nothing more goes to the client. */
    let headOnly = false;
    let controller: Dispatcher.DispatchController | undefined;

    const giveUp = (reason: Error): void => {
      if (controller) {
        if (!controller.aborted) controller.abort(reason);
        return;
      }
      // Still queued or connecting: answer now; the attempt is aborted when it starts.
      if (settled) return;
      settled = true;
      ex.onAbort = undefined;
      reject(reason);
    };
    ex.onAbort = giveUp;

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled || ex.aborted) c.abort(ex.aborted ?? new WeftError(ErrorCodes.TIMEOUT, 'given up before it was sent'));
      },
      onResponseStart(c, statusCode, upstreamHeaders, statusMessage) {
        if (settled) {
          c.abort(new WeftError(ErrorCodes.TIMEOUT, 'given up'));
          return;
        }
        if (statusCode < 200) return;
        // A layer (route retries) may turn this response down before any of it reaches the client.
        const refused = ex.refuseResponse?.(statusCode, upstreamHeaders as Headers, peer);
        if (refused) {
          settled = true;
          ex.onAbort = undefined;
          c.abort(refused);
          reject(refused);
          return;
        }
        if (peer && ex.replayable && isPeerConnectFailure(statusCode, upstreamHeaders as Headers)) {
          settled = true;
          ex.onAbort = undefined;
          const refused = new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the peer proxy could not connect to its app`);
          c.abort(refused);
          reject(refused);
          return;
        }
        responding = true;
        const out = upstreamHeaders as Headers;
        if (typeof out['grpc-status'] === 'string') ex.answeredGrpcStatus = out['grpc-status'];
        stripResponseHopByHop(out);
        if (ex.responseEdits) for (const edit of ex.responseEdits) edit(out);
        if (responseGone(ex)) {
          c.abort(new Error('client closed the connection'));
          return;
        }
        if (ex.req.httpVersionMajor === 2) {
          // gRPC status in the head means trailers-only: the HTTP/2 client must get it as one HEADERS frame ending the stream.
          headOnly = out['grpc-status'] !== undefined;
          writeResponseHead(ex, statusCode, out, headOnly);
        } else {
          res.writeHead(statusCode, statusMessage || undefined, out as Record<string, string | string[]>);
        }
      },
      onResponseData(c, chunk) {
        if (headOnly) return;
        if (res.write(chunk) || waitingForDrain) return;
        waitingForDrain = true;
        c.pause();
        res.once('drain', () => {
          waitingForDrain = false;
          c.resume();
        });
      },
      onResponseEnd(_c, trailers) {
        if (settled) return;
        settled = true;
        const grpcStatus = (trailers as Headers | undefined)?.['grpc-status'];
        if (typeof grpcStatus === 'string') ex.answeredGrpcStatus = grpcStatus;
        ex.onAbort = undefined;
        if (!headOnly) {
          // HTTP/1.1 clients get them only on a chunked response; HTTP/2 clients always.
          if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers as Record<string, string>);
          res.end();
        }
        resolve();
      },
      onResponseError(_c, error) {
        if (settled) return;
        settled = true;
        ex.onAbort = undefined;
        if (responding) {
          resetResponse(ex);
          resolve();
        } else {
          reject(classifyUpstreamError(error, where));
        }
      },
    };

    const body = ex.bufferedBody ?? (ex.hasBody ? ex.req : null);
    if (body === ex.req) {
      // A client that goes away in the middle of its body (its response may be complete already, which ends
      // onAbort) would leave the upstream connection waiting for the rest forever: the attempt is cut instead.
      ex.req.once('close', () => {
        if (!ex.req.readableEnded && controller && !controller.aborted) controller.abort(new WeftError(ErrorCodes.BAD_REQUEST, 'the client abandoned its request body'));
      });
    }
    try {
      dispatcher.dispatch(
        { path: ex.path, method: ex.method, headers: headers as Record<string, string | string[]>, body },
        handler,
      );
    } catch (error) {
      if (settled) return;
      settled = true;
      ex.onAbort = undefined;
      reject(new WeftError(ErrorCodes.BAD_REQUEST, `cannot forward the request: ${error instanceof Error ? error.message : String(error)}`));
    }
  });
}
