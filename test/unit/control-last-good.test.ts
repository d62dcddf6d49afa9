// Unit tests of the control plane's last good versions: substitution in the index's input, records in the store, uids, deletions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectKey, type Resource } from '../../src/api/meta.ts';
import type { FaultInjection } from '../../src/api/resources.ts';
import { ResourceIndex } from '../../src/control/index.ts';
import { LAST_GOOD_KIND, LastGoodVersions, recordKey } from '../../src/control/last-good.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';

const FAULT_KEY = objectKey({ apiVersion: 'weft.dev/v1alpha1', kind: 'FaultInjection', namespace: 'default', name: 'chaos' });

function fault(headerRegex: string, status = 503): Resource {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'FaultInjection',
    metadata: { name: 'chaos', namespace: 'default' },
    spec: { abort: { httpStatus: status, percentage: 100 }, match: { headers: [{ name: 'x-chaos', type: 'RegularExpression', value: headerRegex }] } },
  };
}

async function setup(t: { after(fn: () => unknown): void }) {
  const logger = silentLogger();
  const store = new MemoryStore({ clock: systemClock, logger });
  const index = new ResourceIndex({ store, logger, clock: systemClock });
  const lastGood = new LastGoodVersions({ index, store, logger });
  await index.start();
  t.after(async () => {
    await lastGood.stop();
    index.stop();
    await store.close();
  });
  /** Waits for the index to hold the store's version of `key`. */
  const synced = (key: string) => waitFor(async () => (await store.get(key))?.metadata.resourceVersion === index.get(key)?.metadata.resourceVersion, { message: `the index to catch up on ${key}` });
  return { store, index, lastGood, synced };
}

const inForce = (index: ResourceIndex) => index.input().faultInjections?.[0] as FaultInjection | undefined;

test('a bad version right after a good one is replaced by it, before any record is written, and fallBacks say so', async (t) => {
  const { store, index, synced } = await setup(t);
  await store.put(fault('on|yes'));
  await store.put(fault('(', 418));
  await synced(FAULT_KEY);
  assert.equal(index.get(FAULT_KEY)?.metadata.generation, 2);
  assert.equal(inForce(index)?.metadata.generation, 1);
  assert.equal(inForce(index)?.spec.abort?.httpStatus, 503);
  const fallBack = index.input().fallBacks?.get(FAULT_KEY);
  assert.deepEqual({ ...fallBack, problems: fallBack?.problems.length }, { generation: 2, inForceGeneration: 1, problems: 1 });
});

test('reconcile records good versions, keeps a record while the object is bad, and deletes it with the object', async (t) => {
  const { store, index, lastGood, synced } = await setup(t);
  const stored = await store.put(fault('on'));
  await synced(FAULT_KEY);
  await lastGood.reconcile();
  const record = await store.get(recordKey(FAULT_KEY));
  assert.equal(record?.apiVersion, 'internal.weft.dev/v1');
  assert.equal(record?.kind, LAST_GOOD_KIND);
  assert.equal((record?.spec as { object: Resource }).object.metadata.uid, stored.metadata.uid);

  await store.put(fault('('));
  await synced(FAULT_KEY);
  await synced(recordKey(FAULT_KEY));
  await lastGood.reconcile();
  assert.equal(((await store.get(recordKey(FAULT_KEY)))?.spec as { object: Resource }).object.metadata.generation, 1, 'the record keeps generation 1');

  await store.delete(FAULT_KEY);
  await waitFor(() => index.get(FAULT_KEY) === undefined, { message: 'the index to see the deletion' });
  await lastGood.reconcile();
  assert.equal(await store.get(recordKey(FAULT_KEY)), undefined);
});

test('a record of an earlier object of the same name (another uid) is never used, and goes at the next reconcile', async (t) => {
  const { store, index, lastGood, synced } = await setup(t);
  await store.put(fault('on'));
  await synced(FAULT_KEY);
  await lastGood.reconcile();
  await synced(recordKey(FAULT_KEY));
  // Deleted and created again, bad from the start: the old record names the old uid.
  await store.delete(FAULT_KEY);
  await store.put(fault('(', 418));
  await store.put(fault('((', 418));
  await synced(FAULT_KEY);
  assert.equal(inForce(index)?.metadata.generation, 2, 'no fall back: the object in the store is compiled (and reported)');
  assert.equal(index.input().fallBacks, undefined);
  await lastGood.reconcile();
  assert.equal(await store.get(recordKey(FAULT_KEY)), undefined);
});
