// Sends one HTTP exchange over an undici dispatcher and streams the response back, with backpressure both ways.
import type { Dispatcher } from 'undici';
import { ErrorCodes, REASON_HEADER, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError } from '../errors.ts';
import type { Headers, HttpExchange } from '../exchange.ts';
import { stripResponseHopByHop } from './headers.ts';

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
        if (peer && statusCode === 503 && upstreamHeaders[REASON_HEADER] === ErrorCodes.UPSTREAM_CONNECT && ex.replayable) {
          settled = true;
          ex.onAbort = undefined;
          const refused = new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the peer proxy could not connect to its app`);
          c.abort(refused);
          reject(refused);
          return;
        }
        responding = true;
        const out = upstreamHeaders as Headers;
        stripResponseHopByHop(out);
        if (ex.responseEdits) for (const edit of ex.responseEdits) edit(out);
        if (res.destroyed) {
          c.abort(new Error('client closed the connection'));
          return;
        }
        res.writeHead(statusCode, statusMessage || undefined, out as Record<string, string | string[]>);
      },
      onResponseData(c, chunk) {
        if (res.write(chunk) || waitingForDrain) return;
        waitingForDrain = true;
        c.pause();
        res.once('drain', () => {
          waitingForDrain = false;
          c.resume();
        });
      },
      onResponseEnd() {
        if (settled) return;
        settled = true;
        ex.onAbort = undefined;
        res.end();
        resolve();
      },
      onResponseError(_c, error) {
        if (settled) return;
        settled = true;
        ex.onAbort = undefined;
        if (responding) {
          res.destroy(error);
          resolve();
        } else {
          reject(classifyUpstreamError(error, where));
        }
      },
    };

    try {
      dispatcher.dispatch(
        { path: ex.path, method: ex.method, headers: headers as Record<string, string | string[]>, body: ex.bufferedBody ?? (ex.hasBody ? ex.req : null) },
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
