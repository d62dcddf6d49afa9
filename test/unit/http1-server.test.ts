// The listeners' hand-written HTTP/1.1 server: what its fast path puts on the wire, which requests it hands to node:http, its timeouts, stop() and backpressure.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { handTo, Http1Server, MAX_FAST_BODY_BYTES, parseRequestHead, type Http1Request, type Http1Response } from '../../src/proxy/transport/http1-server.ts';
import { DEFAULT_LISTENER_LIMITS, ListenerGuard, type ListenerLimits } from '../../src/proxy/transport/hardening.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

const { createServer: createHttpServer } = process.getBuiltinModule('node:http');

type FastHandler = (req: Http1Request, res: Http1Response) => void;
type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** What a fast-path response's 'close' saw. */
interface Closed {
  writableFinished: boolean;
  headersSent: boolean;
}

interface Served {
  req: Http1Request;
  res: Http1Response;
  closed: Promise<Closed>;
}

interface HarnessOptions {
  limits?: Partial<ListenerLimits>;
  keepAliveTimeoutMs?: number;
  fast?: FastHandler;
  node?: NodeHandler;
}

interface Harness {
  port: number;
  fast: Http1Server;
  registry: MetricsRegistry;
  /** Requests the fast path took, in order. */
  served: Served[];
  /** Requests node:http's handler got (past the guard's checks), in order. */
  nodeRequests: IncomingMessage[];
  connections: () => number;
  client: (options?: { allowHalfOpen?: boolean }) => Promise<RawClient>;
}

/** The fast path's default answer: says `fast`. */
const answerFast: FastHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': 'fast' });
  res.end(`fast ${req.method} ${req.url}`);
};

/** node:http's default answer: says `node`, with the body length it read. */
const answerNode: NodeHandler = (req, res) => {
  let length = 0;
  req.on('data', (chunk: Buffer) => (length += chunk.length));
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': 'node' });
    res.end(`node ${req.method} ${req.url} ${length}`);
  });
};

