// The behaviour suite every Store must pass (revisions, generation, CAS, watch replay and live, leases), run by store.test.ts and store-etcd.test.ts.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import type { Resource } from '../../src/api/meta.ts';
import type { Store, WatchEvent } from '../../src/control/store/types.ts';

export interface StoreSuiteTuning {
  eventLogSize?: number;
  leaseSweepMs?: number;
}

export interface StoreSuiteTarget {
  name: string;
  /** A new, empty store. The clock drives creationTimestamp, and lease expiry unless `realTimeLeases` is set. */
  open(clock: ManualClock, tuning: StoreSuiteTuning): Store | Promise<Store>;
  /**
   * Whether a new store starts at revision 0. A store that shares its
   * revision counter (a fresh prefix on a shared etcd) starts wherever the
   * counter stands, and the suite counts revisions from there.
   */
  startsAtRevisionZero: boolean;
  /**
   * Set when leases expire on the store's own clock (etcd's) rather than the
   * injected one: the lease tests then let real time pass, with this TTL, and
   * allow `expiryWithinMs` after a TTL for the store to delete the objects.
   */
  realTimeLeases?: { ttlMs: number; expiryWithinMs: number };
  /** Drops all history but the last `keep` revisions, for a store whose history `tuning.eventLogSize` does not bound. */
  forgetHistory?(store: Store, keep: number): Promise<void>;
}

export function service(name: string, port = 80, namespace = 'default'): Resource {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels: { app: name } }, spec: { ports: [{ port, protocol: 'TCP' }] } };
}

export const keyOf = (name: string, namespace = 'default') => `core/Service/${namespace}/${name}`;

export async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => isWeftError(e) && e.code === code);
}

