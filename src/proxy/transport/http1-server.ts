// The listeners' HTTP/1.1 server for ordinary requests: heads parsed strictly by hand, responses written in as few writes as possible; anything else goes to node:http on the same connection.
//
// Why: node:http's server costs about a third of a proxy hop's CPU (an
// IncomingMessage and a ServerResponse stream per request, header arrays,
// several writes per response). Most requests a proxy sees are plain: one
// head, and no body or a small one that came with it. Those are taken here.
// Everything that is not plainly ordinary is handed over, with the bytes
// already read, to the listener's node:http server, which serves the
// connection from then on, with the limits and refusals of
// transport/hardening.ts: a body still to come or over 64 KiB, a head cut
// across reads or over a limit, Transfer-Encoding, Expect, Upgrade, CONNECT,
// HTTP/1.0, a method llhttp does not know, a duplicate header, any byte
// outside the strict grammar. The fast path never refuses anything itself,
// so a hostile request meets exactly the checks it met before.
import type { Socket } from 'node:net';
import { HTTP_TOKEN as TOKEN, INVALID_FIELD_VALUE_CHAR as INVALID_VALUE } from '../../api/http-syntax.ts';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { DownstreamRequest, DownstreamResponse, OutgoingHeaders } from '../exchange.ts';
import type { ListenerGuard, ListenerLimits } from './hardening.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

export interface Http1ServerOptions {
  /** The listener's limits (read per request) and its refusal counter. */
  guard: ListenerGuard;
  clock: Clock;
  /** How long a connection may stay idle between requests. */
  keepAliveTimeoutMs: number;
  /** Serves one request; the response's 'close' tells when it is done. */
  onRequest: (req: Http1Request, res: Http1Response) => void;
  /**
   * Takes the connection over (the listener's node:http server). The socket
   * is paused, with whatever it sent that was not served put back.
   */
  fallback: (socket: Socket) => void;
}

/** The methods llhttp parses that carry no special semantics here (CONNECT goes to node:http, which the listeners serve tunnels from). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']);
const HEAD_END = Buffer.from('\r\n\r\n');
const VERSION_SUFFIX = ' HTTP/1.1';
/** A request target: visible ASCII only (no space, no control, no obs-text). */
const TARGET = /^[\x21-\x7e]+$/;
const CLOSE_TOKEN = /(?:^|,)[\t ]*close[\t ]*(?:,|$)/i;

/** What the fast path makes of a head it takes. */
interface ParsedHead {
  method: string;
  url: string;
  headers: Record<string, string>;
  keepAlive: boolean;
  /** The declared Content-Length (0: no body). */
  bodyLength: number;
}

/**
 * The largest request body the fast path takes, and only when all of it came
 * with the head: a small body (a JSON call) is then a buffer like the one
 * retries and mirrors keep. A larger or slower body, which must be streamed
 * (with its request timeout and backpressure), is node:http's.
 */
export const MAX_FAST_BODY_BYTES = 64 * 1024;
const DECIMAL = /^\d{1,15}$/;

/**
 * The head (request line and fields, without the blank line) when the fast
 * path may serve it as it is; undefined when node:http must decide.
 */