/** A listening port whose connections go to the fast path, with a node:http server behind it, set up as the listeners do. */
async function harness(t: TestContext, options: HarnessOptions = {}): Promise<Harness> {
  const limits: ListenerLimits = { ...DEFAULT_LISTENER_LIMITS, ...options.limits };
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 5_000;
  const registry = new MetricsRegistry();
  const guard = new ListenerGuard('test', limits, registry, silentLogger());
  const served: Served[] = [];
  const nodeRequests: IncomingMessage[] = [];
  const nodeHandler = options.node ?? answerNode;
  const nodeServer = createHttpServer(
    guard.http1Options(keepAliveTimeoutMs),
    guard.wrap((req: IncomingMessage, res: ServerResponse) => {
      nodeRequests.push(req);
      nodeHandler(req, res);
    }),
  );
  nodeServer.emit('listening');
  guard.hardenHttp1(nodeServer);
  nodeServer.on('clientError', guard.clientError);
  const fastHandler = options.fast ?? answerFast;
  const fast = new Http1Server({
    guard,
    clock: systemClock,
    keepAliveTimeoutMs,
    onRequest: (req, res) => {
      const closed = new Promise<Closed>((resolve) => res.once('close', () => resolve({ writableFinished: res.writableFinished, headersSent: res.headersSent })));
      served.push({ req, res, closed });
      fastHandler(req, res);
    },
    fallback: (socket) => handTo(nodeServer, socket),
  });
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createNetServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    fast.accept(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const clients: RawClient[] = [];
  t.after(() => {
    for (const client of clients) client.socket.destroy();
    for (const socket of sockets) socket.destroy();
    server.close();
    nodeServer.closeAllConnections();
    nodeServer.close();
  });
  return {
    port,
    fast,
    registry,
    served,
    nodeRequests,
    connections: () => connections,
    client: async (clientOptions = {}) => {
      const client = await RawClient.connect(port, clientOptions.allowHalfOpen ?? false);
      clients.push(client);
      return client;
    },
  };
}

/** A response as read off the wire. */
interface RawResponse {
  status: number;
  reason: string;
  /** The head as sent, without the blank line. */
  head: string;
  fields: [string, string][];
  /** The body after chunked decoding. */
  body: Buffer;
  /** The body bytes exactly as sent (chunk sizes and trailers included), latin1. */
  wire: string;
  trailers: [string, string][];
}

/** Every value of a field (names compared case-insensitively). */
function values(fields: [string, string][], name: string): string[] {
  const lower = name.toLowerCase();
  return fields.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** The one value of a field; fails when it is sent more than once. */
function field(response: RawResponse, name: string): string | undefined {
  const found = values(response.fields, name);
  assert.ok(found.length <= 1, `${name} sent ${found.length} times in:\n${response.head}`);
  return found[0];
}

function parseFields(lines: string[]): [string, string][] {
  return lines.map((line) => {
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `not a field line: ${JSON.stringify(line)}`);
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
}

/**
 * One response from `data` at `offset`, or undefined when it has not all
 * arrived. `noBody`: the answer to a HEAD request. `ended`: nothing more
 * will arrive (a body without framing runs to here).
 */
function parseResponse(data: Buffer, offset: number, noBody: boolean, ended: boolean): { response: RawResponse; next: number } | undefined {
  const headEnd = data.indexOf('\r\n\r\n', offset, 'latin1');
  if (headEnd === -1) return undefined;
  const head = data.toString('latin1', offset, headEnd);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const match = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(statusLine);
  assert.ok(match, `not a status line: ${JSON.stringify(statusLine)}`);
  const status = Number(match[1]);
  const fields = parseFields(lines);
  const start = headEnd + 4;
  const response: RawResponse = { status, reason: match[2] ?? '', head, fields, body: Buffer.alloc(0), wire: '', trailers: [] };
  if (noBody || status < 200 || status === 204 || status === 304) return { response, next: start };
  const transferEncoding = values(fields, 'transfer-encoding');
  const contentLength = values(fields, 'content-length');
  if (transferEncoding.length > 0) {
    assert.deepEqual(transferEncoding, ['chunked'], 'the only transfer coding is chunked');
    assert.equal(contentLength.length, 0, 'no Content-Length with Transfer-Encoding');
    const pieces: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at, 'latin1');
      if (lineEnd === -1) return undefined;
      const sizeText = data.toString('latin1', at, lineEnd);
      assert.match(sizeText, /^[0-9a-f]+$/, 'a chunk size in lower-case hex, no extensions');
      const size = parseInt(sizeText, 16);
      at = lineEnd + 2;
      if (size === 0) {
        const trailerEnd = data.indexOf('\r\n', at, 'latin1');
        if (trailerEnd === -1) return undefined;
        if (trailerEnd === at) at += 2;
        else {
          const end = data.indexOf('\r\n\r\n', at, 'latin1');
          if (end === -1) return undefined;
          response.trailers = parseFields(data.toString('latin1', at, end).split('\r\n'));
          at = end + 4;
        }
        break;
      }
      if (data.length < at + size + 2) return undefined;
      pieces.push(data.subarray(at, at + size));
      assert.equal(data.toString('latin1', at + size, at + size + 2), '\r\n', 'a chunk ends with CRLF');
      at += size + 2;
    }
    response.body = Buffer.concat(pieces);
    response.wire = data.toString('latin1', start, at);
    return { response, next: at };
  }
  if (contentLength.length > 0) {
    assert.equal(contentLength.length, 1, 'one Content-Length');
    const length = Number(contentLength[0]);
    if (data.length < start + length) return undefined;
    response.body = data.subarray(start, start + length);
    response.wire = response.body.toString('latin1');
    return { response, next: start + length };
  }
  if (!ended) return undefined;
  response.body = data.subarray(start);
  response.wire = response.body.toString('latin1');
  return { response, next: data.length };
}

/** A client socket that sends exact bytes and reads responses one at a time; every wait is bounded. */
class RawClient {
  readonly socket: Socket;
  private readonly chunks: Buffer[] = [];
  private joined: Buffer = Buffer.alloc(0);
  private offset = 0;
  private readonly changes = new EventEmitter();
  ended = false;
  isClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.changes.emit('change');
    });
    socket.on('end', () => {
      this.ended = true;
      this.changes.emit('change');
    });
    socket.on('close', () => {
      this.ended = true;
      this.isClosed = true;
      this.changes.emit('change');
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, allowHalfOpen: boolean): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen, noDelay: true });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Everything received so far. */
  received(): Buffer {
    if (this.chunks.length > 0) {
      this.joined = Buffer.concat([this.joined, ...this.chunks]);
      this.chunks.length = 0;
    }
    return this.joined;
  }

  /** The next response (`noBody` for the answer to a HEAD). */
  response(options: { noBody?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    return this.until(
      () => {
        const parsed = parseResponse(this.received(), this.offset, options.noBody ?? false, this.ended);
        if (!parsed) {
          if (this.ended) throw new Error(`the connection ended before a whole response; received: ${JSON.stringify(this.received().toString('latin1', this.offset).slice(0, 400))}`);
          return undefined;
        }
        this.offset = parsed.next;
        return parsed.response;
      },
      options.timeoutMs ?? 2_000,
      'a response',
    );
  }

  /** Resolves when the server has closed the connection. */
  closed(timeoutMs = 2_000): Promise<true> {
    return this.until(() => (this.ended ? true : undefined), timeoutMs, 'the server to close the connection');
  }

  /** Bytes received after the responses read. */
  rest(): string {
    return this.received().toString('latin1', this.offset);
  }

  private until<T>(attempt: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        this.changes.off('change', check);
      };
      const check = () => {
        let value: T | undefined;
        try {
          value = attempt();
        } catch (error) {
          finish();
          reject(error as Error);
          return;
        }
        if (value !== undefined) {
          finish();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; unread: ${JSON.stringify(this.rest().slice(0, 400))}`));
      }, timeoutMs);
      this.changes.on('change', check);
      check();
    });
  }
}

function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: test.local\r\n${extra}\r\n`;
}

/** weft_proxy_refused_total{listener="test",reason} as the registry renders it (0 when absent). */
function refusals(registry: MetricsRegistry, reason: string): number {
  const match = new RegExp(`^weft_proxy_refused_total\\{listener="test",reason="${reason}"\\} (\\d+)$`, 'm').exec(registry.render());
  return match ? Number(match[1]) : 0;
}

function totalRefusals(registry: MetricsRegistry): number {
  let total = 0;
  for (const match of registry.render().matchAll(/^weft_proxy_refused_total\{[^}]*\} (\d+)$/gm)) total += Number(match[1]);
  return total;
}

/** Rejects after `ms`: bounds a wait on something that is not a RawClient. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test('a plain GET is served by the fast path: its headers, Date, keep-alive fields; the request as the layers read it', async (t) => {
  const h = await harness(t, { keepAliveTimeoutMs: 5_900 });
  const client = await h.client();
  client.send('GET /path?q=1 HTTP/1.1\r\nHost: example.test\r\nX-Spaced: \t value  with inner  spaces \t\r\nAccept: */*\r\nX-Empty:\r\n\r\n');
  const response = await client.response();
  assert.equal(response.head.split('\r\n')[0], 'HTTP/1.1 200 OK');
  assert.equal(field(response, 'content-type'), 'text/plain');
  assert.equal(field(response, 'x-served-by'), 'fast');
  assert.equal(field(response, 'content-length'), String('fast GET /path?q=1'.length));
  assert.equal(field(response, 'transfer-encoding'), undefined);
  const date = field(response, 'date');
  assert.match(date ?? '', /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.ok(Math.abs(Date.parse(date!) - Date.now()) < 5_000, `Date is now: ${date}`);
  assert.equal(field(response, 'connection'), 'keep-alive');
  assert.equal(field(response, 'keep-alive'), 'timeout=5');
  assert.equal(response.body.toString(), 'fast GET /path?q=1');

  assert.equal(h.served.length, 1);
  assert.equal(h.nodeRequests.length, 0);
  const req = h.served[0]!.req;
  assert.equal(req.method, 'GET');
  assert.equal(req.url, '/path?q=1');
  assert.deepEqual(req.headers, { host: 'example.test', 'x-spaced': 'value  with inner  spaces', accept: '*/*', 'x-empty': '' });
  assert.equal(req.httpVersionMajor, 1);
  assert.equal(req.httpVersionMinor, 1);
  assert.equal(req.socket.remotePort, client.socket.localPort);
});

