// The outbound listener (app → mesh): an HTTP forward proxy for absolute-form, Host-addressed and CONNECT requests, plus upstream ports.
import type { IncomingMessage, Server } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../../api/errors.ts';
import { asProxyError, proxyError } from '../errors.ts';
import { normalizeExchangePath } from '../normalize-path.ts';
import { HttpExchange, TcpExchange, type DownstreamResponse } from '../exchange.ts';
import { DEFAULT_DETECT_TIMEOUT_MS, detect, DetectMetrics } from '../transport/detect.ts';
import { splitAbsoluteForm } from '../transport/authority.ts';
import { dropMeshHeaders, forwardableRequestHeaders } from '../transport/headers.ts';
import { DEFAULT_LISTENER_LIMITS, EDGE_CONNECTION_WINDOW_BYTES, EDGE_SESSION_MEMORY_MB, ListenerGuard } from '../transport/hardening.ts';
import { listen } from '../transport/listen.ts';
import { H2Front } from '../transport/h2-server.ts';
import { handTo, Http1Request, Http1Server, type Http1Response } from '../transport/http1-server.ts';
import { splice } from '../transport/tcp.ts';
import { serveUpgrades } from '../transport/upgrade.ts';
import { resolveTarget, targetByKey, type OutboundTarget } from './resolve.ts';
import type { ListenerContext } from '../listener-context.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { createServer } = process.getBuiltinModule('node:http');

export interface OutboundListenerOptions extends ListenerContext {
  host: string;
  port: number;
  /** How long a CONNECT tunnel to an HTTP port may stay silent before it is treated as opaque TCP. */
  detectTimeoutMs?: number;
}

/** A connection whose requests all go to one target (a CONNECT tunnel carrying HTTP, or an upstream port). */
interface Pin {
  routeKey: string;
  /** Host header for requests that bring none (upstream ports). */
  defaultHost?: string;
}

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

export class OutboundListener {
  /** HTTP/1.1 on the outbound port (never listens itself: `front` hands it the connections that are not HTTP/2). */
  readonly server: Server;
  /** The listening socket: tells HTTP/2 with prior knowledge (h2c) from HTTP/1.1 by the first bytes. */
  private readonly front: NetServer;
  /** HTTP/2 (h2c) on the outbound port, in CONNECT tunnels and on upstream ports; requests go to the same onRequest. */
  private readonly h2: H2Front;
  /** Never listens: serves HTTP found inside CONNECT tunnels and on HTTP upstream ports. */
  private readonly inner: Server;
  /** The fast path in front of `server` and `inner`: plain requests are served there, anything else is handed to them. */
  private readonly fast: Http1Server;
  private readonly innerFast: Http1Server;
  private readonly pins = new WeakMap<Duplex, Pin>();
  private readonly options: OutboundListenerOptions;
  private readonly detections: DetectMetrics;
  /** Limits on what apps may send (transport/hardening.ts). */
  private readonly guard: ListenerGuard;
  port = 0;

  private constructor(options: OutboundListenerOptions) {
    this.options = options;
    this.detections = new DetectMetrics(options.metrics.registry);
    const guard = (this.guard = new ListenerGuard('outbound', options.limits ?? DEFAULT_LISTENER_LIMITS, options.metrics.registry, options.logger));
    const serverOptions = guard.http1Options(options.keepAliveTimeoutMs);
    const serve = guard.wrap((req, res) => this.onRequest(req, res));
    this.server = createServer(serverOptions, serve);
    this.inner = createServer(serverOptions, serve);
    // Node tracks a server's connections (idle close on stop, header and request timeouts) only once it listens; `front` listens for them.
    this.server.emit('listening');
    this.inner.emit('listening');
    const fastOptions = { guard, clock: options.clock, keepAliveTimeoutMs: options.keepAliveTimeoutMs, onRequest: (req: Http1Request, res: Http1Response) => this.onRequest(req, res) };
    this.fast = new Http1Server({ ...fastOptions, fallback: (socket) => handTo(this.server, socket) });
    this.innerFast = new Http1Server({ ...fastOptions, fallback: (socket) => handTo(this.inner, socket) });
    this.h2 = new H2Front(guard.wrap((req, res) => this.onRequest(req, res)), undefined, { guard, connectionWindowBytes: EDGE_CONNECTION_WINDOW_BYTES, sessionMemoryMb: EDGE_SESSION_MEMORY_MB });
    this.front = createNetServer({ noDelay: true }, (socket) => this.onConnection(socket));
    guard.limitConnections(this.front);
    // Accept failures (EMFILE when descriptors run out) come as 'error' on the listening server: logged, never fatal.
    this.front.on('error', (error) => options.logger.warn({ err: error }, 'outbound listener error'));
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    for (const server of [this.server, this.inner]) {
      // Upgrades (WebSocket) are routed as requests, then spliced (transport/upgrade.ts).
      serveUpgrades(server, options, serve);
      guard.hardenHttp1(server);
      server.on('clientError', guard.clientError);
    }
  }

