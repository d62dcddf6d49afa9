// WebSocket (HTTP/1.1 Upgrade) through two sidecars (outbound → mTLS tunnel → inbound → app) and through a gateway, with the `ws` package on both ends.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { HttpRouteRule, ProxySnapshot } from '../../src/api/snapshot.ts';
import { buildSnapshot, endpoint, reversion, startTestProxy, type TestProxy } from './proxy-helpers.ts';
import { headerFilter, prefixRule } from './routing-helpers.ts';
import { selfSignedCertificate, type Certificate } from '../conformance/gateways.ts';

const CHAT = 'default/chat:80';
/** What the /flood app writes in all; how much of it gets written while the client reads nothing shows the buffering on the way. */
const FLOOD_BYTES = 128 * 1024 * 1024;
let floodSent = 0;

interface SeenUpgrade {
  url: string;
  headers: IncomingHttpHeaders;
  /** Resolves when the server side of this connection has closed. */
  closed: Promise<void>;
}

/** A WebSocket echo (every frame back, text as text, binary as binary) that records each upgrade; `/refuse` answers 403 instead. */
async function startWsEcho(): Promise<{ port: number; seen: SeenUpgrade[]; close(): Promise<void> }> {
  const seen: SeenUpgrade[] = [];
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({ noServer: true });
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain http\n');
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (req.url?.startsWith('/flood')) {
      // Writes as fast as the connection takes it, up to FLOOD_BYTES: how far it gets shows how much the path buffers.
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: weft-test-flood\r\n\r\n');
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      let sent = 0;
      const push = () => {
        while (sent < FLOOD_BYTES) {
          sent += chunk.length;
          floodSent = sent;
          if (!socket.write(chunk)) return;
        }
        socket.end();
      };
      socket.on('drain', push);
      socket.on('error', () => socket.destroy());
      push();
      return;
    }
    if (req.url?.includes('/hang')) return; // never answers the handshake (closed with the server)
    if (req.url?.startsWith('/raw')) {
      // Another protocol than WebSocket: reads until the client's FIN, then answers what it got and closes.
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: weft-test-raw\r\n\r\n');
      let got = head.toString('latin1');
      socket.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')));
      socket.on('end', () => socket.end(`got:${got}`));
      socket.on('error', () => socket.destroy());
      return;
    }
    if (req.url?.startsWith('/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 11\r\nx-refused-by: app\r\nconnection: close\r\n\r\nnot you :(\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      let closed!: () => void;
      seen.push({ url: req.url ?? '', headers: req.headers, closed: new Promise<void>((resolve) => (closed = resolve)) });
      ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
      ws.on('error', () => ws.terminate());
      ws.once('close', () => closed());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        for (const socket of sockets) socket.destroy();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

/** Opens a WebSocket to a proxy port, addressed to `host`; resolves once open. */
function open(port: number, host: string, path: string, options: { tls?: { ca: string }; socket?: Socket } = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const url = options.tls ? `wss://127.0.0.1:${port}${path}` : `ws://127.0.0.1:${port}${path}`;
    const ws = new WebSocket(url, {
      headers: { host },
      handshakeTimeout: 5000,
      ...(options.tls ? { servername: host, ca: options.tls.ca } : {}),
      ...(options.socket ? { createConnection: () => options.socket! } : {}),
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res: IncomingMessage) => reject(new Error(`unexpected ${res.statusCode}`)));
  });
}

/** The status, headers and body of a refused upgrade, as the client saw them. */
function refused(port: number, host: string, path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host }, handshakeTimeout: 5000 });
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
  });
}

function closed(ws: WebSocket): Promise<{ code: number }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006 });
  return new Promise((resolve) => ws.once('close', (code: number) => resolve({ code })));
}

