// Limits on what a client may send a listener (sizes, counts, timeouts, HTTP/2 abuse), enforced where node's own parsers leave off; every refusal counted and logged.
import type { IncomingMessage, ServerOptions as Http1ServerOptions, ServerResponse } from 'node:http';
import { constants as h2constants, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, REASON_HEADER } from '../../api/errors.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Counter, CounterChild, MetricsRegistry } from '../../telemetry/metrics.ts';

/**
 * What one listener accepts. Defaults follow Envoy's edge recommendations
 * where Envoy has one (100 headers, 60 KiB of headers, 10 s to send them,
 * 5 min of stream idleness, 100 concurrent HTTP/2 streams at the edge) and
 * nginx/Apache's 8 KiB request line for the URI.
 */
export interface ListenerLimits {
  /** Request header fields (pseudo-headers not counted); more → 431. */
  maxHeaderCount: number;
  /** Request line plus header fields, in bytes; more → 431 (node's parser refuses what passes its own cap, set to this at start). */
  maxHeaderBytes: number;
  /** The request target (path and query, or an absolute URL), in bytes; longer → 414. */
  maxUriBytes: number;
  /** From a request's first byte to the end of its head (slowloris); over → 408 and close. */
  headersTimeoutMs: number;
  /** From a request's first byte to the end of its body; over → 408 and close. 0: none. */
  requestTimeoutMs: number;
  /** A connection (HTTP/1.1) or stream (HTTP/2) with a request in flight and no byte either way for this long is closed. 0: none. */
  idleTimeoutMs: number;
  /** An HTTP/2 session with no stream open and no frame for this long is sent GOAWAY. 0: never. */
  h2SessionIdleTimeoutMs: number;
  /** Client connections open at once on one listening port; one more is closed at accept. */
  maxConnections: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to HTTP/2 clients; node refuses streams beyond it (RST_STREAM REFUSED_STREAM). */
  h2MaxConcurrentStreams: number;
  /**
   * HTTP/2 rapid reset (CVE-2023-44487): a session whose client has reset
   * more than this many streams within `h2PrematureResetMs` of opening them,
   * and at least half of all its streams so, gets GOAWAY ENHANCE_YOUR_CALM.
   */
  h2MaxPrematureResets: number;
  h2PrematureResetMs: number;
  /** PING and SETTINGS frames a client may send per second; more → GOAWAY ENHANCE_YOUR_CALM. */
  h2MaxControlFramesPerSecond: number;
  /** Frames node counts as invalid (malformed, empty DATA without END_STREAM, ...) per session before it destroys the session. */
  h2MaxInvalidFrames: number;
  /** Streams node refuses (over the concurrency limit, ...) per session before it destroys the session. */
  h2MaxRejectedStreams: number;
}

export const DEFAULT_LISTENER_LIMITS: Readonly<ListenerLimits> = Object.freeze({
  maxHeaderCount: 100,
  maxHeaderBytes: 60 * 1024,
  maxUriBytes: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 300_000,
  h2SessionIdleTimeoutMs: 300_000,
  maxConnections: 10_000,
  h2MaxConcurrentStreams: 1000,
  h2MaxPrematureResets: 100,
  h2PrematureResetMs: 1_000,
  h2MaxControlFramesPerSecond: 100,
  h2MaxInvalidFrames: 100,
  h2MaxRejectedStreams: 100,
});

/**
 * Receive windows and nghttp2 memory for sessions from outside the mesh
 * (apps, gateway clients): what one connection can make the proxy hold is
 * bounded by the connection window (Envoy's edge value, 1 MiB), not 16 MiB
 * as between proxies.
 */
export const EDGE_CONNECTION_WINDOW_BYTES = 1024 * 1024;
export const EDGE_SESSION_MEMORY_MB = 16;

/** The gateway faces the internet: fewer concurrent streams per connection (Envoy's edge value). */
export const GATEWAY_H2_MAX_CONCURRENT_STREAMS = 100;

