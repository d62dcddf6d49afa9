// BackendTrafficPolicy circuit breaking over HTTP/2 (h2c to apps, h2 on the mesh tunnel) and opaque TCP (CONNECT streams on the tunnel): limits hold per backend, overflow is refused at once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { BackendTraffic, ProxySnapshot } from '../../src/api/snapshot.ts';
import { freePorts } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { adminGet, buildSnapshot, endpoint, reversion, startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';

/** How long the h2c apps hold each request: long enough for a burst to overlap. */
const HOLD_MS = 300;

interface H2App {
  name: string;
  port: number;
  server: Http2Server;
  /** HTTP/2 sessions the app accepted, and requests it served. */
  sessions: number;
  requests: number;
}

async function startH2App(name: string, holdMs = HOLD_MS): Promise<H2App> {
  const server = createH2Server();
  const app: H2App = { name, port: 0, server, sessions: 0, requests: 0 };
  const timers = new Set<NodeJS.Timeout>();
  server.on('session', () => app.sessions++);
  server.on('stream', (stream) => {
    app.requests++;
    stream.on('error', () => {});
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stream.destroyed) stream.respond({ ':status': 200, 'x-backend': name }, { endStream: true });
    }, holdMs);
    timers.add(timer);
  });
  server.on('close', () => timers.forEach(clearTimeout));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.port = (server.address() as AddressInfo).port;
  return app;
}

function listening(server: Server | Http2Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: Server | Http2Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
  });
}

function withTraffic(snapshot: ProxySnapshot, traffic: Record<string, Omit<BackendTraffic, 'policy'>>): ProxySnapshot {
  for (const [key, value] of Object.entries(traffic)) snapshot.backends[key]!.traffic = { policy: 'default/limits', ...value };
  return reversion(snapshot);
}

async function metrics(proxy: TestProxy): Promise<string> {
  return (await adminGet(proxy.proxy.ports.admin, '/metrics')).body;
}

function circuitOpenCount(text: string): number {
  return Number(/^weft_proxy_responses_total\{reason="WEFT_ERR_CIRCUIT_OPEN"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** Sockets a test holds open; destroyed at the end whatever happened. */
const held = new Set<Socket>();

/**
 * A TCP connection to a local port, checked by an echo: "open" once `probe`
 * comes back, "refused" if the connection ends or resets first.
 */
function openEcho(port: number, probe: string): Promise<{ socket: Socket; outcome: 'open' | 'refused' }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    held.add(socket);
    let got = '';
    let done = false;
    const settle = (outcome: 'open' | 'refused') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ socket, outcome });
    };
    const timer = setTimeout(() => settle('refused'), 5000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      got += chunk;
      if (got === probe) settle('open');
    });
    socket.once('connect', () => socket.write(probe));
    socket.once('end', () => settle('refused'));
    socket.once('close', () => settle('refused'));
    socket.on('error', () => settle('refused'));
  });
}

/** The raw answer head of `CONNECT authority` sent to a sidecar's outbound port. */
function connectHead(port: number, authority: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    held.add(socket);
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no answer to CONNECT ${authority}`)), 5000);
    socket.setEncoding('latin1');
    socket.once('connect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`));
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      resolve(text.slice(0, end));
    });
    socket.on('error', (error) => (clearTimeout(timer), reject(error)));
  });
}

