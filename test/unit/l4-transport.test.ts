// The L4 transport pieces on their own: the ClientHello SNI parser, detection outcomes and their metric, and splice's half-close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseClientHello, MAX_CLIENT_HELLO } from '../../src/proxy/transport/sni.ts';
import { detect, DetectMetrics } from '../../src/proxy/transport/detect.ts';
import { splice } from '../../src/proxy/transport/tcp.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

/** The first bytes a real Node TLS client sends for `servername` (none: no SNI), captured by a plain TCP server. */
async function realClientHello(servername: string | undefined): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((resolve) => (resolveHello = resolve));
  const server = createServer((socket) => {
    let bytes = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      if (parseClientHello(bytes).state !== 'incomplete') {
        resolveHello(bytes);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  client.on('error', () => {});
  try {
    return await hello;
  } finally {
    client.destroy();
    server.close();
  }
}

test('parseClientHello: the SNI of a real ClientHello, lower-cased; none when the client sends none', async () => {
  const hello = await realClientHello('A.Example');
  assert.deepEqual(parseClientHello(hello), { state: 'complete', serverName: 'a.example' });
  // Node sends no SNI for an IP address.
  assert.deepEqual(parseClientHello(await realClientHello(undefined)), { state: 'complete' });
});

test('parseClientHello: every prefix of a hello is incomplete, never an error or a wrong answer', async () => {
  const hello = await realClientHello('b.example');
  for (let n = 0; n < hello.length; n++) assert.equal(parseClientHello(hello.subarray(0, n)).state, 'incomplete', `prefix of ${n} bytes`);
});

test('parseClientHello: garbage, HTTP, corrupted lengths and hostile names are invalid, never a throw', async () => {
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).state, 'invalid');
  assert.equal(parseClientHello(Buffer.from([0x16, 0x09, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])).state, 'invalid');
  const hello = await realClientHello('c.example');
  // Every single-byte corruption after the record header: the parser must stay within bounds.
  for (let i = 5; i < Math.min(hello.length, 400); i++) {
    const bad = Buffer.from(hello);
    bad[i] = bad[i]! ^ 0xff;
    const result = parseClientHello(bad);
    assert.ok(['invalid', 'complete', 'incomplete'].includes(result.state));
  }
  const withBadName = Buffer.from(hello);
  const at = withBadName.indexOf('c.example');
  withBadName[at] = 0x2f; // "/"
  assert.equal(parseClientHello(withBadName).state, 'invalid');
  assert.ok(MAX_CLIENT_HELLO > 16 * 1024);
});

function pair(allowHalfOpen = true): Promise<{ server: Server; accepted: Promise<Socket>; port: number }> {
  let resolveAccepted!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (resolveAccepted = resolve));
  const server = createServer({ allowHalfOpen }, (socket) => resolveAccepted(socket));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, accepted, port: (server.address() as AddressInfo).port })));
}

test('detect: a silent client gives "opaque" after the timeout, counted as a timeout; a client that speaks is classified at once', async () => {
  const registry = new MetricsRegistry();
  const metrics = new DetectMetrics(registry);
  const { server, accepted, port } = await pair();
  const client = netConnect({ host: '127.0.0.1', port });
  try {
    const socket = await accepted;
    const started = performance.now();
    const kind = await detect(socket, Buffer.alloc(0), 150, systemClock, (outcome) => metrics.record('test', outcome));
    const waited = performance.now() - started;
    assert.equal(kind, 'opaque');
    assert.ok(waited >= 140 && waited < 1000, `detection gave up after ${waited.toFixed(0)} ms`);
    client.write('GET / HTTP/1.1\r\n');
    assert.equal(await detect(socket, Buffer.alloc(0), 5000, systemClock, (outcome) => metrics.record('test', outcome)), 'http1');
    const text = registry.render();
    assert.match(text, /weft_protocol_detect_total\{listener="test",result="timeout"\} 1/);
    assert.match(text, /weft_protocol_detect_total\{listener="test",result="http1"\} 1/);
    socket.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});

/** client ⇄ [a | splice | b] ⇄ app, where a and b are sockets as Node makes them by default (not half-open), as proxies' listeners do. */
async function splicedChain() {
  const app = await pair(true);
  const front = await pair(false);
  const client = netConnect({ host: '127.0.0.1', port: front.port, allowHalfOpen: true });
  const a = await front.accepted;
  const b = netConnect({ host: '127.0.0.1', port: app.port });
  await new Promise((resolve) => b.once('connect', resolve));
  const appSide = await app.accepted;
  splice(a, b);
  const readAll = (socket: Socket) =>
    new Promise<string>((resolve) => {
      let text = '';
      socket.setEncoding('utf8').on('data', (c: string) => (text += c));
      socket.once('end', () => resolve(text));
    });
  const close = () => {
    client.destroy();
    appSide.destroy();
    app.server.close();
    front.server.close();
  };
  return { client, appSide, readAll, close };
}

test('splice: a client that ends first still gets the answer sent after its end', async () => {
  const { client, appSide, readAll, close } = await splicedChain();
  try {
    const appGot = readAll(appSide);
    client.end('request');
    assert.equal(await appGot, 'request');
    const clientGot = readAll(client);
    appSide.end('answer after the client ended');
    assert.equal(await clientGot, 'answer after the client ended');
  } finally {
    close();
  }
});

test('splice: an app that ends first still hears what the client sends after that end', async () => {
  const { client, appSide, readAll, close } = await splicedChain();
  try {
    const clientGot = readAll(client);
    appSide.end('goodbye first');
    assert.equal(await clientGot, 'goodbye first');
    const appGot = readAll(appSide);
    client.end('the client still talks');
    assert.equal(await appGot, 'the client still talks');
  } finally {
    close();
  }
});

test('splice: a side that goes away without ending (reset) takes the other side down', async () => {
  const { client, appSide, close } = await splicedChain();
  try {
    // The app's connection is closed from the proxy's side (a FIN, or a reset if it had unread data).
    const appSawIt = new Promise((resolve) => {
      appSide.once('end', resolve);
      appSide.once('close', resolve);
    });
    appSide.on('error', () => {});
    appSide.resume();
    client.resetAndDestroy();
    await appSawIt;
  } finally {
    close();
  }
});
