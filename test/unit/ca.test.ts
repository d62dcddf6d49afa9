// The CA: root generation, CSR signing (identity, key checks, TTL, expiry bound), operator intermediates, persistence, signing time.
import 'reflect-metadata';
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, isWeftError, type ErrorCode } from '../../src/api/errors.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { CertificateAuthority, DEFAULT_CERT_TTL_MS } from '../../src/control/ca/authority.ts';
import { CA_FILES, loadCa, loadOrCreateCa, saveCa } from '../../src/control/ca/files.ts';
import { splitPemCertificates } from '../../src/control/ca/pem.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';

const TD = 'example.org';
const ID = `spiffe://${TD}/ns/shop/sa/reviews`;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  tempDirs.push(dir);
  return dir;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isWeftError(e, code), `expected ${code}, got ${String(e)}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return true;
  });
}

/** A CSR made outside weft's helper, asking for whatever names the test wants. */
async function foreignCsr(algorithm: EcKeyGenParams | RsaHashedKeyGenParams, sans: x509.JsonGeneralNames = []): Promise<string> {
  const signing = algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: (algorithm as EcKeyGenParams).namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } : algorithm;
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=admin, O=system:masters',
    keys,
    signingAlgorithm: signing,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  return csr.toString('pem');
}
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;

describe('CertificateAuthority.generate', () => {
  it('makes a self-signed P-256 root: CA:true, keyCertSign, its name and spiffe://<trust domain>', async () => {
    const clock = new ManualClock();
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock, validityDays: 30 });
    const root = new X509Certificate(ca.certPem);
    assert.equal(root.ca, true);
    assert.equal(root.subject, `CN=weft root CA ${TD}`);
    assert.equal(root.issuer, root.subject);
    assert.equal(root.subjectAltName, `URI:spiffe://${TD}`);
    assert.ok(root.checkIssued(root) && root.verify(root.publicKey), 'self-signed');
    assert.equal(root.publicKey.asymmetricKeyType, 'ec');
    assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const usage = new x509.X509Certificate(ca.certPem).getExtension(x509.KeyUsagesExtension);
    assert.ok(usage && usage.usages & x509.KeyUsageFlags.keyCertSign, 'keyCertSign');
    assert.equal(root.validToDate.getTime(), clock.now() + 30 * DAY);
    assert.equal(ca.trustDomain, TD);
    assert.deepEqual(ca.trustBundle(), [ca.certPem]);
    assert.ok(ca.toPem().keyPem.startsWith('-----BEGIN PRIVATE KEY-----'));
  });

  it('refuses a malformed trust domain', async () => {
    await rejectsWith(CertificateAuthority.generate({ trustDomain: 'Bad Domain', clock: new ManualClock() }), ErrorCodes.IDENTITY_INVALID);
  });
});

