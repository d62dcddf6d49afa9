// Runs the shared Store suite (store-suite.ts) against the memory and SQLite stores; plus SQLite persistence.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { SqliteStore } from '../../src/control/store/sqlite.ts';
import { keyOf, runStoreSuite, service, waitFor } from './store-suite.ts';

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-store-'));
  tempDirs.push(dir);
  return dir;
}

runStoreSuite({
  name: 'memory',
  startsAtRevisionZero: true,
  open: (clock, tuning) => new MemoryStore({ clock, leaseSweepMs: 100, ...tuning }),
});
runStoreSuite({
  name: 'sqlite',
  startsAtRevisionZero: true,
  open: (clock, tuning) => SqliteStore.open({ dataDir: tempDir(), clock, leaseSweepMs: 100, ...tuning }),
});

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
