// The etcd store against a real etcd: the shared Store suite, plus reconnection, compaction, real lease expiry and two stores on one etcd.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { EtcdStore, type EtcdStoreOptions } from '../../src/control/store/etcd.ts';
import { parseEtcdStoreUrl, normalizeEtcdPrefix } from '../../src/control/store/etcd-url.ts';
import type { StoredResource, WatchEvent } from '../../src/control/store/types.ts';
import { startControlPlane } from '../../src/control/main.ts';
import { STATUS_PATH } from '../../src/control/api/server.ts';
import { startEtcd, type RunningEtcd } from '../../src/testing/etcd.ts';
import { freePort } from '../../src/testing/ports.ts';
import { ManualClock, systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { keyOf, rejectsWith, runStoreSuite, service, waitFor } from '../unit/store-suite.ts';

let etcd: RunningEtcd | undefined;
const stores: EtcdStore[] = [];
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  for (const store of stores) await store.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
  await etcd?.stop();
});

let prefixes = 0;
/** Every store gets a prefix of its own, so tests sharing the etcd never see each other's objects. */
function freshPrefix(): string {
  return `/weft-test-${process.pid}-${++prefixes}`;
}

function endpoint(): string {
  assert.ok(etcd, 'etcd did not start');
  return etcd.endpoint;
}

async function openStore(options: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  const store = await EtcdStore.open({ endpoints: [endpoint()], prefix: freshPrefix(), clock: new ManualClock(), ...options });
  stores.push(store);
  return store;
}

