// Root rotation: the bundle over time (old root trusted until its overlap ends), signing with the new root, persistence in a data dir and in the store.
import 'reflect-metadata';
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { CA_FILES, dataDirPersistence, loadOrCreateCa, loadRetiring } from '../../src/control/ca/files.ts';
import { MeshCa } from '../../src/control/ca/rotating.ts';
import { openSharedCa, sharedCaKey } from '../../src/control/ca/shared.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';

const TD = 'example.org';
const ID = `spiffe://${TD}/ns/shop/sa/reviews`;
const HOUR = 60 * 60_000;
const secret = Buffer.from('a-test-secret-of-enough-bytes-0123456789');

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-rotation-'));
  tempDirs.push(dir);
  return dir;
}

async function signedBy(ca: MeshCa): Promise<X509Certificate> {
  const { csrPem } = await generateKeyAndCsr(ID);
  return new X509Certificate((await ca.signCsr(csrPem, { spiffeId: ID })).certPem);
}

function verifiesWith(leaf: X509Certificate, rootPem: string): boolean {
  return leaf.verify(new X509Certificate(rootPem).publicKey);
}

describe('MeshCa rotation', () => {
  it('trusts both roots during the overlap, signs with the new one, drops the old one when the overlap ends', async (t) => {
    const clock = new ManualClock();
    const first = await CertificateAuthority.generate({ trustDomain: TD, clock });
    const ca = new MeshCa({ authority: first, source: 'memory', clock, logger: silentLogger() });
    t.after(() => ca.close());
    let changes = 0;
    ca.onChange(() => changes++);
    assert.deepEqual(ca.trustBundle(), [first.certPem]);

    const state = await ca.rotate({ overlapMs: HOUR });
    const second = ca.current;
    assert.notEqual(second.certPem, first.certPem);
    assert.equal(changes, 1);
    assert.deepEqual(ca.trustBundle(), [second.certPem, first.certPem], 'new root first, old root during the overlap');
    assert.equal(state.signingCa, new X509Certificate(second.certPem).fingerprint256);
    assert.deepEqual(state.certificates.map((c) => c.role), ['signing', 'retiring']);
    assert.equal(state.certificates[1]!.trustedUntil, new Date(clock.now() + HOUR).toISOString());
    assert.equal(state.trustDomain, TD);
    const leaf = await signedBy(ca);
    assert.ok(verifiesWith(leaf, second.certPem) && !verifiesWith(leaf, first.certPem), 'signed by the new root');

    clock.advance(HOUR - 1000);
    assert.equal(ca.trustBundle().length, 2, 'still inside the overlap');
    clock.advance(2000);
    assert.deepEqual(ca.trustBundle(), [second.certPem], 'the old root left the bundle');
    assert.equal(changes, 2, 'listeners told when the overlap ended (the snapshots must drop it)');
    assert.deepEqual(ca.describe().certificates.map((c) => c.role), ['signing']);
  });

  it('a second rotation during the overlap keeps every root whose overlap has not ended', async (t) => {
    const clock = new ManualClock();
    const ca = new MeshCa({ authority: await CertificateAuthority.generate({ trustDomain: TD, clock }), source: 'memory', clock, logger: silentLogger() });
    t.after(() => ca.close());
    const first = ca.current.certPem;
    await ca.rotate({ overlapMs: 2 * HOUR });
    const second = ca.current.certPem;
    clock.advance(HOUR);
    await ca.rotate({ overlapMs: 2 * HOUR });
    const third = ca.current.certPem;
    assert.deepEqual(ca.trustBundle(), [third, first, second]);
    clock.advance(HOUR + 1);
    assert.deepEqual(ca.trustBundle(), [third, second], 'the first root leaves on its own deadline');
    clock.advance(HOUR);
    assert.deepEqual(ca.trustBundle(), [third]);
  });

  it("an operator's CA is rotated only to the CA the operator gives; one of another trust domain is refused", async (t) => {
    const clock = new ManualClock();
    const ca = new MeshCa({ authority: await CertificateAuthority.generate({ trustDomain: TD, clock }), source: 'operator', clock, logger: silentLogger() });
    t.after(() => ca.close());
    await assert.rejects(ca.rotate(), (e: unknown) => isWeftError(e, ErrorCodes.INVALID) && /--ca-cert/.test((e as Error).message));
    const other = await CertificateAuthority.generate({ trustDomain: 'other.org', clock });
    await assert.rejects(ca.rotate({ next: other }), (e: unknown) => isWeftError(e, ErrorCodes.CA_INVALID));
    const next = await CertificateAuthority.generate({ trustDomain: TD, clock });
    await ca.rotate({ next, overlapMs: 0 });
    assert.deepEqual(ca.trustBundle(), [next.certPem], 'overlap 0: the old root is dropped at once');
  });

  it('persists in the data dir: the key stays 0600, a restart loads the new root and the retiring one', async (t) => {
    const clock = new ManualClock();
    const dir = tempDir();
    const { ca: first } = await loadOrCreateCa(dir, { trustDomain: TD, clock });
    const before = await loadRetiring(dir);
    assert.deepEqual(before, { retiring: [] }, 'a single-root dir has no rotation state');
    const ca = new MeshCa({ authority: first, source: 'data-dir', persistence: dataDirPersistence(dir, { saveKey: true }), clock, logger: silentLogger() });
    t.after(() => ca.close());
    await ca.rotate({ overlapMs: HOUR });
    assert.equal(statSync(join(dir, CA_FILES.key)).mode & 0o777, 0o600);

    const { ca: reloaded, created } = await loadOrCreateCa(dir, { trustDomain: TD, clock });
    assert.equal(created, false);
    assert.equal(reloaded.certPem, ca.current.certPem, 'the new root is the saved CA');
    const again = new MeshCa({ authority: reloaded, ...(await loadRetiring(dir)), source: 'data-dir', clock, logger: silentLogger() });
    t.after(() => again.close());
    assert.deepEqual(again.trustBundle(), [ca.current.certPem, first.certPem]);
    assert.equal(again.describe().rotatedAt, new Date(clock.now()).toISOString());
    clock.advance(HOUR + 1);
    assert.deepEqual(again.trustBundle(), [ca.current.certPem], 'after a restart the overlap still ends on time');
  });

  it('refuses a rotation state file that is not JSON, naming it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, CA_FILES.retiring), '{nope');
    await assert.rejects(loadRetiring(dir), (e: unknown) => isWeftError(e, ErrorCodes.CA_INVALID) && (e as Error).message.includes(CA_FILES.retiring));
  });

  it('persists in the store with CAS: the other replica reloads it, a stale write is refused, a stale rotation refreshes first', async (t) => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock, logger: silentLogger() });
    t.after(() => store.close());
    const open = async () => {
      const shared = await openSharedCa({ store, secret, trustDomain: TD, clock, logger: silentLogger() });
      const ca = new MeshCa({ ...shared, source: 'store', clock, logger: silentLogger() });
      t.after(() => ca.close());
      return ca;
    };
    const a = await open();
    const b = await open();
    const first = a.current.certPem;
    assert.equal(b.current.certPem, first, 'one root for both replicas');
    const legacy = (await store.get(sharedCaKey()))!.spec as { retiring?: unknown };
    assert.equal(legacy.retiring, undefined, 'a record that never rotated has the old shape');

    await a.rotate({ overlapMs: HOUR });
    const record = (await store.get(sharedCaKey()))!.spec as { retiring?: unknown[]; sealedKey: unknown; certPem: string };
    assert.equal(record.certPem, a.current.certPem);
    assert.equal(record.retiring?.length, 1);
    assert.ok(!JSON.stringify(record).includes('PRIVATE KEY'), 'the new key is sealed too');

    assert.equal(await b.refresh(), true, 'the other replica sees the rotation');
    assert.deepEqual(b.trustBundle(), a.trustBundle());
    assert.equal(b.signingFingerprint, a.signingFingerprint);
    assert.equal(await b.refresh(), false, 'nothing new: no reload');

    // A write from a replica that has not seen the record's latest version loses the CAS.
    const stale = await openSharedCa({ store, secret, trustDomain: TD, clock, logger: silentLogger() });
    await a.rotate({ overlapMs: HOUR });
    await assert.rejects(stale.persistence.save(stale.authority, [], clock.now()), (e: unknown) => isWeftError(e, ErrorCodes.CONFLICT));
    await b.refresh();

    // A replica that has not yet seen the latest rotation refreshes before rotating, so it retires the right root.
    await a.rotate({ overlapMs: HOUR });
    await b.rotate({ overlapMs: HOUR });
    assert.equal(b.trustBundle().length, 5, 'four retiring roots plus the newest');
    await a.refresh();
    assert.equal(a.signingFingerprint, b.signingFingerprint);
    assert.ok(a.trustBundle().includes(first));
  });
});
