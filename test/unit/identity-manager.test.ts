// IdentityManager on a ManualClock: first issuance, renewal at half life with an atomic swap, retries with backoff, refusals.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { IdentityManager, type IssuedCertificate, type RenewFunction } from '../../src/proxy/identity/manager.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';

const ID = 'spiffe://example.org/ns/shop/sa/reviews';
const MINUTE = 60_000;

/** A CA on the manager's clock, and a renew callback that records its calls and can be told to fail. */
async function setup(options: { ttlMs?: number } = {}) {
  const clock = new ManualClock();
  const ca = await CertificateAuthority.generate({ trustDomain: 'example.org', clock });
  const calls: number[] = [];
  const failures: Error[] = [];
  let failNext = 0;
  const renew: RenewFunction = async (csrPem) => {
    calls.push(clock.now());
    if (failNext > 0) {
      failNext--;
      const error = new Error('control plane unreachable');
      failures.push(error);
      throw error;
    }
    return { ...(await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: options.ttlMs ?? 2 * MINUTE })), trustBundle: ca.trustBundle() };
  };
  const manager = new IdentityManager({ spiffeId: ID, renew, clock, logger: silentLogger(), random: () => 0, retry: { initialMs: 1000, maxMs: 8000 } });
  return { clock, ca, calls, failures, manager, failTimes: (n: number) => (failNext = n) };
}