describe('CertificateAuthority.signCsr', () => {
  it('issues a leaf that chains to the root, with exactly the SPIFFE ID, leaf usages and a 24 h default lifetime', async () => {
    const clock = new ManualClock();
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock });
    const { csrPem, keyPem } = await generateKeyAndCsr(ID);
    const signed = await ca.signCsr(csrPem, { spiffeId: ID });
    const root = new X509Certificate(ca.certPem);
    const leaf = new X509Certificate(signed.certPem);
    assert.ok(leaf.verify(root.publicKey), 'signed by the root key');
    assert.ok(leaf.checkIssued(root), 'issued by the root');
    assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem)), 'for the CSR key');
    assert.equal(leaf.subjectAltName, `URI:${ID}`);
    assert.equal(leaf.ca, false);
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const peculiar = new x509.X509Certificate(signed.certPem);
    const usage = peculiar.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(usage.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.equal(peculiar.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.equal(
      peculiar.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    assert.equal(leaf.validFromDate.getTime(), clock.now() - MINUTE, 'one minute of skew');
    assert.equal(leaf.validToDate.getTime(), clock.now() + DEFAULT_CERT_TTL_MS);
    assert.equal(signed.notAfter, clock.now() + DAY);
    assert.equal(signed.chainPem, '', 'nothing between leaf and a generated root');
    assert.equal(signed.serialNumber.toLowerCase(), leaf.serialNumber.toLowerCase());
  });

  it('gives random serials', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    const { csrPem } = await generateKeyAndCsr(ID);
    const serials = new Set<string>();
    for (let i = 0; i < 5; i++) serials.add((await ca.signCsr(csrPem, { spiffeId: ID })).serialNumber);
    assert.equal(serials.size, 5);
    for (const serial of serials) assert.ok(serial.length >= 30, `serial ${serial} has ~128 bits`);
  });

  it('ignores the names a CSR asks for: the SAN is exactly the SPIFFE ID it is told', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    const csrPem = await foreignCsr({ name: 'ECDSA', namedCurve: 'P-256' }, [
      { type: 'url', value: `spiffe://${TD}/ns/kube-system/sa/admin` },
      { type: 'dns', value: 'reviews.shop.svc' },
      { type: 'ip', value: '10.0.0.1' },
    ]);
    const signed = await ca.signCsr(csrPem, { spiffeId: ID });
    const leaf = new X509Certificate(signed.certPem);
    assert.equal(leaf.subjectAltName, `URI:${ID}`);
    assert.equal(leaf.subject, undefined, 'the CSR subject is not copied');
    // And a CSR made by weft's helper for another identity gets the one the CA decides.
    const other = await generateKeyAndCsr(`spiffe://${TD}/ns/shop/sa/payments`);
    assert.equal(new X509Certificate((await ca.signCsr(other.csrPem, { spiffeId: ID })).certPem).subjectAltName, `URI:${ID}`);
  });

  it('honours the TTL and never outlives the CA', async () => {
    const clock = new ManualClock();
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock, validityDays: 1 });
    const { csrPem } = await generateKeyAndCsr(ID);
    const short = await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: 2 * MINUTE });
    assert.equal(new X509Certificate(short.certPem).validToDate.getTime(), clock.now() + 2 * MINUTE);
    assert.equal(short.notAfter, clock.now() + 2 * MINUTE);

    clock.advance(20 * HOUR);
    const capped = await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: DAY });
    assert.equal(capped.notAfter, ca.notAfter, 'bounded by the CA expiry');
    assert.equal(new X509Certificate(capped.certPem).validToDate.getTime(), ca.notAfter);

    clock.advance(5 * HOUR);
    await rejectsWith(ca.signCsr(csrPem, { spiffeId: ID }), ErrorCodes.CA_INVALID, /expired/);
  });

  it('refuses bad CSRs: garbage, oversize, a forged signature, weak or unusual keys', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    await rejectsWith(ca.signCsr('not a csr', { spiffeId: ID }), ErrorCodes.CSR_INVALID);
    await rejectsWith(ca.signCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', { spiffeId: ID }), ErrorCodes.CSR_INVALID);
    await rejectsWith(ca.signCsr('x'.repeat(20_000), { spiffeId: ID }), ErrorCodes.CSR_INVALID);

    // Change one byte of the signed request body: the signature no longer matches.
    const { csrPem } = await generateKeyAndCsr(ID);
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from('reviews'));
    assert.ok(at > 0);
    der[at] = 'R'.charCodeAt(0);
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await rejectsWith(ca.signCsr(forged, { spiffeId: ID }), ErrorCodes.CSR_INVALID, /not signed/);

    await rejectsWith(ca.signCsr(await foreignCsr({ name: 'ECDSA', namedCurve: 'P-384' }), { spiffeId: ID }), ErrorCodes.CSR_INVALID, /P-256/);
    const weakRsa = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
    await rejectsWith(ca.signCsr(await foreignCsr(weakRsa), { spiffeId: ID }), ErrorCodes.CSR_INVALID, /RSA 1024/);
  });

  it('accepts an RSA 2048 CSR', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    const rsa = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
    const signed = await ca.signCsr(await foreignCsr(rsa), { spiffeId: ID });
    const leaf = new X509Certificate(signed.certPem);
    assert.equal(leaf.publicKey.asymmetricKeyType, 'rsa');
    assert.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey));
  });

  it('refuses identities that are malformed or outside its trust domain, and silly TTLs', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    const { csrPem } = await generateKeyAndCsr(ID);
    await rejectsWith(ca.signCsr(csrPem, { spiffeId: 'spiffe://other.org/ns/shop/sa/reviews' }), ErrorCodes.IDENTITY_INVALID, /outside/);
    await rejectsWith(ca.signCsr(csrPem, { spiffeId: `spiffe://${TD}/reviews` }), ErrorCodes.IDENTITY_INVALID);
    await rejectsWith(ca.signCsr(csrPem, { spiffeId: ID, ttlMs: 0 }), ErrorCodes.INVALID);
    await rejectsWith(ca.signCsr(csrPem, { spiffeId: ID, ttlMs: Number.NaN }), ErrorCodes.INVALID);
  });

  it('signs a CSR in a few milliseconds', async (t) => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: new ManualClock() });
    const csrs = await Promise.all(Array.from({ length: 40 }, () => generateKeyAndCsr(ID)));
    await ca.signCsr(csrs[0]!.csrPem, { spiffeId: ID }); // warm-up
    const started = performance.now();
    for (const { csrPem } of csrs) await ca.signCsr(csrPem, { spiffeId: ID });
    const perCsr = (performance.now() - started) / csrs.length;
    t.diagnostic(`CSR signing: ${perCsr.toFixed(2)} ms per CSR (mean of ${csrs.length}, verify + sign)`);
    assert.ok(perCsr < 100, `signing took ${perCsr} ms`);
  });
});

