// Snapshot deltas: computing and applying them (removals, whole sections, malformed deltas), and the discovery client taking them (base mismatch, bad result → NACK).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError, ErrorCodes } from '../../src/api/errors.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';
import { applySnapshotDelta, computeSnapshotDelta, sameJsonValue } from '../../src/api/snapshot-delta.ts';
import type { ProxyMessage } from '../../src/api/stream.ts';
import { snapshotVersion } from '../../src/compiler/compile.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import { SnapshotCache } from '../../src/control/cache.ts';
import { ResourceIndex } from '../../src/control/index.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { DiscoveryClient } from '../../src/proxy/discovery.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { ManualClock, systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { buildSnapshot, endpoint, FakeControlPlane } from '../integration/proxy-helpers.ts';

/** A snapshot whose version is its content hash, as the compiler makes them. */
function versioned(snapshot: ProxySnapshot): ProxySnapshot {
  const { version: _old, ...content } = structuredClone(snapshot);
  return { ...content, version: snapshotVersion(content) };
}

/** Services a and b, each with one endpoint on `port`. */
function twoServices(aPort = 8001, bPort = 8002): ProxySnapshot {
  return versioned(
    buildSnapshot({
      workload: 'client',
      services: [
        { name: 'a', ports: [{ port: 80, endpoints: [endpoint('default/a-0', aPort)] }] },
        { name: 'b', ports: [{ port: 80, endpoints: [endpoint('default/b-0', bPort)] }] },
      ],
    }),
  );
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** What goes over the wire: JSON out and back. */
function wire<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

test('an endpoint change is one backend entry; nothing else is sent', () => {
  const from = twoServices();
  const to = twoServices(8001, 9002);
  const delta = computeSnapshotDelta(from, to);
  assert.deepEqual(delta, { backends: { set: { 'default/b:80': to.backends['default/b:80'] } } });
  assert.equal(computeSnapshotDelta(from, versioned(from)), undefined, 'equal content, rebuilt objects: no delta');
});

test('applying a delta gives the newer snapshot, hash and all, and leaves the older one untouched', () => {
  const from = deepFreeze(twoServices());
  const to = twoServices(8001, 9002);
  const applied = applySnapshotDelta(from, wire(computeSnapshotDelta(from, to)), to.version);
  assert.deepEqual(wire(applied), wire(to));
  assert.equal(snapshotVersion(applied), to.version);
  assert.equal(applied.routes, from.routes, 'an untouched map is shared, not copied');
  assert.equal(applied.backends['default/a:80'], from.backends['default/a:80'], 'an untouched entry is shared');
  assert.equal(from.backends['default/b:80']!.endpoints[0]!.port, 8002);
});

test('a removed service removes its route table and backend, and replaces the services list whole', () => {
  const from = twoServices();
  const to = versioned(buildSnapshot({ workload: 'client', services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('default/a-0', 8001)] }] }] }));
  const delta = computeSnapshotDelta(from, to)!;
  assert.deepEqual(delta.routes, { remove: ['default/b:80'] });
  assert.deepEqual(delta.backends, { remove: ['default/b:80'] });
  assert.deepEqual(Object.keys(delta.sections ?? {}), ['services']);
  const applied = applySnapshotDelta(from, wire(delta), to.version);
  assert.equal(snapshotVersion(applied), to.version);
  assert.deepEqual(Object.keys(applied.routes), ['default/a:80']);
});

test('an optional section that goes away is sent as null and removed; one that appears is sent whole', () => {
  const plain = twoServices();
  const withGateway = versioned({ ...plain, gateway: { namespace: 'edge', name: 'gw', ports: [] } });
  const removing = computeSnapshotDelta(withGateway, plain)!;
  assert.deepEqual(removing, { sections: { gateway: null } });
  const applied = applySnapshotDelta(withGateway, wire(removing), plain.version);
  assert.equal('gateway' in applied, false);
  assert.equal(snapshotVersion(applied), plain.version);
  const adding = computeSnapshotDelta(plain, withGateway)!;
  assert.deepEqual(adding, { sections: { gateway: withGateway.gateway } });
  assert.equal(snapshotVersion(applySnapshotDelta(plain, wire(adding), withGateway.version)), withGateway.version);
});

test('a delta that is not one is refused with WEFT_ERR_SNAPSHOT_INVALID, naming what is wrong', () => {
  const base = twoServices();
  const cases: [unknown, RegExp][] = [
    [null, /delta is not an object/],
    [{ sections: [] }, /sections is not an object/],
    [{ sections: { version: 'x' } }, /may not replace "version"/],
    [{ sections: { routes: {} } }, /may not replace "routes"/],
    [{ backends: { remove: 'default/a:80' } }, /backends\.remove is not a list/],
    [{ routes: { set: [] } }, /routes\.set is not an object/],
    [JSON.parse('{"backends":{"set":{"__proto__":{}}}}'), /"__proto__"/],
  ];
  for (const [delta, message] of cases) {
    assert.throws(
      () => applySnapshotDelta(base, delta, 'v2'),
      (error: unknown) => isWeftError(error, ErrorCodes.SNAPSHOT_INVALID) && message.test((error as Error).message),
      JSON.stringify(delta),
    );
  }
});