describe('IdentityManager', () => {
  it('installs the first certificate and exposes node:tls options: key, leaf + chain, trust bundle, TLS 1.3', async (t) => {
    const { manager, ca, clock, calls } = await setup();
    t.after(() => manager.stop());
    assert.equal(manager.ready, false);
    assert.throws(() => manager.secureContextOptions(), (e: unknown) => isWeftError(e, ErrorCodes.INTERNAL));
    const identity = await manager.start();
    assert.equal(calls.length, 1);
    assert.equal(identity.spiffeId, ID);
    assert.equal(manager.expiresAt, clock.now() + 2 * MINUTE);
    const options = manager.secureContextOptions();
    assert.equal(options.minVersion, 'TLSv1.3');
    assert.deepEqual(options.ca, ca.trustBundle());
    const leaf = new X509Certificate(String(options.cert));
    assert.ok(leaf.checkPrivateKey(createPrivateKey(String(options.key))));
    assert.equal(leaf.subjectAltName, `URI:${ID}`);
    assert.ok(manager.secureContext().context, 'a built SecureContext');
    assert.equal(manager.secureContext(), manager.secureContext(), 'one SecureContext per rotation');
  });

  it('renews at half life: a new key and certificate, swapped whole, listeners told', async (t) => {
    const { manager, clock, calls } = await setup({ ttlMs: 2 * MINUTE });
    t.after(() => manager.stop());
    const first = await manager.start();
    const firstOptions = manager.secureContextOptions();
    const firstContext = manager.secureContext();
    const changes: string[] = [];
    manager.onChange((identity) => changes.push(identity.certPem));

    clock.advance(MINUTE - 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls.length, 1, 'not before half life');

    clock.advance(1);
    await waitFor(() => manager.current !== first, { message: 'the renewed certificate' });
    assert.equal(calls.length, 2);
    assert.equal(calls[1], clock.now(), 'renewed exactly at half life');
    const second = manager.current!;
    assert.notEqual(second.keyPem, first.keyPem, 'the key rotates too');
    assert.equal(second.notAfter, clock.now() + 2 * MINUTE);
    assert.equal(manager.expiresAt, second.notAfter);
    assert.deepEqual(changes, [second.certPem]);
    const secondOptions = manager.secureContextOptions();
    assert.notEqual(secondOptions, firstOptions, 'a new object, not a mutated one');
    assert.equal(firstOptions.key, first.keyPem, 'the old options are untouched (connections using them keep them)');
    assert.equal(secondOptions.key, second.keyPem);
    assert.notEqual(manager.secureContext(), firstContext);

    // And again, twice: every rotation at the half life of the current certificate.
    for (let i = 0; i < 2; i++) {
      const before = manager.current;
      clock.advance(MINUTE);
      await waitFor(() => manager.current !== before, { message: `rotation ${i + 3}` });
    }
    assert.equal(calls.length, 4);
    assert.deepEqual(
      calls.map((at) => at - calls[0]!),
      [0, MINUTE, 2 * MINUTE, 3 * MINUTE],
    );
  });

  it('retries a failed renewal with doubling backoff and keeps the current certificate meanwhile', async (t) => {
    const { manager, clock, calls, failTimes } = await setup({ ttlMs: 10 * MINUTE });
    t.after(() => manager.stop());
    const first = await manager.start();
    failTimes(3);
    clock.advance(5 * MINUTE);
    await waitFor(() => calls.length === 2, { message: 'the renewal attempt' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(manager.current, first, 'still serving the old certificate');
    // random() = 0: each delay is half the base (1 s, 2 s, 4 s → 0.5 s, 1 s, 2 s).
    for (const [delay, expectedCalls] of [
      [500, 3],
      [1000, 4],
      [2000, 5],
    ] as const) {
      clock.advance(delay - 1);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(calls.length, expectedCalls - 1, `not before ${delay} ms`);
      clock.advance(1);
      await waitFor(() => calls.length === expectedCalls, { message: `attempt ${expectedCalls}` });
    }
    await waitFor(() => manager.current !== first, { message: 'the certificate after the retries' });
    // X.509 times have whole seconds.
    assert.equal(manager.expiresAt, Math.floor((clock.now() + 10 * MINUTE) / 1000) * 1000);
    assert.equal(calls.length, 5);
    assert.deepEqual(calls.slice(1).map((at, i) => at - calls[i]!).slice(1), [500, 1000, 2000], 'the attempts came exactly at the backoff delays');
  });

  it('retries the first issuance until it succeeds; start() resolves then', async (t) => {
    const { manager, clock, calls, failTimes } = await setup();
    t.after(() => manager.stop());
    failTimes(1);
    let resolved = false;
    const started = manager.start().then((identity) => {
      resolved = true;
      return identity;
    });
    await waitFor(() => calls.length === 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(resolved, false);
    assert.equal(manager.ready, false);
    clock.advance(500);
    assert.equal((await started).spiffeId, ID);
    assert.equal(calls.length, 2);
  });

  it('refuses a certificate for another key and treats it as a failure', async (t) => {
    const clock = new ManualClock();
    const ca = await CertificateAuthority.generate({ trustDomain: 'example.org', clock });
    let calls = 0;
    const renew: RenewFunction = async (csrPem): Promise<IssuedCertificate> => {
      calls++;
      // The first answer certifies someone else's key.
      const csr = calls === 1 ? (await generateKeyAndCsr(ID)).csrPem : csrPem;
      return ca.signCsr(csr, { spiffeId: ID, ttlMs: 2 * MINUTE });
    };
    const manager = new IdentityManager({ spiffeId: ID, renew, clock, logger: silentLogger(), random: () => 0, trustBundle: ca.trustBundle() });
    t.after(() => manager.stop());
    const started = manager.start();
    await waitFor(() => calls === 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(manager.ready, false);
    clock.advance(500);
    const identity = await started;
    assert.equal(calls, 2);
    assert.ok(new X509Certificate(identity.certPem).checkPrivateKey(createPrivateKey(identity.keyPem)));
    assert.deepEqual(manager.secureContextOptions().ca, ca.trustBundle(), 'the trust bundle given at construction');
  });

  it('renewNow() joins an issuance in flight; stop() cancels the schedule and rejects a pending start', async () => {
    const { manager, clock, calls } = await setup();
    await manager.start();
    const [a, b] = await Promise.all([manager.renewNow(), manager.renewNow()]);
    assert.equal(a, true);
    assert.equal(b, true);
    assert.equal(calls.length, 2, 'one issuance for both');
    manager.stop();
    clock.advance(10 * MINUTE);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls.length, 2, 'nothing after stop()');
    assert.equal(await manager.renewNow(), false);

    const never = new IdentityManager({ spiffeId: ID, renew: () => new Promise(() => {}), clock, logger: silentLogger() });
    const pending = never.start();
    never.stop();
    await assert.rejects(pending, (e: unknown) => isWeftError(e, ErrorCodes.DRAINING));
  });

  it('swaps the trust bundle and tells listeners', async (t) => {
    const { manager, ca, clock } = await setup();
    t.after(() => manager.stop());
    await manager.start();
    const next = await CertificateAuthority.generate({ trustDomain: 'example.org', clock });
    let changes = 0;
    manager.onChange(() => changes++);
    const before = manager.secureContextOptions();
    manager.setTrustBundle([...ca.trustBundle(), next.certPem]);
    assert.equal(changes, 1);
    assert.deepEqual(manager.secureContextOptions().ca, [...ca.trustBundle(), next.certPem]);
    assert.deepEqual(before.ca, ca.trustBundle(), 'the previous options object is not mutated');
    manager.setTrustBundle([...ca.trustBundle(), next.certPem]);
    assert.equal(changes, 1, 'no change, no event');
    assert.throws(() => manager.setTrustBundle(['not a certificate']));
  });
});