/** `--limit` names (kebab-case of the fields) → field. */
const LIMIT_NAMES: Record<string, keyof ListenerLimits> = Object.fromEntries(
  (Object.keys(DEFAULT_LISTENER_LIMITS) as (keyof ListenerLimits)[]).map((key) => [key.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`), key]),
);

/** The names `--limit NAME=VALUE` takes. */
export function limitNames(): string[] {
  return Object.keys(LIMIT_NAMES).sort();
}

/** Parses "max-header-count=50" into a partial limits object (values are non-negative integers; durations in ms). */
export function parseLimit(text: string, previous: Partial<ListenerLimits> = {}): Partial<ListenerLimits> {
  const eq = text.indexOf('=');
  const name = eq === -1 ? text : text.slice(0, eq);
  const key = LIMIT_NAMES[name];
  const value = Number(text.slice(eq + 1));
  if (!key) throw new Error(`unknown limit "${name}"; one of ${limitNames().join(', ')}`);
  if (eq === -1 || !Number.isInteger(value) || value < 0) throw new Error(`limit ${name} needs a non-negative integer value (${name}=N)`);
  return { ...previous, [key]: value };
}

/** How a refusal is named in weft_proxy_refused_total{reason}. */
export type RefusalReason =
  | 'header_count'
  | 'header_size'
  | 'uri_length'
  | 'duplicate_host'
  | 'host_mismatch'
  | 'transfer_encoding'
  | 'content_length'
  | 'invalid_header'
  | 'malformed'
  | 'headers_timeout'
  | 'request_timeout'
  | 'idle_timeout'
  | 'connection_limit'
  | 'h2_rapid_reset'
  | 'h2_control_flood'
  | 'h2_invalid_frames'
  | 'h2_session_error'
  | 'h2_idle';

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

interface Refusal {
  status: number;
  reason: RefusalReason;
  message: string;
}

/** llhttp's error codes → the refusal they are counted as. */
function parseErrorReason(code: string | undefined): RefusalReason {
  switch (code) {
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return 'transfer_encoding';
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
      return 'content_length';
    case 'HPE_HEADER_OVERFLOW':
      return 'header_size';
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
      return 'invalid_header';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'request_timeout';
    default:
      return 'malformed';
  }
}

const counters = new WeakMap<MetricsRegistry, Counter>();
/** HTTP/1.1 connections with a refused request: nothing after it on them is served. */
const refusedConnections = new WeakSet<object>();

/**
 * One listener's guard: its limits, and the refusals it counts. The
 * listener wraps its request handler with `wrap` and lets `hardenHttp1`,
 * `hardenH2Session` and `limitConnections` configure its servers.
 */
export class ListenerGuard {
  readonly listener: string;
  private readonly source: () => ListenerLimits;
  /** What the HTTP/2 servers were created with (h2Options); sessions are told when the limits changed since. */
  private h2Created: { maxConcurrentStreams: number; maxHeaderListSize: number } | undefined;
  private readonly logger: Logger;
  private readonly counter: Counter;
  private readonly children = new Map<string, CounterChild>();

  /** `limits`: fixed, or read afresh (MeshConfig limits arrive with snapshots) per connection, session and request. */
  constructor(listener: string, limits: ListenerLimits | (() => ListenerLimits), registry: MetricsRegistry, logger: Logger) {
    this.listener = listener;
    this.source = typeof limits === 'function' ? limits : () => limits;
    this.logger = logger;
    let counter = counters.get(registry);
    if (!counter) {
      counter = registry.counter('weft_proxy_refused_total', 'Requests, streams and connections a listener refused as hostile or over its limits, by listener and reason.', ['listener', 'reason']);
      counters.set(registry, counter);
    }
    this.counter = counter;
  }

  /** The limits in force now. */
  get limits(): ListenerLimits {
    return this.source();
  }

  /** Counts (and logs at debug) one refusal. */
  refused(reason: RefusalReason, detail?: Record<string, unknown>): void {
    let child = this.children.get(reason);
    if (!child) this.children.set(reason, (child = this.counter.labels(this.listener, reason)));
    child.inc();
    this.logger.debug({ listener: this.listener, reason, ...detail }, 'refused');
  }

  /** Options for a node:http server serving this listener. */
  http1Options(keepAliveTimeoutMs: number): Http1ServerOptions {
    const l = this.limits;
    return {
      keepAliveTimeout: keepAliveTimeoutMs,
      noDelay: true,
      maxHeaderSize: l.maxHeaderBytes,
      // Node refuses a header timeout longer than the request timeout: the head is part of the request.
      headersTimeout: l.requestTimeoutMs > 0 ? Math.min(l.headersTimeoutMs, l.requestTimeoutMs) : l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      // Node checks the two timeouts above on this period (30 s by default, which would let a slowloris sit 40 s).
      connectionsCheckingInterval: Math.max(250, Math.min(1_000, Math.floor(l.headersTimeoutMs / 4))),
      requireHostHeader: true,
    };
  }

  /**
   * Limits node:http enforces once the server exists: the header count cut
   * (one more than allowed, so that wrap() sees the overflow) and the idle
   * timeout. Node applies the latter as the socket's timeout while a request
   * is in flight (keepAliveTimeout between requests) and destroys the socket
   * when it fires; only the first kind is a refusal worth counting.
   */
  hardenHttp1(server: Http1Tunables & { on(event: 'connection', listener: (socket: Socket) => void): unknown; prependListener(event: 'connection', listener: () => void): unknown }): void {
    this.tuneHttp1(server);
    // Node reads these per connection (the two timeouts at each check): a new connection gets the limits in force.
    server.prependListener('connection', () => this.tuneHttp1(server));
    server.on('connection', (socket: Socket) => {
      socket.on('timeout', () => {
        const state = socket as unknown as { _httpMessage?: unknown; parser?: { incoming?: { complete?: boolean } | null } | null };
        const incoming = state.parser?.incoming;
        if (state._httpMessage || (incoming && !incoming.complete)) this.refused('idle_timeout');
      });
    });
  }

  private tuneHttp1(server: Http1Tunables): void {
    const l = this.limits;
    server.maxHeadersCount = l.maxHeaderCount + 1;
    server.timeout = l.idleTimeoutMs;
    server.maxHeaderSize = l.maxHeaderBytes;
    server.requestTimeout = l.requestTimeoutMs;
    server.headersTimeout = l.requestTimeoutMs > 0 ? Math.min(l.headersTimeoutMs, l.requestTimeoutMs) : l.headersTimeoutMs;
  }

  /**
   * A node:http `clientError`: what llhttp refused (smuggling attempts,
   * invalid bytes, heads over the size cap) or a timeout. Answered with a
   * status and weft-reason when nothing was written yet, then closed.
   */
  readonly clientError = (error: Error & { code?: string }, socket: Duplex): void => {
    const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    // Node reports both of its timeouts so; a request whose head was read timed out on its body.
    const headRead = (socket as { parser?: { incoming?: unknown } | null }).parser?.incoming;
    const reason = timeout ? (headRead ? 'request_timeout' : 'headers_timeout') : parseErrorReason(error.code);
    this.refused(reason, { code: error.code });
    const status = timeout ? 408 : reason === 'header_size' ? 431 : 400;
    const writable = socket.writable && !(socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (writable) {
      const code = timeout ? ErrorCodes.TIMEOUT : ErrorCodes.BAD_REQUEST;
      const body = `${code}: ${timeout ? 'the request took too long to arrive' : `malformed request (${error.code ?? 'parse error'})`}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${REASON_HEADER}: ${code}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };

  /**
   * The request handler with this listener's checks in front: a request
   * over a limit or with ambiguous framing or host is answered here and
   * never reaches the stacks. HTTP/2 requests are served on the next turn of
   * the event loop, once node has read the rest of what arrived with them,
   * so that a stream the client reset in the same burst (rapid reset) is
   * dropped before any upstream work starts.
   */
  wrap<Req extends AnyRequest, Res extends AnyResponse>(handler: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
    return (req, res) => {
      if (req.httpVersionMajor !== 2 && refusedConnections.has(req.socket)) {
        // Pipelined behind a refused request, in the bytes whose framing was already in doubt: never served.
        // The refused response closes the connection, which ends this one unanswered.
        req.resume();
        return;
      }
      const refusal = this.check(req);
      if (refusal) {
        if (req.httpVersionMajor !== 2) refusedConnections.add(req.socket);
        this.refuse(req, res, refusal);
        return;
      }
      if (req.httpVersionMajor !== 2) {
        handler(req, res);
        return;
      }
      const stream = (req as unknown as Http2ServerRequest).stream;
      if (this.limits.idleTimeoutMs > 0) {
        stream.setTimeout(this.limits.idleTimeoutMs, () => {
          this.refused('idle_timeout');
          stream.close(h2constants.NGHTTP2_CANCEL);
        });
      }
      setImmediate(() => {
        if (stream.destroyed || stream.closed) return;
        handler(req, res);
      });
    };
  }

  /** What is wrong with a request's head, by this listener's limits and the rules node does not check itself. */
  check(req: AnyRequest): Refusal | undefined {
    const l = this.limits;
    const raw = req.rawHeaders;
    const h2 = req.httpVersionMajor === 2;
    let count = 0;
    let bytes = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
    let hosts = 0;
    let transferEncodings = 0;
    let chunkedOnly = true;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1] ?? '';
      bytes += name.length + value.length + 4;
      if (name.charCodeAt(0) === 0x3a) continue;
      count++;
      const lower = name.length === 4 || name.length === 17 ? name.toLowerCase() : '';
      if (lower === 'host') hosts++;
      else if (lower === 'transfer-encoding') {
        transferEncodings++;
        if (value !== 'chunked') chunkedOnly = false;
      }
    }
    if (count > l.maxHeaderCount) return { status: 431, reason: 'header_count', message: `more than ${l.maxHeaderCount} header fields` };
    if (bytes > l.maxHeaderBytes) return { status: 431, reason: 'header_size', message: `the request head is larger than ${l.maxHeaderBytes} bytes` };
    const url = h2 ? String(req.headers[':path'] ?? req.url ?? '') : (req.url ?? '');
    if (url.length > l.maxUriBytes) return { status: 414, reason: 'uri_length', message: `the request target is longer than ${l.maxUriBytes} bytes` };
    if (hosts > 1) return { status: 400, reason: 'duplicate_host', message: 'more than one Host header' };
    if (transferEncodings > 0) {
      // llhttp takes "Chunked", "gzip, chunked" and chunked HTTP/1.0 bodies; a proxy that re-frames must not guess at any of them.
      if (transferEncodings > 1 || !chunkedOnly) return { status: 400, reason: 'transfer_encoding', message: 'Transfer-Encoding must be exactly "chunked"' };
      if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return { status: 400, reason: 'transfer_encoding', message: 'Transfer-Encoding in an HTTP/1.0 request' };
    }
    if (h2 && hosts === 1) {
      const authority = req.headers[':authority'];
      const host = req.headers.host;
      if (typeof authority === 'string' && typeof host === 'string' && authority.toLowerCase() !== host.toLowerCase()) {
        return { status: 400, reason: 'host_mismatch', message: 'the Host header names another authority than :authority' };
      }
    }
    return undefined;
  }

  /**
   * The checks for an HTTP/1.1 CONNECT, whose socket the listener answers
   * itself: true when it was refused (answered and closed here).
   */
  refuseTunnel(req: IncomingMessage, socket: Duplex): boolean {
    const refusal = this.check(req);
    if (!refusal) return false;
    this.refused(refusal.reason, { status: refusal.status, url: req.url?.slice(0, 200) });
    const body = `${ErrorCodes.BAD_REQUEST}: ${refusal.message}\n`;
    socket.end(
      `HTTP/1.1 ${refusal.status} ${STATUS_TEXT[refusal.status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${REASON_HEADER}: ${ErrorCodes.BAD_REQUEST}\r\nconnection: close\r\n\r\n${body}`,
    );
    return true;
  }

  private refuse(req: AnyRequest, anyRes: AnyResponse, refusal: Refusal): void {
    this.refused(refusal.reason, { status: refusal.status, url: req.url?.slice(0, 200) });
    const res = anyRes as ServerResponse;
    const body = `${ErrorCodes.BAD_REQUEST}: ${refusal.message}\n`;
    const headers: Record<string, string | number> = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      [REASON_HEADER]: ErrorCodes.BAD_REQUEST,
    };
    if (req.httpVersionMajor !== 2) {
      // Whatever body follows is never read: the connection closes, so none of it can be taken for a next request.
      res.shouldKeepAlive = false;
      headers.connection = 'close';
    }
    req.on('error', () => {});
    res.writeHead(refusal.status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** HTTP/2 server settings for this listener (on top of the flow-control windows the caller chooses). */
  h2Options(streamWindowBytes: number, sessionMemoryMb: number, maxConcurrentStreams = this.limits.h2MaxConcurrentStreams) {
    const l = this.limits;
    this.h2Created = { maxConcurrentStreams, maxHeaderListSize: l.maxHeaderBytes };
    return {
      settings: {
        initialWindowSize: streamWindowBytes,
        enablePush: false,
        maxConcurrentStreams,
        maxHeaderListSize: l.maxHeaderBytes,
      },
      maxSessionMemory: sessionMemoryMb,
      // Pseudo-headers count in node's pair limit; one field over ours reaches check() and gets its 431.
      maxHeaderListPairs: l.maxHeaderCount + 8,
      maxSessionInvalidFrames: l.h2MaxInvalidFrames,
      maxSessionRejectedStreams: l.h2MaxRejectedStreams,
      maxOutstandingPings: 10,
      maxOutstandingSettings: 10,
      maxSettings: 32,
    };
  }

  /**
   * Watches one accepted HTTP/2 session: streams its client resets right
   * after opening them (rapid reset), PING/SETTINGS floods, idleness, and
   * the errors node ends abusive sessions with (too many invalid frames or
   * refused streams). `connectionWindowBytes` is its receive window.
   */
  hardenH2Session(session: ServerHttp2Session, connectionWindowBytes: number): void {
    const l = this.limits;
    let opened = 0;
    let open = 0;
    let premature = 0;
    let windowStart = 0;
    let controlFrames = 0;
    let calmed = false;
    const calm = (reason: RefusalReason, detail: Record<string, unknown>) => {
      if (calmed || session.destroyed) return;
      calmed = true;
      this.refused(reason, detail);
      // GOAWAY ENHANCE_YOUR_CALM, then the connection is closed (its streams reset) once node is out of the
      // frame callback this runs in: destroying the session inside it would make nghttp2 send INTERNAL_ERROR instead.
      try {
        session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } catch {
        // Already going away.
      }
      setImmediate(() => session.destroy(new Error(`refused: ${reason}`), h2constants.NGHTTP2_ENHANCE_YOUR_CALM));
    };
    const setWindow = () => {
      try {
        session.setLocalWindowSize(connectionWindowBytes);
      } catch {
        // Gone meanwhile.
      }
    };
    const created = this.h2Created;
    const now = { maxConcurrentStreams: l.h2MaxConcurrentStreams, maxHeaderListSize: l.maxHeaderBytes };
    const retune = () => {
      if (created && (created.maxConcurrentStreams !== now.maxConcurrentStreams || created.maxHeaderListSize !== now.maxHeaderListSize)) {
        try {
          session.settings(now);
        } catch {
          // Gone meanwhile.
        }
      }
    };
    const onConnect = () => {
      setWindow();
      retune();
    };
    if (session.connecting) session.once('connect', onConnect);
    else onConnect();
    session.on('stream', (stream: ServerHttp2Stream) => {
      opened++;
      open++;
      const openedAt = performance.now();
      // Node announces streams on the next tick, after the rest of the read: a stream the client reset in the
      // same burst is already aborted here.
      const onAborted = () => {
        if (stream.rstCode === h2constants.NGHTTP2_NO_ERROR || performance.now() - openedAt > l.h2PrematureResetMs) return;
        premature++;
        if (premature > l.h2MaxPrematureResets && premature * 2 >= opened) calm('h2_rapid_reset', { premature, opened });
      };
      if (stream.aborted) onAborted();
      else stream.once('aborted', onAborted);
      stream.once('close', () => open--);
    });
    const countControl = () => {
      const now = performance.now();
      if (now - windowStart >= 1_000) {
        windowStart = now;
        controlFrames = 0;
      }
      if (++controlFrames > l.h2MaxControlFramesPerSecond) calm('h2_control_flood', { perSecond: controlFrames });
    };
    session.on('ping', countControl);
    session.on('remoteSettings', countControl);
    session.on('error', (error: Error & { code?: string }) => {
      if (calmed) return;
      calmed = true;
      this.refused(error.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES' ? 'h2_invalid_frames' : 'h2_session_error', { code: error.code });
    });
    if (l.h2SessionIdleTimeoutMs > 0) {
      session.setTimeout(l.h2SessionIdleTimeoutMs, () => {
        if (open > 0 || session.closed) return;
        this.refused('h2_idle');
        session.close();
      });
    }
  }

  /** Caps the connections open at once on a listening socket; node closes one over the cap at accept ('drop'), which is counted here. */
  limitConnections(server: NetServer): void {
    server.maxConnections = this.limits.maxConnections;
    // The cap for the next accepts follows the limits in force.
    server.on('connection', () => {
      server.maxConnections = this.limits.maxConnections;
    });
    server.on('drop', (data?: { remoteAddress?: string }) => this.refused('connection_limit', { remote: data?.remoteAddress }));
  }
}

/** The node:http server settings the guard keeps at the limits in force. */
interface Http1Tunables {
  maxHeadersCount: number | null;
  timeout: number;
  maxHeaderSize?: number;
  headersTimeout: number;
  requestTimeout: number;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 414: 'URI Too Long', 431: 'Request Header Fields Too Large' };

/**
 * The tunnel's limits: room for what the sending proxy adds to a request
 * that passed its own listener's limits (weft-*, x-forwarded-*, trace
 * headers), so that such a request is never refused one hop later; and ten
 * times the premature resets, since one tunnel session carries the streams
 * of every client of the calling proxy, whose cancellations (a burst of
 * gRPC deadlines) arrive together as resets.
 */
export function tunnelLimits(limits: ListenerLimits): ListenerLimits {
  return {
    ...limits,
    maxHeaderCount: limits.maxHeaderCount + 20,
    maxHeaderBytes: limits.maxHeaderBytes + 8 * 1024,
    h2MaxPrematureResets: limits.h2MaxPrematureResets * 10,
  };
}

/** The limits a proxy runs with: the defaults, overridden by its own settings. */
export function resolveLimits(overrides: Partial<ListenerLimits> | undefined): ListenerLimits {
  return { ...DEFAULT_LISTENER_LIMITS, ...overrides };
}

/** A gateway's limits: as resolveLimits, with Envoy's edge stream concurrency unless set. */
export function gatewayLimits(overrides: Partial<ListenerLimits> | undefined): ListenerLimits {
  return { ...DEFAULT_LISTENER_LIMITS, h2MaxConcurrentStreams: GATEWAY_H2_MAX_CONCURRENT_STREAMS, ...overrides };
}

/**
 * The limits in force, read per connection and request: `base` (the
 * defaults), then the mesh's (MeshConfig limits, from the snapshot in
 * force), then the proxy's own flags. Merged again only when the mesh's
 * object changes (a new snapshot), so a read costs a comparison.
 */
export function liveLimits(base: ListenerLimits, mesh: () => Partial<ListenerLimits> | undefined, flags: Partial<ListenerLimits> | undefined): () => ListenerLimits {
  let seen: Partial<ListenerLimits> | undefined;
  let merged: ListenerLimits = { ...base, ...flags };
  return () => {
    const current = mesh();
    if (current !== seen) {
      seen = current;
      merged = { ...base, ...current, ...flags };
    }
    return merged;
  };
}

/** A source derived from another (the tunnel's headroom), recomputed only when the other's value changes. */
export function derivedLimits(source: () => ListenerLimits, derive: (limits: ListenerLimits) => ListenerLimits): () => ListenerLimits {
  let seen: ListenerLimits | undefined;
  let derived: ListenerLimits | undefined;
  return () => {
    const current = source();
    if (current !== seen || derived === undefined) {
      seen = current;
      derived = derive(current);
    }
    return derived;
  };
}