test('values compare as their JSON would', () => {
  assert.equal(sameJsonValue({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }), true, 'key order does not count');
  assert.equal(sameJsonValue({ a: 1, gone: undefined }, { a: 1 }), true, 'an undefined key is an absent key');
  assert.equal(sameJsonValue({ a: 1 }, { a: 2 }), false);
  assert.equal(sameJsonValue([1, 2], [1, 2, 3]), false);
  assert.equal(sameJsonValue([], {}), false);
  assert.equal(sameJsonValue(null, {}), false);
  assert.equal(sameJsonValue({ a: null }, { a: {} }), false);
  assert.equal(sameJsonValue({ a: 1 }, { a: 1, b: 2 }), false);
});

// The cache: one delta per published version, encoded once.

const node: NodeInfo = { id: 'default/x-0', mode: 'sidecar', namespace: 'default', instance: 'x-0', address: '127.0.0.1', tunnelPort: 1, appPorts: [] };

/** A stub compiler: one backend per Service, its endpoint port the Service's port. */
const backendCompiler = {
  compile(input: CompilerInput, node: NodeInfo): ProxySnapshot {
    return versioned(
      buildSnapshot({
        namespace: node.namespace,
        services: input.services.map((s) => ({ name: s.metadata.name, ports: [{ port: 80, endpoints: [endpoint(`default/${s.metadata.name}-0`, s.spec.ports[0]!.port)] }] })),
      }),
    );
  },
  snapshotInputKey: (node: NodeInfo) => node.namespace,
  checkSnapshot: () => [],
};

async function cacheOver(t: { after: (fn: () => unknown) => void }) {
  const clock = new ManualClock();
  const store = new MemoryStore({ clock });
  const put = (name: string, port: number) => store.put({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port, protocol: 'TCP' }] } });
  await put('a', 8001);
  await put('b', 8002);
  const index = new ResourceIndex({ store, logger: silentLogger(), clock });
  await index.start();
  const cache = new SnapshotCache({ index, compiler: backendCompiler, logger: silentLogger(), clock, debounceMs: 10 });
  t.after(async () => {
    cache.close();
    index.stop();
    await store.close();
  });
  /** Changes b's port and runs the compile pass. */
  const change = async (port: number) => {
    await put('b', port);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    cache.passNow();
  };
  return { cache, change };
}

test('the cache publishes each version with a delta from the one before, encoded once for every stream', async (t) => {
  const { cache, change } = await cacheOver(t);
  const subscription = cache.subscribe(node, () => {}, { deltas: true });
  const first = subscription.current()!;
  assert.equal(first.base, undefined);
  assert.equal(first.deltaTail(), undefined, 'the first version has nothing to start from');
  await change(9002);
  const second = subscription.current()!;
  assert.equal(second.base, first.snapshot.version);
  const tail = second.deltaTail()!;
  assert.equal(second.deltaTail(), tail, 'the same bytes for every stream');
  const line = JSON.parse(`{"type":"delta","version":"v","nonce":"n",${tail.toString()}`) as { base: string; delta: unknown };
  assert.equal(line.base, first.snapshot.version);
  assert.deepEqual(line.delta, { backends: { set: { 'default/b:80': second.snapshot.backends['default/b:80'] } } });
  assert.equal(snapshotVersion(applySnapshotDelta(wire(first.snapshot), line.delta, second.snapshot.version)), second.snapshot.version);
});

test('without a subscriber that takes deltas, the cache keeps no previous snapshot and offers no delta', async (t) => {
  const { cache, change } = await cacheOver(t);
  const subscription = cache.subscribe(node, () => {});
  await change(9002);
  assert.equal(subscription.current()!.base, undefined);
  assert.equal(subscription.current()!.deltaTail(), undefined);
});

// The discovery client against a scripted control plane.

interface Harness {
  cp: FakeControlPlane;
  applied: ProxySnapshot[];
  /** Makes apply throw (as an invalid snapshot does) while set. */
  reject: { message: string | undefined };
}

