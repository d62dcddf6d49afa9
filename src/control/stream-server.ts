// The config stream server: proxies open one HTTP/2 stream each, get snapshots pushed as NDJSON, and register their workload under a lease.
import http2 from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ErrorCodes, isWeftError } from '../api/errors.ts';
import { dnsLabel, objectKey, type Resource } from '../api/meta.ts';
import type { WorkloadSpec } from '../api/resources.ts';
import type { NodeInfo } from '../api/snapshot.ts';
import { CERTIFICATE_PATH, STREAM_PATH, type CertificateRequest, type ControlMessage, type ProxyMessage, type ProxyStatus } from '../api/stream.ts';
import type { TelemetryReport } from '../api/topology.ts';
import { validateResource } from '../api/validate.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SnapshotCache, SnapshotSubscription } from './cache.ts';
import { issuerErrorStatus, type CertificateIssuer } from './ca/issuer.ts';
import type { IndexChange, ResourceIndex } from './index.ts';
import { sameJson } from './store/canonical.ts';
import { QUOTA_LIMITS, RATE_LIMIT_QUOTA_PATH, type QuotaReport } from '../api/rate-limit-quota.ts';
import { GlobalRateLimitLedger } from './ratelimit.ts';
import { isLoopbackAddress } from '../api/loopback.ts';
import { isControlPlaneId } from '../api/identity.ts';
import { authorizedPeerSpiffeId } from '../api/peer-identity.ts';
import { TLSSocket } from 'node:tls';
import { PEER_PATH_PREFIX } from './peers.ts';
import type { LeaseId, Store } from './store/types.ts';

/** The label a registered instance carries: the name of the template Workload it was started from. */
export const WORKLOAD_LABEL = 'weft.dev/workload';
/** The annotation naming the proxy that registered an instance. */
export const PROXY_ANNOTATION = 'weft.dev/proxy';

export interface StreamServerOptions {
  cache: SnapshotCache;
  store: Store;
  index: ResourceIndex;
  logger: Logger;
  clock: Clock;
  leaseTtlMs: number;
  host: string;
  port: number;
  /** How long a disconnected proxy stays in the proxy list. Default 5 minutes. */
  forgetAfterMs?: number | undefined;
  /** The longest message line a proxy may send. Default 1 MiB. */
  maxLineBytes?: number | undefined;
  /** Checks bootstrap tokens and signs workload certificates. */
  issuer: CertificateIssuer;
  /** Receives the per-edge metric deltas proxies push (control/telemetry); absent: they are ignored. */
  onTelemetry?: ((proxyId: string, report: TelemetryReport) => void) | undefined;
  /** Receives the proxies' tap batches (control/api/tap.ts); absent: they are ignored. */
  onTap?: ((proxyId: string, message: Extract<ProxyMessage, { type: 'tap' }>) => void) | undefined;
  /**
   * TLS on the stream port (the control plane's certificate from the mesh CA,
   * ca/stream-identity.ts). With it, the port takes TLS from anyone and
   * cleartext HTTP/2 only from loopback peers (unless `plaintextFromAnyHost`),
   * so bootstrap tokens never cross hosts in the clear. Without it: cleartext only, as before.
   */
  tls?: StreamTlsSource | undefined;
  /** With `tls`: also take cleartext from other hosts (a migration aid; tokens then travel in the clear). */
  plaintextFromAnyHost?: boolean | undefined;
  /**
   * Other control-plane replicas' questions (paths under PEER_PATH_PREFIX),
   * answered only over TLS to a client certificate of the mesh CA that
   * carries the control plane's SPIFFE ID; absent: those paths are 404.
   */
  peers?: { roots: () => readonly string[]; handle: (stream: http2.ServerHttp2Stream, path: string, headers: http2.IncomingHttpHeaders) => void } | undefined;
}

/** The stream port's certificate, and news of its renewals. */
export interface StreamTlsSource {
  readonly current: { keyPem: string; certPem: string };
  onChange(listener: () => void): () => void;
}

/** The first byte of a TLS handshake record: how the stream port tells TLS from cleartext HTTP/2. */
const TLS_HANDSHAKE_RECORD = 0x16;

