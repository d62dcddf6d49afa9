// The index, the snapshot cache and the status writer, driven by a manual clock and a stub compiler.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { ResourceIndex, type IndexChange } from '../../src/control/index.ts';
import { SnapshotCache } from '../../src/control/cache.ts';
import { withTransitionTimes } from '../../src/control/status-writer.ts';
import { ErrorCodes, WeftError } from '../../src/api/errors.ts';
import type { Resource } from '../../src/api/meta.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import type { Store, WatchEvent } from '../../src/control/store/types.ts';

const logger = silentLogger();

function service(name: string, port = 80): Resource {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port, protocol: 'TCP' }] } };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A stub compiler: the snapshot lists the services' names and ports; its version is that list. */
const stubCompiler = {
  compiled: 0,
  compile(input: CompilerInput, node: NodeInfo): ProxySnapshot {
    this.compiled++;
    const names = input.services.map((s) => `${s.metadata.name}:${s.spec.ports[0]?.port}`);
    return {
      version: names.join(',') || 'empty',
      node: { mode: node.mode, namespace: node.namespace },
      mesh: { trustDomain: 'cluster.local', clusterDomain: 'cluster.local' },
      services: input.services.map((s) => ({ namespace: 'default', name: s.metadata.name, hosts: [], ports: [] })),
      routes: {},
      backends: {},
      inbound: { ports: [] },
      upstreams: [],
    };
  },
  snapshotInputKey: (node: NodeInfo) => node.namespace,
  checkSnapshot: (s: ProxySnapshot) => (s.services.some((svc) => svc.name === 'bad') ? ['bad service'] : []),
};

const node = (namespace = 'default'): NodeInfo => ({ id: `${namespace}/p`, mode: 'sidecar', namespace, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] });

describe('resource index', () => {
  it('lists, follows the watch, and ignores status-only writes', async () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    await store.put(service('a'));
    await store.put({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { trustDomain: 'x' } });
    await store.put({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'other' }, spec: {} });
    const index = new ResourceIndex({ store, logger, clock });
    await index.start();
    const seen: IndexChange[] = [];
    index.onChange((changes) => seen.push(...changes));
    assert.deepEqual(index.input().services.map((s) => s.metadata.name), ['a']);
    assert.equal(index.input().meshConfig?.metadata.name, 'default');

    await store.put(service('b'));
    await store.put({ ...service('a'), status: { conditions: [] } }, { statusOnly: true });
    const relabelled = service('a');
    relabelled.metadata.labels = { x: 'y' };
    await store.put(relabelled);
    await store.delete('core/Service/default/b');
    await settle();
    assert.deepEqual(
      seen.map((c) => `${c.type} ${c.object.metadata.name}`),
      ['put b', 'put a', 'delete b'],
      'the status write is absorbed; the label change is reported',
    );
    assert.deepEqual(index.get('core/Service/default/a')?.status, { conditions: [] }, 'the index still holds the newest object');
    assert.equal(index.revision, await store.revision());
    assert.deepEqual(index.counts(), { Service: 1, MeshConfig: 2 });
    index.stop();
    await store.close();
  });

  it('lists again after the watch fails and reports what changed meanwhile', async () => {
    const clock = new ManualClock();
    const inner = new MemoryStore({ clock });
    await inner.put(service('a'));
    await inner.put(service('gone'));
    let failNext = true;
    let failWatch: (() => void) | undefined;
    const store: Store = Object.create(inner, {
      watch: {
        value: (from: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void) => {
          if (failNext) {
            failNext = false;
            failWatch = () => onError?.(new WeftError(ErrorCodes.CONFLICT, 'compacted'));
            return () => {};
          }
          return inner.watch(from, onEvent, onError);
        },
      },
    });
    const index = new ResourceIndex({ store, logger, clock, relistDelayMs: 100 });
    await index.start();
    const seen: string[] = [];
    index.onChange((changes) => seen.push(...changes.map((c) => `${c.type} ${c.object.metadata.name}`)));
    // Changes the broken watch never delivers.
    await inner.put(service('a', 81));
    await inner.put(service('new'));
    await inner.delete('core/Service/default/gone');
    failWatch!();
    clock.advance(100);
    await settle();
    assert.deepEqual(seen.sort(), ['delete gone', 'put a', 'put new']);
    await inner.put(service('later'));
    await settle();
    assert.ok(seen.includes('put later'), 'the new watch follows on');
    index.stop();
    await inner.close();
  });
});