async function harness(t: { after: (fn: () => unknown) => void }, options: { deltas?: boolean; applyDelayMs?: number } = {}): Promise<Harness> {
  const cp = await FakeControlPlane.start();
  t.after(() => cp.close());
  const applied: ProxySnapshot[] = [];
  const reject: Harness['reject'] = { message: undefined };
  let running: string | undefined;
  const discovery = new DiscoveryClient({
    urls: [cp.url],
    node,
    runningVersion: () => running,
    apply: async (snapshot, version) => {
      if (options.applyDelayMs) await new Promise((resolve) => setTimeout(resolve, options.applyDelayMs));
      if (reject.message) throw new Error(reject.message);
      if (snapshot.version !== version) throw new Error('version mismatch');
      applied.push(snapshot);
      running = version;
    },
    clock: systemClock,
    logger: silentLogger(),
    metrics: createProxyMetrics(new MetricsRegistry()),
    ...(options.deltas === undefined ? {} : { deltas: options.deltas }),
  });
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => cp.hellos().length > 0, { message: 'a hello' });
  return { cp, applied, reject };
}

let nonces = 0;
function sendDelta(cp: FakeControlPlane, from: ProxySnapshot, to: ProxySnapshot, delta: unknown = computeSnapshotDelta(from, to)): string {
  const nonce = `d${++nonces}`;
  cp.send({ type: 'delta', version: to.version, nonce, base: from.version, delta: delta as never });
  return nonce;
}

function hello(cp: FakeControlPlane): Extract<ProxyMessage, { type: 'hello' }> {
  return cp.received.find((m): m is Extract<ProxyMessage, { type: 'hello' }> => m.type === 'hello')!;
}

test('the discovery client says it takes deltas, applies one to the snapshot it runs and ACKs the new version', async (t) => {
  const { cp, applied } = await harness(t);
  assert.equal(hello(cp).delta, true);
  const v1 = twoServices();
  const v2 = twoServices(8001, 9002);
  assert.equal((await cp.answerTo(cp.push(v1))).type, 'ack');
  const answer = await cp.answerTo(sendDelta(cp, v1, v2));
  assert.deepEqual(answer, { type: 'ack', version: v2.version, nonce: answer.nonce });
  assert.equal(applied.length, 2);
  assert.deepEqual(wire(applied[1]), wire(v2), 'apply got the whole new snapshot');
});

test('a delta from another version than the one running is NACKed without applying anything', async (t) => {
  const { cp, applied } = await harness(t);
  const v1 = twoServices();
  const v2 = twoServices(8001, 9002);
  const v3 = twoServices(9001, 9002);
  await cp.answerTo(cp.push(v1));
  const answer = await cp.answerTo(sendDelta(cp, v2, v3));
  assert.equal(answer.type, 'nack');
  assert.equal(answer.version, v3.version);
  assert.match(answer.type === 'nack' ? answer.error.message : '', /delta from version .* but this proxy runs .*full snapshot is needed/);
  assert.equal(applied.length, 1);
  // The control plane's answer to that: the full snapshot, which is taken.
  assert.equal((await cp.answerTo(cp.push(v3))).type, 'ack');
  assert.equal(applied.at(-1)!.version, v3.version);
});

test('a delta whose result does not hash to its version, or that the proxy rejects, is NACKed; the running config stays', async (t) => {
  const { cp, applied, reject } = await harness(t);
  const v1 = twoServices();
  const v2 = twoServices(8001, 9002);
  await cp.answerTo(cp.push(v1));
  const wrong = await cp.answerTo(sendDelta(cp, v1, v2, { backends: { remove: ['default/b:80'] } }));
  assert.equal(wrong.type, 'nack');
  assert.match(wrong.type === 'nack' ? wrong.error.message : '', /hashes to .*, not to version/);
  reject.message = 'upstream port in use';
  const refused = await cp.answerTo(sendDelta(cp, v1, v2));
  assert.equal(refused.type, 'nack');
  assert.equal(refused.type === 'nack' ? refused.error.code : '', 'WEFT_ERR_SNAPSHOT_INVALID');
  assert.equal(applied.length, 1, 'still on v1');
  reject.message = undefined;
  assert.equal((await cp.answerTo(sendDelta(cp, v1, v2))).type, 'ack', 'v1 is still what deltas start from');
});

test('a delta that comes while the snapshot it starts from is still being applied is applied after it', async (t) => {
  const { cp, applied } = await harness(t, { applyDelayMs: 100 });
  const v1 = twoServices();
  const v2 = twoServices(8001, 9002);
  const v3 = twoServices(9001, 9002);
  const first = cp.push(v1);
  // Bounded: lets the proxy start applying v1 before the next two arrive.
  await new Promise((resolve) => setTimeout(resolve, 20));
  // v1 is being applied; v2 (full) and a delta v2 → v3 wait behind it and are applied as one.
  cp.push(v2);
  const last = sendDelta(cp, v2, v3);
  assert.equal((await cp.answerTo(first)).type, 'ack');
  assert.equal((await cp.answerTo(last)).type, 'ack');
  assert.deepEqual(
    applied.map((s) => s.version),
    [v1.version, v3.version],
  );
});

test('a proxy told not to take deltas does not say it does', async (t) => {
  const { cp } = await harness(t, { deltas: false });
  assert.equal(hello(cp).delta, undefined);
});