test('a keep-alive timeout under a second sends no Keep-Alive hint', async (t) => {
  const h = await harness(t, { keepAliveTimeoutMs: 900 });
  const client = await h.client();
  client.send(get('/'));
  const response = await client.response();
  assert.equal(field(response, 'connection'), 'keep-alive');
  assert.equal(field(response, 'keep-alive'), undefined);
});

test('keep-alive: requests one after another on one connection are all served fast, in order', async (t) => {
  const h = await harness(t);
  const client = await h.client();
  for (const path of ['/1', '/2', '/3', '/4']) {
    client.send(get(path));
    const response = await client.response();
    assert.equal(response.status, 200);
    assert.equal(response.body.toString(), `fast GET ${path}`);
  }
  assert.equal(h.connections(), 1);
  assert.deepEqual(
    h.served.map((s) => s.req.url),
    ['/1', '/2', '/3', '/4'],
  );
  assert.equal(h.nodeRequests.length, 0);
});

test('pipelined requests sent in one write are answered in order, each after the one before is done', async (t) => {
  const events: string[] = [];
  const h = await harness(t, {
    fast: (req, res) => {
      events.push(`start ${req.url}`);
      // The first answers last if the server let them overlap.
      const delay = req.url === '/1' ? 60 : req.url === '/2' ? 20 : 0;
      setTimeout(() => {
        events.push(`end ${req.url}`);
        answerFast(req, res);
      }, delay);
    },
  });
  const client = await h.client();
  client.send(get('/1') + 'HEAD /2 HTTP/1.1\r\nHost: test.local\r\n\r\n' + get('/3'));
  const first = await client.response();
  const second = await client.response({ noBody: true });
  const third = await client.response();
  assert.equal(first.body.toString(), 'fast GET /1');
  assert.equal(second.status, 200);
  assert.equal(second.body.length, 0);
  assert.equal(third.body.toString(), 'fast GET /3');
  assert.equal(client.rest(), '', 'nothing but the three responses (no body for the HEAD)');
  assert.deepEqual(events, ['start /1', 'end /1', 'start /2', 'end /2', 'start /3', 'end /3']);
});

test('undici keeps its connection alive across requests, with and without pipelining', async (t) => {
  const h = await harness(t);
  const client = new Client(`http://127.0.0.1:${h.port}`, { pipelining: 3 });
  t.after(() => client.destroy());
  for (let i = 0; i < 3; i++) {
    const { statusCode, body } = await client.request({ path: `/seq${i}`, method: 'GET', signal: AbortSignal.timeout(2_000) });
    assert.equal(statusCode, 200);
    assert.equal(await body.text(), `fast GET /seq${i}`);
  }
  const parallel = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const { body } = await client.request({ path: `/pipe${i}`, method: 'GET', signal: AbortSignal.timeout(2_000) });
      return body.text();
    }),
  );
  assert.deepEqual(parallel, ['fast GET /pipe0', 'fast GET /pipe1', 'fast GET /pipe2']);
  assert.equal(h.connections(), 1);
  assert.equal(h.nodeRequests.length, 0);
});

/** Answers per path, to show how each way of writing a response is framed. */
const framingHandler: FastHandler = (req, res) => {
  const big = Buffer.alloc(40_000, 'b');
  switch (req.url) {
    case '/length':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello');
      return;
    case '/empty':
      res.writeHead(200);
      res.end();
      return;
    case '/big-length':
      res.end(big);
      return;
    case '/chunked':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('ab');
      res.write(Buffer.from('cde'));
      res.write('');
      res.end();
      return;
    case '/chunked-end-body':
      res.write('ab');
      res.end(Buffer.from('xyz'));
      return;
    case '/big-chunked':
      res.write(big);
      res.write(Buffer.alloc(20_000, 'c'));
      res.end(big);
      return;
    case '/trailers':
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('data');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    case '/trailers-at-once':
      res.writeHead(200, { trailer: 'x-checksum' });
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end('whole');
      return;
    case '/explicit-length':
      res.writeHead(200, { 'content-length': 6 });
      res.write('abc');
      res.end('def');
      return;
    case '/204':
      res.writeHead(204, { 'x-a': '1' });
      res.end();
      return;
    case '/304':
      res.writeHead(304, { etag: '"v1"' });
      res.end();
      return;
    case '/utf8':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('héllo ✓ 世界');
      return;
    case '/utf8-chunked':
      res.write('✓');
      res.end('é');
      return;
    case '/multi':
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('X-Mixed-Case', 'v');
      res.statusCode = 201;
      res.statusMessage = 'Made It';
      res.end('m');
      return;
    default:
      answerFast(req, res);
  }
};

test('framing: Content-Length added to a response ended at once, passed as is when given', async (t) => {
  const h = await harness(t, { fast: framingHandler });
  const client = await h.client();

  client.send(get('/length'));
  let response = await client.response();
  assert.equal(field(response, 'content-length'), '5');
  assert.equal(field(response, 'transfer-encoding'), undefined);
  assert.equal(response.wire, 'hello');

  client.send(get('/empty'));
  response = await client.response();
  assert.equal(field(response, 'content-length'), '0');
  assert.equal(response.wire, '');

  client.send(get('/big-length'));
  response = await client.response();
  assert.equal(field(response, 'content-length'), '40000');
  assert.ok(response.body.equals(Buffer.alloc(40_000, 'b')));

  client.send(get('/explicit-length'));
  response = await client.response();
  assert.deepEqual(values(response.fields, 'content-length'), ['6']);
  assert.equal(field(response, 'transfer-encoding'), undefined);
  assert.equal(response.wire, 'abcdef');

  client.send(get('/multi'));
  response = await client.response();
  assert.equal(response.head.split('\r\n')[0], 'HTTP/1.1 201 Made It');
  assert.deepEqual(values(response.fields, 'set-cookie'), ['a=1', 'b=2']);
  assert.equal(field(response, 'x-mixed-case'), 'v');
  assert.equal(response.wire, 'm');
  assert.equal(client.rest(), '');
});

