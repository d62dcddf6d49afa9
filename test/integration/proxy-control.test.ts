// The proxy and its control plane: hello, heartbeats, ACK/NACK, live updates, reconnects, readiness, starting from disk.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ProxyMessage } from '../../src/api/stream.ts';
import { freePort } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { adminGet, buildSnapshot, endpoint, FakeControlPlane, startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';

function snapshotTo(backend: Backend, extra: { path?: string; upstreams?: { localPort: number }[] } = {}) {
  const key = 'default/svc:80';
  return buildSnapshot({
    workload: 'client',
    services: [
      {
        name: 'svc',
        ports: [
          {
            port: 80,
            endpoints: [endpoint(`default/${backend.name}`, backend.port)],
            rules: extra.path
              ? [{ id: 'r', match: { path: { type: 'RegularExpression', value: extra.path } }, filters: [], backends: [{ backend: key, weight: 1, filters: [] }] }]
              : undefined,
          },
        ],
      },
    ],
    upstreams: (extra.upstreams ?? []).map((u) => ({ localPort: u.localPort, routeKey: key, host: 'svc.default:80' })),
  });
}

async function nameVia(port: number, path = '/'): Promise<string> {
  const res = await viaProxy(port, `http://svc${path}`);
  return res.status === 200 ? res.json().name : `${res.status} ${String(res.headers['weft-reason'])}`;
}

/** A fake control plane, backends a and b, and a client proxy that has said hello; all closed after `t`. */
async function clientUnderFakeControlPlane(t: TestContext): Promise<{ cp: FakeControlPlane; a: Backend; b: Backend; p: TestProxy }> {
  const cp = await FakeControlPlane.start();
  t.after(() => cp.close());
  const [a, b] = [await startBackend('a'), await startBackend('b')];
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await startTestProxy({ controlPlane: cp.url, workload: 'client' });
  t.after(() => p.close());
  await waitFor(() => cp.hellos().length > 0, { message: 'a hello' });
  return { cp, a, b, p };
}

describe('proxy ↔ control plane', () => {
  it('says hello with its node info and readiness, heartbeats, and ACKs a snapshot it applies', async (t) => {
    const cp = await FakeControlPlane.start();
    cp.heartbeatMs = 100;
    t.after(() => cp.close());
    const a = await startBackend('a');
    t.after(() => a.close());
    const p = await startTestProxy({ controlPlane: cp.url, workload: 'client', instance: 'client-0', appPorts: [{ declared: 8080, actual: a.port }] });
    t.after(() => p.close());

    const [hello] = await waitFor(() => (cp.hellos().length > 0 ? cp.hellos() : undefined), { message: 'a hello' });
    assert.deepEqual(hello, {
      id: 'default/client-0',
      mode: 'sidecar',
      namespace: 'default',
      workload: 'client',
      instance: 'client-0',
      address: '127.0.0.1',
      tunnelPort: p.proxy.ports.tunnel,
      appPorts: [8080],
      // Where its admin /metrics is, for `weft prometheus-config`.
      adminPort: p.proxy.ports.admin,
      adminHost: '127.0.0.1',
    });
    await waitFor(() => cp.received.some((m) => m.type === 'ready' && m.ready), { message: 'ready: true (the app port accepts connections)' });
    await waitFor(() => cp.received.filter((m) => m.type === 'heartbeat').length >= 2, { message: 'heartbeats' });
    assert.equal((await adminGet(p.proxy.ports.admin, '/ready')).status, 503, 'not ready before a snapshot');

    const snapshot = snapshotTo(a);
    const nonce = cp.push(snapshot);
    assert.deepEqual(await cp.answerTo(nonce), { type: 'ack', version: snapshot.version, nonce });
    assert.equal(await nameVia(p.proxy.ports.outbound), 'a');
    assert.equal((await adminGet(p.proxy.ports.admin, '/ready')).status, 200);
    const config = (await adminGet(p.proxy.ports.admin, '/config')).json<{ source: string; version: string; controlPlane: { connected: boolean } }>();
    assert.equal(config.source, 'control-plane');
    assert.equal(config.version, snapshot.version);
    assert.equal(config.controlPlane.connected, true);
    await waitFor(() => JSON.parse(readFileSync(join(p.dataDir, 'snapshot.json'), 'utf8')).version === snapshot.version, { message: 'the snapshot saved to disk' });
  });

  it('NACKs a snapshot with a bad regex or an upstream port in use, and keeps serving the old config', async (t) => {
    const { cp, a, b, p } = await clientUnderFakeControlPlane(t);
    const good = snapshotTo(a);
    assert.equal((await cp.answerTo(cp.push(good))).type, 'ack');

    const badRegex = snapshotTo(b, { path: '/(unclosed' });
    const nack = await cp.answerTo(cp.push(badRegex));
    assert.equal(nack.type, 'nack');
    assert.equal(nack.version, badRegex.version);
    assert.equal((nack as Extract<ProxyMessage, { type: 'nack' }>).error.code, 'WEFT_ERR_SNAPSHOT_INVALID');
    assert.match((nack as Extract<ProxyMessage, { type: 'nack' }>).error.message, /regular expression/);
    assert.equal(await nameVia(p.proxy.ports.outbound), 'a', 'the last good config still serves');

    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => blocker.close(resolve)));
    const taken = (blocker.address() as AddressInfo).port;
    const inUse = snapshotTo(b, { upstreams: [{ localPort: taken }] });
    const nack2 = (await cp.answerTo(cp.push(inUse))) as Extract<ProxyMessage, { type: 'nack' }>;
    assert.equal(nack2.type, 'nack');
    assert.match(nack2.error.message, new RegExp(`${taken}.*EADDRINUSE`));
    assert.equal(await nameVia(p.proxy.ports.outbound), 'a');
    const config = (await adminGet(p.proxy.ports.admin, '/config')).json<{ version: string }>();
    assert.equal(config.version, good.version);
    const metrics = (await adminGet(p.proxy.ports.admin, '/metrics')).body;
    assert.match(metrics, /weft_snapshot_applies_total\{result="error"\} 2/);

    // A later good snapshot opens its upstream port.
    const free = await freePort();
    assert.equal((await cp.answerTo(cp.push(snapshotTo(b, { upstreams: [{ localPort: free }] })))).type, 'ack');
    assert.equal((await viaProxy(free, '/', { headers: { host: 'svc' } })).json().name, 'b');
  });

  it('applies a live update without dropping an in-flight request or a kept-alive connection', async (t) => {
    const { cp, a, b, p } = await clientUnderFakeControlPlane(t);
    assert.equal((await cp.answerTo(cp.push(snapshotTo(a)))).type, 'ack');

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const first = await viaProxy(p.proxy.ports.outbound, 'http://svc/first', { agent });
    assert.equal(first.json().name, 'a');
    const slow = viaProxy(p.proxy.ports.outbound, 'http://svc/slow?delay=400', { agent });
    await waitFor(() => a.requests >= 2, { message: 'the slow request reaching a' });
    assert.equal((await cp.answerTo(cp.push(snapshotTo(b)))).type, 'ack');
    const slowDone = await slow;
    assert.equal(slowDone.status, 200, 'the in-flight request finishes on the old config');
    assert.equal(slowDone.json().name, 'a');
    const next = await viaProxy(p.proxy.ports.outbound, 'http://svc/next', { agent });
    assert.equal(next.json().name, 'b', 'the next request follows the new config');
    assert.equal(next.reusedSocket, true, 'on the same client connection');
  });

  it('reconnects after the control plane goes away, says hello again with its running version and readiness', async (t) => {
    let cp = await FakeControlPlane.start();
    const port = cp.port;
    t.after(() => cp.close());
    const a = await startBackend('a');
    t.after(() => a.close());
    const p = await startTestProxy({ controlPlane: cp.url, workload: 'client', reconnectBackoff: { initialMs: 20, maxMs: 100 } });
    t.after(() => p.close());
    await waitFor(() => cp.hellos().length > 0, { message: 'a hello' });
    const snapshot = snapshotTo(a);
    assert.equal((await cp.answerTo(cp.push(snapshot))).type, 'ack');

    await cp.close();
    await waitFor(async () => (await adminGet(p.proxy.ports.admin, '/config')).json<{ controlPlane: { connected: boolean } }>().controlPlane.connected === false, {
      message: 'the proxy noticing',
    });
    assert.equal(await nameVia(p.proxy.ports.outbound), 'a', 'serves on while the control plane is away');
    cp = await FakeControlPlane.start(port);
    await waitFor(() => cp.received.some((m) => m.type === 'ready'), { timeoutMs: 5000, message: 'hello and ready on the new stream' });
    const hello = cp.received.find((m): m is Extract<ProxyMessage, { type: 'hello' }> => m.type === 'hello');
    assert.equal(hello?.runningVersion, snapshot.version);
    assert.deepEqual(cp.received.find((m) => m.type === 'ready'), { type: 'ready', ready: true }, 'a proxy without app ports is ready');
    const again = cp.push(snapshot);
    assert.equal((await cp.answerTo(again)).type, 'ack', 'the running version is acknowledged without a re-apply');
  });

  it('reports the app ready and not ready as its port comes and goes', async (t) => {
    const cp = await FakeControlPlane.start();
    t.after(() => cp.close());
    const app = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appPort = (app.address() as AddressInfo).port;
    const p = await startTestProxy({ controlPlane: cp.url, workload: 'w', appPorts: [{ declared: 80, actual: appPort }], readinessIntervalMs: 50 });
    t.after(() => p.close());
    const readies = () => cp.received.flatMap((m) => (m.type === 'ready' ? [m.ready] : []));
    await waitFor(() => readies().includes(true), { message: 'ready: true' });
    await new Promise((resolve) => app.close(resolve));
    await waitFor(() => readies().at(-1) === false, { message: 'ready: false once the app is gone' });
    const back = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => back.listen(appPort, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => back.close(resolve)));
    await waitFor(() => readies().at(-1) === true, { message: 'ready: true again' });
    assert.deepEqual(readies(), [false, true, false, true], 'each change is sent once, after the initial state');
  });

  it('starts from the snapshot on disk while the control plane is unreachable, then takes the control plane\'s', async (t) => {
    const [a, b] = [await startBackend('a'), await startBackend('b')];
    t.after(() => Promise.all([a.close(), b.close()]));
    const port = await freePort();
    const p = await startTestProxy({ controlPlane: `http://127.0.0.1:${port}`, workload: 'client', snapshot: snapshotTo(a), reconnectBackoff: { initialMs: 20, maxMs: 100 } });
    t.after(() => p.close());
    assert.equal(await nameVia(p.proxy.ports.outbound), 'a');
    assert.equal((await adminGet(p.proxy.ports.admin, '/ready')).status, 200);
    const config = (await adminGet(p.proxy.ports.admin, '/config')).json<{ source: string }>();
    assert.equal(config.source, 'disk');

    const cp = await FakeControlPlane.start(port);
    t.after(() => cp.close());
    await waitFor(() => cp.hellos().length > 0, { timeoutMs: 5000, message: 'a hello once the control plane is up' });
    assert.equal((await cp.answerTo(cp.push(snapshotTo(b)))).type, 'ack');
    assert.equal(await nameVia(p.proxy.ports.outbound), 'b');
    assert.equal((await adminGet(p.proxy.ports.admin, '/config')).json<{ source: string }>().source, 'control-plane');
  });

  it('ignores a corrupt snapshot file and waits for the control plane', async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'weft-proxy-'));
    writeFileSync(join(dataDir, 'snapshot.json'), '{not json');
    const p = await startTestProxy({ dataDir });
    t.after(() => p.close());
    assert.equal((await adminGet(p.proxy.ports.admin, '/ready')).status, 503);
    const res = await viaProxy(p.proxy.ports.outbound, 'http://svc/');
    assert.equal(res.status, 502);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
  });
});