export function parseRequestHead(head: string, maxUriBytes: number, maxHeaderCount: number, maxHeaderBytes: number): ParsedHead | undefined {
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = head.length;
  const space = head.indexOf(' ');
  if (space <= 0 || space >= lineEnd) return undefined;
  const method = head.slice(0, space);
  if (!METHODS.has(method)) return undefined;
  const targetEnd = lineEnd - VERSION_SUFFIX.length;
  if (targetEnd <= space + 1 || !head.startsWith(VERSION_SUFFIX, targetEnd)) return undefined;
  const url = head.slice(space + 1, targetEnd);
  if (url.length > maxUriBytes || !TARGET.test(url)) return undefined;
  if (url.charCodeAt(0) !== 0x2f && !url.startsWith('http://')) return undefined;
  const headers: Record<string, string> = {};
  let count = 0;
  // As ListenerGuard.check counts a head, so that nothing over its limit is taken here.
  let bytes = method.length + url.length + 12;
  let host = false;
  let keepAlive = true;
  let bodyLength = 0;
  let pos = lineEnd + 2;
  while (pos < head.length) {
    let end = head.indexOf('\r\n', pos);
    if (end === -1) end = head.length;
    const colon = head.indexOf(':', pos);
    if (colon <= pos || colon >= end) return undefined;
    const name = head.slice(pos, colon);
    if (!TOKEN.test(name)) return undefined;
    let start = colon + 1;
    let stop = end;
    while (start < stop && (head.charCodeAt(start) === 0x20 || head.charCodeAt(start) === 0x09)) start++;
    while (stop > start && (head.charCodeAt(stop - 1) === 0x20 || head.charCodeAt(stop - 1) === 0x09)) stop--;
    const value = head.slice(start, stop);
    if (INVALID_VALUE.test(value)) return undefined;
    const lower = name.toLowerCase();
    // A repeated field is combined by rules of node's own (some joined, some first-wins): node:http decides. `in` also
    // sends names that collide with Object.prototype (__proto__, constructor) there.
    if (lower in headers) return undefined;
    switch (lower) {
      case 'host':
        host = true;
        break;
      case 'content-length':
        // A plain decimal within the fast path's cap; anything else (signs, lists, a large body) is node:http's to frame or refuse.
        if (!DECIMAL.test(value)) return undefined;
        bodyLength = Number(value);
        if (bodyLength > MAX_FAST_BODY_BYTES) return undefined;
        break;
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return undefined;
      case 'connection':
        if (/upgrade/i.test(value)) return undefined;
        if (CLOSE_TOKEN.test(value)) keepAlive = false;
        break;
    }
    headers[lower] = value;
    count++;
    bytes += name.length + value.length + 4;
    pos = end + 2;
  }
  // Over a limit, or (no Host) refused by node: node:http and the guard answer it, and count it.
  if (!host || count > maxHeaderCount || bytes > maxHeaderBytes) return undefined;
  return { method, url, headers, keepAlive, bodyLength };
}

/** One request taken by the fast path: what the layers read of node's IncomingMessage, and its body when it has one (received in full). */
export class Http1Request implements DownstreamRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly socket: Socket;
  readonly body: Buffer | undefined;
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;

  constructor(head: ParsedHead, socket: Socket, body: Buffer | undefined) {
    this.method = head.method;
    this.url = head.url;
    this.headers = head.headers;
    this.socket = socket;
    this.body = body;
  }
}

/** How the body of a response is framed on the wire. */
type Framing = 'length' | 'chunked' | 'none';


/**
 * The response of a fast-path request, with what the layers use of node's
 * ServerResponse. The head is kept until the first body bytes or the end,
 * and goes out in the same write as them; a response ended at once gets a
 * Content-Length, one streamed without one is chunked.
 */
export class Http1Response implements DownstreamResponse {
  statusCode = 200;
  statusMessage: string | undefined = undefined;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  /** Cleared by draining (transport/activity.ts): the connection closes after this response. */
  shouldKeepAlive: boolean;
  private readonly connection: Http1Connection;
  private readonly isHead: boolean;
  private fields: OutgoingHeaders = {};
  private framing: Framing | undefined = undefined;
  private trailers: OutgoingHeaders | undefined = undefined;
  private closeListeners: (() => void)[] | undefined = undefined;
  private drainListeners: (() => void)[] | undefined = undefined;
  private waitingForDrain = false;
  private closed = false;

  constructor(connection: Http1Connection, isHead: boolean, keepAlive: boolean) {
    this.connection = connection;
    this.isHead = isHead;
    this.shouldKeepAlive = keepAlive;
  }

  get destroyed(): boolean {
    return this.connection.socket.destroyed;
  }

