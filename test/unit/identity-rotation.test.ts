// IdentityManager across a root rotation: the new bundle is adopted at once, the certificate renewed soon (with jitter) under the snapshot's signing CA.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { MeshCa } from '../../src/control/ca/rotating.ts';
import { IdentityManager, type RenewFunction } from '../../src/proxy/identity/manager.ts';

const ID = 'spiffe://example.org/ns/shop/sa/reviews';
const HOUR = 60 * 60_000;

async function setup() {
  const clock = new ManualClock();
  const ca = new MeshCa({ authority: await CertificateAuthority.generate({ trustDomain: 'example.org', clock }), source: 'memory', clock, logger: silentLogger() });
  const calls: number[] = [];
  const renew: RenewFunction = async (csrPem) => {
    calls.push(clock.now());
    return { ...(await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: 24 * HOUR })), trustBundle: ca.trustBundle() };
  };
  const manager = new IdentityManager({ spiffeId: ID, renew, clock, logger: silentLogger(), random: () => 0.5, signerChange: { minMs: 1000, jitterMs: 4000 } });
  return { clock, ca, calls, manager };
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** An organisation root and `count` intermediates under it (PEM certificate and PKCS#8 key each). */
async function organisation(clock: ManualClock, count: number) {
  const now = clock.now();
  const rootKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Example Corp Root',
    keys: rootKeys,
    signingAlgorithm: EC,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 1000 * HOUR),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
  });
  const intermediates: { certPem: string; keyPem: string }[] = [];
  for (let i = 0; i < count; i++) {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      subject: `CN=Example Corp Mesh CA ${i + 1}`,
      issuer: root.subjectName,
      publicKey: keys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: EC,
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 500 * HOUR),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const keyPem = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' })
      .export({ format: 'pem', type: 'pkcs8' })
      .toString();
    intermediates.push({ certPem: `${cert.toString('pem')}\n`, keyPem });
  }
  return { rootPem: `${root.toString('pem')}\n`, intermediates };
}

describe('IdentityManager and root rotation', () => {
  it("an operator's new intermediate under the same root: the bundle stays, the signing CA changes, proxies renew under it", async (t) => {
    const clock = new ManualClock();
    const org = await organisation(clock, 2);
    const load = (i: number) => CertificateAuthority.load({ certPem: org.intermediates[i]!.certPem, keyPem: org.intermediates[i]!.keyPem, chainPem: org.rootPem, clock });
    const ca = new MeshCa({ authority: await load(0), source: 'operator', clock, logger: silentLogger() });
    const calls: number[] = [];
    const renew: RenewFunction = async (csrPem) => {
      calls.push(clock.now());
      return { ...(await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: 24 * HOUR })), trustBundle: ca.trustBundle() };
    };
    const manager = new IdentityManager({ spiffeId: ID, renew, clock, logger: silentLogger(), random: () => 0 });
    t.after(() => {
      manager.stop();
      ca.close();
    });
    await manager.start();
    manager.setTrustBundle(ca.trustBundle(), ca.signingFingerprint);
    assert.equal(manager.signedBySigningCa, true, 'the signing intermediate is found in the certificate chain');

    await ca.rotate({ next: await load(1), overlapMs: HOUR });
    assert.deepEqual(ca.trustBundle(), [org.rootPem], 'the organisation root stays the only anchor: nothing retires');
    manager.setTrustBundle(ca.trustBundle(), ca.signingFingerprint);
    assert.equal(manager.signedBySigningCa, false);
    clock.advance(1000);
    await waitFor(() => manager.signedBySigningCa, { message: 'a certificate from the new intermediate' });
    assert.equal(calls.length, 2);
    assert.equal(manager.current!.chainPem, org.intermediates[1]!.certPem, 'the chain carries the new intermediate');
  });

  it('adopts the new bundle at once and renews under the new root after the jittered delay, not at half life', async (t) => {
    const { clock, ca, calls, manager } = await setup();
    t.after(() => {
      manager.stop();
      ca.close();
    });
    await manager.start();
    manager.setTrustBundle(ca.trustBundle(), ca.signingFingerprint);
    assert.equal(manager.signedBySigningCa, true);
    const oldRoot = ca.current.certPem;

    await ca.rotate({ overlapMs: HOUR });
    const rotatedAt = clock.now();
    manager.setTrustBundle(ca.trustBundle(), ca.signingFingerprint);
    assert.deepEqual(manager.secureContextOptions().ca, [ca.current.certPem, oldRoot], 'trusts both roots before renewing');
    assert.equal(manager.signedBySigningCa, false);
    assert.equal(calls.length, 1, 'no renewal yet: peers may not have the new bundle');

    clock.advance(2999);
    assert.equal(calls.length, 1);
    clock.advance(1);
    await waitFor(() => manager.signedBySigningCa, { message: 'a certificate from the new root' });
    assert.equal(calls[1], rotatedAt + 3000, 'renewed after minMs + jitter (1 s + 0.5 × 4 s)');
    const leaf = new X509Certificate(manager.current!.certPem);
    assert.ok(leaf.verify(new X509Certificate(ca.current.certPem).publicKey));

    // The same snapshot again changes nothing.
    manager.setTrustBundle(ca.trustBundle(), ca.signingFingerprint);
    clock.advance(5000);
    assert.equal(calls.length, 2);
  });

  it('without a signing CA in the snapshot (an older control plane), a changed bundle still renews at once', async (t) => {
    const { ca, calls, manager } = await setup();
    t.after(() => {
      manager.stop();
      ca.close();
    });
    await manager.start();
    await ca.rotate({ overlapMs: HOUR });
    manager.setTrustBundle(ca.trustBundle());
    await waitFor(() => calls.length === 2, { message: 'the immediate renewal' });
  });
});