/** An organisation's root and an intermediate under it, made with foreign tooling conventions (SEC1 key). */
async function organisationCa(clock: ManualClock, options: { intermediateKey?: 'ec' | 'rsa' } = {}) {
  const ecAlg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const rootKeys = (await webcrypto.subtle.generateKey(ecAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = clock.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Example Corp Root, O=Example Corp',
    keys: rootKeys,
    signingAlgorithm: ecAlg,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 365 * DAY),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
  });
  const intermediateAlg =
    options.intermediateKey === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : ecAlg;
  const keys = (await webcrypto.subtle.generateKey(intermediateAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const intermediate = await x509.X509CertificateGenerator.create({
    subject: 'CN=Example Corp Mesh CA, O=Example Corp',
    issuer: root.subjectName,
    publicKey: keys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ecAlg,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 90 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
  const keyPem = options.intermediateKey === 'rsa' ? pkcs8.export({ format: 'pem', type: 'pkcs1' }).toString() : pkcs8.export({ format: 'pem', type: 'sec1' }).toString();
  return { rootPem: root.toString('pem') + '\n', intermediatePem: intermediate.toString('pem') + '\n', keyPem };
}

describe('CertificateAuthority.load (an operator-supplied intermediate)', () => {
  it('signs under the intermediate: the chain carries it, the bundle is the organisation root', async () => {
    const clock = new ManualClock();
    const org = await organisationCa(clock);
    const ca = await CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: org.keyPem, chainPem: org.rootPem, clock });
    assert.equal(ca.trustDomain, undefined);
    assert.deepEqual(ca.trustBundle().map((p) => new X509Certificate(p).subject), ['CN=Example Corp Root\nO=Example Corp']);
    const { csrPem } = await generateKeyAndCsr(ID);
    const signed = await ca.signCsr(csrPem, { spiffeId: ID, ttlMs: HOUR });
    const leaf = new X509Certificate(signed.certPem);
    const [intermediatePem, ...rest] = splitPemCertificates(signed.chainPem);
    assert.equal(rest.length, 0, 'the root is not sent in the chain');
    const intermediate = new X509Certificate(intermediatePem!);
    const root = new X509Certificate(ca.trustBundle()[0]!);
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
    assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
    assert.equal(leaf.issuer, intermediate.subject);
    assert.equal(leaf.subjectAltName, `URI:${ID}`);
  });

  it('caps leaves at the intermediate expiry', async () => {
    const clock = new ManualClock();
    const org = await organisationCa(clock);
    const ca = await CertificateAuthority.load({ certPem: org.intermediatePem + org.rootPem, keyPem: org.keyPem, clock });
    clock.advance(90 * DAY - HOUR);
    const { csrPem } = await generateKeyAndCsr(ID);
    const signed = await ca.signCsr(csrPem, { spiffeId: ID });
    assert.equal(signed.notAfter, new X509Certificate(org.intermediatePem).validToDate.getTime());
  });

  it('works with an RSA intermediate key in PKCS#1 form', async () => {
    const clock = new ManualClock();
    const org = await organisationCa(clock, { intermediateKey: 'rsa' });
    assert.match(org.keyPem, /BEGIN RSA PRIVATE KEY/);
    const ca = await CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: org.keyPem, chainPem: org.rootPem, clock });
    const signed = await ca.signCsr((await generateKeyAndCsr(ID)).csrPem, { spiffeId: ID });
    assert.ok(new X509Certificate(signed.certPem).verify(new X509Certificate(org.intermediatePem).publicKey));
  });

  it('refuses an intermediate without its root: peers need a self-signed anchor', async () => {
    const clock = new ManualClock();
    const org = await organisationCa(clock);
    await rejectsWith(CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: org.keyPem, clock }), ErrorCodes.CA_INVALID, /organisation's root/);
  });

  it('refuses a key that does not match, a non-CA certificate, a broken chain, unreadable input', async () => {
    const clock = new ManualClock();
    const org = await organisationCa(clock);
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await rejectsWith(CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: otherKey, chainPem: org.rootPem, clock }), ErrorCodes.CA_INVALID, /does not match/);

    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock });
    const { csrPem, keyPem } = await generateKeyAndCsr(ID);
    const leaf = await ca.signCsr(csrPem, { spiffeId: ID });
    await rejectsWith(CertificateAuthority.load({ certPem: leaf.certPem, keyPem, clock }), ErrorCodes.CA_INVALID, /not a CA/);

    const stranger = await CertificateAuthority.generate({ trustDomain: TD, clock });
    await rejectsWith(CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: org.keyPem, chainPem: stranger.certPem, clock }), ErrorCodes.CA_INVALID, /out of order/);
    await rejectsWith(CertificateAuthority.load({ certPem: 'nothing', keyPem: org.keyPem, clock }), ErrorCodes.CA_INVALID);
    await rejectsWith(CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: 'nothing', clock }), ErrorCodes.CA_INVALID);
  });

  it('round-trips a generated root through toPem()', async () => {
    const clock = new ManualClock();
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock });
    const again = await CertificateAuthority.load({ ...ca.toPem(), clock });
    assert.equal(again.trustDomain, TD);
    assert.deepEqual(again.trustBundle(), ca.trustBundle());
    const signed = await again.signCsr((await generateKeyAndCsr(ID)).csrPem, { spiffeId: ID });
    assert.ok(new X509Certificate(signed.certPem).verify(new X509Certificate(ca.certPem).publicKey));
  });
});

