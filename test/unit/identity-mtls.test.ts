// Real mTLS handshakes on 127.0.0.1 between identities issued by the CA: both sides verify the peer's SPIFFE ID; strangers are refused.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type ConnectionOptions, type Server, type TlsOptions } from 'node:tls';
import type { AddressInfo } from 'node:net';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { parseSpiffeId } from '../../src/api/identity.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { IdentityManager } from '../../src/proxy/identity/manager.ts';
import { authorizedPeerSpiffeId, spiffeServerIdentityCheck, type ExpectedIdentity } from '../../src/api/peer-identity.ts';

const TD = 'example.org';
const REVIEWS = `spiffe://${TD}/ns/shop/sa/reviews`;
const FRONTEND = `spiffe://${TD}/ns/shop/sa/frontend`;
const HANDSHAKE_TIMEOUT_MS = 5000;

const managers: IdentityManager[] = [];
const servers: Server[] = [];
after(async () => {
  for (const m of managers) m.stop();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** An identity issued by `ca` through the same path a proxy uses: its own key, a CSR, the CA's answer. */
async function identity(ca: CertificateAuthority, id: string, trustBundle?: string[]): Promise<IdentityManager> {
  const manager = new IdentityManager({
    spiffeId: id,
    clock: systemClock,
    logger: silentLogger(),
    renew: async (csrPem) => ({ ...(await ca.signCsr(csrPem, { spiffeId: id, ttlMs: 3600_000 })), trustBundle: trustBundle ?? ca.trustBundle() }),
  });
  managers.push(manager);
  await manager.start();
  return manager;
}

interface Outcome {
  /** What the server wrote back: the client ID it verified. */
  reply: string;
  /** The server ID the client verified. */
  serverId?: string;
  clientError?: Error;
  /** The server's refusals: TLS-level (tlsClientError) and identity-level. */
  serverErrors: Error[];
}

/** A server that answers every verified client with the client's SPIFFE ID, and one client connection to it. */
async function handshake(
  server: { tls: TlsOptions; expectClient: ExpectedIdentity },
  client: { tls: ConnectionOptions; expectServer: ExpectedIdentity },
): Promise<Outcome> {
  const serverErrors: Error[] = [];
  const tlsServer = createServer({ ...server.tls, requestCert: true, rejectUnauthorized: true }, (socket) => {
    try {
      socket.end(authorizedPeerSpiffeId(socket, server.expectClient));
    } catch (e) {
      serverErrors.push(e as Error);
      socket.destroy();
    }
  });
  tlsServer.on('tlsClientError', (e) => serverErrors.push(e));
  servers.push(tlsServer);
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const { port } = tlsServer.address() as AddressInfo;

  const outcome: Outcome = { reply: '', serverErrors };
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ...client.tls, checkServerIdentity: spiffeServerIdentityCheck(client.expectServer) });
    const timer = setTimeout(() => {
      outcome.clientError = new Error('handshake timed out');
      socket.destroy();
    }, HANDSHAKE_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      const uri = socket.getPeerX509Certificate()?.subjectAltName;
      if (uri) outcome.serverId = uri.replace(/^URI:/, '');
    });
    socket.on('data', (chunk: string) => (outcome.reply += chunk));
    socket.on('error', (e) => (outcome.clientError ??= e));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
  return outcome;
}

