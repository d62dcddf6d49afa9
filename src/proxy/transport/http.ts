// Sends one HTTP exchange over a pooled HTTP/1.1 connection (http1-client.ts) and streams the response back, with backpressure both ways.
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError } from '../errors.ts';
import type { Headers, HttpExchange } from '../exchange.ts';
import { HeldResponse } from './held-response.ts';
import { responseHeadersToForward } from './headers.ts';
import type { Http1Pool, Http1ResponseHandler } from './http1-client.ts';
import { isPeerConnectFailure, resetResponse, responseGone, writeResponseHead } from './response.ts';

/**
 * Resolves when the response has been written in full (or the client is
 * gone); rejects with a WeftError when nothing has been written yet, so that
 * the direction's error responder can answer. A failure after the response
 * started can only cut the client's connection. With `peer`, a peer proxy's
 * "my app refused" (503 WEFT_ERR_UPSTREAM_CONNECT) counts as a connect
 * failure of this attempt, so that a replayable request can be retried.
 */
export function sendHttp(ex: HttpExchange, pool: Http1Pool, headers: Headers, where: string, peer = false): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ex.aborted) {
      reject(ex.aborted);
      return;
    }
    const res = ex.res;
    let settled = false;
    let waitingForDrain = false;
    let responding = false;
    /** An error of ours (a refused response, the exchange's abort reason): passed on as it is, not classified as an upstream failure. */
    let ownError: Error | undefined;
    /** A gRPC trailers-only answer was written with the head: nothing more goes to the client. */
    let headOnly = false;
    /** A response a Transformation rewrites: held whole, written at its end. */
    let held: HeldResponse | undefined;

    const handler: Http1ResponseHandler = {
      onHead(statusCode, statusMessage, upstreamHeaders) {
        // A layer (route retries) may turn this response down before any of it reaches the client.
        const refused = ex.refuseResponse?.(statusCode, upstreamHeaders, peer);
        if (refused) return (ownError = refused);
        if (peer && ex.replayable && isPeerConnectFailure(statusCode, upstreamHeaders)) {
          return (ownError = new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the peer proxy could not connect to its app`));
        }
        const out = responseHeadersToForward(upstreamHeaders);
        if (typeof out['grpc-status'] === 'string') ex.answeredGrpcStatus = out['grpc-status'];
        if (ex.responseEdits) for (const edit of ex.responseEdits) edit(out);
        if (responseGone(ex)) return new WeftError(ErrorCodes.UPSTREAM_RESET, 'client closed the connection');
        if (ex.responseRewrite?.head(statusCode, out)) {
          held = new HeldResponse(ex.responseRewrite, statusCode, statusMessage, out);
          return undefined;
        }
        if (ex.req.httpVersionMajor === 2) {
          // gRPC status in the head means trailers-only: the HTTP/2 client must get it as one HEADERS frame ending the stream.
          headOnly = out['grpc-status'] !== undefined;
          writeResponseHead(ex, statusCode, out, headOnly);
        } else {
          if (statusMessage) res.statusMessage = statusMessage;
          res.writeHead(statusCode, out);
        }
        responding = true;
        return undefined;
      },
      onData(chunk) {
        if (headOnly) return true;
        if (held) {
          const overflow = held.add(chunk);
          if (overflow) ex.onAbort?.(overflow);
          return true;
        }
        if (res.write(chunk) || waitingForDrain) return true;
        waitingForDrain = true;
        res.once('drain', () => {
          waitingForDrain = false;
          attempt.resume();
        });
        return false;
      },
      onEnd(trailers) {
        if (settled) return;
        settled = true;
        const grpcStatus = trailers?.['grpc-status'];
        if (typeof grpcStatus === 'string') ex.answeredGrpcStatus = grpcStatus;
        ex.onAbort = undefined;
        if (held) {
          // Nothing reached the client yet: a body over the limit, or one the rewrite could not take, is answered by the proxy.
          const failed = held.overflow ?? held.writeOrFail(ex);
          if (failed) reject(failed);
          else resolve();
          return;
        }
        if (!headOnly) {
          // HTTP/1.1 clients get them only on a chunked response; HTTP/2 clients always.
          if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers as Record<string, string>);
          res.end();
        }
        resolve();
      },
      onError(error, started) {
        if (settled) return;
        settled = true;
        ex.onAbort = undefined;
        // A held response (a Transformation's) has sent nothing yet: the failure can still be answered.
        if (started && !held) {
          resetResponse(ex);
          resolve();
        } else {
          reject(error === ownError ? error : classifyUpstreamError(error, where));
        }
      },
    };

    const attempt = pool.request({ path: ex.path, method: ex.method, headers, body: ex.bufferedBody ?? (ex.hasBody ? (ex.body ?? null) : null) }, handler);
    ex.onAbort = (reason) => {
      attempt.abort(reason);
      ownError = reason;
      handler.onError(reason, responding);
    };
  });
}
