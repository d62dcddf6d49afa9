// The mesh tunnel listener (mesh → app): HTTP requests naming a target port, and CONNECT for opaque TCP, from peer proxies.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../../api/errors.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { ActiveConfig } from '../config/compile.ts';
import { proxyError } from '../errors.ts';
import { HttpExchange, TcpExchange } from '../exchange.ts';
import { TARGET_PORT_HEADER } from '../layers/mesh-headers/index.ts';
import type { ProxyMetrics } from '../metrics.ts';
import type { ErrorResponder } from '../respond.ts';
import type { Activity } from '../transport/activity.ts';
import { parseAuthority } from '../transport/authority.ts';
import { forwardableRequestHeaders } from '../transport/headers.ts';
import { listen } from '../transport/listen.ts';
import { splice } from '../transport/tcp.ts';

export interface TunnelListenerOptions {
  host: string;
  port: number;
  config: () => ActiveConfig;
  activity: Activity;
  responder: ErrorResponder;
  metrics: ProxyMetrics;
  clock: Clock;
  keepAliveTimeoutMs: number;
}

export class TunnelListener {
  readonly server: Server;
  private readonly options: TunnelListenerOptions;
  port = 0;

  private constructor(options: TunnelListenerOptions) {
    this.options = options;
    this.server = createServer({ keepAliveTimeout: options.keepAliveTimeoutMs, noDelay: true }, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (socket: Socket) => options.activity.trackSocket(socket, 'inbound'));
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      options.responder.tunnel(socket, proxyError(ErrorCodes.BAD_REQUEST, `protocol upgrades (${String(req.headers.upgrade)}) are not supported yet`, 501));
    });
    this.server.on('clientError', (_error: Error, socket: Duplex) => socket.destroy());
  }

  static async start(options: TunnelListenerOptions): Promise<TunnelListener> {
    const listener = new TunnelListener(options);
    listener.port = await listen(listener.server, options.port, options.host);
    return listener;
  }

  stop(): void {
    this.server.close();
    this.server.closeIdleConnections();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { clock, activity, metrics, responder } = this.options;
    const started = clock.monotonic();
    activity.trackRequest(res);
    const ex = new HttpExchange('inbound', req, res, req.url ?? '/', forwardableRequestHeaders(req.headers), started);
    res.once('close', () => {
      if (!res.writableFinished) ex.abort(new Error('the peer closed the connection'));
      metrics.recordRequest('inbound', ex.service, res.headersSent ? res.statusCode : 499, (clock.monotonic() - started) / 1000);
    });
    const target = req.headers[TARGET_PORT_HEADER];
    ex.targetPort = typeof target === 'string' && /^\d{1,5}$/.test(target) ? Number(target) : 0;
    this.options
      .config()
      .inboundHttp(ex)
      .catch((error: unknown) => responder.http(ex, error));
  }

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { responder, activity } = this.options;
    socket.on('error', () => socket.destroy());
    if (activity.draining) {
      responder.tunnel(socket, proxyError(ErrorCodes.DRAINING, 'the proxy is shutting down', 503));
      return;
    }
    const authority = parseAuthority(req.url ?? '');
    const ex = new TcpExchange('inbound', socket, (upstream) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      splice(socket, upstream);
    });
    ex.targetPort = authority?.port ?? 0;
    this.options
      .config()
      .inboundTcp(ex)
      .catch((error: unknown) => responder.tunnel(socket, error));
  }
}
