// The HTTP/1.1 client on the hot path: keep-alive connection pools to apps and peer tunnels, requests written as one head, responses parsed by hand and streamed through.
//
// Why not undici: on this path a request is one `write` of a prebuilt head and
// a response is a status line, a few headers and body bytes handed on as they
// arrive. undici's general client (dispatcher chain, wasm llhttp, request
// objects, timers per request) cost about as much CPU per request as the rest
// of the proxy together (bench: 1.4x throughput for the same proxy with this
// client). The parser accepts only what RFC 9112 allows and refuses, as a
// broken upstream, anything ambiguous: both Transfer-Encoding and
// Content-Length, differing Content-Lengths, obs-fold, bare CR or LF, control
// characters. Health-check probes and mirror copies use the same pools, so the
// proxy loads no HTTP client library at all (undici was ~12 MiB of its RSS).
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { HTTP_TOKEN } from '../../api/http-syntax.ts';
import type { Headers } from '../exchange.ts';

/** Bounds of one pool (one peer address, or one peer tunnel and identity). */
export interface Http1PoolSettings {
  /** Connections at most; requests wait in order beyond it. */
  connections: number;
  /** Idle keep-alive; shortened to what the peer's Keep-Alive header allows. */
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
  /** A connection is closed after this many requests. */
  maxRequestsPerConnection?: number | undefined;
}

/** Opens one connection (plain TCP, or a verified mTLS tunnel connection); rejects with a WeftError or a socket error. */
export type Dial = (timeoutMs: number) => Promise<Socket>;

export interface Http1Request {
  method: string;
  /** Origin-form target. */
  path: string;
  /** Lower-case names; `host` included; no hop-by-hop fields. */
  headers: Headers;
  /** A buffered body (sent with its Content-Length), a stream (sent as the client framed it: its Content-Length, else chunked), or none. */
  body: Buffer | Readable | null;
}

/** What the caller hears of one exchange, in order: head, data..., end; or error at any point. */
export interface Http1ResponseHandler {
  /** A final (≥ 200) response head; return an error to refuse it (the attempt is cut and fails with it). */
  onHead(status: number, statusMessage: string, headers: Headers): Error | undefined;
  /** A piece of the body; return false to stop the flow until `resume()`. */
  onData(chunk: Buffer): boolean;
  onEnd(trailers: Headers | undefined): void;
  /** `started`: whether onHead was called (the response is then cut, not answerable). */
  onError(error: Error, started: boolean): void;
}

/** A request in flight (or waiting for a connection). */
export interface Http1Attempt {
  /** Gives up: frees the connection (closing it) or drops the request from the queue; the handler hears nothing more. */
  abort(reason: Error): void;
  resume(): void;
}