test('framing: a streamed response without a length is chunked, with the last chunk and trailers after it', async (t) => {
  const h = await harness(t, { fast: framingHandler });
  const client = await h.client();

  client.send(get('/chunked'));
  let response = await client.response();
  assert.equal(field(response, 'transfer-encoding'), 'chunked');
  assert.equal(field(response, 'content-length'), undefined);
  assert.equal(response.wire, '2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n');

  client.send(get('/chunked-end-body'));
  response = await client.response();
  assert.equal(response.wire, '2\r\nab\r\n3\r\nxyz\r\n0\r\n\r\n');

  client.send(get('/big-chunked'));
  response = await client.response();
  assert.equal(field(response, 'transfer-encoding'), 'chunked');
  assert.ok(response.body.equals(Buffer.concat([Buffer.alloc(40_000, 'b'), Buffer.alloc(20_000, 'c'), Buffer.alloc(40_000, 'b')])));

  client.send(get('/trailers'));
  response = await client.response();
  assert.equal(field(response, 'transfer-encoding'), 'chunked');
  assert.equal(response.wire, '4\r\ndata\r\n0\r\nx-checksum: abc123\r\n\r\n');
  assert.deepEqual(response.trailers, [['x-checksum', 'abc123']]);

  client.send(get('/trailers-at-once'));
  response = await client.response();
  assert.equal(field(response, 'transfer-encoding'), 'chunked', 'trailers need chunked framing even for a body ended at once');
  assert.equal(field(response, 'content-length'), undefined);
  assert.equal(response.wire, '5\r\nwhole\r\n0\r\nx-checksum: abc123\r\n\r\n');
  assert.equal(client.rest(), '');
});

test('framing: no body for HEAD, 204 and 304, and no framing field added to 204 and 304', async (t) => {
  const h = await harness(t, { fast: framingHandler });
  const client = await h.client();

  client.send('HEAD /length HTTP/1.1\r\nHost: test.local\r\n\r\n');
  let response = await client.response({ noBody: true });
  assert.equal(response.status, 200);
  assert.equal(field(response, 'transfer-encoding'), undefined);
  client.send('HEAD /chunked HTTP/1.1\r\nHost: test.local\r\n\r\n');
  response = await client.response({ noBody: true });
  assert.equal(field(response, 'transfer-encoding'), undefined);

  client.send(get('/204'));
  response = await client.response({ noBody: true });
  assert.equal(response.status, 204);
  assert.equal(field(response, 'x-a'), '1');
  assert.equal(field(response, 'content-length'), undefined);
  assert.equal(field(response, 'transfer-encoding'), undefined);

  client.send(get('/304'));
  response = await client.response({ noBody: true });
  assert.equal(response.status, 304);
  assert.equal(field(response, 'etag'), '"v1"');
  assert.equal(field(response, 'content-length'), undefined);
  assert.equal(field(response, 'transfer-encoding'), undefined);

  // Had any of them carried a body, it would sit in front of this response.
  client.send(get('/length'));
  response = await client.response();
  assert.equal(response.wire, 'hello');
  assert.equal(client.rest(), '');
});

test('framing: a non-ASCII string body goes out as UTF-8 with its byte length', async (t) => {
  const h = await harness(t, { fast: framingHandler });
  const client = await h.client();
  client.send(get('/utf8'));
  let response = await client.response();
  assert.equal(field(response, 'content-length'), String(Buffer.byteLength('héllo ✓ 世界')));
  assert.equal(response.body.toString('utf8'), 'héllo ✓ 世界');

  client.send(get('/utf8-chunked'));
  response = await client.response();
  assert.equal(response.wire, Buffer.from('3\r\n✓\r\n2\r\né\r\n0\r\n\r\n', 'utf8').toString('latin1'));
  assert.equal(response.body.toString('utf8'), '✓é');
  assert.equal(client.rest(), '');
});

test('Connection: close from the client is answered with Connection: close, then the connection is closed', async (t) => {
  const h = await harness(t);
  const client = await h.client();
  client.send(get('/bye', 'Connection: keep-alive, Close\r\n'));
  const response = await client.response();
  assert.equal(response.body.toString(), 'fast GET /bye');
  assert.equal(field(response, 'connection'), 'close');
  assert.equal(field(response, 'keep-alive'), undefined);
  await client.closed();
  assert.equal(h.served.length, 1);
});

test('res.shouldKeepAlive = false before the head: Connection: close, then closed', async (t) => {
  const h = await harness(t, {
    fast: (req, res) => {
      res.shouldKeepAlive = false;
      answerFast(req, res);
    },
  });
  const client = await h.client();
  client.send(get('/draining'));
  const response = await client.response();
  assert.equal(response.body.toString(), 'fast GET /draining');
  assert.equal(field(response, 'connection'), 'close');
  await client.closed();
});

test('a Connection or Date field the handler sets is sent as it is, once; Connection: close from the handler closes the connection', async (t) => {
  const h = await harness(t, {
    fast: (req, res) => {
      res.setHeader('Date', 'Sun, 06 Nov 1994 08:49:37 GMT');
      if (req.url === '/handler-close') res.setHeader('Connection', 'close');
      answerFast(req, res);
    },
  });
  const client = await h.client();
  client.send(get('/dated'));
  let response = await client.response();
  assert.equal(field(response, 'date'), 'Sun, 06 Nov 1994 08:49:37 GMT');
  assert.equal(field(response, 'connection'), 'keep-alive');
  client.send(get('/handler-close'));
  response = await client.response();
  assert.equal(field(response, 'connection'), 'close');
  assert.equal(field(response, 'keep-alive'), undefined);
  await client.closed();
});