  static async start(options: OutboundListenerOptions): Promise<OutboundListener> {
    const listener = new OutboundListener(options);
    listener.port = await listen(listener.front, options.port, options.host);
    return listener;
  }

  /** A client of the outbound port: HTTP/2 with prior knowledge, or (anything else) HTTP/1.1, as before. */
  private onConnection(socket: Socket): void {
    const { activity } = this.options;
    activity.trackSocket(socket, 'outbound');
    socket.on('error', () => socket.destroy());
    // Real HTTP clients speak at once; a silent one (slowloris) is given the header timeout, then the HTTP/1.1 server's own.
    detect(socket, Buffer.alloc(0), this.guard.limits.headersTimeoutMs || this.options.keepAliveTimeoutMs, this.options.clock).then(
      (kind) => {
        if (socket.destroyed) return;
        if (kind === 'http2') {
          this.h2.accept(socket, undefined);
          socket.resume();
        } else {
          this.fast.accept(socket);
        }
      },
      () => socket.destroy(),
    );
  }

  /** Caps the connections of another listening socket this listener serves (an upstream port) at the listener's limit, counted as its refusals. */
  limitConnections(server: NetServer): void {
    this.guard.limitConnections(server);
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
        // Counted as a CONNECT's refusal would be (by weft-reason), though a TCP client only sees the close.
        this.options.metrics.proxyResponses.labels(asProxyError(error).code).inc();
        socket.destroy();
      });
      return;
    }
    // No declared protocol (or an HTTP one): HTTP clients speak first; a silent client is a server-first protocol.
    detect(socket, Buffer.alloc(0), this.detectTimeoutMs(), this.options.clock, (outcome) => this.detections.record('upstream', outcome)).then(
      (kind) => {
        if (socket.destroyed) return;
        if (kind === 'http2') {
          this.h2.accept(socket, { routeKey: entry.routeKey, defaultHost: upstream.host } satisfies Pin);
          socket.resume();
          return;
        }
        if (kind === 'http1') {
          this.pins.set(socket, { routeKey: entry.routeKey, defaultHost: upstream.host });
          this.innerFast.accept(socket);
          return;
        }
        this.openTcp(entry, socket, (upstreamSocket) => splice(socket, upstreamSocket), (error) => {
          this.options.logger.debug({ service: entry.routeKey, localPort, err: error }, 'upstream port could not connect');
          this.options.metrics.proxyResponses.labels(asProxyError(error).code).inc();
          socket.destroy();
        });
      },
      () => socket.destroy(),
    );
  }

  /** Stops accepting; keep-alive connections close when idle. */
  stop(): void {
    this.front.close();
    this.fast.stop();
    this.innerFast.stop();
    this.h2.stop();
    this.server.close();
    this.server.closeIdleConnections();
    this.inner.closeIdleConnections();
  }

  private onRequest(req: IncomingMessage | Http2ServerRequest | Http1Request, res: DownstreamResponse): void {
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
    // weft-* headers are the proxies' to set: an app cannot pose as another caller or choose the peer's port.
    dropMeshHeaders(headers);
    // HTTP/2 names the authority in a pseudo-header; HTTP/1.1 upstreams and routes read it as host.
    const h2Authority = req.headers[':authority'];
    if (headers.host === undefined && typeof h2Authority === 'string') headers.host = h2Authority;
    const ex = new HttpExchange('outbound', req, res, path, headers, started, req instanceof Http1Request ? req.body : req);
    const { tracer, accessLog } = this.options;
    tracer?.start(ex, 'client');
    accessLog?.startHttp(ex);
    res.once('close', () => {
      if (!res.writableFinished) ex.abort(new Error('the client closed the connection'));
      const status = res.headersSent ? res.statusCode : 499;
      metrics.recordRequest(ex, status, (clock.monotonic() - started) / 1000);
      accessLog?.finishHttp(ex, 'outbound', status);
      tracer?.finish(ex, status);
    });

    let entry: OutboundTarget;
    try {
      if (badTarget) throw proxyError(ErrorCodes.BAD_REQUEST, `cannot proxy "${url}": only http:// targets (https and other protocols go through CONNECT)`, 400);
      const config = this.options.config();
      // Once, before routing: every layer after reads the normal form (MeshConfig pathNormalization).
      const badPath = normalizeExchangePath(ex, config.snapshot?.mesh.pathNormalization);
      if (badPath) throw badPath;
      const pin = req.httpVersionMajor === 2 ? H2Front.tagOf<Pin>(req as Http2ServerRequest) : this.pins.get(req.socket as Duplex);
      if (pin) {
        const pinned = targetByKey(config, pin.routeKey);
        if (!pinned) throw proxyError(ErrorCodes.NO_ROUTE, `${pin.routeKey} is no longer a mesh service port or endpoint`, 502);
        entry = pinned;
        if (headers.host === undefined) headers.host = pin.defaultHost ?? targetAuthority ?? pinned.routeKey;
      } else {
        const authority = targetAuthority ?? req.headers.host ?? (req.headers[':authority'] as string | undefined);
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
    if (this.guard.refuseTunnel(req, socket)) return;
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
      // Connect first, so that a failure can still be answered with a status and a reason; unless the
      // route must hear the client first (TLSRoutes route by SNI), and the tunnel is answered before.
      let answered = false;
      const answer = () => {
        if (answered) return;
        answered = true;
        socket.write(ESTABLISHED);
      };
      if (head.length > 0) socket.unshift(head);
      this.openTcp(
        entry,
        socket,
        (upstream) => {
          answer();
          splice(socket, upstream);
        },
        (error) => (answered ? socket.destroy() : responder.tunnel(socket, error)),
        answer,
      );
      return;
    }
    socket.write(ESTABLISHED);
    detect(socket, head, this.detectTimeoutMs(), this.options.clock, (outcome) => this.detections.record('outbound', outcome)).then(
      (kind) => {
        if (socket.destroyed) return;
        if (kind === 'http2') {
          this.h2.accept(socket, { routeKey: entry.routeKey } satisfies Pin);
          socket.resume();
          return;
        }
        if (kind === 'http1') {
          this.pins.set(socket, { routeKey: entry.routeKey });
          this.innerFast.accept(socket);
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

  /** The proxy's own setting (--detect-timeout), else the mesh's (MeshConfig protocolDetectionTimeout), else the default. */
  private detectTimeoutMs(): number {
    return this.options.detectTimeoutMs ?? this.options.config().snapshot?.mesh.protocolDetectionTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS;
  }

  private openTcp(
    entry: OutboundTarget,
    socket: Socket,
    connected: (upstream: Duplex) => void,
    failed: (error: unknown) => void,
    beforeClientRead?: () => void,
  ): void {
    const ex = new TcpExchange('outbound', socket, (upstream) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      connected(upstream);
      // The client's socket counts both ways: what it sent is what the upstream received, and back.
      const edge = this.options.metrics.recordTcpOpened(ex);
      const sentBefore = socket.bytesWritten;
      const openedAt = this.options.clock.monotonic();
      // The access log counts payload only: not the CONNECT request head read before.
      const readBefore = socket.bytesRead;
      socket.once('close', () => {
        this.options.metrics.recordTcpClosed(edge, socket.bytesWritten - sentBefore, socket.bytesRead);
        this.options.accessLog?.tcp(ex, 'outbound', openedAt, socket.bytesRead - readBefore, socket.bytesWritten - sentBefore);
      });
    });
    ex.beforeClientRead = beforeClientRead;
    ex.service = entry.routeKey;
    ex.targetPort = entry.port.port;
    const startedAt = this.options.clock.monotonic();
    entry.tcp(ex).catch((error: unknown) => {
      this.options.accessLog?.tcpFailed(ex, 'outbound', startedAt, error);
      failed(error);
    });
  }
}
