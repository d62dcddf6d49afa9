// The mesh tunnel listener (mesh → app): mTLS from peer proxies (plaintext too in PERMISSIVE), then HTTP requests naming a target port, and CONNECT for opaque TCP.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../../api/errors.ts';
import type { MtlsMode } from '../../api/snapshot.ts';
import { proxyError } from '../errors.ts';
import { normalizeExchangePath } from '../normalize-path.ts';
import { HttpExchange, TcpExchange, type DownstreamResponse } from '../exchange.ts';
import type { IdentityManager } from '../identity/manager.ts';
import { APP_PROTOCOL_HEADER, TARGET_PORT_HEADER } from '../layers/mesh-headers/index.ts';
import { parseAuthority } from '../transport/authority.ts';
import { detect } from '../transport/detect.ts';
import { H2Front } from '../transport/h2-server.ts';
import { handTo, Http1Request, Http1Server } from '../transport/http1-server.ts';
import { forwardableRequestHeaders } from '../transport/headers.ts';
import { SESSION_WINDOW_BYTES } from '../transport/h2.ts';
import { DEFAULT_LISTENER_LIMITS, derivedLimits, ListenerGuard, tunnelLimits, type ListenerLimits } from '../transport/hardening.ts';
import { listen } from '../transport/listen.ts';
import { refuse, TLS_HANDSHAKE_RECORD, TUNNEL_H2_ALPN, TUNNEL_SERVER_ALPNS, verifyTunnelClient, XFCC_HEADER, xfccElement, type TunnelMetrics, type VerifiedPeer } from '../transport/mtls.ts';
import { splice } from '../transport/tcp.ts';
import { serveUpgrades } from '../transport/upgrade.ts';
import type { ListenerContext } from '../listener-context.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { createServer: createHttpServer } = process.getBuiltinModule('node:http');

export interface TunnelListenerOptions extends ListenerContext {
  host: string;
  port: number;
  /** The proxy's workload identity: the tunnel presents it and verifies callers against its trust bundle. */
  identity: IdentityManager;
  tunnelMetrics: TunnelMetrics;
  /** How long a new connection may take to send its first byte, and then its TLS handshake. Default 10 s. */
  handshakeTimeoutMs?: number;
}

interface PeerRecord {
  peer: VerifiedPeer;
  /** This connection's x-forwarded-client-cert, built once at the handshake. */
  xfcc: string;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Accepts raw TCP, tells TLS from plaintext by the first byte, and hands the
 * HTTP server either a verified TLS socket (with the caller's identity
 * recorded) or, in PERMISSIVE only, the plaintext socket. In STRICT nothing
 * but a verified mTLS connection ever reaches HTTP parsing.
 */
export class TunnelListener {
  /** The listening socket. */
  readonly server: Server;
  private readonly http: HttpServer;
  /** The fast path in front of `http`: plain requests are served there, anything else is handed to it. */
  private readonly fast: Http1Server;
  /** HTTP/2 and gRPC from peers: TLS connections that negotiated h2, and (PERMISSIVE) plaintext ones opening with the preface. */
  private readonly h2: H2Front;
  private tls: TlsServer | undefined;
  private readonly options: TunnelListenerOptions;
  private readonly peers = new WeakMap<Duplex, PeerRecord>();
  private readonly handshakeTimeoutMs: number;
  private readonly stopIdentity: () => void;
  /** Limits on what peer proxies send (transport/hardening.ts), HTTP/1.1 CONNECT heads included. */
  private readonly guard: ListenerGuard;
  port = 0;

  private constructor(options: TunnelListenerOptions) {
    this.options = options;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.server = createNetServer({ noDelay: true }, (socket) => this.onConnection(socket));
    // Accept failures (EMFILE when descriptors run out) come as 'error' on the listening server: logged, never fatal.
    this.server.on('error', (error) => options.logger.warn({ err: error }, 'tunnel listener error'));
    // Callers are peer proxies, yet limits still apply: a compromised workload's proxy is a client like any other.
    const guard = (this.guard = new ListenerGuard(
      'inbound',
      derivedLimits(typeof options.limits === 'function' ? options.limits : () => (options.limits as ListenerLimits | undefined) ?? DEFAULT_LISTENER_LIMITS, tunnelLimits),
      options.metrics.registry,
      options.logger,
    ));
    const serve = guard.wrap((req, res) => this.onRequest(req, res));
    this.http = createHttpServer(guard.http1Options(options.keepAliveTimeoutMs), serve);
    guard.hardenHttp1(this.http);
    guard.limitConnections(this.server);
    // Node tracks a server's connections (idle close on stop, header and request timeouts) only once it
    // listens; this one never listens, it is handed connections, so it is told it does.
    this.http.emit('listening');
    this.fast = new Http1Server({
      guard,
      clock: options.clock,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs,
      onRequest: (req, res) => this.onRequest(req, res),
      fallback: (socket) => handTo(this.http, socket),
    });
    this.h2 = new H2Front(
      guard.wrap((req, res) => this.onRequest(req, res)),
      (req) => this.onConnectStream(req),
      { guard, connectionWindowBytes: SESSION_WINDOW_BYTES },
    );
    this.http.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    // Upgrades (WebSocket) from peer proxies are served as requests, then spliced with the app (transport/upgrade.ts).
    serveUpgrades(this.http, options, serve);
    this.http.on('clientError', guard.clientError);
    this.stopIdentity = options.identity.onChange(() => this.refreshTls());
    this.refreshTls();
  }