describe('trust bundle during a root rotation', () => {
  it('carries the other root while the overlap lasts', async () => {
    const clock = new ManualClock();
    const oldRoot = await CertificateAuthority.generate({ trustDomain: TD, clock });
    const newRoot = await CertificateAuthority.generate({ trustDomain: TD, clock });
    newRoot.addTrustAnchors(oldRoot.certPem);
    newRoot.addTrustAnchors(oldRoot.certPem);
    assert.deepEqual(newRoot.trustBundle(), [newRoot.certPem, oldRoot.certPem]);
    newRoot.removeTrustAnchors(newRoot.certPem);
    assert.equal(newRoot.trustBundle().length, 2, "the CA's own root stays");
    newRoot.removeTrustAnchors(oldRoot.certPem);
    assert.deepEqual(newRoot.trustBundle(), [newRoot.certPem]);
    assert.throws(() => newRoot.addTrustAnchors('junk'), (e: unknown) => isWeftError(e, ErrorCodes.CA_INVALID));
    const leaf = await oldRoot.signCsr((await generateKeyAndCsr(ID)).csrPem, { spiffeId: ID });
    assert.throws(() => newRoot.addTrustAnchors(leaf.certPem), (e: unknown) => isWeftError(e, ErrorCodes.CA_INVALID));
  });
});

