// Gateway listeners: one socket per Gateway port, served as HTTP or as HTTPS (TLS with SNI across listeners, HTTP/2 or HTTP/1.1), routed by host.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import {
  createSecureServer,
  createServer as createH2cServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type ServerHttp2Session,
} from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import { ErrorCodes } from '../../api/errors.ts';
import { normalHost } from '../../api/hostnames.ts';
import { proxyError } from '../errors.ts';
import { normalizeExchangePath } from '../normalize-path.ts';
import { HttpExchange, type DownstreamResponse } from '../exchange.ts';
import { parseAuthority, splitAbsoluteForm } from '../transport/authority.ts';
import { STREAM_WINDOW_BYTES } from '../transport/h2.ts';
import { forwardableRequestHeaders, sanitizeEdgeHeaders } from '../transport/headers.ts';
import { EDGE_CONNECTION_WINDOW_BYTES, EDGE_SESSION_MEMORY_MB, gatewayLimits, ListenerGuard } from '../transport/hardening.ts';
import { handTo, Http1Request, Http1Server } from '../transport/http1-server.ts';
import { listen } from '../transport/listen.ts';
import { serveUpgrades } from '../transport/upgrade.ts';
import { listenerFor, virtualHostFor, type GatewayListenerConfig, type GatewayPortConfig } from './config.ts';
import { GatewayL4Listeners } from './l4-listener.ts';
import type { ListenerContext } from '../listener-context.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { createServer: createHttpServer } = process.getBuiltinModule('node:http');

export interface GatewayListenersOptions extends ListenerContext {
  /** Where the Gateway ports listen. */
  host: string;
  /** Gateway port → the local port to bind for it (0: any free port). These are bound at start and kept. */
  portMap: ReadonlyMap<number, number>;
  /** A Gateway port the map does not name binds its own number ('same') or any free port ('ephemeral'). */
  unmapped: 'same' | 'ephemeral';
  /** Told the whole port map whenever a port is bound or released after start. */
  onPortsChanged?: (ports: Record<string, number>) => void;
  /** Bind the Gateway ports with SO_REUSEPORT: the workers of `weft proxy --workers N` share them. */
  reusePort?: boolean;
}

interface BoundPort {
  gatewayPort: number;
  localPort: number;
  server: NetServer;
  /** HTTP/2 with prior knowledge (h2c) on a plain HTTP port. */
  h2c: Http2Server;
  /** From the port map: stays bound whatever the config says. */
  pinned: boolean;
}

type AnyRequest = IncomingMessage | Http2ServerRequest;

/** Why opensWithH2Preface gave up on a client that said nothing (the header timeout applies). */
const SILENT_CLIENT = 'silent client';
const H2_PREFACE_START = Buffer.from('PRI * HTTP/2.0');

/**
 * Whether the client's first bytes are HTTP/2's connection preface (h2c with
 * prior knowledge). What was read is put back for the server that gets the
 * socket. Rejects when the client stays silent or leaves.
 */
function opensWithH2Preface(socket: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(SILENT_CLIENT)), timeoutMs);
    const finish = (result: boolean | Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.length, H2_PREFACE_START.length);
      if (!buffered.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n))) finish(false);
      else if (n === H2_PREFACE_START.length) finish(true);
    };
    const onEnd = () => finish(new Error('the client left'));
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}

/**
 * The gateway's front door. Each Gateway port gets one TCP listener; each
 * connection is served by what the current config says the port is: plain
 * HTTP/1.1, or TLS (the listener's certificate chosen by SNI) carrying HTTP/2
 * or HTTP/1.1. Each request's host then picks the port's listener and the
 * listener's virtual host; a TLS request whose host belongs to another
 * listener than the one its handshake named is misdirected (421).
 */
export class GatewayListeners {
  private readonly options: GatewayListenersOptions;
  private readonly bound = new Map<number, BoundPort>();
  private readonly http1: HttpServer;
  /** The fast path in front of `http1` on plain HTTP ports: plain requests are served there, anything else is handed to it. */
  private readonly fast: Http1Server;
  /** TCP and TLS-passthrough ports (l4-listener.ts). */
  private readonly l4: GatewayL4Listeners;
  /** One TLS server per port config: it carries that config's default certificate and SNI choices. */
  private readonly tlsServers = new WeakMap<GatewayPortConfig, Http2SecureServer>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** The Gateway port each plain-HTTP socket came in on (one HTTP server serves every port). */
  private readonly socketPorts = new WeakMap<object, number>();
  private syncing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Limits on what clients may send (transport/hardening.ts). */
  private readonly guard: ListenerGuard;