  static async start(options: TunnelListenerOptions): Promise<TunnelListener> {
    const listener = new TunnelListener(options);
    listener.port = await listen(listener.server, options.port, options.host);
    return listener;
  }

  stop(): void {
    this.stopIdentity();
    this.server.close();
    this.fast.stop();
    this.h2.stop();
    this.http.close();
    this.http.closeIdleConnections();
  }

  private get mode(): MtlsMode {
    return this.options.config().snapshot?.mesh.mtls?.mode ?? 'STRICT';
  }

  /** Builds the TLS server at the first certificate; afterwards swaps its context, so new handshakes use the new certificate and open connections carry on. */
  private refreshTls(): void {
    const { identity } = this.options;
    if (!identity.ready) return;
    const context = { ...identity.secureContextOptions(), minVersion: 'TLSv1.3' as const };
    if (this.tls) {
      this.tls.setSecureContext(context);
      return;
    }
    this.tls = new TlsServer(
      { ...context, requestCert: true, rejectUnauthorized: true, ALPNProtocols: TUNNEL_SERVER_ALPNS, handshakeTimeout: this.handshakeTimeoutMs },
      (socket) => this.onSecure(socket),
    );
    this.tls.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      this.count('refused');
      this.options.logger.debug({ err: error, remote: socket.remoteAddress }, 'tunnel TLS handshake refused');
      socket.destroy();
    });
  }

  private onConnection(raw: Socket): void {
    const { activity, clock } = this.options;
    activity.trackSocket(raw, 'inbound');
    raw.on('error', () => raw.destroy());
    if (activity.draining) {
      raw.destroy();
      return;
    }
    const timer = clock.setTimeout(() => raw.destroy(), this.handshakeTimeoutMs);
    raw.once('close', () => timer.cancel());
    raw.once('data', (chunk: Buffer) => {
      timer.cancel();
      raw.pause();
      raw.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE_RECORD) this.acceptTls(raw);
      else this.acceptPlaintext(raw);
    });
  }

  private acceptTls(raw: Socket): void {
    if (!this.tls) {
      // No certificate yet: nothing to present. Peers only learn of this proxy once it has one.
      this.count('refused');
      refuse(raw);
      return;
    }
    this.tls.emit('connection', raw);
  }

  private acceptPlaintext(raw: Socket): void {
    if (this.mode !== 'PERMISSIVE') {
      this.count('plaintext_refused');
      refuse(raw);
      return;
    }
    this.count('plaintext');
    detect(raw, Buffer.alloc(0), this.handshakeTimeoutMs, this.options.clock).then(
      (kind) => {
        if (raw.destroyed) return;
        if (kind === 'http2') {
          this.h2.accept(raw, undefined);
          raw.resume();
        } else {
          this.fast.accept(raw);
        }
      },
      () => raw.destroy(),
    );
    // onConnection paused it after peeking at the first byte; detection reads on from there.
    raw.resume();
  }

  private onSecure(socket: TLSSocket): void {
    let peer: VerifiedPeer;
    try {
      peer = verifyTunnelClient(socket, this.options.config().snapshot?.mesh.trustDomain);
    } catch (error) {
      this.count('refused');
      this.options.logger.debug({ err: error, remote: socket.remoteAddress }, 'tunnel caller refused');
      socket.destroy();
      return;
    }
    this.count('ok');
    const record: PeerRecord = { peer, xfcc: xfccElement(this.options.identity.current?.spiffeId, peer) };
    socket.on('error', () => socket.destroy());
    if (socket.alpnProtocol === TUNNEL_H2_ALPN) {
      this.h2.accept(socket, record);
      return;
    }
    this.peers.set(socket, record);
    this.fast.accept(socket);
  }

  private count(result: string): void {
    this.options.tunnelMetrics.handshakes.labels('server', result).inc();
  }

  private onRequest(req: IncomingMessage | Http2ServerRequest | Http1Request, res: DownstreamResponse): void {
    const { clock, activity, metrics, responder } = this.options;
    const started = clock.monotonic();
    activity.trackRequest(res);
    // forwardableRequestHeaders drops any x-forwarded-client-cert the caller sent: only ours reaches the app.
    const headers = forwardableRequestHeaders(req.headers);
    const h2 = req.httpVersionMajor === 2;
    const authority = req.headers[':authority'];
    if (h2 && headers.host === undefined && typeof authority === 'string') headers.host = authority;
    const record = h2 ? H2Front.tagOf<PeerRecord>(req as Http2ServerRequest) : this.peers.get(req.socket as Duplex);
    if (record) headers[XFCC_HEADER] = record.xfcc;
    const ex = new HttpExchange('inbound', req, res, req.url ?? '/', headers, started, req instanceof Http1Request ? req.body : req);
    ex.peerIdentity = record?.peer.spiffeId;
    const appProtocol = req.headers[APP_PROTOCOL_HEADER];
    if (appProtocol === 'h2' || appProtocol === 'http1') ex.appProtocol = appProtocol;
    const { tracer, accessLog } = this.options;
    tracer?.start(ex, 'server');
    accessLog?.startHttp(ex);
    res.once('close', () => {
      if (!res.writableFinished) ex.abort(new Error('the peer closed the connection'));
      const status = res.headersSent ? res.statusCode : 499;
      metrics.recordRequest(ex, status, (clock.monotonic() - started) / 1000);
      accessLog?.finishHttp(ex, 'inbound', status);
      tracer?.finish(ex, status);
    });
    const target = req.headers[TARGET_PORT_HEADER];
    ex.targetPort = typeof target === 'string' && /^\d{1,5}$/.test(target) ? Number(target) : 0;
    const config = this.options.config();
    // Normalised here too, whatever the caller did: authorization must read the path the app will get (MeshConfig pathNormalization).
    const badPath = normalizeExchangePath(ex, config.snapshot?.mesh.pathNormalization);
    if (badPath) {
      responder.http(ex, badPath);
      return;
    }
    // A layer that throws rather than rejects still gets its answer, not a reset connection (the gateway and outbound listeners do the same).
    try {
      config.inboundHttp(ex).catch((error: unknown) => responder.http(ex, error));
    } catch (error) {
      responder.http(ex, error);
    }
  }

  /**
   * Opaque TCP as an HTTP/2 CONNECT stream on a shared tunnel session: the
   * stream is handed to the inbound TCP stack like a CONNECT socket, answered
   * 200 once the app connection is open, then spliced with it (END_STREAM ↔
   * FIN, RST_STREAM ↔ reset, the stream's window as backpressure).
   */
  private onConnectStream(req: Http2ServerRequest): void {
    const { responder, activity } = this.options;
    const startedAt = this.options.clock.monotonic();
    const stream = req.stream;
    stream.on('error', () => {});
    if (activity.draining) {
      responder.tunnelStream(stream, proxyError(ErrorCodes.DRAINING, 'the proxy is shutting down', 503));
      return;
    }
    const record = H2Front.tagOf<PeerRecord>(req);
    const authority = parseAuthority(String(req.headers[':authority'] ?? ''));
    const ex = new TcpExchange('inbound', stream, (upstream) => {
      if (stream.destroyed) {
        upstream.destroy();
        return;
      }
      stream.respond({ ':status': 200 });
      splice(stream, upstream);
      this.countTcp(ex, upstream);
    });
    ex.targetPort = authority?.port ?? 0;
    ex.peerIdentity = record?.peer.spiffeId;
    this.options
      .config()
      .inboundTcp(ex)
      .catch((error: unknown) => {
        this.options.accessLog?.tcpFailed(ex, 'inbound', startedAt, error);
        responder.tunnelStream(stream, error);
      });
  }

  /**
   * Counts a tunnelled TCP connection on the app's socket, as Istio's
   * reporter=destination does: what the app sent back is "sent", what it was
   * given is "received".
   */
  private countTcp(ex: TcpExchange, app: Duplex): void {
    const metrics = this.options.metrics;
    const edge = metrics.recordTcpOpened(ex);
    const socket = app as Partial<Pick<Socket, 'bytesRead' | 'bytesWritten'>>;
    const openedAt = this.options.clock.monotonic();
    app.once('close', () => {
      metrics.recordTcpClosed(edge, socket.bytesRead ?? 0, socket.bytesWritten ?? 0);
      this.options.accessLog?.tcp(ex, 'inbound', openedAt, socket.bytesWritten ?? 0, socket.bytesRead ?? 0);
    });
  }

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { responder, activity } = this.options;
    const startedAt = this.options.clock.monotonic();
    socket.on('error', () => socket.destroy());
    // A CONNECT head gets the same checks as a request's (duplicate Host, header limits): the outbound port does the same.
    if (this.guard.refuseTunnel(req, socket)) return;
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
      this.countTcp(ex, upstream);
    });
    ex.targetPort = authority?.port ?? 0;
    ex.peerIdentity = this.peers.get(socket)?.peer.spiffeId;
    this.options
      .config()
      .inboundTcp(ex)
      .catch((error: unknown) => {
        this.options.accessLog?.tcpFailed(ex, 'inbound', startedAt, error);
        responder.tunnel(socket, error);
      });
  }
}