test('a reason phrase with CR or LF is refused as node:http refuses it, never written into the head', async (t) => {
  const errors: unknown[] = [];
  const h = await harness(t, {
    fast: (req, res) => {
      try {
        res.writeHead(200, 'OK\r\nX-Injected: yes', { 'content-type': 'text/plain' });
        res.end('injected');
      } catch (error) {
        errors.push(error);
        res.statusMessage = undefined;
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('refused');
      }
    },
  });
  const client = await h.client();
  client.send(get('/reason'));
  const response = await client.response();
  assert.equal(field(response, 'x-injected'), undefined, `a field injected through the reason phrase:\n${response.head}`);
  assert.equal(errors.length, 1, 'writeHead threw');
  assert.equal(response.status, 500);
});

test('nothing the client sends after a request with Connection: close is served (RFC 9112 §9.6)', async (t) => {
  const h = await harness(t);
  // Half-open: the client may go on sending after the server's FIN, as a client that has not read it yet would.
  const client = await h.client({ allowHalfOpen: true });
  client.send(get('/first', 'Connection: close\r\n') + get('/pipelined'));
  const response = await client.response();
  assert.equal(field(response, 'connection'), 'close');
  await client.closed();
  assert.deepEqual(
    h.served.map((s) => s.req.url),
    ['/first'],
    'the pipelined request is not served with the response',
  );
  client.send(get('/after-close'));
  // Bounded: give the server the time to (wrongly) take what was sent.
  await sleep(100);
  assert.deepEqual(
    h.served.map((s) => s.req.url),
    ['/first'],
  );
});

/** Requests that the fast path must leave to node:http, with what node (or the guard in front of its handler) answers. */
interface FallbackCase {
  name: string;
  send: string | ((client: RawClient) => Promise<void>);
  status: number;
  /** node's handler served it (body `node ...`); otherwise node or the guard refused it. */
  servedByNode?: string;
  refusal?: string;
  closes?: boolean;
}

const fallbackLimits: Partial<ListenerLimits> = { maxHeaderBytes: 2_048, maxUriBytes: 256, maxHeaderCount: 10 };

