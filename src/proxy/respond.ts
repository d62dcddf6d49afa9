// The one place per direction where typed errors become responses: status, weft-reason header, body, metrics, log.
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { ErrorCodes, REASON_HEADER, type WeftError } from '../api/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { asProxyError, grpcStatusOf, statusOf } from './errors.ts';
import type { Direction, HttpExchange } from './exchange.ts';
import type { ProxyMetrics } from './metrics.ts';
import { resetResponse, responseGone, writeResponseHead } from './transport/response.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

export class ErrorResponder {
  private readonly direction: Direction;
  private readonly metrics: ProxyMetrics;
  private readonly logger: Logger;

  constructor(direction: Direction, metrics: ProxyMetrics, logger: Logger) {
    this.direction = direction;
    this.metrics = metrics;
    this.logger = logger;
  }

  /** Answers an HTTP exchange with the error, unless the response already started (then the connection is cut). */
  http(ex: HttpExchange, thrown: unknown): void {
    const res = ex.res;
    if (res.headersSent || responseGone(ex) || res.writableEnded) {
      if (!res.writableEnded) resetResponse(ex);
      return;
    }
    const error = asProxyError(thrown);
    const status = statusOf(error);
    this.note(error, status);
    ex.proxyReason = error.code;
    ex.proxyReasonText = error.message;
    if (ex.grpc) {
      // A gRPC caller understands only gRPC statuses: HTTP 200, trailers-only, the reason beside them.
      writeResponseHead(
        ex,
        200,
        {
          'content-type': 'application/grpc',
          'grpc-status': String(grpcStatusOf(error, status)),
          'grpc-message': grpcMessage(`${error.code}: ${error.message}`),
          [REASON_HEADER]: error.code,
        },
        true,
      );
      return;
    }
    const body = `${error.code}: ${error.message}\n`;
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      [REASON_HEADER]: error.code,
    });
    if (ex.method === 'HEAD') res.end();
    else res.end(body);
  }

  /** Answers a CONNECT (not yet established) on its raw socket, then closes it. */
  tunnel(socket: Duplex, thrown: unknown): void {
    if (socket.destroyed || !socket.writable) return;
    const error = asProxyError(thrown);
    const status = statusOf(error);
    this.note(error, status);
    const body = `${error.code}: ${error.message}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        `content-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `${REASON_HEADER}: ${error.code}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  }

  /** Answers an HTTP/2 CONNECT stream (not yet established) with the error's status and weft-reason, then ends it. */
  tunnelStream(stream: ServerHttp2Stream, thrown: unknown): void {
    if (stream.destroyed || stream.headersSent) {
      if (!stream.destroyed) stream.destroy(new Error('the tunnel failed'));
      return;
    }
    const error = asProxyError(thrown);
    const status = statusOf(error);
    this.note(error, status);
    stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', [REASON_HEADER]: error.code });
    stream.end(`${error.code}: ${error.message}\n`);
  }

  private note(error: WeftError, status: number): void {
    this.metrics.proxyResponses.labels(error.code).inc();
    if (error.code === ErrorCodes.INTERNAL) this.logger.error({ err: error, direction: this.direction }, 'proxy error');
    else this.logger.debug({ direction: this.direction, status, code: error.code, message: error.message }, 'proxy answered with an error');
  }
}

/** gRPC's percent-encoding of grpc-message: printable ASCII stays as it is, except "%"; everything else goes as UTF-8 %XX. */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