/** Sends `count` messages, alternately text and binary, as fast as the socket takes them, and checks that every echo came back, in order and of its type. */
async function echoMany(ws: WebSocket, count: number): Promise<void> {
  const received: { data: Buffer; binary: boolean }[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} echoes within 20 s`)), 20_000);
    ws.on('message', (data: RawData, binary: boolean) => {
      received.push({ data: data as Buffer, binary });
      if (received.length === count) {
        clearTimeout(timer);
        resolve();
      }
    });
    ws.once('close', () => reject(new Error(`closed after ${received.length} of ${count} echoes`)));
  });
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) ws.send(`message ${i}`);
    else ws.send(Buffer.from([i & 0xff, (i >> 8) & 0xff, 0, 0xff]), { binary: true });
  }
  await done;
  ws.removeAllListeners('message');
  for (let i = 0; i < count; i++) {
    const got = received[i]!;
    if (i % 2 === 0) {
      assert.equal(got.binary, false, `message ${i} is text`);
      assert.equal(got.data.toString('utf8'), `message ${i}`);
    } else {
      assert.equal(got.binary, true, `message ${i} is binary`);
      assert.deepEqual([...got.data], [i & 0xff, (i >> 8) & 0xff, 0, 0xff]);
    }
  }
}

/** Sends one text message and waits for its echo. */
function roundTrip(ws: WebSocket, text: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of "${text}" within ${timeoutMs} ms`)), timeoutMs);
    ws.once('message', (data: RawData) => {
      clearTimeout(timer);
      resolve((data as Buffer).toString('utf8'));
    });
    ws.send(text);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A gateway snapshot: Gateway default/edge with an HTTP listener on port 80 and an HTTPS one on 443 whose every host goes to CHAT. */
function withGateway(snapshot: ProxySnapshot, certificate: Certificate): ProxySnapshot {
  const hosts = [{ hostname: '*', routeKey: CHAT }];
  return reversion({
    ...snapshot,
    node: { mode: 'gateway', namespace: 'default' },
    gateway: {
      namespace: 'default',
      name: 'edge',
      ports: [
        { port: 80, protocol: 'HTTP', listeners: [{ name: 'http', hosts }] },
        { port: 443, protocol: 'HTTPS', listeners: [{ name: 'https', hostname: 'chat.example', tls: { certificates: [certificate] }, hosts }] },
      ],
    },
  });
}

/** A CONNECT tunnel through a sidecar's outbound listener, as Node's fetch opens one with HTTP_PROXY set. */
function connectTunnel(port: number, authority: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('no CONNECT answer within 5 s')));
    socket.once('error', reject);
    socket.on('connect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`));
    const onData = (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (!answer.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.setTimeout(0);
      if (!answer.startsWith('HTTP/1.1 200')) reject(new Error(`CONNECT answered ${answer.split('\r\n')[0]}`));
      else resolve(socket);
    };
    socket.on('data', onData);
  });
}

