// The config stream with a raw HTTP/2 NDJSON client: hello, snapshots, ack/nack, pushes, registration under a lease, shutdown.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { api, sidecarNode, startTestControlPlane, StreamClient, waitFor } from './control-helpers.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { checkSnapshot } from '../../src/compiler/compile.ts';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { systemClock } from '../../src/telemetry/clock.ts';

const WORKLOADS = '/apis/weft.dev/v1alpha1/namespaces/default/workloads';

const template = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'Workload',
  metadata: { name: 'reviews', labels: { app: 'reviews', version: 'v1' } },
  spec: { serviceAccount: 'bookinfo-reviews', ports: [{ name: 'http', port: 9080 }], locality: { zone: 'z1' } },
};

function service(name: string, port = 9080) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port }] } };
}

async function proxies(base: string): Promise<ProxyStatus[]> {
  return (await api(base, 'GET', '/weft/v1/proxies')).body as ProxyStatus[];
}

describe('config stream', () => {
  let cp: RunningControlPlane;
  const clients: StreamClient[] = [];
  const connect = () => {
    const client = new StreamClient(cp.streamUrl);
    clients.push(client);
    return client;
  };
  before(async () => {
    // A long TTL: withdrawals seen here are the stream's doing, not lease expiry.
    cp = await startTestControlPlane({ leaseTtlMs: 5000 });
    const res = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [template, service('reviews')] });
    assert.equal(res.status, 200, res.text);
  });
  after(async () => {
    for (const client of clients) client.close();
    await cp.close();
  });

  it('answers hello with welcome and the current snapshot; records the ack', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/hello-1', instance: 'hello-1' }) });
    const welcome = await client.nth('welcome');
    assert.equal(client.status, 200);
    assert.deepEqual(welcome, { type: 'welcome', leaseTtlMs: 5000, heartbeatMs: 1666 });
    const snapshot = await client.nth('snapshot');
    assert.equal(client.messages[0]!.type, 'welcome', 'welcome comes first');
    assert.match(snapshot.nonce, /^[0-9a-f]{16}$/);
    assert.equal(snapshot.version, snapshot.snapshot.version);
    assert.deepEqual(checkSnapshot(snapshot.snapshot as ProxySnapshot), []);
    assert.ok(snapshot.snapshot.services.some((s) => s.name === 'reviews'));
    const status = (await proxies(cp.apiUrl)).find((p) => p.id === 'default/hello-1');
    assert.equal(status?.connected, true);
    assert.equal(status?.sentVersion, snapshot.version);
    assert.equal(status?.ackedVersion, undefined);
    client.send({ type: 'ack', version: snapshot.version, nonce: 'stale-nonce' });
    client.send({ type: 'ack', version: snapshot.version, nonce: snapshot.nonce });
    await waitFor(async () => (await proxies(cp.apiUrl)).find((p) => p.id === 'default/hello-1')?.ackedVersion === snapshot.version, 'the ack');
    client.end();
    await waitFor(async () => (await proxies(cp.apiUrl)).find((p) => p.id === 'default/hello-1')?.connected === false, 'disconnected');
  });

  it('records a nack, ignores one with a stale nonce, and shows it in /weft/v1/proxies', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/nack-1', instance: 'nack-1' }) });
    const snapshot = await client.nth('snapshot');
    client.send({ type: 'nack', version: snapshot.version, nonce: 'old', error: { code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'stale' } });
    client.send({ type: 'nack', version: snapshot.version, nonce: snapshot.nonce, error: { code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'no good' } });
    const status = await waitFor(async () => (await proxies(cp.apiUrl)).find((p) => p.id === 'default/nack-1' && p.lastNack), 'the nack');
    assert.equal(status.lastNack?.version, snapshot.version);
    assert.equal(status.lastNack?.code, 'WEFT_ERR_SNAPSHOT_INVALID');
    assert.equal(status.lastNack?.message, 'no good');
    assert.match(status.lastNack?.at ?? '', /^\d{4}-/);
    assert.equal(status.ackedVersion, undefined);
    client.end();
  });

  it('pushes a new snapshot after a config change, one for a burst', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/push-1', instance: 'push-1' }) });
    const first = await client.nth('snapshot');
    client.send({ type: 'ack', version: first.version, nonce: first.nonce });
    const started = Date.now();
    await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [service('ratings')] });
    const second = await client.nth('snapshot', 2, 1000);
    assert.ok(Date.now() - started < 1000);
    assert.notEqual(second.version, first.version);
    assert.notEqual(second.nonce, first.nonce);
    assert.ok(second.snapshot.services.some((s) => s.name === 'ratings'));

    // Ten writes in one tick: one push.
    await Promise.all(Array.from({ length: 10 }, (_, i) => cp.store.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: `burst-${i}`, namespace: 'default' }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } })));
    const third = await client.nth('snapshot', 3);
    assert.equal(third.snapshot.services.filter((s) => s.name.startsWith('burst-')).length, 10);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(client.snapshots().length, 3, 'a burst of changes gives one push');
    client.end();
  });

  it('does not resend the version a proxy says it runs', async () => {
    const probe = connect();
    probe.send({ type: 'hello', node: sidecarNode({ id: 'default/run-1', instance: 'run-1' }) });
    const current = await probe.nth('snapshot');
    probe.end();
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/run-1', instance: 'run-1' }), runningVersion: current.version });
    await client.nth('welcome');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(client.snapshots().length, 0);
    const status = (await proxies(cp.apiUrl)).find((p) => p.id === 'default/run-1');
    assert.equal(status?.ackedVersion, current.version);
    assert.equal(status?.sentVersion, current.version);
    client.end();
  });

  it('registers a Workload instance on ready, and withdraws it when the stream closes', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-r1', instance: 'reviews-r1', address: '10.1.2.3', tunnelPort: 15999 }) });
    await client.nth('snapshot');
    client.send({ type: 'ready', ready: true });
    const instance = await waitFor(async () => {
      const res = await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r1`);
      return res.status === 200 ? res.body : undefined;
    }, 'the registered instance');
    assert.deepEqual(instance.metadata.labels, { app: 'reviews', version: 'v1', 'weft.dev/workload': 'reviews' });
    assert.equal(instance.spec.address, '10.1.2.3');
    assert.equal(instance.spec.tunnelPort, 15999);
    assert.equal(instance.spec.serviceAccount, 'bookinfo-reviews');
    assert.deepEqual(instance.spec.ports, [{ name: 'http', port: 9080 }]);
    assert.deepEqual(instance.spec.locality, { zone: 'z1' });
    const pushed = await waitFor(
      () => client.snapshots().find((s) => s.snapshot.backends['default/reviews:9080']?.endpoints.some((e) => e.address === '10.1.2.3')),
      'a snapshot with the new endpoint',
    );
    assert.equal(pushed.snapshot.backends['default/reviews:9080']?.endpoints[0]?.tunnelPort, 15999);
    assert.equal((await proxies(cp.apiUrl)).find((p) => p.id === 'default/reviews-r1')?.ready, true);
    client.end();
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r1`)).status === 404, 'the instance to go', 1000);
    await waitFor(() => client.ended, 'the stream to end');
  });

  it('withdraws the instance on ready:false and registers it again on ready:true', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-r2', instance: 'reviews-r2' }) });
    client.send({ type: 'ready', ready: true });
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r2`)).status === 200, 'registered');
    client.send({ type: 'ready', ready: false });
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r2`)).status === 404, 'withdrawn', 1000);
    client.send({ type: 'ready', ready: true });
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r2`)).status === 200, 'registered again');
    client.end();
  });

  it('withdraws the instance when the connection drops without a goodbye', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-r4', instance: 'reviews-r4' }) });
    client.send({ type: 'ready', ready: true });
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r4`)).status === 200, 'registered');
    client.close();
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r4`)).status === 404, 'withdrawn', 1000);
  });

  it('ends a stream that does not start with hello, and refuses other paths', async () => {
    const client = connect();
    client.send({ type: 'heartbeat' });
    const error = await client.nth('error');
    assert.equal(error.code, 'WEFT_ERR_BAD_REQUEST');
    await waitFor(() => client.ended, 'the stream to end');

    const session = http2.connect(cp.streamUrl);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'GET', ':path': '/nope' });
        req.on('response', (headers) => resolve(Number(headers[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(status, 404);
    } finally {
      session.close();
    }
  });
});

describe('config stream: leases', () => {
  it('keeps an instance while heartbeats come, and drops it a lease TTL after they stop', async () => {
    const cp = await startTestControlPlane({ leaseTtlMs: 300 });
    const client = new StreamClient(cp.streamUrl);
    try {
      await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [template] });
      client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-r3', instance: 'reviews-r3' }) });
      assert.deepEqual(await client.nth('welcome'), { type: 'welcome', leaseTtlMs: 300, heartbeatMs: 100 });
      client.send({ type: 'ready', ready: true });
      await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r3`)).status === 200, 'registered');
      for (let i = 0; i < 8; i++) {
        client.send({ type: 'heartbeat' });
        await new Promise((resolve) => setTimeout(resolve, 80));
      }
      assert.equal((await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r3`)).status, 200, 'heartbeats keep the registration past the TTL');
      const silentSince = Date.now();
      await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-r3`)).status === 404, 'the lease to expire', 3000);
      assert.ok(Date.now() - silentSince >= 150, 'not long before the TTL');
      await waitFor(async () => (await proxies(cp.apiUrl)).find((p) => p.id === 'default/reviews-r3')?.connected === false, 'the silent stream closed');
    } finally {
      client.close();
      await cp.close();
    }
  });
});

