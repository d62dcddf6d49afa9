// What travels through a stack: one HTTP request/response, or one opaque TCP connection.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SnapshotBackend, SnapshotEndpoint } from '../api/snapshot.ts';
import type { Span } from './tracing/span.ts';

export type Direction = 'outbound' | 'inbound';
/** How a request travels on one hop: HTTP/1.1 or HTTP/2. */
export type HttpVersion = 'http1' | 'h2';
export type Headers = Record<string, string | string[] | undefined>;

/** Response header fields as a response object takes them. */
export type OutgoingHeaders = OutgoingHttpHeaders;

/**
 * The client's request as the layers read it: node's IncomingMessage and
 * Http2ServerRequest have it, and so does the HTTP/1.1 fast path's request
 * (transport/http1-server.ts). The body, when there is one, is the
 * exchange's `body` (a stream) or `bufferedBody` (received whole).
 */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly socket: Socket;
}

/** The response to the client as the layers write it: node's ServerResponse and Http2ServerResponse, and the fast path's. */
export interface DownstreamResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  /** Cleared while draining: the connection closes after this response (HTTP/1.1 only). */
  shouldKeepAlive?: boolean;
  /** HTTP/1.1: the reason phrase writeHead sends (an upstream's own is passed on). */
  statusMessage?: string | undefined;
  writeHead(statusCode: number, headers?: OutgoingHeaders): this;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  getHeader(name: string): number | string | string[] | undefined;
  getHeaders(): OutgoingHeaders;
  addTrailers(headers: OutgoingHeaders): void;
  write(chunk: Buffer | string): boolean;
  end(): unknown;
  end(chunk: Buffer | string): unknown;
  destroy(): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
}

/** A request body stream as the listeners hand it on: node's own requests (the fast path's bodies arrive whole, as a Buffer). */
export type RequestBody = IncomingMessage | Http2ServerRequest;

/** Where a listener's Upgrade response carries its UpgradeRequest (transport/upgrade.ts acceptUpgrade sets it). */
export const UPGRADE_REQUEST = Symbol('weft.upgrade');

/** An HTTP/1.1 Upgrade request (WebSocket...): routed like any request, then sent by transport/upgrade.ts, which splices the connections after a 101. */
export interface UpgradeRequest {
  /** The Upgrade header as the client sent it ("websocket"). */
  readonly protocol: string;
  /** The client's raw connection (the exchange's `res` writes on it). */
  readonly socket: Duplex;
  /** Bytes the client sent after its request head; they belong to the upgraded stream. */
  readonly head: Buffer;
  /** Splices the client's connection with the upstream one that switched protocols; resolves when both are closed. */
  readonly established: (upstream: Duplex, upstreamHead: Buffer) => Promise<void>;
}

/**
 * A layer that rewrites upstream responses (a Transformation). The transport
 * asks it at each response's head; when it wants the body, nothing is written
 * to the client until the body is whole and rewritten.
 */
export interface ResponseRewrite {
  /** The largest body held; a longer one fails the exchange (502 WEFT_ERR_TRANSFORMATION). */
  readonly limitBytes: number;
  /** At the head (headers as they will be forwarded, edits applied): true to be given the body; otherwise header rewrites are done here, in place. */
  head(status: number, headers: Headers): boolean;
  /** The held body: returns the body to send, `headers` edited in place (the transport sets content-length). */
  body(status: number, headers: Headers, body: Buffer): Buffer;
}

/** Fields every exchange has, so that backend, balancer and port layers serve HTTP and TCP alike. */
export interface Exchange {
  readonly direction: Direction;
  /** The destination as metrics name it ("ns/name:port" outbound, "ns/workload:port" inbound). */
  service: string;
  /** The declared port: the service port (outbound) or the app port the tunnel was asked for (inbound). */
  targetPort: number;
  /** Inbound: where the app really listens on 127.0.0.1. */
  appPort: number;
  backend: SnapshotBackend | undefined;
  endpoint: SnapshotEndpoint | undefined;
  /** An endpoint that just failed to connect: the balancer steers the next attempt away from it. */
  avoid: SnapshotEndpoint | undefined;
  /** Whether another attempt can be made after a connect failure (nothing of the request is lost). */
  readonly replayable: boolean;
  /** Inbound: the caller's SPIFFE ID, verified by mTLS on the tunnel; undefined for a plaintext (PERMISSIVE) caller. */
  peerIdentity: string | undefined;
  /** A session (sessionPersistence) this exchange belongs to: the backend and endpoint to go to again, when they still exist. */
  readonly session?: SessionPin | undefined;
  /** The id of the route rule that took the exchange (HttpRouteRule.id), for metrics; set by the route layer. */
  routeId?: string | undefined;
}