  writeHead(statusCode: number, messageOrHeaders?: string | OutgoingHeaders, headers?: OutgoingHeaders): this {
    if (this.headersSent) throw new Error('cannot write a response head twice');
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) throw new RangeError(`invalid status code ${statusCode}`);
    this.statusCode = statusCode;
    let fields = headers;
    if (typeof messageOrHeaders === 'string') {
      if (INVALID_VALUE.test(messageOrHeaders)) throw new TypeError('invalid character in the status message');
      this.statusMessage = messageOrHeaders;
    }
    else fields = messageOrHeaders;
    if (fields) {
      for (const name in fields) {
        const value = fields[name];
        if (value !== undefined) this.setField(name, value);
      }
    }
    this.headersSent = true;
    return this;
  }

  setHeader(name: string, value: number | string | readonly string[]): this {
    if (this.headersSent) throw new Error(`cannot set ${name}: the response head was written`);
    this.setField(name, value);
    return this;
  }

  getHeader(name: string): number | string | string[] | undefined {
    return this.fields[name.toLowerCase()] as number | string | string[] | undefined;
  }

  getHeaders(): OutgoingHeaders {
    return { ...this.fields };
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw new Error(`cannot remove ${name}: the response head was written`);
    delete this.fields[name.toLowerCase()];
  }

  addTrailers(trailers: OutgoingHeaders): void {
    this.trailers = { ...this.trailers, ...trailers };
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.closed) return false;
    this.headersSent = true;
    const socket = this.connection.socket;
    const length = chunkLength(chunk);
    this.connection.touch();
    let written: boolean;
    if (this.framing === undefined) {
      const head = this.head(false);
      if (this.framing === 'none' || length === 0) written = socket.write(head, 'latin1');
      else if (this.framing === 'chunked') written = writeTogether(socket, `${head}${length.toString(16)}\r\n`, chunk, undefined, '\r\n');
      else written = writeTogether(socket, head, chunk);
    } else {
      if (this.framing === 'none' || length === 0) return true;
      written = this.framing === 'chunked' ? writeChunk(socket, chunk) : socket.write(chunk);
    }
    if (!written) this.awaitDrain();
    return written;
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded || this.closed) return this;
    this.writableEnded = true;
    this.headersSent = true;
    const socket = this.connection.socket;
    const body = chunk !== undefined && chunkLength(chunk) > 0 ? chunk : undefined;
    const finished = (error?: Error | null) => {
      if (!error) this.finish();
    };
    if (this.framing === undefined) {
      const head = this.head(true, body);
      if (body === undefined && this.framing === 'chunked') socket.write(head + this.lastChunk(), 'latin1', finished);
      else if (body === undefined || this.framing === 'none') socket.write(head, 'latin1', finished);
      else if (this.framing === 'chunked') writeTogether(socket, `${head}${chunkLength(body).toString(16)}\r\n`, body, finished, `\r\n${this.lastChunk()}`);
      else writeTogether(socket, head, body, finished);
      return this;
    }
    if (this.framing === 'chunked') {
      if (body !== undefined) writeChunk(socket, body);
      socket.write(this.lastChunk(), 'latin1', finished);
    } else if (body !== undefined && this.framing === 'length') {
      socket.write(body, finished);
    } else {
      process.nextTick(finished);
    }
    return this;
  }

  destroy(): void {
    this.connection.socket.destroy();
  }

  once(event: 'close' | 'drain', listener: () => void): this {
    if (event === 'close') (this.closeListeners ??= []).push(listener);
    else (this.drainListeners ??= []).push(listener);
    return this;
  }

  /** The response is over: written in full, or its connection gone. */
  emitClose(): void {
    if (this.closed) return;
    this.closed = true;
    const listeners = this.closeListeners;
    this.closeListeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  private finish(): void {
    if (this.closed) return;
    this.writableFinished = true;
    this.connection.responseDone(this);
  }

  private setField(name: string, value: number | string | readonly string[]): void {
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name "${name}"`);
    if (typeof value === 'string' ? INVALID_VALUE.test(value) : Array.isArray(value) && value.some((v) => INVALID_VALUE.test(String(v)))) {
      throw new TypeError(`invalid character in the value of header "${name}"`);
    }
    this.fields[name.toLowerCase()] = Array.isArray(value) ? [...(value as string[])] : (value as string | number);
  }

  /** The head as one latin1 string, with the framing decided (`ending`: the body is `body`, and nothing more). */
  private head(ending: boolean, body?: Buffer | string): string {
    const status = this.statusCode;
    const bodyAllowed = !this.isHead && status !== 204 && status !== 304 && status >= 200;
    const message = this.statusMessage;
    let head = `HTTP/1.1 ${status} ${message !== undefined && !INVALID_VALUE.test(message) ? message : (STATUS_CODES[status] ?? 'unknown')}\r\n`;
    let length = false;
    let chunked = false;
    let date = false;
    let keepAlive = this.shouldKeepAlive && !this.connection.closing;
    let connection = false;
    const fields = this.fields;
    for (const name in fields) {
      const value = fields[name]!;
      switch (name) {
        case 'content-length':
          length = true;
          break;
        case 'transfer-encoding':
          chunked = /chunked/i.test(String(value));
          break;
        case 'date':
          date = true;
          break;
        case 'connection':
          connection = true;
          if (CLOSE_TOKEN.test(String(value))) keepAlive = false;
          break;
      }
      if (Array.isArray(value)) for (const item of value) head += `${name}: ${item}\r\n`;
      else head += `${name}: ${value}\r\n`;
    }
    if (!bodyAllowed) this.framing = 'none';
    else if (chunked) this.framing = 'chunked';
    else if (length) this.framing = 'length';
    else if (ending && this.trailers === undefined) {
      this.framing = 'length';
      head += `Content-Length: ${body === undefined ? 0 : chunkLength(body)}\r\n`;
    } else {
      this.framing = 'chunked';
      head += 'Transfer-Encoding: chunked\r\n';
    }
    if (!date) head += `Date: ${this.connection.server.httpDate()}\r\n`;
    if (!connection) head += keepAlive ? this.connection.server.keepAliveFields : 'Connection: close\r\n';
    this.connection.closeAfterResponse = !keepAlive;
    return `${head}\r\n`;
  }

  private lastChunk(): string {
    let out = '0\r\n';
    const trailers = this.trailers;
    if (trailers) {
      for (const name in trailers) {
        const value = trailers[name];
        if (value === undefined || !TOKEN.test(name)) continue;
        for (const item of Array.isArray(value) ? value : [value]) if (!INVALID_VALUE.test(String(item))) out += `${name}: ${item}\r\n`;
      }
    }
    return `${out}\r\n`;
  }

  private awaitDrain(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.connection.socket.once('drain', () => {
      this.waitingForDrain = false;
      this.connection.touch();
      const listeners = this.drainListeners;
      this.drainListeners = undefined;
      if (listeners) for (const listener of listeners) listener();
    });
  }
}

const CRLF = Buffer.from('\r\n');

function chunkLength(chunk: Buffer | string): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
}

/** Below this a body piece is copied behind the head into one buffer; above it, the two go out as one writev. */
const COPY_LIMIT = 16 * 1024;

/** The head and the first body bytes (and, ending a chunked body, what follows them) in one write. */
function writeTogether(socket: Socket, head: string, body: Buffer | string, callback?: (error?: Error | null) => void, tail?: string): boolean {
  if (typeof body === 'string') {
    // An ASCII body (the proxy's own answers) goes with the head as one string; any other is encoded as UTF-8 first.
    if (ASCII.test(body)) return socket.write(tail === undefined ? head + body : head + body + tail, 'latin1', callback);
    body = Buffer.from(body, 'utf8');
  }
  const headLength = head.length;
  const tailLength = tail === undefined ? 0 : tail.length;
  if (body.length <= COPY_LIMIT) {
    const out = Buffer.allocUnsafe(headLength + body.length + tailLength);
    out.write(head, 0, 'latin1');
    body.copy(out, headLength);
    if (tail !== undefined) out.write(tail, headLength + body.length, 'latin1');
    return socket.write(out, callback);
  }
  socket.cork();
  socket.write(head, 'latin1');
  let written: boolean;
  if (tail === undefined) written = socket.write(body, callback);
  else {
    socket.write(body);
    written = socket.write(tail, 'latin1', callback);
  }
  socket.uncork();
  return written;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

function writeChunk(socket: Socket, chunk: Buffer | string): boolean {
  const size = `${chunkLength(chunk).toString(16)}\r\n`;
  if (typeof chunk === 'string') return socket.write(`${size}${chunk}\r\n`);
  if (chunk.length <= COPY_LIMIT) {
    const out = Buffer.allocUnsafe(size.length + chunk.length + 2);
    out.write(size, 0, 'latin1');
    chunk.copy(out, size.length);
    out[out.length - 2] = 0x0d;
    out[out.length - 1] = 0x0a;
    return socket.write(out);
  }
  socket.cork();
  socket.write(size, 'latin1');
  socket.write(chunk);
  const written = socket.write(CRLF);
  socket.uncork();
  return written;
}

/** One client connection while the fast path serves it. */
class Http1Connection {
  readonly server: Http1Server;
  readonly socket: Socket;
  /** Set by the response head: `Connection: close` was sent, so the connection ends after this response. */
  closeAfterResponse = false;
  /** Bytes read and not served yet (a pipelined request). */
  private unread: Buffer | undefined = undefined;
  private response: Http1Response | undefined = undefined;
  /** When a byte last moved either way (clock.now()); the server's sweep reads it against the timeout of the phase. */
  activeAt: number;
  private handedOver = false;
  /** Whether a request has been taken on this connection (before the first, silence is a header timeout). */
  private served = false;
  /** The connection is closing after its last response: nothing more the client sends is served. */
  private ending = false;
  private readonly onData = (chunk: Buffer) => this.received(chunk);
  private readonly onClose = () => this.gone();

  constructor(server: Http1Server, socket: Socket) {
    this.server = server;
    this.socket = socket;
    this.activeAt = server.options.clock.now();
    socket.on('data', this.onData);
    socket.once('close', this.onClose);
  }

  /** Bytes moved (the response wrote): the idle timeout starts again. */
  touch(): void {
    this.activeAt = this.server.options.clock.now();
  }

  /** Whether the server is stopping: responses say Connection: close. */
  get closing(): boolean {
    return this.server.stopping;
  }

  /** A response written in full: on to the next request, or the end of the connection. */
  responseDone(response: Http1Response): void {
    if (response !== this.response) return;
    this.response = undefined;
    response.emitClose();
    if (this.closeAfterResponse || this.server.stopping) {
      this.ending = true;
      this.unread = undefined;
      this.socket.resume();
      this.socket.end();
      return;
    }
    if (this.handedOver || this.socket.destroyed) return;
    this.activeAt = this.server.options.clock.now();
    if (this.socket.isPaused()) this.socket.resume();
    if (this.unread !== undefined) this.serveUnread();
  }

  private received(chunk: Buffer): void {
    if (this.ending) return;
    this.activeAt = this.server.options.clock.now();
    this.unread = this.unread === undefined ? chunk : Buffer.concat([this.unread, chunk]);
    if (this.response !== undefined) {
      // Pipelined requests wait for the response in flight; past a head's worth of them, the client waits too.
      if (this.unread.length > this.server.options.guard.limits.maxHeaderBytes) this.socket.pause();
      return;
    }
    this.serveUnread();
  }

  private serveUnread(): void {
    const limits = this.server.options.guard.limits;
    while (this.response === undefined && this.unread !== undefined && !this.handedOver) {
      const bytes = this.unread;
      const end = bytes.indexOf(HEAD_END);
      if (end === -1 || end + 4 > limits.maxHeaderBytes) {
        this.handOver();
        return;
      }
      const head = parseRequestHead(bytes.toString('latin1', 0, end), limits.maxUriBytes, limits.maxHeaderCount, limits.maxHeaderBytes);
      if (head === undefined) {
        this.handOver();
        return;
      }
      const bodyStart = end + 4;
      const bodyEnd = bodyStart + head.bodyLength;
      if (bodyEnd > bytes.length) {
        // The body has not all arrived: node:http streams it, with its request timeout.
        this.handOver();
        return;
      }
      // A copy: the socket's chunk may hold a pipelined request behind it, which must not stay referenced by this body.
      const body = head.bodyLength > 0 ? Buffer.from(bytes.subarray(bodyStart, bodyEnd)) : undefined;
      this.unread = bodyEnd < bytes.length ? bytes.subarray(bodyEnd) : undefined;
      const response = new Http1Response(this, head.method === 'HEAD', head.keepAlive);
      this.response = response;
      this.served = true;
      this.server.options.onRequest(new Http1Request(head, this.socket, body), response);
    }
  }

  /** From here on node:http serves the connection, starting with the bytes not served. */
  private handOver(): void {
    this.handedOver = true;
    const socket = this.socket;
    socket.off('data', this.onData);
    socket.off('close', this.onClose);
    this.server.forget(this);
    socket.pause();
    if (this.unread !== undefined) socket.unshift(this.unread);
    this.unread = undefined;
    this.server.options.fallback(socket);
  }

  private gone(): void {
    this.server.forget(this);
    const response = this.response;
    this.response = undefined;
    response?.emitClose();
  }

  /**
   * Called by the server's sweep: the timeout of the phase the connection is
   * in, counted from the last byte either way. Before the first request:
   * the header timeout; with a request in flight: the idle timeout; between
   * requests: the keep-alive timeout.
   */
  checkTimeout(now: number, limits: ListenerLimits): void {
    const limit = this.response !== undefined ? limits.idleTimeoutMs : this.served ? this.server.options.keepAliveTimeoutMs : limits.headersTimeoutMs || this.server.options.keepAliveTimeoutMs;
    if (limit > 0 && now - this.activeAt >= limit && !this.socket.destroyed) this.timedOut();
  }

  private timedOut(): void {
    const guard = this.server.options.guard;
    if (this.response !== undefined) {
      // With a request in flight, the idle timeout (no byte either way): a refusal, as node:http's would count it.
      guard.refused('idle_timeout');
    } else if (!this.served) {
      // A connection that never sent a request: node:http's header timeout, answered (408) and counted as node's would be.
      guard.clientError(Object.assign(new Error('no request head within the header timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), this.socket);
      return;
    }
    this.socket.destroy();
  }

  /** Closes the connection now when no request is in flight. */
  closeIfIdle(): void {
    if (this.response === undefined) this.socket.destroy();
  }
}

/** The fallback to a node:http server that never listens itself: it is handed the connection, whose unread bytes were put back. */
export function handTo(server: { emit(event: 'connection', socket: Socket): boolean }, socket: Socket): void {
  server.emit('connection', socket);
  socket.resume();
}

/** The fast path of one listener's HTTP/1.1 connections (see the file header). */
export class Http1Server {
  readonly options: Http1ServerOptions;
  /** `Connection: keep-alive` and node's Keep-Alive hint, which the clients' pools read to close before the server does. */
  readonly keepAliveFields: string;
  stopping = false;
  private readonly connections = new Set<Http1Connection>();
  /** Runs while there are connections: one timer for all of them, instead of re-arming a socket timeout twice a request. */
  private sweeper: Timer | undefined = undefined;
  private dateText = '';
  private dateUntil = 0;

  constructor(options: Http1ServerOptions) {
    this.options = options;
    const seconds = Math.floor(options.keepAliveTimeoutMs / 1000);
    this.keepAliveFields = seconds > 0 ? `Connection: keep-alive\r\nKeep-Alive: timeout=${seconds}\r\n` : 'Connection: keep-alive\r\n';
  }

  /** Serves a connection (paused or flowing, with anything read already put back). */
  accept(socket: Socket): void {
    if (this.stopping) {
      this.options.fallback(socket);
      return;
    }
    this.connections.add(new Http1Connection(this, socket));
    socket.resume();
    if (this.sweeper === undefined) this.startSweeping();
  }

  /** Checks every connection's timeouts a few times within the shortest of them (at most once a second, at least every 25 ms). */
  private startSweeping(): void {
    const limits = this.options.guard.limits;
    let shortest = Infinity;
    for (const ms of [limits.headersTimeoutMs, limits.idleTimeoutMs, this.options.keepAliveTimeoutMs]) if (ms > 0 && ms < shortest) shortest = ms;
    if (shortest === Infinity) return;
    const periodMs = Math.max(25, Math.min(1000, Math.floor(shortest / 4)));
    this.sweeper = this.options.clock.setInterval(() => this.sweep(), periodMs).unref();
  }

  private sweep(): void {
    if (this.connections.size === 0) {
      this.sweeper?.cancel();
      this.sweeper = undefined;
      return;
    }
    const now = this.options.clock.now();
    const limits = this.options.guard.limits;
    for (const connection of this.connections) connection.checkTimeout(now, limits);
  }

  /** Stops taking requests: idle connections close now, the others after their response. */
  stop(): void {
    this.stopping = true;
    for (const connection of this.connections) connection.closeIfIdle();
  }


  /** The Date field, formatted once a second. */
  httpDate(): string {
    const now = this.options.clock.now();
    if (now >= this.dateUntil) {
      this.dateText = new Date(now).toUTCString();
      this.dateUntil = now - (now % 1000) + 1000;
    }
    return this.dateText;
  }

  forget(connection: Http1Connection): void {
    this.connections.delete(connection);
  }
}