export function runStoreSuite(target: StoreSuiteTarget): void {
  const realTime = target.realTimeLeases;
  const leaseTtlMs = realTime?.ttlMs ?? 1000;

  describe(`${target.name} store`, () => {
    const opened: Store[] = [];
    after(async () => {
      for (const store of opened) await store.close();
    });

    /** `rv(n)`: the resourceVersion of the n-th write since the store was opened. */
    async function open(clock = new ManualClock(), tuning: StoreSuiteTuning = {}) {
      const store = await target.open(clock, tuning);
      opened.push(store);
      const base = target.startsAtRevisionZero ? 0 : await store.revision();
      return { store, clock, base, rv: (n: number) => String(base + n) };
    }

    /** Lets lease time pass: on the injected clock, and in real time too when the store's leases run on their own clock. */
    async function pass(clock: ManualClock, ms: number): Promise<void> {
      clock.advance(ms);
      if (realTime) await sleep(ms);
    }

    /** A real-time store deletes an expired lease's objects a little after the TTL; a manual-clock one already has. */
    async function expiryDone(store: Store, key: string): Promise<void> {
      if (realTime) await waitFor(async () => (await store.get(key)) === undefined, `the expiry of ${key}`, realTime.expiryWithinMs);
    }

    it('assigns revision, generation, uid and creationTimestamp on create', async () => {
      const { store, clock, base, rv } = await open();
      assert.equal(await store.revision(), base);
      const created = await store.put(service('a'));
      assert.equal(created.metadata.resourceVersion, rv(1));
      assert.equal(created.metadata.generation, 1);
      assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.equal(created.metadata.creationTimestamp, new Date(clock.now()).toISOString());
      assert.equal(await store.revision(), base + 1);
      assert.deepEqual(await store.get(keyOf('a')), created);
      assert.equal(await store.get(keyOf('missing')), undefined);
    });

    it('bumps generation only when the spec changes and keeps uid and creation time', async () => {
      const { store, clock, rv } = await open();
      const first = await store.put(service('a'));
      clock.advance(1000);
      const relabelled = service('a');
      relabelled.metadata.labels = { app: 'a', tier: 'web' };
      const second = await store.put(relabelled);
      assert.equal(second.metadata.generation, 1);
      assert.equal(second.metadata.resourceVersion, rv(2));
      assert.equal(second.metadata.uid, first.metadata.uid);
      assert.equal(second.metadata.creationTimestamp, first.metadata.creationTimestamp);
      const third = await store.put(service('a', 8080));
      assert.equal(third.metadata.generation, 2);
      assert.equal(third.metadata.resourceVersion, rv(3));
      // Key order alone is not a spec change.
      const reordered: Resource = { ...service('a', 8080), spec: { ports: [{ protocol: 'TCP', port: 8080 }] } };
      assert.equal((await store.put(reordered)).metadata.generation, 2);
    });

    it('writes status only with statusOnly, and keeps status across spec writes', async () => {
      const { store, rv } = await open();
      await store.put(service('a'));
      const withStatus = await store.put({ ...service('a', 9999), status: { conditions: [{ type: 'Accepted', status: 'True' }] } }, { statusOnly: true });
      assert.deepEqual((withStatus.spec as { ports: { port: number }[] }).ports[0]!.port, 80, 'statusOnly keeps the spec');
      assert.equal(withStatus.metadata.generation, 1);
      assert.equal(withStatus.metadata.resourceVersion, rv(2));
      assert.deepEqual(withStatus.status, { conditions: [{ type: 'Accepted', status: 'True' }] });
      const respecced = await store.put(service('a', 81));
      assert.equal(respecced.metadata.generation, 2);
      assert.deepEqual(respecced.status, withStatus.status, 'a write without status keeps the stored one');
      await rejectsWith(store.put(service('nobody'), { statusOnly: true }), ErrorCodes.NOT_FOUND);
    });

    it('compares and swaps on resourceVersion', async () => {
      const { store, base, rv } = await open();
      const created = await store.put(service('a'), { expectedResourceVersion: '0' });
      await rejectsWith(store.put(service('a'), { expectedResourceVersion: '0' }), ErrorCodes.ALREADY_EXISTS);
      await rejectsWith(store.put(service('a'), { expectedResourceVersion: '' }), ErrorCodes.ALREADY_EXISTS);
      await rejectsWith(store.put(service('a', 81), { expectedResourceVersion: '999' }), ErrorCodes.CONFLICT);
      await rejectsWith(store.put(service('b'), { expectedResourceVersion: rv(1) }), ErrorCodes.NOT_FOUND);
      const updated = await store.put(service('a', 81), { expectedResourceVersion: created.metadata.resourceVersion });
      await rejectsWith(store.put(service('a', 82), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
      await rejectsWith(store.delete(keyOf('a'), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
      assert.equal(await store.revision(), base + 2, 'failed writes do not bump the revision');
      const deleted = await store.delete(keyOf('a'), { expectedResourceVersion: updated.metadata.resourceVersion });
      assert.equal(deleted?.metadata.name, 'a');
      assert.equal(deleted?.metadata.resourceVersion, rv(3), 'a deleted object carries the revision of its deletion');
      assert.equal(await store.delete(keyOf('a')), undefined);
      assert.equal(await store.revision(), base + 3);
    });

    it('lists with filters, sorted by key, with the revision', async () => {
      const { store, base } = await open();
      await store.put(service('b'));
      await store.put(service('a'));
      await store.put(service('c', 80, 'other'));
      await store.put({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'w', namespace: 'default' }, spec: {} });
      const all = await store.list();
      assert.equal(all.revision, base + 4);
      assert.equal(all.items.length, 4);
      const services = await store.list({ group: 'core', kind: 'Service' });
      assert.deepEqual(services.items.map((s) => s.metadata.name), ['a', 'b', 'c']);
      const inDefault = await store.list({ kind: 'Service', namespace: 'default' });
      assert.deepEqual(inDefault.items.map((s) => s.metadata.name), ['a', 'b']);
      assert.deepEqual((await store.list({ group: 'weft.dev' })).items.map((s) => s.kind), ['Workload']);
    });

    it('hands out frozen objects and keeps its own copy of what it was given', async () => {
      const { store } = await open();
      const input = service('a');
      const stored = await store.put(input);
      input.metadata.labels = { changed: 'yes' };
      assert.deepEqual((await store.get(keyOf('a')))?.metadata.labels, { app: 'a' });
      assert.throws(() => {
        (stored.metadata as { name: string }).name = 'b';
      }, TypeError);
    });

    it('replays events after a revision, then follows live, in order', async () => {
      const { store, base, rv } = await open();
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
          ['put', base + 2, 'b'],
          ['put', base + 3, 'a'],
          ['delete', base + 4, 'b'],
        ],
      );
      const update = events[1]!;
      assert.ok(update.type === 'put' && update.previous?.metadata.resourceVersion === rv(1), 'a put event carries the previous object');
      stop();
      await store.put(service('c'));
      await settle();
      assert.equal(events.length, 3, 'no events after the watch is cancelled');
    });

    it('does not let a watcher that writes reorder what other watchers see', async () => {
      const { store, base } = await open();
      const seenByB: number[] = [];
      store.watch(base, (e) => {
        if (e.object.metadata.name === 'a') void store.put(service('from-watcher'));
      });
      store.watch(base, (e) => seenByB.push(e.revision));
      await store.put(service('a'));
      await waitFor(() => seenByB.length === 2, 'both events');
      assert.deepEqual(seenByB, [base + 1, base + 2]);
    });

    it('reports CONFLICT to a watcher whose revision has been compacted away', async () => {
      const { store, base } = await open(new ManualClock(), { eventLogSize: 3 });
      for (let i = 0; i < 10; i++) await store.put(service(`s${i}`));
      await target.forgetHistory?.(store, 3);
      const errors: Error[] = [];
      const events: WatchEvent[] = [];
      store.watch(base + 1, (e) => events.push(e), (e) => errors.push(e));
      await waitFor(() => errors.length === 1, 'the watch error');
      assert.ok(isWeftError(errors[0], ErrorCodes.CONFLICT));
      assert.equal(events.length, 0);
      const recent: WatchEvent[] = [];
      store.watch(base + 8, (e) => recent.push(e));
      await waitFor(() => recent.length === 2, 'the recent events');
    });

    it('deletes the objects of an expired lease and emits delete events; keepAlive extends it', async () => {
      const { store, clock } = await open();
      const ttl = leaseTtlMs;
      const lease = await store.grantLease(ttl);
      await store.put(service('leased'), { lease });
      await store.put(service('free'));
      const events: WatchEvent[] = [];
      store.watch(await store.revision(), (e) => events.push(e));
      await pass(clock, ttl * 0.8);
      await store.keepAlive(lease);
      await pass(clock, ttl * 0.8);
      assert.ok(await store.get(keyOf('leased')), 'kept alive');
      await pass(clock, ttl * 0.3);
      await expiryDone(store, keyOf('leased'));
      assert.equal(await store.get(keyOf('leased')), undefined, 'deleted once the TTL passed');
      assert.ok(await store.get(keyOf('free')));
      await waitFor(() => events.length === 1, 'the delete event');
      assert.equal(events[0]!.type, 'delete');
      assert.equal(events[0]!.object.metadata.name, 'leased');
      await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
      await rejectsWith(store.put(service('late'), { lease }), ErrorCodes.NOT_FOUND);
    });

    it('treats a lease past its TTL as gone even before the sweeper runs', async () => {
      const { store, clock } = await open(new ManualClock(), { leaseSweepMs: 60_000 });
      const ttl = leaseTtlMs;
      const lease = await store.grantLease(ttl);
      await store.put(service('leased'), { lease });
      // Real time: just past the TTL, before etcd's own sweep (every 500 ms) is sure to have run.
      await pass(clock, realTime ? ttl * 1.25 : ttl * 5);
      await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
      assert.equal(await store.get(keyOf('leased')), undefined);
    });

    it('revokes a lease at once; rewriting an object without the lease unbinds it', async () => {
      const { store } = await open();
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
      const { store } = await open();
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
      const { store } = await open();
      await store.close();
      await rejectsWith(store.put(service('a')), ErrorCodes.STORE_UNAVAILABLE);
      await store.close();
    });
  });
}
