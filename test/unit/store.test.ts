// One behaviour suite run against every Store: revisions, generation, CAS, watch replay and live, leases; plus SQLite persistence.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import type { Resource } from '../../src/api/meta.ts';
import type { Store, WatchEvent } from '../../src/control/store/types.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { SqliteStore } from '../../src/control/store/sqlite.ts';

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-store-'));
  tempDirs.push(dir);
  return dir;
}

interface Factory {
  name: string;
  open(clock: ManualClock, tuning: Tuning): Store;
}

interface Tuning {
  eventLogSize?: number;
  leaseSweepMs?: number;
}

const factories: Factory[] = [
  { name: 'memory', open: (clock, tuning) => new MemoryStore({ clock, leaseSweepMs: 100, ...tuning }) },
  { name: 'sqlite', open: (clock, tuning) => SqliteStore.open({ dataDir: tempDir(), clock, leaseSweepMs: 100, ...tuning }) },
];

function service(name: string, port = 80, namespace = 'default'): Resource {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels: { app: name } }, spec: { ports: [{ port, protocol: 'TCP' }] } };
}

const keyOf = (name: string, namespace = 'default') => `core/Service/${namespace}/${name}`;

async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

async function waitFor(condition: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => isWeftError(e) && e.code === code);
}

for (const factory of factories) {
  describe(`${factory.name} store`, () => {
    const opened: Store[] = [];
    after(async () => {
      for (const store of opened) await store.close();
    });
    function open(clock = new ManualClock(), tuning: Tuning = {}): { store: Store; clock: ManualClock } {
      const store = factory.open(clock, tuning);
      opened.push(store);
      return { store, clock };
    }

    it('assigns revision, generation, uid and creationTimestamp on create', async () => {
      const { store, clock } = open();
      assert.equal(await store.revision(), 0);
      const created = await store.put(service('a'));
      assert.equal(created.metadata.resourceVersion, '1');
      assert.equal(created.metadata.generation, 1);
      assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.equal(created.metadata.creationTimestamp, new Date(clock.now()).toISOString());
      assert.equal(await store.revision(), 1);
      assert.deepEqual(await store.get(keyOf('a')), created);
      assert.equal(await store.get(keyOf('missing')), undefined);
    });

    it('bumps generation only when the spec changes and keeps uid and creation time', async () => {
      const { store, clock } = open();
      const first = await store.put(service('a'));
      clock.advance(1000);
      const relabelled = service('a');
      relabelled.metadata.labels = { app: 'a', tier: 'web' };
      const second = await store.put(relabelled);
      assert.equal(second.metadata.generation, 1);
      assert.equal(second.metadata.resourceVersion, '2');
      assert.equal(second.metadata.uid, first.metadata.uid);
      assert.equal(second.metadata.creationTimestamp, first.metadata.creationTimestamp);
      const third = await store.put(service('a', 8080));
      assert.equal(third.metadata.generation, 2);
      assert.equal(third.metadata.resourceVersion, '3');
      // Key order alone is not a spec change.
      const reordered: Resource = { ...service('a', 8080), spec: { ports: [{ protocol: 'TCP', port: 8080 }] } };
      assert.equal((await store.put(reordered)).metadata.generation, 2);
    });

    it('writes status only with statusOnly, and keeps status across spec writes', async () => {
      const { store } = open();
      await store.put(service('a'));
      const withStatus = await store.put({ ...service('a', 9999), status: { conditions: [{ type: 'Accepted', status: 'True' }] } }, { statusOnly: true });
      assert.deepEqual((withStatus.spec as { ports: { port: number }[] }).ports[0]!.port, 80, 'statusOnly keeps the spec');
      assert.equal(withStatus.metadata.generation, 1);
      assert.equal(withStatus.metadata.resourceVersion, '2');
      assert.deepEqual(withStatus.status, { conditions: [{ type: 'Accepted', status: 'True' }] });
      const respecced = await store.put(service('a', 81));
      assert.equal(respecced.metadata.generation, 2);
      assert.deepEqual(respecced.status, withStatus.status, 'a write without status keeps the stored one');
      await rejectsWith(store.put(service('nobody'), { statusOnly: true }), ErrorCodes.NOT_FOUND);
    });

    it('compares and swaps on resourceVersion', async () => {
      const { store } = open();
      const created = await store.put(service('a'), { expectedResourceVersion: '0' });
      await rejectsWith(store.put(service('a'), { expectedResourceVersion: '0' }), ErrorCodes.ALREADY_EXISTS);
      await rejectsWith(store.put(service('a'), { expectedResourceVersion: '' }), ErrorCodes.ALREADY_EXISTS);
      await rejectsWith(store.put(service('a', 81), { expectedResourceVersion: '999' }), ErrorCodes.CONFLICT);
      await rejectsWith(store.put(service('b'), { expectedResourceVersion: '1' }), ErrorCodes.NOT_FOUND);
      const updated = await store.put(service('a', 81), { expectedResourceVersion: created.metadata.resourceVersion });
      await rejectsWith(store.put(service('a', 82), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
      await rejectsWith(store.delete(keyOf('a'), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
      assert.equal(await store.revision(), 2, 'failed writes do not bump the revision');
      const deleted = await store.delete(keyOf('a'), { expectedResourceVersion: updated.metadata.resourceVersion });
      assert.equal(deleted?.metadata.name, 'a');
      assert.equal(deleted?.metadata.resourceVersion, '3', 'a deleted object carries the revision of its deletion');
      assert.equal(await store.delete(keyOf('a')), undefined);
      assert.equal(await store.revision(), 3);
    });

    it('lists with filters, sorted by key, with the revision', async () => {
      const { store } = open();
      await store.put(service('b'));
      await store.put(service('a'));
      await store.put(service('c', 80, 'other'));
      await store.put({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'w', namespace: 'default' }, spec: {} });
      const all = await store.list();
      assert.equal(all.revision, 4);
      assert.equal(all.items.length, 4);
      const services = await store.list({ group: 'core', kind: 'Service' });
      assert.deepEqual(services.items.map((s) => s.metadata.name), ['a', 'b', 'c']);
      const inDefault = await store.list({ kind: 'Service', namespace: 'default' });
      assert.deepEqual(inDefault.items.map((s) => s.metadata.name), ['a', 'b']);
      assert.deepEqual((await store.list({ group: 'weft.dev' })).items.map((s) => s.kind), ['Workload']);
    });

    it('hands out frozen objects and keeps its own copy of what it was given', async () => {
      const { store } = open();
      const input = service('a');
      const stored = await store.put(input);
      input.metadata.labels = { changed: 'yes' };
      assert.deepEqual((await store.get(keyOf('a')))?.metadata.labels, { app: 'a' });
      assert.throws(() => {
        (stored.metadata as { name: string }).name = 'b';
      }, TypeError);
    });

    it('replays events after a revision, then follows live, in order', async () => {
      const { store } = open();
      await store.put(service('a'));
      const fromHere = await store.revision();
      await store.put(service('b'));
      await store.put(service('a', 81));
      const events: WatchEvent[] = [];
      const stop = store.watch(fromHere, (e) => events.push(e));
      await store.delete(keyOf('b'));
      await waitFor(() => events.length === 3, 'three events');
      assert.deepEqual(
        events.map((e) => [e.type, e.revision, e.object.metadata.name]),
        [
          ['put', 2, 'b'],
          ['put', 3, 'a'],
          ['delete', 4, 'b'],
        ],
      );
      const update = events[1]!;
      assert.ok(update.type === 'put' && update.previous?.metadata.resourceVersion === '1', 'a put event carries the previous object');
      stop();
      await store.put(service('c'));
      await settle();
      assert.equal(events.length, 3, 'no events after the watch is cancelled');
    });

    it('does not let a watcher that writes reorder what other watchers see', async () => {
      const { store } = open();
      const seenByB: number[] = [];
      store.watch(0, (e) => {
        if (e.object.metadata.name === 'a') void store.put(service('from-watcher'));
      });
      store.watch(0, (e) => seenByB.push(e.revision));
      await store.put(service('a'));
      await waitFor(() => seenByB.length === 2, 'both events');
      assert.deepEqual(seenByB, [1, 2]);
    });

    it('reports CONFLICT to a watcher whose revision has been compacted away', async () => {
      const { store } = open(new ManualClock(), { eventLogSize: 3 });
      for (let i = 0; i < 10; i++) await store.put(service(`s${i}`));
      const errors: Error[] = [];
      const events: WatchEvent[] = [];
      store.watch(1, (e) => events.push(e), (e) => errors.push(e));
      await waitFor(() => errors.length === 1, 'the watch error');
      assert.ok(isWeftError(errors[0], ErrorCodes.CONFLICT));
      assert.equal(events.length, 0);
      const recent: WatchEvent[] = [];
      store.watch(8, (e) => recent.push(e));
      await waitFor(() => recent.length === 2, 'the recent events');
    });

    it('deletes the objects of an expired lease and emits delete events; keepAlive extends it', async () => {
      const { store, clock } = open();
      const lease = await store.grantLease(1000);
      await store.put(service('leased'), { lease });
      await store.put(service('free'));
      const events: WatchEvent[] = [];
      store.watch(await store.revision(), (e) => events.push(e));
      clock.advance(800);
      await store.keepAlive(lease);
      clock.advance(800);
      assert.ok(await store.get(keyOf('leased')), 'kept alive');
      clock.advance(300);
      assert.equal(await store.get(keyOf('leased')), undefined, 'deleted once the TTL passed');
      assert.ok(await store.get(keyOf('free')));
      await waitFor(() => events.length === 1, 'the delete event');
      assert.equal(events[0]!.type, 'delete');
      assert.equal(events[0]!.object.metadata.name, 'leased');
      await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
      await rejectsWith(store.put(service('late'), { lease }), ErrorCodes.NOT_FOUND);
    });

    it('treats a lease past its TTL as gone even before the sweeper runs', async () => {
      const { store, clock } = open(new ManualClock(), { leaseSweepMs: 60_000 });
      const lease = await store.grantLease(1000);
      await store.put(service('leased'), { lease });
      clock.advance(5000);
      await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
      assert.equal(await store.get(keyOf('leased')), undefined);
    });

    it('revokes a lease at once; rewriting an object without the lease unbinds it', async () => {
      const { store } = open();
      const lease = await store.grantLease(10_000);
      await store.put(service('a'), { lease });
      await store.put(service('b'), { lease });
      await store.put(service('b', 81));
      const statusWrite = await store.put({ ...service('a'), status: { ok: true } }, { statusOnly: true });
      assert.equal(statusWrite.metadata.generation, 1);
      await store.revokeLease(lease);
      assert.equal(await store.get(keyOf('a')), undefined, 'a statusOnly write keeps the lease binding');
      assert.ok(await store.get(keyOf('b')), 'b was rewritten without the lease');
      await store.revokeLease(lease); // idempotent
      await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
    });

    it('moves an object to a new lease when it is rewritten with one', async () => {
      const { store } = open();
      const first = await store.grantLease(10_000);
      const second = await store.grantLease(10_000);
      await store.put(service('a'), { lease: first });
      await store.put(service('a'), { lease: second });
      await store.revokeLease(first);
      assert.ok(await store.get(keyOf('a')));
      await store.revokeLease(second);
      assert.equal(await store.get(keyOf('a')), undefined);
    });

    it('refuses work once closed', async () => {
      const { store } = open();
      await store.close();
      await rejectsWith(store.put(service('a')), ErrorCodes.STORE_UNAVAILABLE);
      await store.close();
    });
  });
}

describe('sqlite store persistence', () => {
  it('keeps objects, revision and leases across close and reopen, and extends leases on open', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock();
    const first = SqliteStore.open({ dataDir, clock });
    const lease = await first.grantLease(1000);
    await first.put(service('leased'), { lease });
    const kept = await first.put(service('kept'));
    await first.put({ ...service('kept'), status: { phase: 'x' } }, { statusOnly: true });
    await first.put(service('gone'));
    await first.delete(keyOf('gone'));
    const revision = await first.revision();
    await first.close();

    // Far longer than the TTL passes while the control plane is down.
    clock.advance(60_000);
    const second = SqliteStore.open({ dataDir, clock });
    try {
      assert.equal(await second.revision(), revision);
      const reloaded = await second.get(keyOf('kept'));
      assert.equal(reloaded?.metadata.uid, kept.metadata.uid);
      assert.deepEqual(reloaded?.status, { phase: 'x' });
      assert.equal(await second.get(keyOf('gone')), undefined);
      assert.ok(await second.get(keyOf('leased')), 'a restart does not drop leased objects');
      assert.equal(second.leaseExpiry(lease), clock.now() + 1000, 'the lease got a full TTL from the reopen');
      const next = await second.put(service('new'));
      assert.equal(next.metadata.resourceVersion, String(revision + 1));
      const errors: Error[] = [];
      second.watch(1, () => {}, (e) => errors.push(e));
      await waitFor(() => errors.length === 1, 'the watch error');
      assert.ok(isWeftError(errors[0], ErrorCodes.CONFLICT), 'events from before the restart are gone');
      await second.keepAlive(lease);
      clock.advance(1500);
      assert.equal(await second.get(keyOf('leased')), undefined, 'the lease still expires without heartbeats');
    } finally {
      await second.close();
    }
  });

  it('refuses a second store on the same data dir while the first is open', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock();
    const first = SqliteStore.open({ dataDir, clock });
    try {
      await first.put(service('a'));
      assert.throws(() => SqliteStore.open({ dataDir, clock }), (e: unknown) => isWeftError(e, ErrorCodes.STORE_UNAVAILABLE));
    } finally {
      await first.close();
    }
  });
});
