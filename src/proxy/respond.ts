// The one place per direction where typed errors become responses: status, weft-reason header, body, metrics, log.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCodes, REASON_HEADER, type WeftError } from '../api/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { asProxyError, statusOf } from './errors.ts';
import type { Direction, HttpExchange } from './exchange.ts';
import type { ProxyMetrics } from './metrics.ts';

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
    if (res.headersSent || res.destroyed || res.writableEnded) {
      if (!res.writableEnded) res.destroy();
      return;
    }
    const error = asProxyError(thrown);
    const status = statusOf(error);
    this.note(error, status);
    const body = `${error.code}: ${error.message}\n`;
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      [REASON_HEADER]: error.code,
    });
    res.end(ex.method === 'HEAD' ? undefined : body);
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

  private note(error: WeftError, status: number): void {
    this.metrics.proxyResponses.labels(error.code).inc();
    if (error.code === ErrorCodes.INTERNAL) this.logger.error({ err: error, direction: this.direction }, 'proxy error');
    else this.logger.debug({ direction: this.direction, status, code: error.code, message: error.message }, 'proxy answered with an error');
  }
}