/** A response head larger than this is refused (a peer proxy's default header limit is 60 KiB). */
const MAX_RESPONSE_HEAD_BYTES = 80 * 1024;
const MAX_CHUNK_LINE_BYTES = 4096;
/** What a field value may not contain (a bare CR or LF would split the head; NUL and other controls are refused, as llhttp does). */
const BAD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;
const CONTENT_LENGTH = /^\d{1,15}$/;
/** What a request target may not contain: it ends at the first space, and controls have no place in it. */
const BAD_TARGET = /[\0-\x20\x7f]/;

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Where the line starting at `from` ends: its CRLF, or the end of the head text (whose last CRLF is cut off). */
function lineEnd(text: string, from: number): number {
  const crlf = text.indexOf('\r\n', from);
  return crlf === -1 ? text.length : crlf;
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Keep-alive connection pool to one peer. */
export class Http1Pool {
  private readonly settings: Http1PoolSettings;
  private readonly dial: Dial;
  /** Parked connections, the longest idle first. */
  private readonly idle: Connection[] = [];
  /** Closes connections idle past their keep-alive time; runs while any is idle (one timer, not a socket timeout re-armed per request). */
  private sweeper: ReturnType<typeof setInterval> | undefined = undefined;
  /** @internal connections with an exchange in flight. */
  readonly busy = new Set<Connection>();
  private readonly waiting: Pending[] = [];
  /** Open and opening connections. */
  private count = 0;
  private closing = false;
  private closed: (() => void) | undefined;
  private readonly onConnectError: ((error: unknown) => void) | undefined;

  constructor(settings: Http1PoolSettings, dial: Dial, onConnectError?: (error: unknown) => void) {
    this.settings = settings;
    this.dial = dial;
    this.onConnectError = onConnectError;
  }

  request(request: Http1Request, handler: Http1ResponseHandler): Http1Attempt {
    const pending = new Pending(this, request, handler);
    if (this.closing) {
      queueMicrotask(() => pending.fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, 'the connection pool to this peer is closed'), false));
      return pending;
    }
    this.assign(pending);
    return pending;
  }

  /** Closes idle connections now and busy ones when their exchange ends; new requests fail. Resolves when none is left. */
  close(): Promise<void> {
    this.closing = true;
    for (const connection of this.idle.splice(0)) connection.destroy();
    for (const pending of this.waiting.splice(0)) pending.fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, 'the connection pool to this peer was closed'), false);
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => (this.closed = resolve));
  }

  /** Cuts every connection at once. */
  destroy(): Promise<void> {
    const done = this.close();
    for (const connection of [...this.busy]) connection.destroy();
    return done;
  }

  /** A request gets a connection: an idle one, a new one, or a place in the queue. */
  private assign(pending: Pending): void {
    const connection = this.idle.pop();
    if (connection) {
      connection.run(pending);
      return;
    }
    if (this.count < this.settings.connections) {
      this.count++;
      this.open(pending);
      return;
    }
    this.waiting.push(pending);
  }

  /** @internal */
  dequeue(pending: Pending): void {
    const at = this.waiting.indexOf(pending);
    if (at !== -1) this.waiting.splice(at, 1);
  }

  private open(first: Pending): void {
    first.connecting = true;
    this.dial(this.settings.connectTimeoutMs).then(
      (socket) => {
        const connection = new Connection(this, socket, this.settings);
        first.connecting = false;
        if (first.done) {
          this.released(connection, true);
          return;
        }
        connection.run(first);
      },
      (error: unknown) => {
        this.count--;
        this.onConnectError?.(error);
        first.connecting = false;
        if (!first.done) first.fail(error instanceof Error ? error : new Error(String(error)), false);
        this.settle();
      },
    );
  }

  /** @internal a connection finished an exchange: reuse it for the next waiting request, keep it idle, or close it. */
  released(connection: Connection, reusable: boolean): void {
    if (reusable && !this.closing) {
      const next = this.waiting.shift();
      if (next) {
        connection.run(next);
        return;
      }
      connection.park();
      this.idle.push(connection);
      if (this.sweeper === undefined) this.startSweeping();
      return;
    }
    connection.destroy();
  }

  private startSweeping(): void {
    // Late by at most a tenth of the keep-alive time (≤ 500 ms): a peer's own timeout is a second later still (see parseHead).
    const periodMs = Math.max(25, Math.min(500, Math.floor(this.settings.keepAliveTimeoutMs / 10)));
    this.sweeper = setInterval(() => this.sweep(), periodMs);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = performance.now();
    // Each idle connection has its own time (a peer's Keep-Alive hint may shorten it); the order of the rest is kept (oldest first).
    let kept = 0;
    for (const connection of this.idle) {
      if (connection.idleExpired(now)) connection.destroy();
      else this.idle[kept++] = connection;
    }
    this.idle.length = kept;
    if (kept === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** @internal a connection is gone (closed by either side). */
  gone(connection: Connection): void {
    const at = this.idle.indexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
    this.count--;
    // A freed slot lets a waiting request open a connection of its own.
    const next = this.closing ? undefined : this.waiting.shift();
    if (next) {
      this.count++;
      this.open(next);
    }
    this.settle();
  }

  private settle(): void {
    if (this.closing && this.count === 0 && this.closed) {
      const closed = this.closed;
      this.closed = undefined;
      closed();
    }
  }
}

/** One request from its call to its end; the attempt handle the caller holds. */
class Pending implements Http1Attempt {
  readonly pool: Http1Pool;
  readonly request: Http1Request;
  readonly handler: Http1ResponseHandler;
  connection: Connection | undefined = undefined;
  connecting = false;
  done = false;

  constructor(pool: Http1Pool, request: Http1Request, handler: Http1ResponseHandler) {
    this.pool = pool;
    this.request = request;
    this.handler = handler;
  }

  /** The reason is the caller's to report: an aborted attempt hears nothing more. */
  abort(_reason: Error): void {
    if (this.done) return;
    this.done = true;
    if (this.connection) this.connection.abandon();
    else if (!this.connecting) this.pool.dequeue(this);
  }

  resume(): void {
    this.connection?.resumeFlow();
  }

  fail(error: Error, started: boolean): void {
    if (this.done) return;
    this.done = true;
    this.handler.onError(error, started);
  }
}

/** Where a response's parse stands. */
const Parse = { HEAD: 0, LENGTH: 1, CHUNK_SIZE: 2, CHUNK_DATA: 3, CHUNK_END: 4, TRAILERS: 5, UNTIL_CLOSE: 6 } as const;
type ParseState = (typeof Parse)[keyof typeof Parse];

/** One keep-alive connection: writes requests, parses responses. */
class Connection {
  private readonly pool: Http1Pool;
  private readonly socket: Socket;
  private readonly settings: Http1PoolSettings;
  private readonly busy: Set<Connection>;
  private current: Pending | undefined = undefined;
  private served = 0;
  private idleTimeoutMs: number;
  /** The last Keep-Alive header value read (idleTimeoutMs holds what it said). */
  private keepAliveSeen: string | undefined = undefined;
  private parkedAt = 0;
  private dead = false;
  // Response parsing state.
  private state: ParseState = Parse.HEAD;
  private head: Buffer | undefined = undefined;
  private remaining = 0;
  private started = false;
  private reusable = true;
  private headRequest = false;
  private trailerLines: Buffer | undefined = undefined;
  private paused = false;
  /** Stops writing the request body: set while it is written (a response may come first). */
  private stopBody: (() => void) | undefined = undefined;
  private readonly onData = (data: Buffer): void => this.parse(data);

  constructor(pool: Http1Pool, socket: Socket, settings: Http1PoolSettings) {
    this.pool = pool;
    this.socket = socket;
    this.settings = settings;
    this.busy = pool.busy;
    this.idleTimeoutMs = settings.keepAliveTimeoutMs;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', (error) => this.broken(error));
    socket.on('close', () => this.broken(new WeftError(ErrorCodes.UPSTREAM_RESET, 'the upstream closed the connection')));
    socket.on('end', () => this.ended());
  }

  run(pending: Pending): void {
    this.current = pending;
    pending.connection = this;
    this.busy.add(this);
    this.state = Parse.HEAD;
    this.head = undefined;
    this.started = false;
    this.paused = false;
    this.headRequest = pending.request.method === 'HEAD';
    this.served++;
    this.write(pending.request);
  }

  /** Idle in the pool: closed after the keep-alive time (the pool's sweep). */
  park(): void {
    this.parkedAt = performance.now();
  }

  idleExpired(now: number): boolean {
    return now - this.parkedAt >= this.idleTimeoutMs;
  }

  /** The caller gave up on the exchange in flight: the connection cannot be reused (part of a response may still come). */
  abandon(): void {
    this.current = undefined;
    this.stopBody?.();
    this.destroy();
  }

  resumeFlow(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  destroy(): void {
    if (!this.dead) this.socket.destroy();
  }

  private write(request: Http1Request): void {
    if (BAD_TARGET.test(request.path)) return this.refuseRequest('the request target');
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
    const headers = request.headers;
    const body = request.body;
    let lengthKnown = false;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      if (name === 'content-length') {
        // A buffered body says its own length; a streamed one keeps the client's.
        if (body === null || Buffer.isBuffer(body)) continue;
        lengthKnown = true;
      }
      if (typeof value === 'string') {
        if (BAD_VALUE.test(value)) return this.refuseRequest(name);
        head += `${name}: ${value}\r\n`;
      } else {
        for (const one of value) {
          if (BAD_VALUE.test(one)) return this.refuseRequest(name);
          head += `${name}: ${one}\r\n`;
        }
      }
    }
    if (body === null) {
      // A request that carried Content-Length: 0 keeps saying so (a POST without it may be refused with 411).
      if (headers['content-length'] !== undefined) head += 'content-length: 0\r\n';
      this.socket.write(`${head}\r\n`, 'latin1');
      return;
    }
    if (Buffer.isBuffer(body)) {
      head += `content-length: ${body.length}\r\n\r\n`;
      this.socket.cork();
      this.socket.write(head, 'latin1');
      if (body.length) this.socket.write(body);
      this.socket.uncork();
      return;
    }
    if (!lengthKnown) head += 'transfer-encoding: chunked\r\n';
    this.socket.write(`${head}\r\n`, 'latin1');
    this.streamBody(body, !lengthKnown);
  }

  private refuseRequest(name: string): void {
    const pending = this.current;
    this.current = undefined;
    pending?.fail(new WeftError(ErrorCodes.BAD_REQUEST, `cannot forward the request: ${name.startsWith('the ') ? name : `header ${name}`} has a character it may not hold`), false);
    this.release(true);
  }

  private streamBody(body: Readable, chunked: boolean): void {
    const socket = this.socket;
    const onData = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write(CRLF);
        socket.uncork();
      } else {
        ok = socket.write(chunk);
      }
      if (!ok) {
        body.pause();
        socket.once('drain', () => body.resume());
      }
    };
    const finish = (): void => {
      cleanup();
      if (chunked && !this.dead) socket.write(LAST_CHUNK);
    };
    const cut = (): void => {
      cleanup();
      // The client went away in the middle of its body: the attempt cannot complete.
      this.current?.fail(new WeftError(ErrorCodes.BAD_REQUEST, 'the client abandoned its request body'), this.started);
      this.current = undefined;
      this.destroy();
    };
    const cleanup = (): void => {
      this.stopBody = undefined;
      body.off('data', onData);
      body.off('end', finish);
      body.off('aborted', cut);
      body.off('error', cut);
      body.off('close', closed);
    };
    const closed = (): void => {
      if (!body.readableEnded) cut();
    };
    body.on('data', onData);
    body.once('end', finish);
    body.once('aborted', cut);
    body.once('error', cut);
    body.once('close', closed);
    this.stopBody = cleanup;
    if (body.isPaused()) body.resume();
  }

  private parse(data: Buffer): void {
    const pending = this.current;
    if (!pending) {
      // Bytes with no request in flight (an idle connection talking): not a connection to reuse.
      this.destroy();
      return;
    }
    try {
      this.parseFrom(data, pending);
    } catch (error) {
      // The handler threw (writing to its client): this exchange is over, and so is the connection.
      if (this.current !== pending) throw error;
      this.current = undefined;
      this.destroy();
      pending.fail(error instanceof Error ? error : new Error(String(error)), this.started);
    }
  }

  private parseFrom(data: Buffer, pending: Pending): void {
    let at = 0;
    while (at < data.length && this.current === pending && !this.dead) {
      switch (this.state) {
        case Parse.HEAD: {
          const consumed = this.parseHead(data, at);
          if (consumed < 0) return; // waiting for more, or failed
          at = consumed;
          break;
        }
        case Parse.LENGTH: {
          const take = Math.min(this.remaining, data.length - at);
          const chunk = at === 0 && take === data.length ? data : data.subarray(at, at + take);
          at += take;
          this.remaining -= take;
          if (take) this.deliver(chunk);
          if (this.current !== pending) return; // aborted from within onData
          if (this.remaining === 0) return this.complete(at < data.length, undefined);
          break;
        }
        case Parse.UNTIL_CLOSE: {
          this.deliver(at === 0 ? data : data.subarray(at));
          return;
        }
        case Parse.CHUNK_SIZE:
        case Parse.CHUNK_END:
        case Parse.TRAILERS: {
          const next = this.parseChunkLine(data, at);
          if (next < 0) return;
          at = next;
          break;
        }
        case Parse.CHUNK_DATA: {
          const take = Math.min(this.remaining, data.length - at);
          if (take) this.deliver(data.subarray(at, at + take));
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = Parse.CHUNK_END;
          break;
        }
      }
    }
  }

  /** Returns the offset after the head, or −1 when more bytes are needed or the response was refused. */
  private parseHead(data: Buffer, at: number): number {
    let buffer = at === 0 ? data : data.subarray(at);
    let offset = 0;
    if (this.head) {
      offset = Math.max(0, this.head.length - 3);
      buffer = Buffer.concat([this.head, buffer]);
    }
    const end = buffer.indexOf('\r\n\r\n', offset, 'latin1');
    if (end === -1 || end > MAX_RESPONSE_HEAD_BYTES) {
      if (buffer.length > MAX_RESPONSE_HEAD_BYTES) this.protocolError('the response head is too large');
      // Kept as a copy of its own: the socket's buffer is not ours to hold.
      else this.head = this.head ? buffer : Buffer.from(buffer);
      return -1;
    }
    const consumedFromData = end + 4 - (this.head ? this.head.length : 0) + at;
    this.head = undefined;
    const text = buffer.toString('latin1', 0, end);
    // Lines are read in place (indexOf and one slice per name and value): a head is parsed per request, and split/trim
    // would make an array and two more strings per line.
    const statusEnd = lineEnd(text, 0);
    const statusLine = text.slice(0, statusEnd);
    // HTTP/1.x SP 3DIGIT SP reason (the reason may be empty, and so may the space before it).
    if (statusLine.length < 12 || !statusLine.startsWith('HTTP/1.') || statusLine.charCodeAt(8) !== 0x20) {
      this.protocolError('the response does not start with an HTTP/1.x status line');
      return -1;
    }
    const minor = statusLine.charCodeAt(7) - 0x30;
    const status = Number(statusLine.slice(9, 12));
    if ((minor !== 0 && minor !== 1) || !(status >= 100 && status <= 999) || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 0x20)) {
      this.protocolError('the response status line is malformed');
      return -1;
    }
    if (BAD_VALUE.test(statusLine)) {
      this.protocolError('the response status line holds a control character');
      return -1;
    }
    const headers: Headers = {};
    for (let at = statusEnd + 2; at < text.length; ) {
      const next = lineEnd(text, at);
      const colon = text.indexOf(':', at);
      if (colon === -1 || colon >= next || colon === at) {
        const first = text.charCodeAt(at);
        this.protocolError(first === 0x20 || first === 0x09 ? 'the response folds a header line (obs-fold)' : 'a response header line has no name');
        return -1;
      }
      const name = text.slice(at, colon).toLowerCase();
      if (!HTTP_TOKEN.test(name)) {
        this.protocolError('a response header name is not a token');
        return -1;
      }
      // Optional whitespace around the value is SP or HTAB only (RFC 9110 §5.6.3).
      let from = colon + 1;
      let to = next;
      while (from < to && isOws(text.charCodeAt(from))) from++;
      while (to > from && isOws(text.charCodeAt(to - 1))) to--;
      const value = text.slice(from, to);
      if (BAD_VALUE.test(value)) {
        this.protocolError(`response header ${name} holds a control character`);
        return -1;
      }
      const existing = headers[name];
      if (existing === undefined) headers[name] = value;
      else if (typeof existing === 'string') headers[name] = [existing, value];
      else existing.push(value);
      at = next + 2;
    }
    if (status < 200) {
      // 100 Continue, 103 Early Hints: informational, the final head follows. 101 only answers an Upgrade, which is not sent here.
      if (status === 101) {
        this.protocolError('the upstream switched protocols on a request that asked for no upgrade');
        return -1;
      }
      return consumedFromData;
    }
    const connection = headers.connection;
    const tokens = connection === undefined ? '' : (typeof connection === 'string' ? connection : connection.join(',')).toLowerCase();
    if (tokens.includes('close') || (minor === 0 && !tokens.includes('keep-alive'))) this.reusable = false;
    const keepAlive = headers['keep-alive'];
    if (typeof keepAlive === 'string') {
      // A peer says the same on every response: read once per connection, not per response.
      if (keepAlive !== this.keepAliveSeen) {
        this.keepAliveSeen = keepAlive;
        const match = /timeout\s*=\s*(\d+)/i.exec(keepAlive);
        // Give up an idle connection a second before the peer would, so that a request never races its close.
        if (match) this.idleTimeoutMs = Math.min(this.settings.keepAliveTimeoutMs, Math.max(0, Number(match[1]) * 1000 - 1000));
      }
      if (this.idleTimeoutMs === 0) this.reusable = false;
    }
    const transferEncoding = headers['transfer-encoding'];
    const contentLength = headers['content-length'];
    const noBody = this.headRequest || status === 204 || status === 304;
    if (transferEncoding !== undefined) {
      if (contentLength !== undefined) {
        this.protocolError('the response has both Transfer-Encoding and Content-Length');
        return -1;
      }
      const codings = (typeof transferEncoding === 'string' ? transferEncoding : transferEncoding.join(',')).toLowerCase();
      if (noBody) this.state = Parse.HEAD;
      else if (/(^|,)\s*chunked\s*$/.test(codings)) this.state = Parse.CHUNK_SIZE;
      else {
        this.state = Parse.UNTIL_CLOSE;
        this.reusable = false;
      }
    } else if (contentLength !== undefined) {
      const values = typeof contentLength === 'string' ? [contentLength] : contentLength;
      const first = values[0]!;
      if (!CONTENT_LENGTH.test(first) || values.some((v) => v !== first)) {
        this.protocolError('the response has an invalid or conflicting Content-Length');
        return -1;
      }
      headers['content-length'] = first;
      this.remaining = noBody ? 0 : Number(first);
      this.state = Parse.LENGTH;
    } else {
      this.state = noBody ? Parse.HEAD : Parse.UNTIL_CLOSE;
      if (!noBody) this.reusable = false;
    }
    const pending = this.current!;
    const refused = pending.handler.onHead(status, statusLine.slice(13), headers);
    if (refused) {
      this.current = undefined;
      pending.done = true;
      pending.handler.onError(refused, false);
      this.destroy();
      return -1;
    }
    this.started = true;
    if (this.current !== pending) return -1; // aborted from within onHead
    if (this.state === Parse.HEAD || (this.state === Parse.LENGTH && this.remaining === 0)) {
      this.complete(consumedFromData < data.length, undefined);
      return -1;
    }
    return consumedFromData;
  }

  /** Chunk-size lines, the CRLF after each chunk's data, and the trailer section; returns the next offset or −1. */
  private parseChunkLine(data: Buffer, at: number): number {
    let buffer = at === 0 ? data : data.subarray(at);
    let carried = 0;
    if (this.head) {
      carried = this.head.length;
      buffer = Buffer.concat([this.head, buffer]);
      this.head = undefined;
    }
    const eol = buffer.indexOf(CRLF);
    if (eol === -1) {
      if (buffer.length > MAX_CHUNK_LINE_BYTES && this.state !== Parse.TRAILERS) this.protocolError('a chunk-size line is too long');
      else if (buffer.length > MAX_RESPONSE_HEAD_BYTES) this.protocolError('the response trailers are too large');
      else this.head = Buffer.from(buffer);
      return -1;
    }
    const next = at + eol + 2 - carried;
    const line = buffer.toString('latin1', 0, eol);
    if (this.state === Parse.CHUNK_END) {
      if (line.length !== 0) {
        this.protocolError('a chunk is longer than its size says');
        return -1;
      }
      this.state = Parse.CHUNK_SIZE;
      return next;
    }
    if (this.state === Parse.CHUNK_SIZE) {
      const semicolon = line.indexOf(';');
      const size = semicolon === -1 ? line : line.slice(0, semicolon);
      if (!/^[0-9a-fA-F]{1,12}$/.test(size.trim()) || BAD_VALUE.test(line)) {
        this.protocolError('a chunk size is malformed');
        return -1;
      }
      const length = parseInt(size, 16);
      if (length === 0) {
        this.state = Parse.TRAILERS;
        return next;
      }
      this.remaining = length;
      this.state = Parse.CHUNK_DATA;
      return next;
    }
    // Trailer section: field lines until an empty one.
    if (line.length === 0) {
      const trailers = this.trailerLines ? parseTrailers(this.trailerLines.toString('latin1')) : undefined;
      this.trailerLines = undefined;
      if (trailers === null) {
        this.protocolError('a response trailer line is malformed');
        return -1;
      }
      this.complete(next < data.length, trailers);
      return -1;
    }
    const piece = Buffer.from(`${line}\r\n`, 'latin1');
    this.trailerLines = this.trailerLines ? Buffer.concat([this.trailerLines, piece]) : piece;
    if (this.trailerLines.length > MAX_RESPONSE_HEAD_BYTES) {
      this.protocolError('the response trailers are too large');
      return -1;
    }
    return next;
  }

  private deliver(chunk: Buffer): void {
    const pending = this.current!;
    if (!pending.handler.onData(chunk) && !this.paused && this.current === pending) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private complete(extraBytes: boolean, trailers: Headers | undefined): void {
    const pending = this.current!;
    this.current = undefined;
    pending.done = true;
    // A response that came before the request body was all sent leaves the connection mid-request.
    if (this.stopBody) {
      this.stopBody();
      this.reusable = false;
    }
    if (extraBytes) this.reusable = false;
    pending.handler.onEnd(trailers);
    this.release(this.reusable);
  }

  private release(reusable: boolean): void {
    this.busy.delete(this);
    const max = this.settings.maxRequestsPerConnection;
    if (this.dead) return;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.pool.released(this, reusable && (max === undefined || this.served < max));
  }

  private protocolError(why: string): void {
    const pending = this.current;
    this.current = undefined;
    this.destroy();
    pending?.fail(new WeftError(ErrorCodes.UPSTREAM_RESET, `the upstream sent a malformed response: ${why}`), this.started);
  }

  /** The peer finished its side: a close-delimited body ends here; anything else in flight is cut. */
  private ended(): void {
    const pending = this.current;
    if (pending && this.state === Parse.UNTIL_CLOSE && this.started) {
      this.reusable = false;
      this.complete(false, undefined);
      return;
    }
    this.socket.end();
  }

  private broken(error: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.busy.delete(this);
    this.socket.destroy();
    this.stopBody?.();
    const pending = this.current;
    this.current = undefined;
    this.pool.gone(this);
    if (!pending || pending.done) return;
    pending.fail(error, this.started);
  }
}