describe('snapshot cache', () => {
  async function setup(debounceMs = 50, maxWaitMs?: number) {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    await store.put(service('a'));
    const index = new ResourceIndex({ store, logger, clock });
    await index.start();
    const cache = new SnapshotCache({ index, compiler: stubCompiler, logger, clock, debounceMs, maxWaitMs });
    return { clock, store, index, cache };
  }

  it('shares one snapshot per input key and compiles a new key at once', async () => {
    const { cache, index, store } = await setup();
    const first = cache.subscribe(node(), () => {});
    assert.equal(first.current()?.snapshot.version, 'a:80');
    const compiled = stubCompiler.compiled;
    const second = cache.subscribe({ ...node(), id: 'default/q' }, () => {});
    assert.equal(stubCompiler.compiled, compiled, 'the second proxy with the same key reuses the snapshot');
    assert.equal(second.current(), first.current());
    const other = cache.subscribe(node('other'), () => {});
    assert.equal(stubCompiler.compiled, compiled + 1);
    assert.deepEqual(cache.status().map((s) => [s.key, s.proxies]), [['default', 2], ['other', 1]]);
    other.close();
    assert.deepEqual(cache.status().map((s) => s.key), ['default']);
    cache.close();
    index.stop();
    await store.close();
  });

  it('debounces a burst into one push, and a steady stream still gets pushed by the max wait', async () => {
    const { cache, clock, store, index } = await setup(50, 200);
    let pushes = 0;
    const sub = cache.subscribe(node(), () => pushes++);
    const first = sub.current()!.seq;
    for (let i = 0; i < 5; i++) await store.put(service(`s${i}`));
    await settle();
    clock.advance(49);
    assert.equal(pushes, 0, 'nothing before the debounce');
    clock.advance(1);
    assert.equal(pushes, 1, 'one push for the burst');
    assert.ok(sub.current()!.seq > first);
    assert.match(sub.current()!.snapshot.version, /s4:80/);

    // A change every 30 ms never leaves 50 ms of quiet; the 200 ms max wait still pushes.
    pushes = 0;
    for (let i = 0; i < 10; i++) {
      await store.put(service(`t${i}`));
      await settle();
      clock.advance(30);
    }
    assert.ok(pushes >= 1, `pushed ${pushes} times during a steady stream`);
    assert.ok(pushes <= 2, `pushed ${pushes} times during a steady stream`);
    cache.close();
    index.stop();
    await store.close();
  });

  it('keeps the last good snapshot when a new one fails its check', async () => {
    const { cache, clock, store, index } = await setup();
    let pushes = 0;
    const sub = cache.subscribe(node(), () => pushes++);
    const good = sub.current()!;
    await store.put(service('bad'));
    await settle();
    clock.advance(50);
    assert.equal(pushes, 0);
    assert.equal(sub.current(), good);
    assert.deepEqual(sub.lastError()?.problems, ['bad service']);
    assert.equal(cache.recentErrors().length, 1);
    await store.delete('core/Service/default/bad');
    await store.put(service('b'));
    await settle();
    clock.advance(50);
    assert.equal(pushes, 1);
    assert.equal(sub.lastError(), undefined);
    assert.equal(sub.current()!.snapshot.version, 'a:80,b:80');
    cache.close();
    index.stop();
    await store.close();
  });

  it('calls pass listeners after every pass with the compiled input', async () => {
    const { cache, clock, store, index } = await setup();
    const inputs: CompilerInput[] = [];
    cache.onPass((input) => inputs.push(input));
    await store.put(service('b'));
    await settle();
    clock.advance(50);
    assert.equal(inputs.length, 1);
    assert.deepEqual(inputs[0]!.services.map((s) => s.metadata.name), ['a', 'b']);
    cache.close();
    index.stop();
    await store.close();
  });
});

describe('status transition times', () => {
  const t0 = '2024-01-01T00:00:00.000Z';
  const t1 = '2024-01-02T00:00:00.000Z';

  it('keeps the time of a condition whose status did not change and stamps the others', () => {
    const previous = {
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: '', lastTransitionTime: t0 },
        { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: '', lastTransitionTime: t0 },
      ],
    };
    const next = {
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'now with a message' },
        { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: '' },
        { type: 'New', status: 'True', reason: 'New', message: '' },
      ],
    };
    const merged = withTransitionTimes(next, previous, t1) as typeof previous;
    assert.deepEqual(merged.conditions.map((c) => c.lastTransitionTime), [t0, t1, t1]);
  });

  it('matches route parents by parentRef, not by position', () => {
    const parent = (name: string, status: string, at?: string) => ({
      parentRef: { kind: 'Service', name },
      controllerName: 'weft.dev/mesh',
      conditions: [{ type: 'Accepted', status, reason: 'x', message: '', ...(at ? { lastTransitionTime: at } : {}) }],
    });
    const previous = { parents: [parent('a', 'True', t0), parent('b', 'True', t0)] };
    const next = { parents: [parent('b', 'True'), parent('a', 'False')] };
    const merged = withTransitionTimes(next, previous, t1) as typeof previous;
    assert.deepEqual(merged.parents.map((p) => p.conditions[0]!.lastTransitionTime), [t0, t1]);
  });
});