  private constructor(options: GatewayListenersOptions) {
    this.options = options;
    this.l4 = new GatewayL4Listeners(options);
    const guard = (this.guard = new ListenerGuard('gateway', options.limits ?? gatewayLimits(undefined), options.metrics.registry, options.logger));
    const http1 = guard.wrap((req, res) => this.onRequest(req, res, 'http', this.socketPorts.get(req.socket)));
    this.http1 = createHttpServer(guard.http1Options(options.keepAliveTimeoutMs), http1);
    // Never listens itself (the ports' sockets are handed to it); node runs its header and request timeouts only for a listening server.
    this.http1.emit('listening');
    guard.hardenHttp1(this.http1);
    this.http1.on('clientError', guard.clientError);
    // Upgrades (WebSocket) are routed as requests, then spliced (transport/upgrade.ts).
    serveUpgrades(this.http1, options, http1);
    this.fast = new Http1Server({
      guard,
      clock: options.clock,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs,
      onRequest: (req, res) => this.onRequest(req, res, 'http', this.socketPorts.get(req.socket)),
      fallback: (socket) => handTo(this.http1, socket),
    });
  }

  /** Binds every port of the port map; the config's other ports follow with sync(). */
  static async start(options: GatewayListenersOptions): Promise<GatewayListeners> {
    const listeners = new GatewayListeners(options);
    try {
      for (const [gatewayPort, localPort] of options.portMap) await listeners.bind(gatewayPort, localPort, true);
    } catch (error) {
      listeners.stop();
      throw error;
    }
    return listeners;
  }