/**
 * One request whose answer only matters by its status (health-check probes,
 * mirror copies): the body is read and dropped, so that the connection stays
 * reusable. Rejects on any failure, and when no complete answer came within
 * `timeoutMs` (the attempt is then cut).
 */
export function requestStatus(pool: Http1Pool, request: Http1Request, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const timer = setTimeout(() => {
      attempt.abort(new Error('timed out'));
      reject(new WeftError(ErrorCodes.TIMEOUT, `no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const attempt = pool.request(request, {
      onHead(code) {
        status = code;
        return undefined;
      },
      onData: () => true,
      onEnd() {
        clearTimeout(timer);
        resolve(status);
      },
      onError(error) {
        clearTimeout(timer);
        reject(error);
      },
    });
  });
}

/** A dialer of plain TCP connections to host:port; a connect that takes longer than the timeout fails as a connect failure. */
export function dialTcp(host: string, port: number): Dial {
  return (timeoutMs) =>
    new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${host}:${port}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
}

/** Trailer fields, lower-case, or null when a line is malformed. */
function parseTrailers(text: string): Headers | null {
  const out: Headers = {};
  for (const line of text.split('\r\n')) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!HTTP_TOKEN.test(name) || BAD_VALUE.test(value)) return null;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (typeof existing === 'string') out[name] = [existing, value];
    else existing.push(value);
  }
  return out;
}