describe('config stream: failed checks and shutdown', () => {
  it('keeps serving the previous snapshot when a new one fails its check, and shows the error', async () => {
    // A compiler whose check rejects any snapshot that mentions a Service named "poison".
    const cp = await startTestControlPlane({
      compiler: {
        checkSnapshot: (s) => (s.services.some((svc) => svc.name === 'poison') ? ['poison is not allowed'] : checkSnapshot(s)),
      },
    });
    const client = new StreamClient(cp.streamUrl);
    try {
      client.send({ type: 'hello', node: sidecarNode() });
      const good = await client.nth('snapshot');
      await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [service('poison')] });
      const status = await waitFor(async () => {
        const body = (await api(cp.apiUrl, 'GET', '/weft/v1/status')).body;
        return body.compileErrors.length ? body : undefined;
      }, 'the compile error');
      assert.deepEqual(status.compileErrors[0].problems, ['poison is not allowed']);
      assert.equal(status.snapshots[0].version, good.version, 'the previous snapshot is still the one served');
      assert.deepEqual(status.snapshots[0].lastError.problems, ['poison is not allowed']);
      assert.equal(client.snapshots().length, 1);
      // A new proxy with the same input gets the last good snapshot too.
      const late = new StreamClient(cp.streamUrl);
      try {
        late.send({ type: 'hello', node: sidecarNode({ id: 'default/late' }) });
        assert.equal((await late.nth('snapshot')).version, good.version);
      } finally {
        late.close();
      }
      await api(cp.apiUrl, 'DELETE', '/api/v1/namespaces/default/services/poison');
      await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [service('fine')] });
      const next = await client.nth('snapshot', 2);
      assert.ok(next.snapshot.services.some((s) => s.name === 'fine'));
    } finally {
      client.close();
      await cp.close();
    }
  });

  it('ends every stream on close without withdrawing registrations, and closes quickly', async () => {
    const store = new MemoryStore({ clock: systemClock });
    const cp = await startTestControlPlane({ leaseTtlMs: 5000, store });
    const client = new StreamClient(cp.streamUrl);
    try {
      await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [template] });
      client.send({ type: 'hello', node: sidecarNode() });
      client.send({ type: 'ready', ready: true });
      await waitFor(async () => (await api(cp.apiUrl, 'GET', `${WORKLOADS}/reviews-abc`)).status === 200, 'registered');
      const started = Date.now();
      await cp.close();
      assert.ok(Date.now() - started < 1500, `close took ${Date.now() - started} ms`);
      await waitFor(() => client.ended, 'the stream to end');
      assert.ok(await store.get('weft.dev/Workload/default/reviews-abc'), 'the registration outlives the control plane');
    } finally {
      client.close();
      await store.close();
    }
  });
});