/** "host:port" of a proxy's admin listener: its bind host, or its mesh address when it binds every interface. */
function adminAddress(node: NodeInfo): string | undefined {
  const port = node.adminPort;
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  const bound = typeof node.adminHost === 'string' && node.adminHost !== '' ? node.adminHost : node.address;
  const host = bound === '0.0.0.0' || bound === '::' ? node.address : bound;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Nonces only need to differ from every earlier one a stream saw: a random
 * prefix per process and a counter. (A random nonce per push cost 16 µs of
 * randomBytes, a sixth of a second per change at 10,000 proxies.)
 */
const NONCE_PREFIX = randomBytes(4).toString('hex');
let nonceCounter = 0;
function nextNonce(): string {
  nonceCounter = (nonceCounter + 1) >>> 0;
  return NONCE_PREFIX + nonceCounter.toString(16).padStart(8, '0');
}

/** How long an ended stream waits for the proxy to end its side before it is reset. */
const SHUTDOWN_GRACE_MS = 1000;
/** A certificate request is a CSR and a few names; anything bigger is refused unread. */
const MAX_CERTIFICATE_REQUEST_BYTES = 64 * 1024;

// Loose: fields a newer proxy adds pass through to the compiler untouched.
const NodeInfoSchema = z.looseObject({
  id: z.string().min(1).max(512),
  mode: z.enum(['sidecar', 'node', 'gateway']),
  namespace: dnsLabel,
  workload: z.string().min(1).optional(),
  instance: z.string().min(1).optional(),
  address: z.string().min(1),
  tunnelPort: z.number().int().min(0).max(65535),
  appPorts: z.array(z.number().int().min(1).max(65535)),
});

interface ProxyRecord {
  status: ProxyStatus;
  connection: ProxyConnection | undefined;
  disconnectedAt: number | undefined;
}

/**
 * Listens for proxies on an HTTP/2 cleartext port. See ProxyConnection for
 * what happens on one stream.
 */
export class StreamServer {
  readonly options: StreamServerOptions;
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** The raw connections under the sessions, so that shutdown can drop the ones a destroyed session leaves behind. */
  private readonly sockets = new Set<Socket>();
  readonly connections = new Set<ProxyConnection>();
  private readonly records = new Map<string, ProxyRecord>();
  /** The last certificate issued to each proxy id, for `weft status` (a proxy may ask before its hello). */
  private readonly issued = new Map<string, { identity: string; certExpiresAt: string; notAfter: number }>();
  private readonly forgetTimer: Timer;
  private readonly stopIndex: () => void;
  private boundPort = 0;
  /** With TLS: the TLS side of the port, and the listener that hands each connection to it or to the cleartext side. */
  private readonly secure: http2.Http2SecureServer | undefined;
  private readonly front: NetServer | undefined;
  private readonly stopTls: (() => void) | undefined;
  /** Global rate limits: every proxy's demand and share (ratelimit.ts). */
  readonly quotas: GlobalRateLimitLedger;
  closing = false;

  private constructor(options: StreamServerOptions) {
    this.options = options;
    this.quotas = new GlobalRateLimitLedger(options.clock);
    this.server = http2.createServer();
    const { tls } = options;
    if (tls) {
      this.secure = http2.createSecureServer(this.secureContext());
      this.secure.on('tlsClientError', (error) => options.logger.debug({ err: error }, 'stream port TLS handshake failed'));
      this.stopTls = tls.onChange(() => this.refreshTls());
      this.front = createNetServer((socket) => this.onFrontConnection(socket));
    }
    for (const server of this.secure ? [this.server, this.secure] : [this.server]) {
      server.on('session', (session) => {
        this.sessions.add(session);
        session.on('close', () => this.sessions.delete(session));
        session.on('error', (error) => options.logger.debug({ err: error }, 'stream session error'));
        if (this.closing) session.close();
      });
      server.on('connection', (socket: Socket) => {
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
      });
      server.on('stream', (stream, headers) => this.onStream(stream, headers));
      server.on('sessionError', (error) => options.logger.debug({ err: error }, 'stream session error'));
    }
    const forgetAfterMs = options.forgetAfterMs ?? 5 * 60_000;
    this.forgetTimer = options.clock.setInterval(() => this.forget(forgetAfterMs), Math.min(forgetAfterMs, 10_000)).unref();
    this.stopIndex = options.index.onChange((changes) => this.onIndexChange(changes));
  }

  static async start(options: StreamServerOptions): Promise<StreamServer> {
    const server = new StreamServer(options);
    const listening = server.front ?? server.server;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(options.port, options.host, () => {
        listening.off('error', reject);
        resolve();
      });
    });
    server.boundPort = (listening.address() as AddressInfo).port;
    listening.on('error', (error) => options.logger.error({ err: error }, 'stream server error'));
    return server;
  }

  /**
   * The TLS side's certificate and, for replicas' questions, the roots a
   * client certificate is checked against. A client certificate is asked
   * for but not required: proxies present none, and a failed check matters
   * only on the replicas' paths.
   */
  private secureContext(): http2.SecureServerOptions {
    const tls = this.options.tls!;
    const roots = this.options.peers?.roots() ?? [];
    return { key: tls.current.keyPem, cert: tls.current.certPem, minVersion: 'TLSv1.3', ...(roots.length > 0 ? { requestCert: true, rejectUnauthorized: false, ca: [...roots] } : {}) };
  }

  /** A new certificate, or new roots (a CA rotation, or the end of its overlap): new handshakes use them. */
  refreshTls(): void {
    this.secure?.setSecureContext(this.secureContext());
  }

  /** With TLS: a handshake goes to the TLS side; cleartext only from this host (or anywhere, if allowed). */
  private onFrontConnection(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const timer = setTimeout(() => socket.destroy(), 10_000).unref();
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk);
      // Both servers take the peeked bytes from the socket's buffer themselves; resuming here would spill them.
      if (chunk[0] === TLS_HANDSHAKE_RECORD) {
        this.secure!.emit('connection', socket);
      } else if (this.options.plaintextFromAnyHost || isLoopbackAddress(socket.remoteAddress)) {
        this.server.emit('connection', socket);
      } else {
        this.options.logger.warn({ remote: socket.remoteAddress }, 'refused a cleartext connection from another host on the stream port: use https:// and --ca-bundle');
        socket.destroy();
      }
    });
  }

  /** The port's URL for proxies on other hosts: https when it serves TLS. */
  get secureUrl(): string | undefined {
    if (!this.secure) return undefined;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `https://${host}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.boundPort}`;
  }

  /** Every proxy connected now or in the last few minutes, sorted by id. */
  proxies(): ProxyStatus[] {
    return [...this.records.values()]
      .map((r) => {
        const status = structuredClone(r.status);
        const certificate = this.issued.get(status.id);
        if (certificate) {
          status.identity = certificate.identity;
          status.certExpiresAt = certificate.certExpiresAt;
        }
        return status;
      })
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Ends every stream (the proxies see the response end, then GOAWAY) without
   * withdrawing their endpoints: they reconnect, to this control plane once it
   * is back or to another replica, and keep their registration alive there.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.forgetTimer.cancel();
    this.stopIndex();
    for (const connection of this.connections) connection.shutdown();
    for (const session of this.sessions) session.close();
    this.stopTls?.();
    const front = this.front;
    const closed = front
      ? new Promise<void>((resolve) => front.close(() => resolve()))
      : new Promise<void>((resolve) => this.server.close(() => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref());
    await Promise.race([closed, grace]);
    for (const session of this.sessions) session.destroy();
    // A destroyed session still ends its socket politely and waits for that to finish, which never happens
    // when the proxy's host vanished (no FIN comes back, a full send buffer never drains): server.close()
    // would wait until TCP gives up, minutes later. Those sockets go now.
    for (const socket of this.sockets) socket.destroy();
    await closed;
    // Let the connections' close handlers run their queued work (they do not revoke while closing).
    await Promise.all([...this.connections].map((c) => c.settled()));
  }

  /** Sends a message on a proxy's config stream (a tap); false when the proxy has no stream to this control plane now. */
  sendTo(proxyId: string, message: ControlMessage): boolean {
    const connection = this.records.get(proxyId)?.connection;
    return connection ? connection.tell(message) : false;
  }

  /** Binds a connection's proxy to its status record, replacing an older stream of the same proxy. */
  attach(connection: ProxyConnection, node: NodeInfo, runningVersion: string | undefined): ProxyStatus {
    const existing = this.records.get(node.id);
    const previous = existing?.connection;
    if (previous && previous !== connection) previous.supersede();
    const now = new Date(this.options.clock.now()).toISOString();
    const status: ProxyStatus = {
      id: node.id,
      mode: node.mode,
      namespace: node.namespace,
      address: node.address,
      tunnelPort: node.tunnelPort,
      connected: true,
      ready: false,
      connectedAt: now,
      lastSeen: now,
    };
    if (node.workload !== undefined) status.workload = node.workload;
    status.instance = instanceName(node);
    const admin = adminAddress(node);
    if (admin) status.admin = admin;
    if (runningVersion) status.ackedVersion = runningVersion;
    if (existing?.status.lastNack) status.lastNack = existing.status.lastNack;
    this.records.set(node.id, { status, connection, disconnectedAt: undefined });
    return status;
  }

  detach(connection: ProxyConnection, id: string): void {
    const record = this.records.get(id);
    if (!record || record.connection !== connection) return;
    record.connection = undefined;
    record.disconnectedAt = this.options.clock.now();
    record.status.connected = false;
  }

  /** Another replica's question: only a verified control-plane certificate gets an answer. */
  private onPeerRequest(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string, handle: (stream: http2.ServerHttp2Stream, path: string, headers: http2.IncomingHttpHeaders) => void): void {
    const socket = stream.session?.socket;
    let refusal: string | undefined;
    if (!(socket instanceof TLSSocket)) refusal = 'only over TLS';
    else {
      try {
        authorizedPeerSpiffeId(socket, isControlPlaneId);
      } catch (error) {
        refusal = (error as Error).message;
      }
    }
    if (refusal !== undefined) {
      this.options.logger.warn({ remote: socket?.remoteAddress, reason: refusal }, "refused a replica's question from a client that is not a control plane");
      answerJson(stream, 403, { code: ErrorCodes.PEER_IDENTITY, message: `these paths answer other control-plane replicas only: ${refusal}` });
      return;
    }
    if (headers[':method'] !== 'GET') {
      answerJson(stream, 405, { code: ErrorCodes.BAD_REQUEST, message: 'use GET' });
      return;
    }
    try {
      handle(stream, path.slice(PEER_PATH_PREFIX.length), headers);
    } catch (error) {
      this.options.logger.error({ err: error, path }, "answering a replica's question failed");
      if (!stream.headersSent) answerJson(stream, 500, { code: ErrorCodes.INTERNAL, message: (error as Error).message });
      else stream.destroy();
    }
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (error) => this.options.logger.debug({ err: error }, 'config stream error'));
    if (headers[':path'] === CERTIFICATE_PATH) {
      this.onCertificateRequest(stream, headers).catch((error: unknown) => {
        this.options.logger.error({ err: error }, 'certificate request failed');
        answerJson(stream, 500, { code: ErrorCodes.INTERNAL, message: 'the certificate request failed' });
      });
      return;
    }
    if (headers[':path'] === RATE_LIMIT_QUOTA_PATH) {
      this.onQuotaReport(stream, headers).catch((error: unknown) => {
        this.options.logger.error({ err: error }, 'rate limit quota report failed');
        answerJson(stream, 500, { code: ErrorCodes.INTERNAL, message: 'the quota report failed' });
      });
      return;
    }
    const path = headers[':path'] ?? '';
    if (path.startsWith(PEER_PATH_PREFIX) && this.options.peers) {
      this.onPeerRequest(stream, headers, path, this.options.peers.handle);
      return;
    }
    if (headers[':path'] !== STREAM_PATH) {
      stream.respond({ ':status': 404, 'content-type': 'text/plain' });
      stream.end(`no such path; proxies open POST ${STREAM_PATH}\n`);
      return;
    }
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405, allow: 'POST', 'content-type': 'text/plain' });
      stream.end(`use POST ${STREAM_PATH}\n`);
      return;
    }
    if (this.closing) {
      stream.respond({ ':status': 503, 'content-type': 'text/plain' });
      stream.end('the control plane is shutting down\n');
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const connection = new ProxyConnection(this, stream);
    this.connections.add(connection);
    stream.on('close', () => {
      connection.closed();
      this.connections.delete(connection);
    });
  }

  /**
   * POST /weft.v1/ratelimit: a proxy's demand for its Global rate limits in,
   * its shares out (ratelimit.ts). Authenticated as a hello is: a proxy on
   * this host may go without a token, one from elsewhere may not.
   */
  private async onQuotaReport(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    if (headers[':method'] !== 'POST') {
      answerJson(stream, 405, { code: ErrorCodes.BAD_REQUEST, message: `use POST ${RATE_LIMIT_QUOTA_PATH}` }, { allow: 'POST' });
      return;
    }
    const body = await readBounded(stream, QUOTA_LIMITS.bodyBytes);
    if (body === undefined) {
      answerJson(stream, 413, { code: ErrorCodes.BAD_REQUEST, message: `a quota report is at most ${QUOTA_LIMITS.bodyBytes} bytes` });
      return;
    }
    let report: unknown;
    try {
      report = JSON.parse(body);
    } catch {
      answerJson(stream, 400, { code: ErrorCodes.BAD_REQUEST, message: 'the quota report is not JSON' });
      return;
    }
    const problem = GlobalRateLimitLedger.check(report);
    if (problem !== undefined) {
      answerJson(stream, 400, { code: ErrorCodes.BAD_REQUEST, message: problem });
      return;
    }
    const quota = report as QuotaReport;
    const authorization = headers.authorization;
    const token = typeof authorization === 'string' && /^Bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
    if (token !== undefined || !isLoopbackAddress(stream.session?.socket?.remoteAddress)) {
      try {
        await this.options.issuer.authenticate(token, quota.namespace, typeof quota.workload === 'string' ? quota.workload : undefined);
      } catch (error) {
        answerJson(stream, 401, { code: ErrorCodes.UNAUTHORIZED, message: (error as Error).message });
        return;
      }
    }
    answerJson(stream, 200, this.quotas.report(quota));
  }

  /** POST /weft.v1/certificate: one CSR in, one certificate (or a refusal) out. */
  private async onCertificateRequest(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    if (headers[':method'] !== 'POST') {
      answerJson(stream, 405, { code: ErrorCodes.BAD_REQUEST, message: `use POST ${CERTIFICATE_PATH}` }, { allow: 'POST' });
      return;
    }
    const body = await readBounded(stream, MAX_CERTIFICATE_REQUEST_BYTES);
    if (body === undefined) {
      answerJson(stream, 413, { code: ErrorCodes.BAD_REQUEST, message: `a certificate request is at most ${MAX_CERTIFICATE_REQUEST_BYTES} bytes` });
      return;
    }
    let request: CertificateRequest;
    try {
      request = JSON.parse(body) as CertificateRequest;
    } catch {
      answerJson(stream, 400, { code: ErrorCodes.BAD_REQUEST, message: 'the certificate request is not JSON' });
      return;
    }
    if (!request || typeof request !== 'object' || typeof request.csr !== 'string' || typeof request.namespace !== 'string' || (request.workload !== undefined && typeof request.workload !== 'string')) {
      answerJson(stream, 400, { code: ErrorCodes.BAD_REQUEST, message: 'a certificate request is {csr, namespace, workload?, proxy?}' });
      return;
    }
    const authorization = headers.authorization;
    const token = typeof authorization === 'string' && /^Bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
    try {
      const issued = await this.options.issuer.issue({ token, csrPem: request.csr, namespace: request.namespace, workload: request.workload });
      // Shown for the proxy that asked, if it names itself within the namespace the token was checked for.
      if (typeof request.proxy === 'string' && request.proxy.startsWith(`${request.namespace}/`) && request.proxy.length <= 512) {
        this.issued.set(request.proxy, { identity: issued.spiffeId, certExpiresAt: new Date(issued.notAfter).toISOString(), notAfter: issued.notAfter });
      }
      answerJson(stream, 200, issued);
    } catch (error) {
      const status = issuerErrorStatus(error);
      const code = isWeftError(error) ? error.code : ErrorCodes.INTERNAL;
      const message = status === 500 && !isWeftError(error) ? 'the CA failed' : (error as Error).message;
      this.options.logger.warn({ code, message, namespace: request.namespace, workload: request.workload, proxy: request.proxy }, 'certificate request refused');
      answerJson(stream, status, { code, message });
    }
  }

  private onIndexChange(changes: readonly IndexChange[]): void {
    for (const change of changes) {
      if (change.type !== 'put' || change.object.kind !== 'Workload') continue;
      for (const connection of this.connections) connection.templateChanged(change.key);
    }
  }

  private forget(afterMs: number): void {
    const now = this.options.clock.now();
    for (const [id, record] of this.records) {
      if (record.disconnectedAt !== undefined && now - record.disconnectedAt >= afterMs) this.records.delete(id);
    }
    for (const [id, certificate] of this.issued) {
      if (!this.records.has(id) && certificate.notAfter <= now) this.issued.delete(id);
    }
  }
}