describe('mTLS between two CA-issued identities', () => {
  it('handshakes; each side verifies and reads the other SPIFFE ID', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    const frontend = await identity(ca, FRONTEND);
    const outcome = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: (id) => parseSpiffeId(id)?.namespace === 'shop' },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(outcome.clientError, undefined);
    assert.deepEqual(outcome.serverErrors, []);
    assert.equal(outcome.reply, FRONTEND, 'the server verified the client as frontend');
    assert.equal(outcome.serverId, REVIEWS, 'the client verified the server as reviews');
  });

  it('works with a prebuilt SecureContext too, and speaks TLS 1.3 only', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    const frontend = await identity(ca, FRONTEND);
    const outcome = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: { secureContext: frontend.secureContext() }, expectServer: REVIEWS },
    );
    assert.equal(outcome.reply, FRONTEND);
    const old = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: { ...frontend.secureContextOptions(), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, expectServer: REVIEWS },
    );
    assert.ok(old.clientError, 'a TLS 1.2 client is refused');
    assert.equal(old.reply, '');
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const stranger = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    // The impostor trusts our CA (so it would accept the server) but holds a certificate from elsewhere.
    const impostor = await identity(stranger, FRONTEND, ca.trustBundle());
    const outcome = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: impostor.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(outcome.reply, '');
    assert.ok(outcome.serverErrors.length > 0, 'the server refused during the handshake');
  });

  it('refuses a server whose certificate comes from another CA', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const stranger = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const impostor = await identity(stranger, REVIEWS, ca.trustBundle());
    const frontend = await identity(ca, FRONTEND);
    const outcome = await handshake(
      { tls: impostor.secureContextOptions(), expectClient: FRONTEND },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(outcome.reply, '');
    assert.ok(outcome.clientError);
    assert.ok(!isWeftError(outcome.clientError), `refused by chain verification, not by the ID check: ${outcome.clientError.message}`);
  });

  it('refuses a client without a certificate', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    const outcome = await handshake({ tls: reviews.secureContextOptions(), expectClient: FRONTEND }, { tls: { ca: ca.trustBundle() }, expectServer: REVIEWS });
    assert.equal(outcome.reply, '');
    assert.ok(outcome.serverErrors.length > 0);
  });

  it('refuses a valid peer with the wrong identity, on either side', async () => {
    const ca = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    const frontend = await identity(ca, FRONTEND);
    const wrongServer = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: frontend.secureContextOptions(), expectServer: `spiffe://${TD}/ns/shop/sa/payments` },
    );
    assert.equal(wrongServer.reply, '');
    assert.ok(isWeftError(wrongServer.clientError, ErrorCodes.PEER_IDENTITY), String(wrongServer.clientError));

    const wrongClient = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: `spiffe://${TD}/ns/shop/sa/payments` },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(wrongClient.reply, '');
    assert.ok(wrongClient.serverErrors.some((e) => isWeftError(e, ErrorCodes.PEER_IDENTITY)));
  });

  it('during a root rotation overlap, identities under the old and the new root accept each other', async () => {
    const oldRoot = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    const newRoot = await CertificateAuthority.generate({ trustDomain: TD, clock: systemClock });
    newRoot.addTrustAnchors(oldRoot.certPem);
    const bundle = newRoot.trustBundle();
    assert.equal(bundle.length, 2);
    const reviews = await identity(oldRoot, REVIEWS, bundle);
    const frontend = await identity(newRoot, FRONTEND, bundle);
    const outcome = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(outcome.clientError, undefined);
    assert.equal(outcome.reply, FRONTEND);

    // Both roots have the same name; once the old one is dropped, its certificates stop being accepted.
    frontend.setTrustBundle([newRoot.certPem]);
    const after = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(after.reply, '');
    assert.ok(after.clientError);
  });

  it('works under an operator intermediate: leaves send the intermediate, peers trust the organisation root', async () => {
    const ecAlg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const rootKeys = (await webcrypto.subtle.generateKey(ecAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=Example Corp Root',
      keys: rootKeys,
      signingAlgorithm: ecAlg,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
    });
    const keys = (await webcrypto.subtle.generateKey(ecAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const intermediate = await x509.X509CertificateGenerator.create({
      subject: 'CN=Example Corp Mesh CA',
      issuer: root.subjectName,
      publicKey: keys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: ecAlg,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 7 * 86_400_000),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const keyPem = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' })
      .export({ format: 'pem', type: 'sec1' })
      .toString();
    const ca = await CertificateAuthority.load({ certPem: intermediate.toString('pem'), chainPem: root.toString('pem'), keyPem, clock: systemClock });
    const reviews = await identity(ca, REVIEWS);
    const frontend = await identity(ca, FRONTEND);
    const outcome = await handshake(
      { tls: reviews.secureContextOptions(), expectClient: FRONTEND },
      { tls: frontend.secureContextOptions(), expectServer: REVIEWS },
    );
    assert.equal(outcome.clientError, undefined, String(outcome.clientError));
    assert.deepEqual(outcome.serverErrors, []);
    assert.equal(outcome.reply, FRONTEND);
  });
});
