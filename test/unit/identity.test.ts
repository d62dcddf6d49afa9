// SPIFFE ID building and parsing, the proxy's key and CSR, and reading a peer certificate's SPIFFE ID.
import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { parseSpiffeId, spiffeId, trustDomainId } from '../../src/api/identity.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { peerSpiffeId, spiffeServerIdentityCheck, subjectAltNames, verifyPeerSpiffeId } from '../../src/api/peer-identity.ts';

const ID = 'spiffe://example.org/ns/shop/sa/reviews';

describe('spiffeId / parseSpiffeId', () => {
  it('builds and parses spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    assert.equal(spiffeId('example.org', 'shop', 'reviews'), ID);
    assert.equal(spiffeId('cluster.local', 'default', 'default'), 'spiffe://cluster.local/ns/default/sa/default');
    assert.equal(spiffeId('td_1-x', 'a', 'sa.with.dots'), 'spiffe://td_1-x/ns/a/sa/sa.with.dots');
    assert.deepEqual(parseSpiffeId(ID), { trustDomain: 'example.org', namespace: 'shop', serviceAccount: 'reviews' });
    assert.equal(trustDomainId('example.org'), 'spiffe://example.org');
  });

  it('refuses malformed parts when building', () => {
    for (const [td, ns, sa] of [
      ['Example.org', 'shop', 'reviews'],
      ['', 'shop', 'reviews'],
      ['example.org:443', 'shop', 'reviews'],
      ['example.org', 'Shop', 'reviews'],
      ['example.org', 'shop/x', 'reviews'],
      ['example.org', '-shop', 'reviews'],
      ['example.org', 'a'.repeat(64), 'reviews'],
      ['example.org', 'shop', ''],
      ['example.org', 'shop', 'a/b'],
      ['example.org', 'shop', '..'],
    ] as const) {
      assert.throws(() => spiffeId(td, ns, sa), (e: unknown) => isWeftError(e, ErrorCodes.IDENTITY_INVALID), `${td} ${ns} ${sa}`);
    }
  });

  it('parses nothing but well-formed mesh IDs', () => {
    for (const bad of [
      '',
      'spiffe://example.org',
      'spiffe://example.org/',
      'spiffe://example.org/ns/shop',
      'spiffe://example.org/ns/shop/sa/reviews/',
      'spiffe://example.org/ns/shop/sa/reviews/extra',
      'spiffe://example.org/ns//sa/reviews',
      'spiffe://example.org/sa/reviews/ns/shop',
      'spiffe://example.org/ns/shop/sa/reviews?x=1',
      'spiffe://example.org/ns/shop/sa/reviews#f',
      'spiffe://user@example.org/ns/shop/sa/reviews',
      'spiffe://example.org:8443/ns/shop/sa/reviews',
      'SPIFFE://example.org/ns/shop/sa/reviews',
      'https://example.org/ns/shop/sa/reviews',
      'spiffe://Example.org/ns/shop/sa/reviews',
      'spiffe://example.org/ns/sh%6fp/sa/reviews',
      'spiffe://example.org/ns/./sa/reviews',
      'spiffe://example.org/ns/shop/sa/..',
      `spiffe://${'a'.repeat(2040)}/ns/shop/sa/reviews`,
    ]) {
      assert.equal(parseSpiffeId(bad), undefined, bad);
    }
  });
});

describe('generateKeyAndCsr', () => {
  it('makes a P-256 key and a CSR signed by it that asks for the ID', async () => {
    const { keyPem, csrPem } = await generateKeyAndCsr(ID);
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    assert.equal(await csr.verify(), true);
    const csrKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    assert.ok(csrKey.equals(createPublicKey(key)), 'the CSR carries the public half of the key');
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: ID }]);
    assert.ok(!csrPem.includes('PRIVATE'));
    const second = await generateKeyAndCsr(ID);
    assert.notEqual(second.keyPem, keyPem, 'a fresh key every time');
  });

  it('refuses a malformed ID', async () => {
    await assert.rejects(generateKeyAndCsr('spiffe://example.org/reviews'), (e: unknown) => isWeftError(e, ErrorCodes.IDENTITY_INVALID));
  });
});