export function instanceName(node: NodeInfo): string {
  if (node.instance) return node.instance;
  const slash = node.id.lastIndexOf('/');
  return slash === -1 ? node.id : node.id.slice(slash + 1);
}

export function templateKey(namespace: string, workload: string): string {
  return objectKey({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', namespace, name: workload });
}

/**
 * One proxy's stream. Messages are handled one at a time, in order, so that a
 * `ready: false` can never overtake the registration of the `ready: true`
 * before it.
 */
export class ProxyConnection {
  private readonly server: StreamServer;
  private readonly stream: http2.ServerHttp2Stream;
  private readonly logger: Logger;
  private buffered = '';
  private work: Promise<void> = Promise.resolve();
  private node: NodeInfo | undefined;
  private status: ProxyStatus | undefined;
  private subscription: SnapshotSubscription | undefined;
  private sentSeq = 0;
  private sentNonce: string | undefined;
  /** The proxy said `delta: true` in its hello. */
  private takesDeltas = false;
  /**
   * The version the proxy ACKed on this stream in answer to the latest push,
   * if its latest answer was an ACK: a delta may start only from it (never
   * from a version it merely claimed in its hello, nor after a NACK).
   */
  private deltaBase: string | undefined;
  /** The latest push was a delta: a NACK of it is answered with the full snapshot. */
  private sentDelta = false;
  private reportedError: string | undefined;
  private blocked = false;
  private ended = false;
  private superseded = false;
  private ready = false;
  private helloSeen = false;
  private lease: LeaseId | undefined;
  private registered: Resource | undefined;
  private silenceTimer: Timer | undefined;

  constructor(server: StreamServer, stream: http2.ServerHttp2Stream) {
    this.server = server;
    this.stream = stream;
    this.logger = server.options.logger;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.onData(chunk));
    stream.on('end', () => this.shutdown());
    this.resetSilence();
  }

  /** Resolves when every queued message has been handled. */
  settled(): Promise<void> {
    return this.work;
  }

  /**
   * Ends the response. A well-behaved proxy then ends its request and the
   * stream closes; one that does not is reset shortly after. (Wall-clock on
   * purpose: shutting down must finish even under a test's manual clock.)
   */
  shutdown(): void {
    if (this.ended) return;
    this.ended = true;
    this.silenceTimer?.cancel();
    try {
      if (!this.stream.destroyed && this.stream.writable) this.stream.end();
    } catch {
      // Already gone.
    }
    setTimeout(() => {
      if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }, SHUTDOWN_GRACE_MS).unref();
  }

  /** The same proxy opened a newer stream: this one ends without withdrawing the endpoint the newer one now owns. */
  supersede(): void {
    this.superseded = true;
    this.send({ type: 'error', code: ErrorCodes.CONFLICT, message: 'this proxy opened a newer stream; closing this one' });
    this.shutdown();
  }

  /** The stream is gone (either side ended it, or it was reset). */
  closed(): void {
    this.ended = true;
    this.silenceTimer?.cancel();
    this.subscription?.close();
    this.subscription = undefined;
    if (this.node) this.server.detach(this, this.node.id);
    this.enqueue(async () => {
      if (this.lease === undefined || this.superseded || this.server.closing) return;
      // The proxy went away: its endpoint goes at once rather than at lease expiry.
      await this.withdraw('stream closed');
    });
  }

  /** A template Workload changed: rewrite this proxy's instance if it was built from it. */
  templateChanged(key: string): void {
    if (!this.node?.workload || this.lease === undefined) return;
    if (templateKey(this.node.namespace, this.node.workload) !== key) return;
    this.enqueue(async () => {
      if (this.lease !== undefined && !this.ended) await this.register();
    });
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    const maxLine = this.server.options.maxLineBytes ?? 1024 * 1024;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) !== -1) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.onLine(line);
    }
    if (this.buffered.length > maxLine) this.fail(ErrorCodes.BAD_REQUEST, `a message longer than ${maxLine} bytes`);
  }

  private onLine(line: string): void {
    if (this.ended) return;
    let message: ProxyMessage;
    try {
      message = JSON.parse(line) as ProxyMessage;
    } catch {
      this.fail(ErrorCodes.BAD_REQUEST, 'a message is not valid JSON');
      return;
    }
    if (!message || typeof message !== 'object' || typeof (message as { type?: unknown }).type !== 'string') {
      this.fail(ErrorCodes.BAD_REQUEST, 'a message has no type');
      return;
    }
    this.resetSilence();
    if (this.status) this.status.lastSeen = new Date(this.server.options.clock.now()).toISOString();
    this.enqueue(() => this.handle(message));
  }

  private enqueue(task: () => Promise<void> | void): void {
    this.work = this.work.then(task).catch((error: unknown) => {
      this.logger.error({ err: error, proxy: this.node?.id }, 'handling a proxy message failed');
    });
  }

  private async handle(message: ProxyMessage): Promise<void> {
    if (message.type === 'hello') return this.hello(message);
    if (!this.node || !this.status) {
      // After a refused hello the stream is closing; what the proxy sent behind it needs no answer.
      if (!this.ended) this.fail(ErrorCodes.BAD_REQUEST, `the first message must be hello, got ${message.type}`);
      return;
    }
    switch (message.type) {
      case 'ack':
        if (message.nonce !== this.sentNonce) return;
        this.status.ackedVersion = message.version;
        this.deltaBase = message.version === this.status.sentVersion ? message.version : undefined;
        return;
      case 'nack':
        if (message.nonce !== this.sentNonce) return;
        this.deltaBase = undefined;
        if (this.sentDelta) {
          // Another base, a delta it could not apply: it gets the whole snapshot. Its rejection of that one, if any, is what counts.
          this.logger.info({ proxy: this.node.id, version: message.version, error: message.error }, 'proxy rejected a delta; sending the full snapshot');
          this.resendFull();
          return;
        }
        this.status.lastNack = {
          version: String(message.version),
          code: String(message.error?.code ?? ''),
          message: String(message.error?.message ?? ''),
          at: new Date(this.server.options.clock.now()).toISOString(),
        };
        this.logger.warn({ proxy: this.node.id, version: message.version, error: message.error }, 'proxy rejected a snapshot');
        return;
      case 'ready':
        this.ready = message.ready === true;
        this.status.ready = this.ready;
        if (this.ready) {
          if (this.lease === undefined && this.node.workload) await this.register();
        } else if (this.lease !== undefined) {
          await this.withdraw('proxy not ready');
        }
        return;
      case 'heartbeat':
        return this.heartbeat();
      case 'tap':
        this.server.options.onTap?.(this.node.id, message);
        return;
      case 'telemetry':
        // Counted by the proxy; a malformed report is dropped by the aggregator, never fatal to the stream.
        this.server.options.onTelemetry?.(this.node.id, { intervalMs: Number(message.intervalMs), edges: Array.isArray(message.edges) ? message.edges : [] });
        return;
      default:
        // Newer proxies may send messages this control plane does not know yet.
        this.logger.debug({ proxy: this.node.id, type: (message as { type: string }).type }, 'ignoring an unknown message');
    }
  }

  private async hello(message: Extract<ProxyMessage, { type: 'hello' }>): Promise<void> {
    if (this.node || this.helloSeen) {
      this.fail(ErrorCodes.BAD_REQUEST, 'hello sent twice on one stream');
      return;
    }
    this.helloSeen = true;
    const parsed = NodeInfoSchema.safeParse(message.node);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `node.${i.path.join('.')}: ${i.message}`).join('; ');
      this.fail(ErrorCodes.BAD_REQUEST, `invalid hello: ${problems}`);
      return;
    }
    const node = parsed.data as NodeInfo;
    const token = typeof message.token === 'string' ? message.token : undefined;
    // A proxy on this host may go without a token (it gets config, not a certificate); one from elsewhere may not.
    if (token !== undefined || !isLoopbackAddress(this.stream.session?.socket?.remoteAddress)) {
      try {
        await this.server.options.issuer.authenticate(token, node.namespace, node.workload);
      } catch (error) {
        const code = isWeftError(error) ? error.code : ErrorCodes.UNAUTHORIZED;
        this.fail(code, `the control plane refused this proxy: ${(error as Error).message}`);
        return;
      }
      if (this.ended) return;
    }
    this.node = node;
    this.takesDeltas = message.delta === true;
    const runningVersion = typeof message.runningVersion === 'string' && message.runningVersion ? message.runningVersion : undefined;
    this.status = this.server.attach(this, node, runningVersion);
    const { leaseTtlMs } = this.server.options;
    this.send({ type: 'welcome', leaseTtlMs, heartbeatMs: Math.max(1, Math.floor(leaseTtlMs / 3)) });
    this.subscription = this.server.options.cache.subscribe(node, () => this.pushLatest(), { deltas: this.takesDeltas });
    this.logger.info({ proxy: node.id, mode: node.mode, workload: node.workload, key: this.subscription.key }, 'proxy connected');
    this.pushLatest();
  }

  /**
   * Sends the cache's snapshot for this proxy's key unless the proxy already
   * has it (acked, running it, or it is the one in flight). Under
   * backpressure it waits for drain and then sends only the newest.
   */
  private pushLatest(): void {
    if (this.ended || !this.subscription || !this.status) return;
    const published = this.subscription.current();
    if (!published) {
      const failure = this.subscription.lastError();
      const message = failure ? `no valid snapshot for this proxy yet: ${failure.problems.join('; ')}` : undefined;
      if (message && message !== this.reportedError) {
        this.reportedError = message;
        this.send({ type: 'error', code: ErrorCodes.SNAPSHOT_INVALID, message });
      }
      return;
    }
    if (published.seq <= this.sentSeq || this.blocked) return;
    const version = published.snapshot.version;
    this.sentSeq = published.seq;
    if (version === this.status.ackedVersion) {
      // It runs this version already (acked, or said so in its hello): count it as delivered.
      this.status.sentVersion = version;
      return;
    }
    if (version === this.status.sentVersion) return;
    const nonce = nextNonce();
    // A delta when the proxy holds (has ACKed here) the version this one was published over, else the whole snapshot.
    const deltaTail = this.takesDeltas && this.deltaBase !== undefined && published.base === this.deltaBase ? published.deltaTail() : undefined;
    // The per-stream head, then the shared bytes of the delta or the snapshot (encoded once for every stream).
    const head = deltaTail
      ? `{"type":"delta","version":${JSON.stringify(version)},"nonce":"${nonce}",`
      : `{"type":"snapshot","version":${JSON.stringify(version)},"nonce":"${nonce}","snapshot":`;
    this.sentNonce = nonce;
    this.sentDelta = deltaTail !== undefined;
    this.deltaBase = undefined;
    this.status.sentVersion = version;
    this.status.sentAsDelta = this.sentDelta;
    // A delta is small: one write (one DATA frame) per stream is cheaper than two. A snapshot is not copied.
    let written: boolean;
    if (deltaTail) {
      written = this.write(Buffer.concat([Buffer.from(head), deltaTail]));
    } else {
      this.write(head);
      written = this.write(published.lineTail());
    }
    if (!written) {
      this.blocked = true;
      this.stream.once('drain', () => {
        this.blocked = false;
        this.pushLatest();
      });
    }
  }

  /** The proxy NACKed a delta: the current snapshot goes again, whole. */
  private resendFull(): void {
    if (!this.status) return;
    this.sentSeq = 0;
    this.status.sentVersion = undefined;
    this.status.sentAsDelta = undefined;
    this.pushLatest();
  }

  private async heartbeat(): Promise<void> {
    if (!this.node?.workload || !this.ready) return;
    if (this.lease === undefined) {
      await this.register();
      return;
    }
    try {
      await this.server.options.store.keepAlive(this.lease);
    } catch (error) {
      if (!isWeftError(error, ErrorCodes.NOT_FOUND)) throw error;
      // The lease ran out (a long pause, a store restart): register again rather than stay invisible.
      this.logger.warn({ proxy: this.node.id }, 'registration lease had expired; registering again');
      this.lease = undefined;
      this.registered = undefined;
      await this.register();
    }
  }

  /** Puts (or refreshes) this proxy's Workload instance under its lease. */
  private async register(): Promise<void> {
    const node = this.node;
    if (!node?.workload || this.ended) return;
    const { store, index, leaseTtlMs } = this.server.options;
    const template = index.get(templateKey(node.namespace, node.workload));
    // Gateways have no template by design (they register as "<gateway>.gateway"); for a sidecar a missing one is worth a warning.
    if (!template && node.mode !== 'gateway') this.logger.warn({ proxy: node.id, workload: node.workload }, 'no template Workload; registering from what the proxy says');
    const templateSpec = (template?.spec ?? {}) as Partial<WorkloadSpec>;
    const spec: Record<string, unknown> = {
      serviceAccount: templateSpec.serviceAccount ?? 'default',
      ports: templateSpec.ports?.length ? templateSpec.ports : node.appPorts.map((port) => ({ port })),
      address: node.address,
      tunnelPort: node.tunnelPort,
    };
    if (templateSpec.locality) spec.locality = templateSpec.locality;
    const validated = validateResource({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'Workload',
      metadata: {
        name: instanceName(node),
        namespace: node.namespace,
        labels: { ...(template?.metadata.labels ?? {}), [WORKLOAD_LABEL]: node.workload },
        annotations: { [PROXY_ANNOTATION]: node.id },
      },
      spec,
    });
    if (!validated.ok) {
      const problems = validated.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
      this.logger.error({ proxy: node.id, problems }, 'cannot register the workload instance');
      this.send({ type: 'error', code: ErrorCodes.INVALID, message: `cannot register ${validated.object}: ${problems}` });
      return;
    }
    const instance = validated.resource;
    if (this.lease !== undefined && this.registered && sameJson(this.registered, instance)) return;
    const fresh = this.lease === undefined;
    const lease = this.lease ?? (await store.grantLease(leaseTtlMs));
    this.lease = lease;
    try {
      await store.put(instance, { lease });
      this.registered = instance;
    } catch (error) {
      if (fresh || isWeftError(error, ErrorCodes.NOT_FOUND)) {
        this.lease = undefined;
        this.registered = undefined;
        await store.revokeLease(lease).catch(() => {});
      }
      throw error;
    }
    if (this.ended && !this.server.closing && !this.superseded) {
      // The stream closed while we were registering; its close handler may have run before the lease existed.
      await this.withdraw('stream closed during registration');
      return;
    }
    if (fresh) this.logger.info({ proxy: node.id, instance: `${node.namespace}/${instance.metadata.name}` }, 'workload instance registered');
  }

  private async withdraw(why: string): Promise<void> {
    const lease = this.lease;
    if (lease === undefined) return;
    this.lease = undefined;
    this.registered = undefined;
    await this.server.options.store.revokeLease(lease);
    this.logger.info({ proxy: this.node?.id, why }, 'workload instance withdrawn');
  }

  private resetSilence(): void {
    this.silenceTimer?.cancel();
    if (this.ended) return;
    // A proxy heartbeats every ttl/3; a full TTL of silence means the stream is dead even if TCP has not noticed.
    this.silenceTimer = this.server.options.clock.setTimeout(() => {
      this.logger.warn({ proxy: this.node?.id }, 'no message from the proxy for a lease TTL; closing its stream');
      this.ended = true;
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.server.options.leaseTtlMs);
    this.silenceTimer.unref();
  }

  private fail(code: string, message: string): void {
    this.logger.warn({ proxy: this.node?.id, code, message }, 'closing a config stream');
    this.send({ type: 'error', code, message });
    this.shutdown();
  }

  private send(message: ControlMessage): void {
    this.write(`${JSON.stringify(message)}\n`);
  }

  /** Sends a message from outside the stream's own work (a tap); false once the stream has ended. */
  tell(message: ControlMessage): boolean {
    if (this.ended || !this.node || this.stream.destroyed || !this.stream.writable) return false;
    this.send(message);
    return true;
  }

  private write(line: string | Buffer): boolean {
    if (this.stream.destroyed || !this.stream.writable) return true;
    try {
      return this.stream.write(line);
    } catch (error) {
      this.logger.debug({ err: error }, 'writing to a config stream failed');
      return true;
    }
  }
}

/** The body, or undefined once it passes `limit` bytes (the rest is not read). */
function readBounded(stream: http2.ServerHttp2Stream, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('error', reject);
    stream.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function answerJson(stream: http2.ServerHttp2Stream, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (stream.destroyed || stream.headersSent) return;
  const text = JSON.stringify(body);
  stream.respond({ ':status': status, 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  stream.end(text);
}