/** An etcd of its own, for tests that stop and restart it; stopped and removed after the file. */
async function privateEtcd(): Promise<{ current: () => RunningEtcd; restart: (between?: () => Promise<void>) => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-etcd-restart-'));
  let running = await startEtcd({ dataDir });
  cleanups.push(async () => {
    await running.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return {
    current: () => running,
    async restart(between) {
      await running.stop();
      await between?.();
      running = await startEtcd({ dataDir, clientPort: running.clientPort });
    },
  };
}

/**
 * The watch of the restart tests retries this late (jitter makes it 80-120 %),
 * after etcd is back (a restart takes up to a second) and the test has
 * written: the watch must then catch up from etcd's history, not live.
 */
const SLOW_RETRY_MS = 2500;

/** A write that waits out a restarting etcd: retried while the store is unavailable, for at most `ms`. */
async function putSoon(store: EtcdStore, name: string, port: number, ms = 5000): Promise<StoredResource> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await store.put(service(name, port));
    } catch (error) {
      if (!isWeftError(error, ErrorCodes.STORE_UNAVAILABLE) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

runStoreSuite({
  name: 'etcd',
  startsAtRevisionZero: false,
  // etcd counts TTLs in seconds and sweeps expired leases every 500 ms.
  realTimeLeases: { ttlMs: 2000, expiryWithinMs: 1500 },
  open: async (clock) => {
    const store = await EtcdStore.open({ endpoints: [endpoint()], prefix: freshPrefix(), clock });
    stores.push(store);
    return store;
  },
  forgetHistory: async (store, keep) => (store as EtcdStore).compact((await store.revision()) - keep),
});

describe('etcd store, etcd-specific', () => {
  it('keeps one key per object under the prefix, without resourceVersion in the value', async () => {
    const prefix = freshPrefix();
    const store = await openStore({ prefix });
    const stored = await store.put(service('a'));
    const other = await openStore({ prefix: `${prefix}-other` });
    assert.equal(await other.get(keyOf('a')), undefined, 'another prefix is another store');
    assert.deepEqual((await other.list()).items, []);
    const { Etcd3 } = await import('etcd3');
    const raw = new Etcd3({ hosts: endpoint() });
    try {
      const value = JSON.parse((await raw.get(`${prefix}/objects/${keyOf('a')}`).string()) ?? 'null');
      assert.equal(value.metadata.uid, stored.metadata.uid);
      assert.equal(value.metadata.resourceVersion, undefined);
    } finally {
      raw.close();
    }
  });

  it('resumes a watch after etcd restarts, from the last delivered revision, missing nothing', async () => {
    const cluster = await privateEtcd();
    const prefix = freshPrefix();
    const options = { endpoints: [cluster.current().endpoint], prefix, clock: systemClock };
    const watching = await EtcdStore.open({ ...options, watchBackoff: { initialMs: SLOW_RETRY_MS, maxMs: SLOW_RETRY_MS } });
    const writing = await EtcdStore.open(options);
    stores.push(watching, writing);
    const base = await writing.revision();
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    watching.watch(base, (e) => events.push(e), (e) => errors.push(e));
    await writing.put(service('a'));
    await writing.put(service('b'));
    await waitFor(() => events.length === 2, 'the events before the restart');

    await cluster.restart(async () => {
      await rejectsWith(writing.get(keyOf('a')), ErrorCodes.STORE_UNAVAILABLE);
    });
    await putSoon(writing, 'a', 81);
    await writing.delete(keyOf('b'));
    await putSoon(writing, 'c', 80);
    await waitFor(() => events.length === 5, 'the events after the restart', 8000);

    assert.deepEqual(errors, []);
    assert.deepEqual(
      events.map((e) => [e.type, e.revision, e.object.metadata.name]),
      [
        ['put', base + 1, 'a'],
        ['put', base + 2, 'b'],
        ['put', base + 3, 'a'],
        ['delete', base + 4, 'b'],
        ['put', base + 5, 'c'],
      ],
    );
    const update = events[2]!;
    assert.ok(update.type === 'put' && update.previous?.metadata.resourceVersion === String(base + 1), 'the previous value survives the restart');
  });

  it('reports CONFLICT when the history a watch must resume from was compacted while it was away', async () => {
    const cluster = await privateEtcd();
    const options = { endpoints: [cluster.current().endpoint], prefix: freshPrefix(), clock: systemClock };
    const watching = await EtcdStore.open({ ...options, watchBackoff: { initialMs: SLOW_RETRY_MS, maxMs: SLOW_RETRY_MS } });
    const writing = await EtcdStore.open(options);
    stores.push(watching, writing);
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    watching.watch(await writing.revision(), (e) => events.push(e), (e) => errors.push(e));
    await writing.put(service('a'));
    await waitFor(() => events.length === 1, 'the first event');
    await cluster.restart();
    await putSoon(writing, 'b', 80);
    await writing.put(service('c'));
    await writing.compact(await writing.revision());
    await waitFor(() => errors.length === 1, 'the watch error', 8000);
    assert.ok(isWeftError(errors[0], ErrorCodes.CONFLICT), String(errors[0]));
    assert.match(errors[0]!.message, /compacted/);
    assert.equal(events.length, 1, 'nothing after the gap is delivered');
  });

  it('lets etcd delete the objects of an expired lease (real time, TTL 1 s)', async () => {
    const store = await openStore();
    const lease = await store.grantLease(1000);
    await store.put(service('one'), { lease });
    await store.put(service('two'), { lease });
    await store.put(service('free'));
    const events: WatchEvent[] = [];
    store.watch(await store.revision(), (e) => events.push(e));
    const granted = Date.now();
    await waitFor(async () => (await store.list()).items.length === 1, 'the leased objects to go', 4000);
    assert.ok(Date.now() - granted >= 900, 'not before the TTL');
    assert.deepEqual((await store.list()).items.map((o) => o.metadata.name), ['free']);
    await waitFor(() => events.length === 2, 'two delete events');
    assert.deepEqual(events.map((e) => [e.type, e.object.metadata.name]).sort(), [
      ['delete', 'one'],
      ['delete', 'two'],
    ]);
    await rejectsWith(store.keepAlive(lease), ErrorCodes.NOT_FOUND);
  });

  it('shares objects, watches and compare-and-swap between two stores on one etcd', async () => {
    const prefix = freshPrefix();
    const first = await openStore({ prefix });
    const second = await openStore({ prefix });
    const seenBySecond: WatchEvent[] = [];
    second.watch(await second.revision(), (e) => seenBySecond.push(e));
    const created = await first.put(service('a'));
    assert.deepEqual(await second.get(keyOf('a')), created);
    await waitFor(() => seenBySecond.length === 1, 'the other store sees the write');

    const byFirst = await first.put(service('a', 81), { expectedResourceVersion: created.metadata.resourceVersion });
    await rejectsWith(second.put(service('a', 82), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
    await rejectsWith(second.put(service('a'), { expectedResourceVersion: '0' }), ErrorCodes.ALREADY_EXISTS);
    await rejectsWith(second.delete(keyOf('a'), { expectedResourceVersion: created.metadata.resourceVersion }), ErrorCodes.CONFLICT);
    assert.equal((await second.get(keyOf('a')))?.metadata.resourceVersion, byFirst.metadata.resourceVersion);

    // Racing writers without a resourceVersion all land, and no generation bump is lost to the race.
    const writes = Array.from({ length: 12 }, (_, i) => (i % 2 ? first : second).put(service('raced', 1000 + i)));
    await Promise.all(writes);
    const raced = await first.get(keyOf('raced'));
    assert.equal(raced?.metadata.generation, 12);

    // A lease granted by one store is the other's too.
    const lease = await first.grantLease(10_000);
    await second.put(service('leased'), { lease });
    await second.keepAlive(lease);
    await second.revokeLease(lease);
    assert.equal(await first.get(keyOf('leased')), undefined);
  });

  it('answers STORE_UNAVAILABLE, naming the endpoint, when etcd cannot be reached', async () => {
    const port = await freePort();
    await assert.rejects(
      EtcdStore.open({ endpoints: [`127.0.0.1:${port}`], clock: systemClock, requestTimeoutMs: 2000 }),
      (e: unknown) => isWeftError(e, ErrorCodes.STORE_UNAVAILABLE) && e.message.includes(`127.0.0.1:${port}`),
    );
  });

  it('carries on through a dead endpoint when another one answers', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const prefix = freshPrefix();
    const store = await openStore({ endpoints: [dead, endpoint()], prefix });
    const events: WatchEvent[] = [];
    store.watch(await store.revision(), (e) => events.push(e));
    for (let i = 0; i < 10; i++) await store.put(service(`s${i}`));
    assert.equal((await store.list()).items.length, 10);
    await waitFor(() => events.length === 10, 'the watch through the live endpoint', 5000);
  });

  it('says how to get etcd when its binary is missing', async () => {
    await assert.rejects(startEtcd({ binary: '/nonexistent/etcd' }), /etcd-server.*\.ci\/run|\.ci\/run.*etcd-server/);
  });

  it('parses the CLI store URL and prefix', () => {
    assert.deepEqual(parseEtcdStoreUrl('etcd://h1:2379,h2:2380'), ['http://h1:2379', 'http://h2:2380']);
    assert.deepEqual(parseEtcdStoreUrl('etcd://h1'), ['http://h1:2379']);
    assert.equal(parseEtcdStoreUrl('/var/lib/weft'), undefined);
    assert.throws(() => parseEtcdStoreUrl('etcd://'), (e: unknown) => isWeftError(e, ErrorCodes.INVALID));
    assert.throws(() => parseEtcdStoreUrl('etcd://h1:2379/x'), (e: unknown) => isWeftError(e, ErrorCodes.INVALID));
    assert.equal(normalizeEtcdPrefix(undefined), '/weft');
    assert.equal(normalizeEtcdPrefix('mesh-a/'), '/mesh-a');
  });

  it('runs a control plane on etcd', async () => {
    const prefix = freshPrefix();
    const controlPlane = await startControlPlane({
      etcd: { endpoints: [endpoint()], prefix },
      apiHost: '127.0.0.1',
      apiPort: 0,
      streamHost: '127.0.0.1',
      streamPort: 0,
      logger: silentLogger(),
      clock: systemClock,
    });
    cleanups.push(() => controlPlane.close());
    assert.equal(controlPlane.store.kind, 'etcd');
    const viewer = await openStore({ prefix });
    await controlPlane.store.put(service('from-control-plane'));
    assert.ok(await viewer.get(keyOf('from-control-plane')));
    const status = (await (await fetch(`${controlPlane.apiUrl}${STATUS_PATH}`)).json()) as { store?: string };
    assert.equal(status.store, 'etcd');
  });
});