/** Where a persistent session's earlier requests went. */
export interface SessionPin {
  /** Backend key ("ns/name:port"). */
  backend: string;
  endpoint: string;
}

export class HttpExchange implements Exchange {
  readonly direction: Direction;
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  /** The request's body stream, for node's requests; undefined for the fast path's, whose body (if any) came whole and is `bufferedBody`. */
  readonly body: RequestBody | undefined;
  readonly startedAt: number;
  peerIdentity: string | undefined = undefined;
  service = 'unknown';
  targetPort = 0;
  appPort = 0;
  backend: SnapshotBackend | undefined = undefined;
  endpoint: SnapshotEndpoint | undefined = undefined;
  avoid: SnapshotEndpoint | undefined = undefined;
  session: SessionPin | undefined = undefined;
  routeId: string | undefined = undefined;
  /** The weft-reason of a response this proxy made itself (respond.ts), for metrics. */
  proxyReason: string | undefined = undefined;
  /** Its short human text (the body's), for the span and the access log. */
  proxyReasonText: string | undefined = undefined;
  method: string;
  /** Origin-form target: path and query. Rewrites go through setPath(). */
  path: string;
  /** The scheme the client used to reach the proxy: redirects without a scheme keep it. */
  scheme: 'http' | 'https' = 'http';
  /** The port the client addressed (the service port; a gateway's listener port); 0: unknown, use targetPort. */
  addressedPort = 0;
  /** The request body, read in full when a layer must be able to send it again (retries, mirrors). */
  bufferedBody: Buffer | undefined = undefined;
  /**
   * Asked by the transport when an upstream response starts, before any of it
   * is written: an error refuses the response (the attempt is cut and fails
   * with that error), so that a retry layer can try again.
   */
  refuseResponse: ((status: number, headers: Headers, fromPeer: boolean) => Error | undefined) | undefined = undefined;
  /** The headers to send on: hop-by-hop ones removed, `host` as the client sent it. Filters edit this. */
  headers: Headers;
  /** Edits applied, in order, to the response's headers before they are written. */
  responseEdits: ((headers: Headers) => void)[] | undefined = undefined;
  /** Rewrites the upstream's responses (Transformations); proxy-made answers are not rewritten. */
  responseRewrite: ResponseRewrite | undefined = undefined;
  /** Set once the exchange is given up (timeout, client gone); the transport aborts its attempt. */
  aborted: Error | undefined = undefined;
  /** Installed by the transport while an upstream attempt runs. */
  onAbort: ((reason: Error) => void) | undefined = undefined;
  /** Set for an HTTP/1.1 Upgrade request: the forward layer sends it with transport/upgrade.ts instead of as a plain request. */
  readonly upgrade: UpgradeRequest | undefined;
  /** Inbound: the protocol the calling proxy decided the app speaks (weft-app-protocol); undefined when it did not say. */
  appProtocol: HttpVersion | undefined = undefined;
  /** The trace this exchange belongs to (tracing/tracer.ts), when tracing is on; its span when the trace is sampled. */
  traceId: string | undefined = undefined;
  span: Span | undefined = undefined;
  /** Upstream attempts sent (the forward layers count them): retries are attempts − 1. */
  attempts = 0;
  /** Set at the start of an exchange the access log will write (access-log.ts): what it measures on the way. */
  accessLogMark: { writtenBefore: number; respondedAt: number } | undefined = undefined;
  /** RequestAuthentication: the verified JWT's "<iss>/<sub>", else a checked API key's "api-key/<client>"; undefined when the request carried neither (AuthorizationPolicy requestPrincipals). */
  requestPrincipal: string | undefined = undefined;
  /** The verified JWT's claims (request.auth.claims); undefined without a verified token. */
  jwtClaims: Readonly<Record<string, unknown>> | undefined = undefined;
  /** The verified JWT's `aud`, always as a list (request.auth.audiences); undefined without a verified token. */
  jwtAudiences: readonly string[] | undefined = undefined;
  private pathEnd = -1;
  private query: URLSearchParams | undefined = undefined;

