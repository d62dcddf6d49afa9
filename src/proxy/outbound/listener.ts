// The outbound listener (app → mesh): an HTTP forward proxy for absolute-form, Host-addressed and CONNECT requests, plus upstream ports.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../../api/errors.ts';
import { proxyError } from '../errors.ts';
import { HttpExchange, TcpExchange } from '../exchange.ts';
import { detect } from '../transport/detect.ts';
import { splitAbsoluteForm } from '../transport/authority.ts';
import { forwardableRequestHeaders } from '../transport/headers.ts';
import { listen } from '../transport/listen.ts';
import { splice } from '../transport/tcp.ts';
import { resolveTarget, targetByKey, type OutboundTarget } from './resolve.ts';
import type { ListenerContext } from '../listener-context.ts';

export interface OutboundListenerOptions extends ListenerContext {
  host: string;
  port: number;
  /** How long a CONNECT tunnel to an HTTP port may stay silent before it is treated as opaque TCP. */
  detectTimeoutMs: number;
}

/** A connection whose requests all go to one target (a CONNECT tunnel carrying HTTP, or an upstream port). */
interface Pin {
  routeKey: string;
  /** Host header for requests that bring none (upstream ports). */
  defaultHost?: string;
}

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

export class OutboundListener {
  readonly server: Server;
  /** Never listens: serves HTTP found inside CONNECT tunnels and on HTTP upstream ports. */
  private readonly inner: Server;
  private readonly pins = new WeakMap<Duplex, Pin>();
  private readonly options: OutboundListenerOptions;
  port = 0;

  private constructor(options: OutboundListenerOptions) {
    this.options = options;
    const serverOptions = { keepAliveTimeout: options.keepAliveTimeoutMs, noDelay: true };
    this.server = createServer(serverOptions, (req, res) => this.onRequest(req, res));
    this.inner = createServer(serverOptions, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (socket: Socket) => options.activity.trackSocket(socket, 'outbound'));
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    for (const server of [this.server, this.inner]) {
      server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
        socket.on('error', () => socket.destroy());
        options.responder.tunnel(socket, proxyError(ErrorCodes.BAD_REQUEST, `protocol upgrades (${String(req.headers.upgrade)}) are not supported yet`, 501));
      });
      server.on('clientError', (_error: Error, socket: Duplex) => socket.destroy());
    }
  }

  static async start(options: OutboundListenerOptions): Promise<OutboundListener> {
    const listener = new OutboundListener(options);
    listener.port = await listen(listener.server, options.port, options.host);
    return listener;
  }

  /** An upstream port's connection: HTTP is served as requests to its service, anything else is spliced through. */
  acceptUpstream(localPort: number, socket: Socket): void {
    const { activity } = this.options;
    activity.trackSocket(socket, 'upstream');
    socket.on('error', () => socket.destroy());
    const found = this.options.config().upstreams.get(localPort);
    if (!found) {
      socket.destroy();
      return;
    }
    if (activity.draining) {
      socket.destroy();
      return;
    }
    const { upstream, entry } = found;
    if (entry.port.protocol === 'tcp') {
      // A TCP client would not understand an HTTP error: it sees the connection close.
      this.openTcp(entry, socket, (upstreamSocket) => splice(socket, upstreamSocket), (error) => {
        this.options.logger.debug({ service: entry.routeKey, localPort, err: error }, 'upstream port could not connect');
        socket.destroy();
      });
      return;
    }
    this.pins.set(socket, { routeKey: entry.routeKey, defaultHost: upstream.host });
    this.inner.emit('connection', socket);
  }

  /** Stops accepting; keep-alive connections close when idle. */
  stop(): void {
    this.server.close();
    this.server.closeIdleConnections();
    this.inner.closeIdleConnections();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { clock, activity, metrics, responder } = this.options;
    const started = clock.monotonic();
    activity.trackRequest(res);
    const url = req.url ?? '/';
    let path = url;
    let targetAuthority: string | undefined;
    let badTarget = false;
    if (!url.startsWith('/')) {
      const absolute = splitAbsoluteForm(url);
      if (absolute) {
        path = absolute.path;
        targetAuthority = absolute.authority;
      } else {
        badTarget = true;
      }
    }
    const headers = forwardableRequestHeaders(req.headers);
    const ex = new HttpExchange('outbound', req, res, path, headers, started);
    res.once('close', () => {
      if (!res.writableFinished) ex.abort(new Error('the client closed the connection'));
      metrics.recordRequest('outbound', ex.service, res.headersSent ? res.statusCode : 499, (clock.monotonic() - started) / 1000);
    });

    let entry: OutboundTarget;
    try {
      if (badTarget) throw proxyError(ErrorCodes.BAD_REQUEST, `cannot proxy "${url}": only http:// targets (https and other protocols go through CONNECT)`, 400);
      const config = this.options.config();
      const pin = this.pins.get(req.socket);
      if (pin) {
        const pinned = targetByKey(config, pin.routeKey);
        if (!pinned) throw proxyError(ErrorCodes.NO_ROUTE, `${pin.routeKey} is no longer a mesh service port or endpoint`, 502);
        entry = pinned;
        if (headers.host === undefined) headers.host = pin.defaultHost ?? targetAuthority ?? pinned.routeKey;
      } else {
        const authority = targetAuthority ?? req.headers.host;
        if (!authority) throw proxyError(ErrorCodes.BAD_REQUEST, 'the request names no host (no Host header, no absolute URL)', 400);
        entry = resolveTarget(config, authority);
        if (headers.host === undefined) headers.host = authority;
      }
    } catch (error) {
      responder.http(ex, error);
      return;
    }
    ex.service = entry.routeKey;
    ex.targetPort = entry.port.port;
    ex.addressedPort = entry.port.port;
    entry.http(ex).catch((error: unknown) => responder.http(ex, error));
  }

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { responder, activity } = this.options;
    socket.on('error', () => socket.destroy());
    if (activity.draining) {
      responder.tunnel(socket, proxyError(ErrorCodes.DRAINING, 'the proxy is shutting down', 503));
      return;
    }
    let entry: OutboundTarget;
    try {
      entry = resolveTarget(this.options.config(), req.url ?? '');
    } catch (error) {
      responder.tunnel(socket, error);
      return;
    }
    if (entry.port.protocol === 'tcp') {
      // Connect first, so that a failure can still be answered with a status and a reason.
      this.openTcp(
        entry,
        socket,
        (upstream) => {
          socket.write(ESTABLISHED);
          if (head.length > 0) upstream.write(head);
          splice(socket, upstream);
        },
        (error) => responder.tunnel(socket, error),
      );
      return;
    }
    socket.write(ESTABLISHED);
    detect(socket, head, this.options.detectTimeoutMs, this.options.clock).then(
      (kind) => {
        if (socket.destroyed) return;
        if (kind === 'http1') {
          this.pins.set(socket, { routeKey: entry.routeKey });
          this.inner.emit('connection', socket);
          socket.resume();
          return;
        }
        this.openTcp(entry, socket, (upstream) => splice(socket, upstream), (error) => {
          this.options.logger.debug({ service: entry.routeKey, err: error }, 'opaque tunnel failed after CONNECT was answered');
          socket.destroy();
        });
      },
      () => socket.destroy(),
    );
  }

  private openTcp(entry: OutboundTarget, socket: Socket, connected: (upstream: Duplex) => void, failed: (error: unknown) => void): void {
    const ex = new TcpExchange('outbound', socket, (upstream) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      connected(upstream);
    });
    ex.service = entry.routeKey;
    ex.targetPort = entry.port.port;
    entry.tcp(ex).catch(failed);
  }
}
