// Writing a response head to the client whatever it speaks (HTTP/1.1 or HTTP/2), including gRPC's trailers-only form.
import type { Http2ServerResponse } from 'node:http2';
import { ErrorCodes, REASON_HEADER } from '../../api/errors.ts';
import type { Headers, HttpExchange } from '../exchange.ts';

/** Whether the client's side of the exchange is gone (HTTP/2 compat responses have no `destroyed`). */
export function responseGone(ex: HttpExchange): boolean {
  const res = ex.res as unknown as { destroyed?: boolean; stream?: { destroyed: boolean } };
  return res.stream !== undefined ? res.stream.destroyed : res.destroyed === true;
}

/**
 * Writes status and headers. With `endStream` (a response without body: a
 * gRPC trailers-only answer, or an upstream HEADERS frame that ended the
 * stream), an HTTP/2 client gets one HEADERS frame with END_STREAM, as gRPC
 * requires for trailers-only; an HTTP/1.1 client gets the head and the end.
 * Returns false when the client is gone.
 */
export function writeResponseHead(ex: HttpExchange, status: number, headers: Headers, endStream: boolean): boolean {
  if (responseGone(ex)) return false;
  const grpcStatus = headers['grpc-status'];
  if (typeof grpcStatus === 'string') ex.answeredGrpcStatus = grpcStatus;
  const res = ex.res as unknown as Http2ServerResponse & { stream?: Http2ServerResponse['stream'] };
  if (endStream && ex.req.httpVersionMajor === 2 && res.stream) {
    const block: Record<string, string | string[] | number> = {};
    for (const [name, value] of Object.entries(res.getHeaders())) if (value !== undefined) block[name] = value as string | string[] | number;
    for (const name in headers) {
      const value = headers[name];
      if (value !== undefined) block[name] = value;
    }
    block[':status'] = status;
    // Written on the stream itself, so the response object is told the status: metrics read it from there.
    res.statusCode = status;
    res.stream.respond(block, { endStream: true });
    return true;
  }
  ex.res.writeHead(status, headers as Record<string, string | string[]>);
  if (endStream) ex.res.end();
  return true;
}

/**
 * Ends a response that already started as broken: an HTTP/2 client's stream
 * is reset (RST_STREAM INTERNAL_ERROR), an HTTP/1.1 client's connection is
 * cut (no last chunk), so neither can take the truncated answer for a whole one.
 */
export function resetResponse(ex: HttpExchange): void {
  const res = ex.res as unknown as { stream?: Parameters<typeof resetStream>[0] };
  if (res.stream) resetStream(res.stream);
  else ex.res.destroy();
}

/**
 * Resets an HTTP/2 stream. Not close(code): node ends the stream's writable
 * side first, so a peer would see END_STREAM (a complete-looking body or
 * answer) before the reset; destroy() with an error sends RST_STREAM alone.
 */
export function resetStream(stream: { destroyed: boolean; destroy(error?: Error): void }): void {
  if (!stream.destroyed) stream.destroy(new Error('reset by the proxy'));
}

/** A peer proxy's own "my app refused the connection" answer, plain (503) or as a gRPC error (UNAVAILABLE). */
export function isPeerConnectFailure(status: number, headers: Headers): boolean {
  if (headers[REASON_HEADER] !== ErrorCodes.UPSTREAM_CONNECT) return false;
  return status === 503 || headers['grpc-status'] === '14';
}
