// Deltas on the config stream (raw client): after an ACK a change comes as a delta from the acked version; full snapshots on a new stream, after a NACK, and to proxies that do not ask.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, sidecarNode, startTestControlPlane, StreamClient, waitFor } from './control-helpers.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { applySnapshotDelta } from '../../src/api/snapshot-delta.ts';
import type { ControlMessage, ProxyStatus } from '../../src/api/stream.ts';
import { snapshotVersion } from '../../src/compiler/compile.ts';

type Delta = Extract<ControlMessage, { type: 'delta' }>;
type Snapshot = Extract<ControlMessage, { type: 'snapshot' }>;

function service(name: string) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] } };
}

/** A static endpoint of Service `app` at `address`. */
function endpointAt(app: string, address: string) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${app}-static`, labels: { app } }, spec: { address, ports: [{ port: 9080 }] } };
}

/** The pushes (snapshots and deltas) a client got, in order. */
function pushes(client: StreamClient): (Snapshot | Delta)[] {
  return client.messages.filter((m): m is Snapshot | Delta => m.type === 'snapshot' || m.type === 'delta');
}

async function nthPush(client: StreamClient, n: number): Promise<Snapshot | Delta> {
  return waitFor(() => pushes(client)[n - 1], `push #${n}`);
}

describe('config stream deltas', () => {
  let cp: RunningControlPlane;
  const clients: StreamClient[] = [];
  let workloads = 0;
  /** A client that said hello (with `delta: true` unless told otherwise) as the only proxy of a fresh workload, so it has a cache entry to itself. */
  const connect = (delta = true, workload = `w${++workloads}`) => {
    const client = new StreamClient(cp.streamUrl);
    clients.push(client);
    client.send({ type: 'hello', node: sidecarNode({ id: `default/${workload}-0`, workload, instance: `${workload}-0` }), ...(delta ? { delta } : {}) });
    return client;
  };
  const apply = async (items: unknown[]) => assert.equal((await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items })).status, 200);
  const statusOf = async (id: string) => ((await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as ProxyStatus[]).find((p) => p.id === id);

  before(async () => {
    cp = await startTestControlPlane({ leaseTtlMs: 5000 });
    await apply([service('reviews'), endpointAt('reviews', '10.0.0.1')]);
  });
  after(async () => {
    for (const client of clients) client.close();
    await cp.close();
  });

  it('sends an endpoint change as a delta from the acked version; applied, it is the compiled snapshot', async () => {
    const client = connect();
    const first = (await nthPush(client, 1)) as Snapshot;
    assert.equal(first.type, 'snapshot', 'the first push on a stream is whole');
    client.send({ type: 'ack', version: first.version, nonce: first.nonce });
    await waitFor(async () => (await statusOf('default/w1-0'))?.ackedVersion === first.version, 'the ack');
    await apply([endpointAt('reviews', '10.0.0.2')]);
    const second = await nthPush(client, 2);
    assert.equal(second.type, 'delta');
    const delta = second as Delta;
    assert.equal(delta.base, first.version);
    assert.deepEqual(Object.keys(delta.delta), ['backends'], 'only the backend changed');
    assert.deepEqual(Object.keys(delta.delta.backends?.set ?? {}), ['default/reviews:9080']);
    const applied = applySnapshotDelta(first.snapshot, delta.delta, delta.version);
    assert.equal(snapshotVersion(applied), delta.version, 'the applied delta hashes to the version');
    assert.ok(applied.backends['default/reviews:9080']!.endpoints.some((e) => e.address === '10.0.0.2'));
    client.send({ type: 'ack', version: delta.version, nonce: delta.nonce });
    const status = await waitFor(async () => {
      const s = await statusOf('default/w1-0');
      return s?.ackedVersion === delta.version ? s : undefined;
    }, 'the ack of the delta');
    assert.equal(status.sentAsDelta, true);
    assert.equal(status.lastNack, undefined);

    // A route table that goes away is removed by key.
    await apply([service('ratings')]);
    const third = (await nthPush(client, 3)) as Delta;
    assert.equal(third.type, 'delta');
    assert.ok(third.delta.routes?.set?.['default/ratings:9080']);
    client.send({ type: 'ack', version: third.version, nonce: third.nonce });
    await waitFor(async () => (await statusOf('default/w1-0'))?.ackedVersion === third.version, 'the ack');
    assert.equal((await api(cp.apiUrl, 'DELETE', '/api/v1/namespaces/default/services/ratings')).status, 200);
    const fourth = (await nthPush(client, 4)) as Delta;
    assert.equal(fourth.type, 'delta');
    assert.deepEqual(fourth.delta.routes?.remove, ['default/ratings:9080']);
    const held = applySnapshotDelta(applySnapshotDelta(applied, third.delta, third.version), fourth.delta, fourth.version);
    assert.equal(snapshotVersion(held), fourth.version);
    assert.equal(held.routes['default/ratings:9080'], undefined);
  });

  it('answers a NACKed delta with the full snapshot, and sends full again until an ACK', async () => {
    const client = connect();
    const first = (await nthPush(client, 1)) as Snapshot;
    client.send({ type: 'ack', version: first.version, nonce: first.nonce });
    await waitFor(async () => (await statusOf('default/w2-0'))?.ackedVersion === first.version, 'the ack');
    await apply([endpointAt('reviews', '10.0.0.3')]);
    const delta = (await nthPush(client, 2)) as Delta;
    assert.equal(delta.type, 'delta');
    client.send({ type: 'nack', version: delta.version, nonce: delta.nonce, error: { code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'a delta from another version' } });
    const full = (await nthPush(client, 3)) as Snapshot;
    assert.equal(full.type, 'snapshot');
    assert.equal(full.version, delta.version, 'the same version, whole');
    assert.notEqual(full.nonce, delta.nonce);
    const status = await statusOf('default/w2-0');
    assert.equal(status?.lastNack, undefined, 'a refused delta is not a config problem; a refused snapshot would be');
    assert.equal(status?.sentAsDelta, false);

    // That one NACKed too: the next change is whole as well; after an ACK, deltas resume.
    client.send({ type: 'nack', version: full.version, nonce: full.nonce, error: { code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'no good' } });
    await waitFor(async () => (await statusOf('default/w2-0'))?.lastNack, 'the nack');
    await apply([endpointAt('reviews', '10.0.0.4')]);
    const after = (await nthPush(client, 4)) as Snapshot;
    assert.equal(after.type, 'snapshot');
    client.send({ type: 'ack', version: after.version, nonce: after.nonce });
    await waitFor(async () => (await statusOf('default/w2-0'))?.ackedVersion === after.version, 'the ack');
    await apply([endpointAt('reviews', '10.0.0.5')]);
    assert.equal((await nthPush(client, 5)).type, 'delta');
  });

  it('sends full snapshots when the last push is not acked yet, on a new stream, and to a proxy that does not take deltas', async () => {
    const client = connect(true, 'shared');
    const old = connect(false, 'shared-old');
    await nthPush(client, 1);
    const oldFirst = (await nthPush(old, 1)) as Snapshot;
    // Not acked: the next push is whole.
    await apply([endpointAt('reviews', '10.0.0.6')]);
    const second = await nthPush(client, 2);
    assert.equal(second.type, 'snapshot');
    client.send({ type: 'ack', version: second.version, nonce: second.nonce });
    old.send({ type: 'ack', version: oldFirst.version, nonce: oldFirst.nonce });
    await nthPush(old, 2);
    const oldSecond = pushes(old)[1]!;
    old.send({ type: 'ack', version: oldSecond.version, nonce: oldSecond.nonce });
    await waitFor(async () => (await statusOf('default/shared-0'))?.ackedVersion === second.version, 'the ack');
    await waitFor(async () => (await statusOf('default/shared-old-0'))?.ackedVersion === oldSecond.version, 'the ack');
    await apply([endpointAt('reviews', '10.0.0.7')]);
    assert.equal((await nthPush(client, 3)).type, 'delta');
    assert.equal((await nthPush(old, 3)).type, 'snapshot', 'a proxy that did not say delta: true gets whole snapshots');
    assert.ok(pushes(old).every((p) => p.type === 'snapshot'));

    // The same proxy again on a new stream, saying which version it runs: a change is sent whole.
    const third = pushes(client)[2]!;
    client.close();
    const again = new StreamClient(cp.streamUrl);
    clients.push(again);
    again.send({ type: 'hello', node: sidecarNode({ id: 'default/shared-0', workload: 'shared', instance: 'shared-0' }), runningVersion: third.version, delta: true });
    await again.nth('welcome');
    await apply([endpointAt('reviews', '10.0.0.8')]);
    const onReconnect = await nthPush(again, 1);
    assert.equal(onReconnect.type, 'snapshot');
    assert.ok((onReconnect as Snapshot).snapshot.backends['default/reviews:9080']!.endpoints.some((e) => e.address === '10.0.0.8'));
  });
});