describe('circuit breaking over HTTP/2 (h2c to an app)', () => {
  let web: H2App;
  let api: H2App;
  let rotating: H2App;
  let proxy: TestProxy;

  before(async () => {
    [web, api, rotating] = await Promise.all([startH2App('web'), startH2App('api'), startH2App('rotating', 0)]);
    const limits = { circuitBreaker: { maxConnections: 1, maxPendingRequests: 0, maxRequests: 3 } };
    const snapshot = buildSnapshot({
      services: [
        { name: 'web', ports: [{ port: 80, protocol: 'http2', endpoints: [endpoint('default/web-0', web.port)] }] },
        { name: 'api', ports: [{ port: 80, protocol: 'http2', endpoints: [endpoint('default/api-0', api.port)] }] },
        { name: 'rotating', ports: [{ port: 80, protocol: 'http2', endpoints: [endpoint('default/rotating-0', rotating.port)] }] },
      ],
    });
    proxy = await startTestProxy({
      snapshot: withTraffic(snapshot, {
        'default/web:80': limits,
        'default/api:80': limits,
        'default/rotating:80': { connection: { maxRequestsPerConnection: 2 } },
      }),
    });
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([web, api, rotating].map((app) => closeServer(app?.server)));
  });

  it('maxRequests bounds the streams, maxConnections the sessions, and streams multiplexed on a session are not pending; the other backend keeps its own limit', async () => {
    const out = proxy.proxy.ports.outbound;
    const before = circuitOpenCount(await metrics(proxy));
    const started = performance.now();
    const timed = async (target: string) => {
      const res = await viaProxy(out, target);
      return { status: res.status, reason: res.headers['weft-reason'], backend: res.headers['x-backend'], ms: performance.now() - started };
    };
    const [toWeb, toApi] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, () => timed('http://web/'))),
      Promise.all(Array.from({ length: 3 }, () => timed('http://api/'))),
    ]);
    const ok = toWeb.filter((r) => r.status === 200);
    const refused = toWeb.filter((r) => r.status === 503);
    // With one request per connection, maxConnections 1 and no pending allowed would let one through;
    // HTTP/2 carries all three on its one session (Envoy: max_pending_requests only while the session connects).
    assert.equal(ok.length, 3, JSON.stringify(toWeb));
    assert.equal(refused.length, 2, JSON.stringify(toWeb));
    const firstAnswer = Math.min(...ok.map((r) => r.ms));
    for (const r of refused) {
      assert.equal(r.reason, 'WEFT_ERR_CIRCUIT_OPEN');
      assert.ok(r.ms < firstAnswer, `refused at once (${r.ms.toFixed(0)} ms), before the app answers (${firstAnswer.toFixed(0)} ms)`);
    }
    assert.equal(web.requests, 3, 'refused requests never reach the app');
    assert.equal(web.sessions, 1, 'one HTTP/2 session (maxConnections 1)');
    assert.deepEqual(toApi.map((r) => `${r.status} ${r.backend}`), ['200 api', '200 api', '200 api'], 'the other backend is not affected');
    assert.equal(circuitOpenCount(await metrics(proxy)) - before, 2, 'counted by weft-reason');
    // The limit frees up as streams end.
    const again = await Promise.all(Array.from({ length: 3 }, () => viaProxy(out, 'http://web/')));
    assert.deepEqual(again.map((r) => r.status), [200, 200, 200]);
    assert.equal(web.sessions, 1, 'still the one session');
  });

  it('maxRequestsPerConnection: a session takes that many streams, then the next request opens another', async () => {
    const out = proxy.proxy.ports.outbound;
    for (let i = 0; i < 6; i++) assert.equal((await viaProxy(out, 'http://rotating/')).status, 200);
    assert.equal(rotating.requests, 6);
    assert.equal(rotating.sessions, 3, 'six requests at two per session');
  });

  it('a gRPC call over the limit is answered RESOURCE_EXHAUSTED with the circuit-open reason', async () => {
    const out = proxy.proxy.ports.outbound;
    const grpc = { 'content-type': 'application/grpc', te: 'trailers' };
    const calls = await Promise.all(Array.from({ length: 4 }, () => viaProxy(out, 'http://web/pkg.Svc/Call', { method: 'POST', headers: grpc, body: '' })));
    const refused = calls.filter((r) => r.headers['weft-reason'] === 'WEFT_ERR_CIRCUIT_OPEN');
    assert.equal(refused.length, 1, JSON.stringify(calls.map((r) => [r.status, r.headers])));
    assert.equal(refused[0]!.headers['grpc-status'], '8', 'RESOURCE_EXHAUSTED');
  });
});