  /** `body`: node's request stream, or a body received whole (the fast path's), which becomes `bufferedBody`. */
  constructor(direction: Direction, req: DownstreamRequest, res: DownstreamResponse, path: string, headers: Headers, startedAt: number, body?: RequestBody | Buffer) {
    this.direction = direction;
    this.req = req;
    this.res = res;
    if (Buffer.isBuffer(body)) {
      this.body = undefined;
      this.bufferedBody = body;
    } else {
      this.body = body;
    }
    this.method = req.method ?? 'GET';
    this.path = path;
    this.headers = headers;
    this.startedAt = startedAt;
    this.upgrade = (res as { [UPGRADE_REQUEST]?: UpgradeRequest })[UPGRADE_REQUEST];
  }

  /** The path without its query, as route matches see it. */
  get pathname(): string {
    if (this.pathEnd === -1) {
      const q = this.path.indexOf('?');
      this.pathEnd = q === -1 ? this.path.length : q;
    }
    return this.path.slice(0, this.pathEnd);
  }

  /** Parsed once, on first use: only rules with query matches pay for it. */
  get queryParams(): URLSearchParams {
    if (!this.query) {
      const q = this.path.indexOf('?');
      this.query = new URLSearchParams(q === -1 ? '' : this.path.slice(q + 1));
    }
    return this.query;
  }

  /** The protocol the client spoke to this proxy. */
  get downstream(): HttpVersion {
    return this.req.httpVersionMajor === 2 ? 'h2' : 'http1';
  }

  /** The grpc-status the client was answered with (the upstream's, in a trailers-only head or the trailers, or the proxy's own), for outlier detection and metrics. */
  answeredGrpcStatus: string | undefined = undefined;

  /** A gRPC call (content-type application/grpc, +proto, +json, ...): proxy errors are answered as gRPC statuses. */
  get grpc(): boolean {
    const type = this.req.headers['content-type'];
    return typeof type === 'string' && type.startsWith('application/grpc');
  }

  /** Whether the request carries a body (a stream to read, or one received whole). */
  get hasBody(): boolean {
    const body = this.body;
    if (body === undefined) return this.bufferedBody !== undefined;
    // HTTP/2 says "no body" by ending the stream with the headers.
    if (body.httpVersionMajor === 2) return !(body as Http2ServerRequest).stream.endAfterHeaders;
    const h = body.headers;
    return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
  }

  /** A request without a body, or whose body was buffered, can be sent again; a streamed body cannot (it is not kept). */
  get replayable(): boolean {
    return (!this.hasBody || this.bufferedBody !== undefined) && this.aborted === undefined;
  }

  /** Replaces the origin-form target (path and query), forgetting what was parsed from the old one. */
  setPath(path: string): void {
    this.path = path;
    this.pathEnd = -1;
    this.query = undefined;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = reason;
    this.onAbort?.(reason);
  }

  addResponseEdit(edit: (headers: Headers) => void): void {
    (this.responseEdits ??= []).push(edit);
  }
}

export class TcpExchange implements Exchange {
  readonly direction: Direction;
  peerIdentity: string | undefined = undefined;
  /** The client side of the connection. */
  readonly socket: Duplex;
  service = 'unknown';
  targetPort = 0;
  appPort = 0;
  backend: SnapshotBackend | undefined = undefined;
  endpoint: SnapshotEndpoint | undefined = undefined;
  avoid: SnapshotEndpoint | undefined = undefined;
  routeId: string | undefined = undefined;
  /** Nothing is read from the client before the upstream connection is open. */
  readonly replayable = true;
  /** Called with the upstream connection once it is open; the listener splices the two. */
  readonly onConnected: (upstream: Duplex) => void;
  /**
   * Called before a layer waits for the client's first bytes (SNI routing): a
   * CONNECT client sends nothing until it is told the tunnel is established.
   */
  beforeClientRead: (() => void) | undefined = undefined;

  constructor(direction: Direction, socket: Duplex, onConnected: (upstream: Duplex) => void) {
    this.direction = direction;
    this.socket = socket;
    this.onConnected = onConnected;
  }
}