describe('subjectAltNames', () => {
  it("splits node's SAN text, including quoted values", () => {
    assert.deepEqual(subjectAltNames(`URI:${ID}`), [{ type: 'URI', value: ID, quoted: false }]);
    assert.deepEqual(subjectAltNames('DNS:a.example, IP Address:10.0.0.1, URI:spiffe://x/ns/a/sa/b'), [
      { type: 'DNS', value: 'a.example', quoted: false },
      { type: 'IP Address', value: '10.0.0.1', quoted: false },
      { type: 'URI', value: 'spiffe://x/ns/a/sa/b', quoted: false },
    ]);
    assert.deepEqual(subjectAltNames('URI:"spiffe://x/ns/a/sa/b, URI:spiffe://x/ns/a/sa/c", DNS:z'), [
      { type: 'URI', value: 'spiffe://x/ns/a/sa/b, URI:spiffe://x/ns/a/sa/c', quoted: true },
      { type: 'DNS', value: 'z', quoted: false },
    ]);
    assert.deepEqual(subjectAltNames(''), []);
  });
});

/** A certificate signed by `ca`'s key with arbitrary SANs and constraints: what a misbehaving issuer could produce. */
async function craftedCertificate(sans: x509.JsonGeneralNames, options: { ca?: boolean } = {}): Promise<X509Certificate> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=crafted',
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true), ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [])],
  });
  return new X509Certificate(cert.toString('pem'));
}

describe('peerSpiffeId / verifyPeerSpiffeId', () => {
  it('reads the ID from an issued certificate and checks it against a string or a predicate', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: 'example.org', clock: new ManualClock() });
    const signed = await ca.signCsr((await generateKeyAndCsr(ID)).csrPem, { spiffeId: ID });
    const cert = new X509Certificate(signed.certPem);
    assert.equal(peerSpiffeId(cert), ID);
    assert.equal(verifyPeerSpiffeId(cert, ID), ID);
    assert.equal(verifyPeerSpiffeId(cert, (id) => parseSpiffeId(id)?.namespace === 'shop'), ID);
    assert.throws(() => verifyPeerSpiffeId(cert, 'spiffe://example.org/ns/shop/sa/payments'), (e: unknown) => isWeftError(e, ErrorCodes.PEER_IDENTITY));
    assert.throws(() => verifyPeerSpiffeId(cert, () => false), (e: unknown) => isWeftError(e, ErrorCodes.PEER_IDENTITY));
    const check = spiffeServerIdentityCheck(ID);
    assert.equal(check('ignored', { ...legacy(cert) }), undefined);
    assert.ok(isWeftError(spiffeServerIdentityCheck('spiffe://example.org/ns/a/sa/b')('ignored', legacy(cert)), ErrorCodes.PEER_IDENTITY));
  });

  it('refuses no certificate, a CA certificate, zero or two URI SANs, and a non-mesh URI', async () => {
    const refuses = (peer: Parameters<typeof peerSpiffeId>[0], why: RegExp) =>
      assert.throws(() => peerSpiffeId(peer), (e: unknown) => isWeftError(e, ErrorCodes.PEER_IDENTITY) && why.test((e as Error).message));
    refuses(undefined, /no certificate/);
    refuses({} as never, /no certificate/);
    refuses(await craftedCertificate([{ type: 'url', value: ID }], { ca: true }), /CA certificate/);
    refuses(await craftedCertificate([]), /0 URI SANs/);
    refuses(await craftedCertificate([{ type: 'dns', value: 'reviews.shop' }]), /0 URI SANs/);
    refuses(await craftedCertificate([{ type: 'url', value: ID }, { type: 'url', value: 'spiffe://example.org/ns/shop/sa/admin' }]), /2 URI SANs/);
    refuses(await craftedCertificate([{ type: 'url', value: 'https://example.org/ns/shop/sa/reviews' }]), /not a mesh SPIFFE ID/);
    refuses(await craftedCertificate([{ type: 'url', value: `${ID}, URI:spiffe://example.org/ns/shop/sa/admin` }]), /URI SAN|not a mesh/);
    // And the same through node:tls's own PeerCertificate shape.
    refuses(legacy(await craftedCertificate([{ type: 'url', value: ID }], { ca: true })), /CA certificate/);
  });
});

/** The fields of a node:tls PeerCertificate that the checks read, from an X509Certificate. */
function legacy(cert: X509Certificate) {
  return { raw: cert.raw, ca: cert.ca, subjectaltname: cert.subjectAltName } as unknown as import('node:tls').PeerCertificate;
}