  /** Gateway port → bound local port, for the ready line, `weft up` and /config. */
  get ports(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [gatewayPort, bound] of [...this.bound].sort((a, b) => a[0] - b[0])) out[String(gatewayPort)] = bound.localPort;
    return out;
  }

  /**
   * Binds the ports the current config has and none is bound for yet, and
   * releases those it no longer has (unless pinned by the port map). A port
   * that cannot be bound is logged and tried again at the next config.
   */
  sync(): Promise<void> {
    const run = this.syncing.then(() => this.syncNow());
    this.syncing = run.catch(() => {});
    return run;
  }

  private async syncNow(): Promise<void> {
    if (this.stopped) return;
    const wanted = new Set(this.options.config().gateway?.ports.keys() ?? []);
    let changed = false;
    for (const gatewayPort of wanted) {
      if (this.bound.has(gatewayPort)) continue;
      const localPort = this.options.unmapped === 'ephemeral' ? 0 : gatewayPort;
      try {
        await this.bind(gatewayPort, localPort, false);
        changed = true;
      } catch (error) {
        this.options.logger.warn({ err: error, gatewayPort, localPort }, 'cannot listen for a Gateway port');
      }
    }
    for (const [gatewayPort, bound] of this.bound) {
      if (bound.pinned || wanted.has(gatewayPort)) continue;
      this.bound.delete(gatewayPort);
      bound.server.close();
      changed = true;
    }
    for (const problem of this.options.config().gateway?.problems ?? []) this.options.logger.warn({ problem }, 'gateway listener left out');
    if (changed && !this.stopped) {
      this.options.logger.info({ listeners: this.ports }, 'gateway ports changed');
      this.options.onPortsChanged?.(this.ports);
    }
  }

  private async bind(gatewayPort: number, localPort: number, pinned: boolean): Promise<void> {
    const h2c = createH2cServer(
      this.h2Options(),
      this.guard.wrap((req, res) => this.onRequest(req, res, 'http', gatewayPort)),
    );
    h2c.on('session', (session: ServerHttp2Session) => this.trackSession(session));
    const server = createNetServer({ noDelay: true }, (socket) => this.onConnection(gatewayPort, socket, h2c));
    this.guard.limitConnections(server);
    server.on('error', (error) => this.options.logger.warn({ err: error, gatewayPort }, 'gateway listener error'));
    const port = await listen(server, localPort, this.options.host, this.options.reusePort === true);
    this.bound.set(gatewayPort, { gatewayPort, localPort: port, server, h2c, pinned });
  }

  private trackSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('close', () => this.sessions.delete(session));
    session.on('error', () => {});
    this.guard.hardenH2Session(session, EDGE_CONNECTION_WINDOW_BYTES);
    if (this.stopped) session.close();
  }

  /** HTTP/2 settings for clients at the edge: a modest window and memory (the stream concurrency is gatewayLimits'). */
  private h2Options() {
    return this.guard.h2Options(STREAM_WINDOW_BYTES, EDGE_SESSION_MEMORY_MB);
  }

  /** Stops accepting; HTTP/2 clients are told to go away, idle HTTP/1.1 connections close. */
  stop(): void {
    this.stopped = true;
    for (const bound of this.bound.values()) bound.server.close();
    this.fast.stop();
    this.http1.closeIdleConnections();
    for (const session of this.sessions) if (!session.closed) session.close();
  }

  private onConnection(gatewayPort: number, socket: Socket, h2c: Http2Server): void {
    const { activity } = this.options;
    activity.trackSocket(socket, 'gateway');
    socket.on('error', () => socket.destroy());
    if (activity.draining) {
      socket.destroy();
      return;
    }
    const port = this.options.config().gateway?.ports.get(gatewayPort);
    if (port?.protocol === 'HTTPS') {
      this.tlsServerFor(port).emit('connection', socket);
      return;
    }
    if (port?.protocol === 'TCP' || port?.protocol === 'TLS') {
      this.l4.accept(port, socket);
      return;
    }
    // Plain HTTP (or no listener on this port yet: the request is answered with why): HTTP/1.x, or h2c if the client opens with the preface.
    opensWithH2Preface(socket, this.guard.limits.headersTimeoutMs || this.options.keepAliveTimeoutMs).then(
      (h2) => {
        if (socket.destroyed) return;
        if (h2) h2c.emit('connection', socket);
        else {
          this.socketPorts.set(socket, gatewayPort);
          this.fast.accept(socket);
          return;
        }
        socket.resume();
      },
      (error: Error) => {
        // Silent for the header timeout (slowloris), or gone.
        if (error.message === SILENT_CLIENT) this.guard.refused('headers_timeout');
        socket.destroy();
      },
    );
  }

  private tlsServerFor(port: GatewayPortConfig): Http2SecureServer {
    let server = this.tlsServers.get(port);
    if (server) return server;
    const contexts = new Map<string, SecureContext | undefined>();
    const sni = (servername: string, done: (error: Error | null, context?: SecureContext) => void) => {
      const host = normalHost(servername);
      let context = contexts.get(host);
      if (!contexts.has(host)) {
        context = listenerFor(port, host)?.secureContext;
        contexts.set(host, context);
      }
      // No listener for that name: the default certificate (the server's own) answers.
      done(null, context);
    };
    server = createSecureServer(
      {
        ...this.h2Options(),
        ...this.guard.http1Options(this.options.keepAliveTimeoutMs),
        allowHTTP1: true,
        SNICallback: sni,
        ...(port.defaultCertificates ? { cert: port.defaultCertificates.cert, key: port.defaultCertificates.key } : {}),
      },
      this.guard.wrap((req, res) => this.onRequest(req, res, 'https', port.port)),
    );
    server.on('session', (session: ServerHttp2Session) => this.trackSession(session));
    server.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());
    // HTTP/1.1 over TLS: node's header and request timeouts run only for a server that listens (this one is handed sockets), its parse errors answered as on plain ports.
    server.emit('listening');
    (server as unknown as { maxHeadersCount: number }).maxHeadersCount = this.guard.limits.maxHeaderCount + 1;
    server.on('clientError', this.guard.clientError);
    // HTTP/1.1 over TLS (wss://): Upgrades as on plain ports.
    serveUpgrades(server, this.options, this.guard.wrap((req, res) => this.onRequest(req, res, 'https', port.port)));
    this.tlsServers.set(port, server);
    return server;
  }

  private onRequest(req: AnyRequest | Http1Request, response: DownstreamResponse, scheme: 'http' | 'https', gatewayPort: number | undefined): void {
    const { clock, activity, metrics, responder } = this.options;
    const started = clock.monotonic();
    activity.trackRequest(response);
    const isHttp2 = req.httpVersionMajor === 2;
    const rawHeaders = req.headers as Record<string, string | string[] | undefined>;
    let path = req.url ?? '/';
    let authority = isHttp2 ? (rawHeaders[':authority'] as string | undefined) ?? (rawHeaders.host as string | undefined) : (rawHeaders.host as string | undefined);
    let badTarget = false;
    if (!path.startsWith('/')) {
      const absolute = splitAbsoluteForm(path);
      if (absolute) {
        path = absolute.path;
        authority = absolute.authority;
      } else if (path !== '*') badTarget = true;
    }
    // Pseudo-headers are left out; HttpExchange.hasBody reads an HTTP/2 request's body from its stream.
    const headers = forwardableRequestHeaders(req.headers);
    sanitizeEdgeHeaders(headers);
    if (authority !== undefined) headers.host = authority;
    const ex = new HttpExchange('outbound', req, response, path, headers, started, req instanceof Http1Request ? req.body : req);
    ex.scheme = scheme;
    const { tracer, accessLog } = this.options;
    tracer?.start(ex, 'gateway');
    accessLog?.startHttp(ex);
    response.once('close', () => {
      if (!response.writableFinished) ex.abort(new Error('the client closed the connection'));
      const status = response.headersSent ? response.statusCode : 499;
      metrics.recordRequest(ex, status, (clock.monotonic() - started) / 1000);
      accessLog?.finishHttp(ex, 'gateway', status);
      tracer?.finish(ex, status);
    });

    try {
      if (badTarget) throw proxyError(ErrorCodes.BAD_REQUEST, `cannot serve "${path}": not an origin-form or http:// target`, 400);
      const config = this.options.config();
      // Once, before routing and authorization: every layer after reads the normal form (MeshConfig pathNormalization).
      const badPath = normalizeExchangePath(ex, config.snapshot?.mesh.pathNormalization);
      if (badPath) throw badPath;
      const gateway = config.gateway;
      const port = gatewayPort === undefined ? undefined : gateway?.ports.get(gatewayPort);
      if (!port) {
        const why = gateway ? `Gateway ${gateway.namespace}/${gateway.name} has no listener on port ${gatewayPort}` : 'the gateway has no Gateway to serve (yet)';
        throw proxyError(ErrorCodes.NO_ROUTE, why, 404);
      }
      ex.targetPort = port.port;
      ex.addressedPort = port.port;
      const parsed = authority === undefined ? undefined : parseAuthority(authority);
      if (!parsed) throw proxyError(ErrorCodes.BAD_REQUEST, authority === undefined ? 'the request names no host' : `"${authority}" is not a host name`, 400);
      // A port in the Host header plays no part in matching (and is forwarded as it came).
      const host = normalHost(parsed.host);
      const listener = listenerFor(port, host);
      if (scheme === 'https') this.checkDirected(req, port, listener, host);
      if (!listener) throw proxyError(ErrorCodes.NO_ROUTE, `no listener on port ${port.port} serves ${host}`, 404);
      const vhost = virtualHostFor(listener, host);
      if (!vhost) throw proxyError(ErrorCodes.NO_ROUTE, `no route of listener ${listener.name} serves ${host}`, 404);
      ex.service = vhost.routeKey;
      vhost.http(ex).catch((error: unknown) => responder.http(ex, error));
    } catch (error) {
      responder.http(ex, error);
    }
  }

  /**
   * A TLS connection was opened for the listener its SNI names; a request on
   * it for a host of another listener of the port would be served with the
   * wrong certificate's authority, so it is refused with 421 (RFC 9110
   * §15.5.20) and the client may retry on a new connection.
   */
  private checkDirected(req: AnyRequest | Http1Request, port: GatewayPortConfig, listener: GatewayListenerConfig | undefined, host: string): void {
    const servername = (req.socket as TLSSocket).servername;
    if (typeof servername !== 'string' || servername === '') return;
    const connectionListener = listenerFor(port, normalHost(servername));
    if (connectionListener === undefined || connectionListener === listener) return;
    throw proxyError(
      ErrorCodes.MISDIRECTED_REQUEST,
      `${host} is served by listener ${listener?.name ?? '(none)'}, but this connection was opened for ${servername} (listener ${connectionListener.name})`,
      421,
    );
  }
}