describe('WebSocket through the mesh', () => {
  const IDLE_MS = 1500;
  const REQUEST_TIMEOUT_MS = 200;
  let app: Awaited<ReturnType<typeof startWsEcho>>;
  let server: TestProxy;
  let client: TestProxy;
  let gateway: TestProxy;
  let outbound: number;
  let gatewayPort: number;
  let gatewayTlsPort: number;
  let certificate: Certificate;

  before(async () => {
    app = await startWsEcho();
    server = await startTestProxy({ appPorts: [{ declared: 8080, actual: app.port }], snapshot: buildSnapshot({ inboundPorts: [8080] }) });
    const rules: HttpRouteRule[] = [
      prefixRule('moved', '/moved', { filters: [{ type: 'RequestRedirect', redirect: { statusCode: 302, path: { type: 'ReplaceFullPath', value: '/elsewhere' } } }] }, CHAT),
      prefixRule('short', '/short', { timeouts: { requestMs: REQUEST_TIMEOUT_MS } }, CHAT),
      prefixRule('rewrite', '/old', { filters: [{ type: 'URLRewrite', rewrite: { path: { type: 'ReplacePrefixMatch', value: '/new' } } }] }, CHAT),
      prefixRule('all', '/', { filters: [headerFilter('RequestHeaderModifier', { 'x-route': 'all' })] }, CHAT),
    ];
    const snapshot = buildSnapshot({
      services: [
        { name: 'chat', ports: [{ port: 80, endpoints: [endpoint('default/chat-0', 8080, server.proxy.ports.tunnel)], rules }] },
        { name: 'gone', ports: [{ port: 80, endpoints: [endpoint('default/gone-0', await closedPort())] }] },
      ],
    });
    client = await startTestProxy({ snapshot, upgradeIdleTimeoutMs: IDLE_MS });
    outbound = client.proxy.ports.outbound;
    certificate = await selfSignedCertificate('chat.example', ['chat.example']);
    gateway = await startTestProxy({
      snapshot: withGateway(snapshot, certificate),
      mode: 'gateway',
      gateway: {
        name: 'default/edge',
        portMap: new Map([
          [80, 0],
          [443, 0],
        ]),
      },
    });
    gatewayPort = Number(gateway.proxy.gatewayPorts()['80']);
    gatewayTlsPort = Number(gateway.proxy.gatewayPorts()['443']);
  });

  after(async () => {
    await Promise.all([client?.close(), gateway?.close()]);
    await server?.close();
    await app?.close();
  });

  it('echoes 10,000 text and binary messages, in order, through two sidecars', async () => {
    const ws = await open(outbound, 'chat', '/echo?through=sidecars');
    await echoMany(ws, 10_000);
    ws.close();
    await closed(ws);
  });

  it('echoes 10,000 text and binary messages, in order, through the gateway and the sidecar', async () => {
    const ws = await open(gatewayPort, 'chat.example', '/echo?through=gateway');
    await echoMany(ws, 10_000);
    ws.close();
    await closed(ws);
  });

  it('carries a WebSocket inside a CONNECT tunnel (HTTP_PROXY clients) and over TLS at the gateway (wss)', async () => {
    const tunnelled = await open(0, 'chat', '/echo?through=connect', { socket: await connectTunnel(outbound, 'chat:80') });
    await echoMany(tunnelled, 1000);
    tunnelled.close();
    const secure = await open(gatewayTlsPort, 'chat.example', '/echo?through=wss', { tls: { ca: certificate.certPem } });
    await echoMany(secure, 1000);
    secure.close();
    await Promise.all([closed(tunnelled), closed(secure)]);
  });

  it('carries any upgrade protocol, and a half close each way, through two sidecars', async () => {
    const socket = connect(outbound, '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    const ended = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no end within 5 s; got ${JSON.stringify(received)}`)), 5000);
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      socket.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    socket.write('GET /raw HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade\r\nupgrade: weft-test-raw\r\n\r\n');
    await until(() => received.includes('\r\n\r\n'), 'the 101');
    socket.write('hello ');
    socket.write('there');
    // Half close: the app must still be able to answer after our FIN, and its own FIN must come back.
    socket.end();
    await ended;
    const [head, body] = received.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 101 /);
    assert.match(head!, /\r\nupgrade: weft-test-raw/i);
    assert.equal(body, 'got:hello there');
  });

  it('serves an h2c upgrade offer (curl --http2 on http://) as the plain HTTP/1.1 request it also is', async () => {
    const socket = connect(outbound, '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write('GET /plain HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    await until(() => received.includes('plain http\n'), 'the plain answer');
    socket.destroy();
    assert.match(received, /^HTTP\/1\.1 200 /);
  });

  it('holds a fast sender back while the receiver reads nothing (backpressure through both sidecars)', async () => {
    const socket = connect(outbound, '127.0.0.1');
    socket.on('error', () => {});
    let head = '';
    let bytes = 0;
    const onHead = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onHead);
      bytes = Buffer.byteLength(head, 'latin1') - end - 4;
      socket.pause();
    };
    socket.on('data', onHead);
    socket.write('GET /flood HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade\r\nupgrade: weft-test-flood\r\n\r\n');
    await until(() => head.includes('\r\n\r\n'), 'the 101');
    // The app writes until the path is full; then it must stay stuck while nobody reads.
    let last = -1;
    await until(() => {
      const stuck = floodSent === last;
      last = floodSent;
      return stuck && floodSent > 0;
    }, 'the app being held back', 10_000, 200);
    const heldAt = floodSent;
    assert.ok(heldAt < FLOOD_BYTES / 2, `the app wrote ${heldAt} bytes while the client read nothing: the proxies buffered it`);
    // Reading again lets the app go on, and what it wrote arrives.
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.resume();
    await until(() => bytes >= heldAt + 4 * 1024 * 1024, 'the rest of the flood', 10_000);
    assert.ok(floodSent > heldAt, 'the app was let go on');
    socket.destroy();
  });

  it('answers an upgrade whose endpoint refuses connections with 503 and why', async () => {
    const answer = await refused(outbound, 'gone', '/echo');
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_CONNECT');
  });

  it('routes the upgrade: rule filters apply, mesh headers stay between the proxies', async () => {
    const ws = await open(outbound, 'chat', '/old/room?x=1');
    assert.equal(await roundTrip(ws, 'hello'), 'hello');
    ws.close();
    const rewritten = app.seen.find((s) => s.url === '/new/room?x=1');
    assert.ok(rewritten, `the app saw ${app.seen.map((s) => s.url).join(', ')}`);
    const plain = await open(outbound, 'chat', '/echo?headers');
    plain.close();
    const seen = app.seen.find((s) => s.url === '/echo?headers')!;
    assert.equal(seen.headers['x-route'], 'all', 'the rule RequestHeaderModifier applied');
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.match(String(seen.headers.connection), /upgrade/i);
    assert.ok(seen.headers['sec-websocket-key'], 'the handshake headers reach the app');
    assert.ok(seen.headers['x-request-id'], 'x-request-id added as for any request');
    assert.match(String(seen.headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/default/, 'the caller identity, verified on the tunnel');
    assert.deepEqual(
      Object.keys(seen.headers).filter((name) => name.startsWith('weft-')),
      [],
      'no weft-* header reaches the app',
    );
  });

  it('answers a redirect rule with the redirect, not an upgrade', async () => {
    const answer = await refused(outbound, 'chat', '/moved');
    assert.equal(answer.status, 302);
    assert.equal(answer.headers.location, 'http://chat/elsewhere');
  });

  it('passes a refused upgrade (non-101) on to the client as that response', async () => {
    for (const [port, host] of [
      [outbound, 'chat'],
      [gatewayPort, 'chat.example'],
    ] as const) {
      const answer = await refused(port, host, '/refuse');
      assert.equal(answer.status, 403);
      assert.equal(answer.body, 'not you :(\n');
      assert.equal(answer.headers['x-refused-by'], 'app');
      assert.equal(answer.headers['weft-reason'], undefined, 'the app answered, not a proxy');
    }
  });

  it('answers an upgrade to an unknown service with the proxy error', async () => {
    const answer = await refused(outbound, 'nobody', '/echo');
    assert.equal(answer.status, 502);
    assert.equal(answer.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
  });

  it('applies the route request timeout until the upgrade is answered', async () => {
    const answer = await refused(outbound, 'chat', '/short/hang');
    assert.equal(answer.status, 504);
    assert.equal(answer.headers['weft-reason'], 'WEFT_ERR_TIMEOUT');
  });

  it('keeps an upgraded connection past the route request timeout', async () => {
    const ws = await open(outbound, 'chat', '/short/long-lived');
    const started = performance.now();
    let n = 0;
    while (performance.now() - started < REQUEST_TIMEOUT_MS * 4) {
      assert.equal(await roundTrip(ws, `still here ${n}`), `still here ${n}`);
      n++;
      await sleep(50);
    }
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
    await closed(ws);
  });

  it('closes an upgraded connection that stays silent for the idle timeout, on both sides', async () => {
    const ws = await open(outbound, 'chat', '/echo?idle');
    const backend = app.seen.find((s) => s.url === '/echo?idle')!;
    const opened = performance.now();
    await closed(ws);
    const after = performance.now() - opened;
    assert.ok(after >= IDLE_MS / 2, `closed after ${Math.round(after)} ms, well before the idle timeout`);
    assert.ok(after < IDLE_MS + 3000, `closed only after ${Math.round(after)} ms`);
    await withTimeout(backend.closed, 3000, 'the app side was not closed');
  });

  it('closes the app side when the client closes, gracefully or not', async () => {
    const ws = await open(outbound, 'chat', '/echo?client-closes');
    const backend = app.seen.find((s) => s.url === '/echo?client-closes')!;
    ws.close(1000, 'bye');
    await withTimeout(backend.closed, 3000, 'the app side stayed open after a close frame');

    const cut = await open(gatewayPort, 'chat.example', '/echo?client-cuts');
    const cutBackend = app.seen.find((s) => s.url === '/echo?client-cuts')!;
    cut.terminate();
    await withTimeout(cutBackend.closed, 3000, 'the app side stayed open after the client cut the connection');
  });
});

describe('WebSocket and drain', () => {
  it('ends upgraded connections with a clean close at the end of the drain period', async (t) => {
    const app = await startWsEcho();
    t.after(() => app.close());
    const snapshot = buildSnapshot({ services: [{ name: 'chat', ports: [{ port: 80, endpoints: [endpoint('default/chat-0', app.port)] }] }] });
    const proxy = await startTestProxy({ snapshot, drainMs: 300 });
    t.after(() => proxy.close());
    const ws = await open(proxy.proxy.ports.outbound, 'chat', '/echo?drain');
    const backend = app.seen.find((s) => s.url === '/echo?drain')!;
    let errored: Error | undefined;
    ws.on('error', (error) => (errored = error));
    const stopping = proxy.close();
    // During the drain the connection still works.
    assert.equal(await roundTrip(ws, 'draining'), 'draining');
    await withTimeout(closed(ws), 3000, 'the client side was not closed at the end of the drain');
    await withTimeout(backend.closed, 3000, 'the app side was not closed at the end of the drain');
    await stopping;
    assert.equal(errored, undefined, 'a FIN, not a reset');
  });
});

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000, pollMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what} did not come within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(what)), ms);
    }),
  ]);
}