describe('circuit breaking over the mesh tunnel (h2 streams and TCP as CONNECT streams)', () => {
  const apps: (Server | Http2Server)[] = [];
  let server: TestProxy;
  let client: TestProxy;
  let h2app: H2App;
  const echoConnections = { db: 0, cache: 0 };
  let local: { db: number; cache: number };

  /** Declared app ports behind the server sidecar. */
  const DB = 7401;
  const CACHE = 7402;
  const GRPC = 7403;

  before(async () => {
    const echo = (name: 'db' | 'cache') =>
      createServer((socket) => {
        echoConnections[name]++;
        held.add(socket);
        socket.on('error', () => socket.destroy());
        socket.pipe(socket);
      });
    const db = echo('db');
    const cache = echo('cache');
    h2app = await startH2App('grpc');
    apps.push(db, cache, h2app.server);
    const [dbPort, cachePort] = await Promise.all([listening(db), listening(cache)]);
    server = await startTestProxy({
      workload: 'db',
      instance: 'db-0',
      appPorts: [
        { declared: DB, actual: dbPort! },
        { declared: CACHE, actual: cachePort! },
        { declared: GRPC, actual: h2app.port },
      ],
      snapshot: buildSnapshot({ workload: 'db', inboundPorts: [DB, CACHE, GRPC] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    const ports = await freePorts(2);
    local = { db: ports[0]!, cache: ports[1]! };
    const snapshot = buildSnapshot({
      workload: 'app',
      services: [
        { name: 'db', ports: [{ port: DB, protocol: 'tcp', endpoints: [endpoint('default/db-0', DB, tunnel)] }] },
        { name: 'cache', ports: [{ port: CACHE, protocol: 'tcp', endpoints: [endpoint('default/db-0', CACHE, tunnel)] }] },
        { name: 'grpc', ports: [{ port: GRPC, protocol: 'http2', endpoints: [endpoint('default/db-0', GRPC, tunnel)] }] },
      ],
      upstreams: [
        { localPort: local.db, routeKey: `default/db:${DB}`, host: `db:${DB}` },
        { localPort: local.cache, routeKey: `default/cache:${CACHE}`, host: `cache:${CACHE}` },
      ],
    });
    client = await startTestProxy({
      workload: 'app',
      snapshot: withTraffic(snapshot, {
        [`default/db:${DB}`]: { circuitBreaker: { maxConnections: 2 } },
        // One session, nothing may wait for one: streams multiplexed on it are not waiting.
        [`default/grpc:${GRPC}`]: { circuitBreaker: { maxConnections: 1, maxPendingRequests: 0, maxRequests: 2 } },
      }),
    });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await client?.close();
    await server?.close();
    await Promise.all(apps.map(closeServer));
  });

  it('TCP: maxConnections bounds the connections open to the endpoint; beyond it a connection is refused and counted, other backends unaffected, and the limit recovers', async () => {
    const before = circuitOpenCount(await metrics(client));
    const first = await openEcho(local.db, 'one');
    const second = await openEcho(local.db, 'two');
    assert.deepEqual([first.outcome, second.outcome], ['open', 'open']);
    const reached = echoConnections.db;
    const third = await openEcho(local.db, 'three');
    assert.equal(third.outcome, 'refused', 'a third connection to db is closed');
    assert.equal(echoConnections.db, reached, 'the refused connection never reaches the app');
    // Through the forward proxy, the refusal has a status and a reason.
    const head = await connectHead(client.proxy.ports.outbound, `db:${DB}`);
    assert.match(head, /^HTTP\/1\.1 503/);
    assert.match(head, /weft-reason: WEFT_ERR_CIRCUIT_OPEN/i);
    // Another backend, through the same tunnel, is not limited by db's policy.
    const others = await Promise.all(['a', 'b', 'c'].map((probe) => openEcho(local.cache, probe)));
    assert.deepEqual(others.map((o) => o.outcome), ['open', 'open', 'open']);
    assert.equal(circuitOpenCount(await metrics(client)) - before, 2, 'both refusals counted by weft-reason');
    // A closed connection frees its place.
    first.socket.destroy();
    let fourth: Awaited<ReturnType<typeof openEcho>> | undefined;
    await waitFor(async () => {
      fourth?.socket.destroy();
      fourth = await openEcho(local.db, 'four');
      return fourth.outcome === 'open';
    }, { timeoutMs: 5000, intervalMs: 50, message: 'a connection to db is accepted again once one closed' });
    second.socket.destroy();
    fourth?.socket.destroy();
  });

  it('HTTP/2 on the tunnel: maxRequests bounds the streams to the backend, multiplexed streams do not count as pending, and the tunnel keeps to maxConnections sessions', async () => {
    const out = client.proxy.ports.outbound;
    const before = h2app.requests;
    const burst = await Promise.all(Array.from({ length: 4 }, () => viaProxy(out, `http://grpc:${GRPC}/`)));
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 200, 503, 503]);
    assert.ok(burst.filter((r) => r.status === 503).every((r) => r.headers['weft-reason'] === 'WEFT_ERR_CIRCUIT_OPEN'));
    assert.equal(h2app.requests - before, 2, 'refused streams never reach the app');
    const sessions = Number(/^weft_tunnel_sessions_total\{event="opened",reason="dial"\} (\d+)$/m.exec(await metrics(client))?.[1] ?? 0);
    assert.ok(sessions >= 1 && sessions <= 2, `${sessions} tunnel sessions opened to the peer (its backends' maxConnections are 1 and 2)`);
  });
});