const fallbackCases: FallbackCase[] = [
  {
    name: 'a body that has not all arrived with the head',
    send: async (client) => {
      client.send('POST /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\n\r\nhe');
      // TCP segmentation is the point here: the rest of the body comes in a later read.
      await sleep(50);
      client.send('llo');
    },
    status: 200,
    servedByNode: 'node POST /upload 5',
  },
  {
    name: 'a body over the fast path\'s cap',
    send: `POST /big-body HTTP/1.1\r\nHost: test.local\r\nContent-Length: ${MAX_FAST_BODY_BYTES + 1}\r\n\r\n${'b'.repeat(MAX_FAST_BODY_BYTES + 1)}`,
    status: 200,
    servedByNode: `node POST /big-body ${MAX_FAST_BODY_BYTES + 1}`,
  },
  {
    name: 'a chunked body',
    send: 'POST /chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n2\r\n!!\r\n0\r\n\r\n',
    status: 200,
    servedByNode: 'node POST /chunked 7',
  },
  { name: 'an Upgrade header', send: 'GET /ws HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', status: 200, servedByNode: 'node GET /ws 0' },
  { name: 'HTTP/1.0', send: 'GET /old HTTP/1.0\r\nHost: test.local\r\n\r\n', status: 200, servedByNode: 'node GET /old 0', closes: true },
  { name: 'a method the fast path does not take (PROPFIND)', send: 'PROPFIND /dav HTTP/1.1\r\nHost: test.local\r\n\r\n', status: 200, servedByNode: 'node PROPFIND /dav 0' },
  { name: 'CONNECT', send: 'CONNECT test.local:443 HTTP/1.1\r\nHost: test.local:443\r\n\r\n', status: 0, closes: true },
  { name: 'an unknown method (FOO)', send: 'FOO / HTTP/1.1\r\nHost: test.local\r\n\r\n', status: 400, refusal: 'malformed', closes: true },
  { name: 'a duplicate header', send: get('/dup', 'X-Dup: 1\r\nx-dup: 2\r\n'), status: 200, servedByNode: 'node GET /dup 0' },
  { name: 'a duplicate Host', send: get('/dup-host', 'Host: other.local\r\n'), status: 400, refusal: 'duplicate_host', closes: true },
  {
    name: 'a head split across two writes',
    send: async (client) => {
      client.send('GET /split HTTP/1.1\r\nHo');
      // TCP segmentation is the point here: the rest comes in a later read.
      await sleep(50);
      client.send('st: test.local\r\n\r\n');
    },
    status: 200,
    servedByNode: 'node GET /split 0',
  },
  { name: 'a head over maxHeaderBytes', send: get('/big', `X-Big: ${'v'.repeat(3_000)}\r\n`), status: 431, refusal: 'header_size', closes: true },
  { name: 'a target longer than maxUriBytes', send: get(`/${'u'.repeat(300)}`), status: 414, refusal: 'uri_length', closes: true },
  {
    name: 'more headers than maxHeaderCount',
    // Host and ten more: one over. (Two over, node's parser refuses the head itself, counted as header_size.)
    send: get(
      '/many',
      Array.from({ length: 10 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''),
    ),
    status: 431,
    refusal: 'header_count',
    closes: true,
  },
  { name: 'a space before the colon', send: get('/space', 'X-Bad : v\r\n'), status: 400, refusal: 'invalid_header', closes: true },
  { name: 'obs-fold', send: get('/fold', 'X-Fold: a\r\n  b\r\n'), status: 400, closes: true },
  { name: 'a bare LF inside a value', send: get('/lf', 'X-Lf: a\nb\r\n'), status: 400, closes: true },
  { name: 'a bare CR inside a value', send: get('/cr', 'X-Cr: a\rb\r\n'), status: 400, closes: true },
  { name: 'a missing Host', send: 'GET /nohost HTTP/1.1\r\nAccept: */*\r\n\r\n', status: 400, closes: true },
  { name: 'an asterisk target', send: 'OPTIONS * HTTP/1.1\r\nHost: test.local\r\n\r\n', status: 200, servedByNode: 'node OPTIONS * 0' },
  { name: 'a field named __proto__', send: get('/proto', '__proto__: x\r\n'), status: 200, servedByNode: 'node GET /proto 0' },
];

test('requests the fast path does not take are served by node:http on the same connection', async (t) => {
  const h = await harness(t, { limits: fallbackLimits });
  for (const c of fallbackCases) {
    await t.test(c.name, async () => {
      const before = { fast: h.served.length, node: h.nodeRequests.length, refused: c.refusal ? refusals(h.registry, c.refusal) : 0 };
      const client = await h.client();
      if (typeof c.send === 'string') client.send(c.send);
      else await c.send(client);
      if (c.status === 0) {
        // CONNECT is node's 'connect' event (the listeners serve tunnels from it); this node server has no listener for it, so node closes the connection unanswered.
        await client.closed();
        assert.equal(client.rest(), '');
      } else {
        const response = await client.response();
        assert.equal(response.status, c.status, `${c.name}: ${response.head}\n${response.body.toString()}`);
        if (c.servedByNode) {
          assert.equal(response.body.toString(), c.servedByNode);
          assert.equal(field(response, 'x-served-by'), 'node');
          assert.equal(h.nodeRequests.length, before.node + 1);
        } else {
          assert.equal(h.nodeRequests.length, before.node, 'refused before node’s handler');
          assert.notEqual(field(response, 'x-served-by'), 'fast');
        }
        if (c.refusal) assert.equal(refusals(h.registry, c.refusal), before.refused + 1, `${c.refusal} counted`);
        if (c.closes) await client.closed();
      }
      assert.equal(h.served.length, before.fast, 'the fast path took nothing');
    });
  }
  const duplicate = h.nodeRequests.find((req) => req.url === '/dup');
  assert.equal(duplicate?.headers['x-dup'], '1, 2', 'node combined the repeated field');
});

test('Expect: 100-continue is node’s: 100 Continue, then the body, then the answer', async (t) => {
  const h = await harness(t);
  const client = await h.client();
  client.send('POST /expect HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  const interim = await client.response();
  assert.equal(interim.status, 100);
  client.send('hello');
  const response = await client.response();
  assert.equal(response.status, 200);
  assert.equal(response.body.toString(), 'node POST /expect 5');
  assert.equal(h.served.length, 0);
});

test('a small body that came with its head is served by the fast path, whole; pipelined requests behind it too', async (t) => {
  const h = await harness(t);
  const client = await h.client();
  client.send('POST /json HTTP/1.1\r\nHost: test.local\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"a":"hello"}');
  assert.equal((await client.response()).body.toString(), 'fast POST /json');
  client.send('PUT /b HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2\r\n\r\nxy' + get('/c') + 'DELETE /d HTTP/1.1\r\nHost: test.local\r\nContent-Length: 0\r\n\r\n');
  assert.equal((await client.response()).body.toString(), 'fast PUT /b');
  assert.equal((await client.response()).body.toString(), 'fast GET /c');
  assert.equal((await client.response()).body.toString(), 'fast DELETE /d');
  const bodies = h.served.map((s) => [s.req.url, (s.req as Http1Request).body?.toString()]);
  assert.deepEqual(bodies, [
    ['/json', '{"a":"hello"}'],
    ['/b', 'xy'],
    ['/c', undefined],
    ['/d', undefined],
  ]);
  assert.equal(h.nodeRequests.length, 0);
});

test('after a fallback on a connection first served fast, node:http serves the rest of it', async (t) => {
  const h = await harness(t);
  const client = await h.client();
  client.send(get('/one'));
  assert.equal((await client.response()).body.toString(), 'fast GET /one');
  client.send('POST /two HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  assert.equal((await client.response()).body.toString(), 'node POST /two 3');
  client.send(get('/three'));
  assert.equal((await client.response()).body.toString(), 'node GET /three 0');
  // Pipelined: a plain request, one with a chunked body, a plain one; the fast path takes the first only.
  const second = await h.client();
  second.send(get('/a') + 'PUT /b HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n' + get('/c'));
  assert.equal((await second.response()).body.toString(), 'fast GET /a');
  assert.equal((await second.response()).body.toString(), 'node PUT /b 2');
  assert.equal((await second.response()).body.toString(), 'node GET /c 0');
  // A whole request and the start of the next in one read: the fast path serves the first and hands the rest to node.
  const third = await h.client();
  third.send(get('/p1') + 'GET /p2 HTTP/1.1\r\nHo');
  assert.equal((await third.response()).body.toString(), 'fast GET /p1');
  // TCP segmentation again: the rest of the head comes in a later read.
  await sleep(50);
  third.send('st: test.local\r\n\r\n' + get('/p3'));
  assert.equal((await third.response()).body.toString(), 'node GET /p2 0');
  assert.equal((await third.response()).body.toString(), 'node GET /p3 0');
  assert.deepEqual(
    h.served.map((s) => s.req.url),
    ['/one', '/a', '/p1'],
  );
  assert.equal(h.connections(), 3);
});

test('timeouts: a silent connection gets 408 after headersTimeoutMs and is counted as headers_timeout', async (t) => {
  const h = await harness(t, { limits: { headersTimeoutMs: 300 }, keepAliveTimeoutMs: 5_000 });
  const started = performance.now();
  const client = await h.client();
  await client.closed(4_000);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${Math.round(elapsed)} ms`);
  const text = client.rest();
  assert.match(text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.match(text, /\r\nconnection: close\r\n/i);
  assert.equal(refusals(h.registry, 'headers_timeout'), 1);
  assert.equal(totalRefusals(h.registry), 1);
});

test('timeouts: an idle keep-alive connection is closed after keepAliveTimeoutMs, without a refusal', async (t) => {
  const h = await harness(t, { limits: { headersTimeoutMs: 2_000 }, keepAliveTimeoutMs: 300 });
  const client = await h.client();
  client.send(get('/'));
  await client.response();
  const answered = performance.now();
  await client.closed(4_000);
  const elapsed = performance.now() - answered;
  assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${Math.round(elapsed)} ms`);
  assert.equal(client.rest(), '', 'closed without a word');
  assert.equal(totalRefusals(h.registry), 0);
});

test('timeouts: a request in flight with no byte either way for idleTimeoutMs is cut and counted as idle_timeout', async (t) => {
  const h = await harness(t, { limits: { idleTimeoutMs: 300, headersTimeoutMs: 2_000 }, keepAliveTimeoutMs: 5_000, fast: () => {} });
  const client = await h.client();
  client.send(get('/hang'));
  const started = performance.now();
  await client.closed(4_000);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${Math.round(elapsed)} ms`);
  assert.equal(client.rest(), '');
  assert.equal(refusals(h.registry, 'idle_timeout'), 1);
  assert.equal(totalRefusals(h.registry), 1);
  const closed = await within(h.served[0]!.closed, 1_000, 'the response to close');
  assert.deepEqual(closed, { writableFinished: false, headersSent: false });
});

test('the response closes with writableFinished false when the client goes mid-request, true after a whole response', async (t) => {
  const h = await harness(t, { fast: (req, res) => (req.url === '/hang' ? undefined : answerFast(req, res)) });
  const client = await h.client();
  client.send(get('/done'));
  await client.response();
  assert.deepEqual(await within(h.served[0]!.closed, 1_000, 'the whole response to close'), { writableFinished: true, headersSent: true });
  client.send(get('/hang'));
  const hanging = await within(
    (async () => {
      while (h.served.length < 2) await sleep(5);
      return h.served[1]!;
    })(),
    1_000,
    'the second request',
  );
  client.socket.destroy();
  assert.deepEqual(await within(hanging.closed, 1_000, 'the cut response to close'), { writableFinished: false, headersSent: false });
  assert.equal(hanging.res.destroyed, true);
  assert.equal(hanging.res.write('late'), false, 'nothing written once closed');
});

test('stop(): idle connections close at once, one in flight gets its response with Connection: close, new ones go to node', async (t) => {
  const pending: Http1Response[] = [];
  const h = await harness(t, { fast: (req, res) => (req.url === '/slow' ? pending.push(res) : answerFast(req, res)) });
  const idle = await h.client();
  idle.send(get('/quick'));
  const first = await idle.response();
  assert.equal(field(first, 'connection'), 'keep-alive');
  const silent = await h.client();
  const busy = await h.client();
  busy.send(get('/slow'));
  await within(
    (async () => {
      while (pending.length === 0) await sleep(5);
    })(),
    1_000,
    'the slow request',
  );

  const stopped = performance.now();
  h.fast.stop();
  await idle.closed(1_500);
  await silent.closed(1_500);
  assert.ok(performance.now() - stopped < 1_500, 'closed at once, not after a timeout');
  assert.equal(idle.rest(), '');
  assert.equal(busy.ended, false, 'the connection with a request in flight stays open');

  const res = pending[0]!;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('late');
  const response = await busy.response();
  assert.equal(response.body.toString(), 'late');
  assert.equal(field(response, 'connection'), 'close');
  await busy.closed();

  const after = await h.client();
  after.send(get('/after-stop'));
  assert.equal((await after.response()).body.toString(), 'node GET /after-stop 0');
});

test('parseRequestHead takes plain heads', () => {
  const limits = DEFAULT_LISTENER_LIMITS;
  const parse = (head: string) => parseRequestHead(head, limits.maxUriBytes, limits.maxHeaderCount, limits.maxHeaderBytes);
  assert.deepEqual(parse('GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-Trim:\t  v  \t\r\nUser-Agent: t/1'), {
    method: 'GET',
    url: '/a?b=1',
    headers: { host: 'h', 'x-trim': 'v', 'user-agent': 't/1' },
    keepAlive: true,
    bodyLength: 0,
  });
  assert.equal(parse('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5')?.bodyLength, 5);
  assert.equal(parse('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00')?.bodyLength, 0, 'leading zeros, as llhttp reads them');
  assert.equal(parse(`POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${MAX_FAST_BODY_BYTES}`)?.bodyLength, MAX_FAST_BODY_BYTES);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nConnection: close')?.keepAlive, false);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE')?.keepAlive, false);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive')?.keepAlive, true);
  assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nConnection: closed')?.keepAlive, true, 'a token that only starts with close');
  assert.deepEqual(parse('DELETE /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0')?.headers, { host: 'h', 'content-length': '0' });
  assert.equal(parse('GET http://h/abs HTTP/1.1\r\nHost: h')?.url, 'http://h/abs');
  assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xe9')?.headers['x-obs'], 'caf\xe9', 'obs-text is a valid value byte');
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']) {
    assert.equal(parse(`${method} / HTTP/1.1\r\nHost: h`)?.method, method);
  }
});

test('parseRequestHead leaves to node:http every head that is not plainly ordinary', () => {
  const parse = (head: string) => parseRequestHead(head, 64, 4, 512);
  const host = 'Host: h';
  const refused: Record<string, string> = {
    'a body over the fast path\'s cap': `POST / HTTP/1.1\r\n${host}\r\nContent-Length: ${MAX_FAST_BODY_BYTES + 1}`,
    'a Content-Length with a sign': `POST / HTTP/1.1\r\n${host}\r\nContent-Length: +5`,
    'a Content-Length list': `POST / HTTP/1.1\r\n${host}\r\nContent-Length: 5, 5`,
    'a Content-Length in hex': `POST / HTTP/1.1\r\n${host}\r\nContent-Length: 0x5`,
    'Transfer-Encoding': `POST / HTTP/1.1\r\n${host}\r\nTransfer-Encoding: chunked`,
    Expect: `POST / HTTP/1.1\r\n${host}\r\nExpect: 100-continue`,
    Upgrade: `GET / HTTP/1.1\r\n${host}\r\nUpgrade: websocket`,
    'Connection: upgrade': `GET / HTTP/1.1\r\n${host}\r\nConnection: keep-alive, Upgrade`,
    'HTTP/1.0': `GET / HTTP/1.0\r\n${host}`,
    'HTTP/2.0 in a request line': `GET / HTTP/2.0\r\n${host}`,
    'a lower-case version': `GET / http/1.1\r\n${host}`,
    'an unknown method': `FOO / HTTP/1.1\r\n${host}`,
    'a lower-case method': `get / HTTP/1.1\r\n${host}`,
    CONNECT: `CONNECT h:443 HTTP/1.1\r\n${host}`,
    'a duplicate header': `GET / HTTP/1.1\r\n${host}\r\nX-A: 1\r\nx-a: 2`,
    'a duplicate Host': `GET / HTTP/1.1\r\n${host}\r\nHOST: g`,
    'a target over maxUriBytes': `GET /${'u'.repeat(64)} HTTP/1.1\r\n${host}`,
    'more headers than maxHeaderCount': `GET / HTTP/1.1\r\n${host}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4`,
    'a head over maxHeaderBytes': `GET / HTTP/1.1\r\n${host}\r\nX-Big: ${'v'.repeat(500)}`,
    'a space before the colon': `GET / HTTP/1.1\r\n${host}\r\nX-Bad : v`,
    'a space inside a name': `GET / HTTP/1.1\r\n${host}\r\nX Bad: v`,
    'an empty name': `GET / HTTP/1.1\r\n${host}\r\n: v`,
    'a line without a colon': `GET / HTTP/1.1\r\n${host}\r\nnocolon`,
    'obs-fold': `GET / HTTP/1.1\r\n${host}\r\nX-Fold: a\r\n  b`,
    'a bare LF inside a value': `GET / HTTP/1.1\r\n${host}\r\nX-Lf: a\nb`,
    'a bare LF ending a line': `GET / HTTP/1.1\nHost: h`,
    'a bare CR inside a value': `GET / HTTP/1.1\r\n${host}\r\nX-Cr: a\rb`,
    'a NUL inside a value': `GET / HTTP/1.1\r\n${host}\r\nX-Nul: a\x00b`,
    'a missing Host': 'GET / HTTP/1.1\r\nAccept: */*',
    'a target with a space': `GET /a b HTTP/1.1\r\n${host}`,
    'two spaces after the method': `GET  / HTTP/1.1\r\n${host}`,
    'an asterisk target': `OPTIONS * HTTP/1.1\r\n${host}`,
    'an https absolute target': `GET https://h/ HTTP/1.1\r\n${host}`,
    'a target with obs-text': `GET /caf\xe9 HTTP/1.1\r\n${host}`,
    'no target': `GET HTTP/1.1\r\n${host}`,
    'a field named __proto__': `GET / HTTP/1.1\r\n${host}\r\n__proto__: x`,
    'a field named constructor': `GET / HTTP/1.1\r\n${host}\r\nconstructor: x`,
  };
  for (const [why, head] of Object.entries(refused)) assert.equal(parse(head), undefined, why);
  // At the limits, not over them.
  assert.ok(parse(`GET /${'u'.repeat(63)} HTTP/1.1\r\n${host}`), 'a target of exactly maxUriBytes');
  assert.ok(parse(`GET / HTTP/1.1\r\n${host}\r\nA: 1\r\nB: 2\r\nC: 3`), 'exactly maxHeaderCount fields');
});

test('backpressure: a streamed response of several MiB to a slow reader arrives whole, written as the socket drains', async (t) => {
  const pieceBytes = 256 * 1024;
  const pieces = 32;
  let drains = 0;
  const h = await harness(t, {
    fast: (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let next = 0;
      const pump = () => {
        while (next < pieces) {
          const piece = Buffer.alloc(pieceBytes, next % 251);
          piece.writeUInt32BE(next, 0);
          next++;
          if (!res.write(piece)) {
            res.once('drain', () => {
              drains++;
              pump();
            });
            return;
          }
        }
        res.end();
      };
      pump();
    },
  });
  const expected = createHash('sha256');
  for (let i = 0; i < pieces; i++) {
    const piece = Buffer.alloc(pieceBytes, i % 251);
    piece.writeUInt32BE(i, 0);
    expected.update(piece);
  }

  // A reader that takes a while to start and then reads in sips.
  const socket = connect({ port: h.port, host: '127.0.0.1' });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.pause();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunks.length % 16 === 0) {
        socket.pause();
        setTimeout(() => socket.resume(), 2);
      }
    });
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  socket.write(get('/big', 'Connection: close\r\n'));
  await within(
    (async () => {
      while (h.served.length === 0) await sleep(5);
    })(),
    2_000,
    'the request',
  );
  const finished = h.served[0]!.closed;
  // The server meets a full socket: its writes must wait for drain.
  await sleep(150);
  socket.resume();
  await within(done, 8_000, 'the whole response');

  const data = Buffer.concat(chunks);
  const parsed = parseResponse(data, 0, false, true);
  assert.ok(parsed, 'a whole response');
  assert.equal(parsed.next, data.length, 'nothing after it');
  const { response } = parsed;
  assert.equal(response.status, 200);
  assert.equal(field(response, 'transfer-encoding'), 'chunked');
  assert.equal(response.body.length, pieces * pieceBytes);
  assert.equal(createHash('sha256').update(response.body).digest('hex'), expected.digest('hex'));
  assert.ok(drains > 0, 'the writer waited for drain');
  assert.deepEqual(await within(finished, 1_000, 'the response to close'), { writableFinished: true, headersSent: true });
});