describe('CA persistence', () => {
  it('writes ca.key with mode 0600 and reads the same CA back', async () => {
    const clock = new ManualClock();
    const dir = join(tempDir(), 'data');
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock });
    await saveCa(dir, ca);
    assert.equal(statSync(join(dir, CA_FILES.key)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(dir).sort(), [CA_FILES.cert, CA_FILES.key].sort(), 'no temporary files left');
    const loaded = await loadCa(dir, { clock });
    assert.ok(loaded);
    assert.equal(loaded.certPem, ca.certPem);
    assert.equal(loaded.toPem().keyPem, ca.toPem().keyPem);
  });

  it('keeps an intermediate chain and extra trusted roots', async () => {
    const clock = new ManualClock();
    const dir = tempDir();
    const org = await organisationCa(clock);
    const ca = await CertificateAuthority.load({ certPem: org.intermediatePem, keyPem: org.keyPem, chainPem: org.rootPem, clock });
    const previous = await CertificateAuthority.generate({ trustDomain: TD, clock });
    ca.addTrustAnchors(previous.certPem);
    await saveCa(dir, ca);
    const loaded = await loadCa(dir, { clock });
    assert.deepEqual(loaded?.trustBundle(), [org.rootPem, previous.certPem]);
    assert.equal(loaded?.chainPem, org.rootPem);
  });

  it('finds nothing in an empty dir, refuses half a CA and a key others can read', async () => {
    const clock = new ManualClock();
    const dir = tempDir();
    assert.equal(await loadCa(dir, { clock }), undefined);
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock });
    await saveCa(dir, ca);
    chmodSync(join(dir, CA_FILES.key), 0o644);
    await rejectsWith(loadCa(dir, { clock }), ErrorCodes.CA_INVALID, /chmod 600/);
    rmSync(join(dir, CA_FILES.key));
    await rejectsWith(loadCa(dir, { clock }), ErrorCodes.CA_INVALID, /without/);
  });

  it('loadOrCreateCa creates a root once, then keeps it; refuses another trust domain', async () => {
    const clock = new ManualClock();
    const dir = tempDir();
    const first = await loadOrCreateCa(dir, { trustDomain: TD, clock });
    assert.equal(first.created, true);
    const second = await loadOrCreateCa(dir, { trustDomain: TD, clock });
    assert.equal(second.created, false);
    assert.equal(second.ca.certPem, first.ca.certPem);
    await rejectsWith(loadOrCreateCa(dir, { trustDomain: 'other.org', clock }), ErrorCodes.CA_INVALID, /trust domain/);
  });

  it('replaces files without ever exposing the key', async () => {
    const clock = new ManualClock();
    const dir = tempDir();
    writeFileSync(join(dir, CA_FILES.key), 'old', { mode: 0o644 });
    await saveCa(dir, await CertificateAuthority.generate({ trustDomain: TD, clock }));
    assert.equal(statSync(join(dir, CA_FILES.key)).mode & 0o777, 0o600, 'an existing, looser file is replaced, not reused');
  });
});
