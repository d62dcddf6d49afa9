// The CA on the stream port: a CSR needs a bootstrap token of the right scope, the identity comes from the template Workload, never from the CSR; hello tokens; the token API.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { postCertificateRequest } from '../../src/proxy/identity/client.ts';
import { api, sidecarNode, startTestControlPlane, StreamClient, waitFor } from './control-helpers.ts';

const TTL_MS = 10 * 60_000;

const objects = [
  {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'reviews', labels: { app: 'reviews' } },
    spec: { serviceAccount: 'bookinfo-reviews', ports: [{ name: 'http', port: 9080 }] },
  },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'ratings', labels: { app: 'ratings' } }, spec: { serviceAccount: 'bookinfo-ratings' } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
];

/** The URI SAN of a PEM certificate. */
function uriOf(pem: string): string {
  return new X509Certificate(pem).subjectAltName?.replace(/^URI:/, '') ?? '';
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isWeftError(error), String(error));
    return error.code;
  }
  assert.fail('the request was not refused');
}

describe('workload certificates from the control plane', () => {
  let cp: RunningControlPlane;
  let reviewsToken: string;
  const clients: StreamClient[] = [];
  const connect = () => {
    const client = new StreamClient(cp.streamUrl);
    clients.push(client);
    return client;
  };
  const ask = (token: string, request: { namespace?: string; workload?: string; proxy?: string; csr?: string } = {}) =>
    (async () =>
      postCertificateRequest(
        cp.streamUrl,
        token,
        { csr: request.csr ?? (await generateKeyAndCsr()).csrPem, namespace: request.namespace ?? 'default', ...(request.workload !== undefined ? { workload: request.workload } : {}), ...(request.proxy ? { proxy: request.proxy } : {}) },
        5000,
      ))();

  before(async () => {
    cp = await startTestControlPlane({ certTtlMs: TTL_MS, leaseTtlMs: 5000 });
    const res = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: objects });
    assert.equal(res.status, 200, res.text);
    reviewsToken = await cp.tokens.create({ namespace: 'default', workload: 'reviews' });
  });
  after(async () => {
    for (const client of clients) client.close();
    await cp.close();
  });

  it("signs for the template's service account, whatever identity the CSR asks for", async () => {
    const { csrPem } = await generateKeyAndCsr('spiffe://cluster.local/ns/kube-system/sa/admin');
    const before = Date.now();
    const issued = await ask(reviewsToken, { workload: 'reviews', csr: csrPem, proxy: 'default/reviews-0' });
    assert.equal(issued.spiffeId, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    assert.equal(uriOf(issued.certPem), issued.spiffeId, 'the certificate names the template identity, not the claimed one');
    assert.deepEqual(issued.trustBundle, cp.trustBundle);
    const cert = new X509Certificate(issued.certPem);
    assert.ok(cert.verify(new X509Certificate(cp.trustBundle[0]!).publicKey), 'signed by the root in the bundle');
    assert.ok(issued.notAfter >= before + TTL_MS - 2000 && issued.notAfter <= Date.now() + TTL_MS + 1000, 'lives for --cert-ttl');
  });

  it('refuses a request without a token, with an unknown one, or with an expired one', async () => {
    assert.equal(await refusal(ask('', { workload: 'reviews' })), ErrorCodes.UNAUTHORIZED);
    assert.equal(await refusal(ask('weft_' + 'A'.repeat(43), { workload: 'reviews' })), ErrorCodes.UNAUTHORIZED);
    assert.equal(await refusal(ask('not-a-token', { workload: 'reviews' })), ErrorCodes.UNAUTHORIZED);
    const shortLived = await cp.tokens.create({ namespace: 'default', workload: 'reviews', ttlMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(await refusal(ask(shortLived, { workload: 'reviews' })), ErrorCodes.UNAUTHORIZED);
  });

  it("refuses a token used for another workload or namespace, and a malformed CSR", async () => {
    assert.equal(await refusal(ask(reviewsToken, { workload: 'ratings' })), ErrorCodes.FORBIDDEN);
    assert.equal(await refusal(ask(reviewsToken, {})), ErrorCodes.FORBIDDEN, 'a workload token does not cover a proxy without a workload');
    assert.equal(await refusal(ask(reviewsToken, { namespace: 'other', workload: 'reviews' })), ErrorCodes.FORBIDDEN);
    assert.equal(await refusal(ask(reviewsToken, { workload: 'reviews', csr: 'not a csr' })), ErrorCodes.CSR_INVALID);
  });

  it('lets a namespace token certify any workload of its namespace, each as its own template says', async () => {
    const namespaceToken = await cp.tokens.create({ namespace: 'default' });
    assert.equal((await ask(namespaceToken, { workload: 'ratings' })).spiffeId, 'spiffe://cluster.local/ns/default/sa/bookinfo-ratings');
    assert.equal((await ask(namespaceToken, { workload: 'no-template' })).spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
    assert.equal((await ask(namespaceToken, {})).spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
  });

  it("shows the proxy's identity and certificate expiry in the proxy list", async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-c1', instance: 'reviews-c1' }), token: reviewsToken });
    await client.nth('welcome');
    const issued = await ask(reviewsToken, { workload: 'reviews', proxy: 'default/reviews-c1' });
    const status = await waitFor(
      async () => ((await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as ProxyStatus[]).find((p) => p.id === 'default/reviews-c1' && p.identity),
      'the certificate in the proxy list',
    );
    assert.equal(status.identity, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    assert.equal(status.certExpiresAt, new Date(issued.notAfter).toISOString());
    client.end();
  });

  it('puts the trust bundle, the mTLS mode and each endpoint identity in the snapshot', async () => {
    const client = connect();
    client.send({ type: 'hello', node: sidecarNode({ id: 'default/reviews-s1', instance: 'reviews-s1', tunnelPort: 15991 }), token: reviewsToken });
    client.send({ type: 'ready', ready: true });
    const pushed = await waitFor(
      () => client.snapshots().find((s) => s.snapshot.backends['default/reviews:9080']?.endpoints.some((e) => e.tunnelPort === 15991)),
      'a snapshot with the registered endpoint',
    );
    assert.deepEqual(pushed.snapshot.mesh.trustBundle, cp.trustBundle);
    assert.deepEqual(pushed.snapshot.mesh.mtls, { mode: 'STRICT' });
    const endpoint = pushed.snapshot.backends['default/reviews:9080']!.endpoints.find((e) => e.tunnelPort === 15991)!;
    assert.equal(endpoint.identity, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    client.end();
  });

  it('refuses a hello with a wrong token, and one whose token is for another workload', async () => {
    for (const [token, code] of [
      ['weft_' + 'B'.repeat(43), ErrorCodes.UNAUTHORIZED],
      [reviewsToken, ErrorCodes.FORBIDDEN],
    ] as const) {
      const client = connect();
      client.send({ type: 'hello', node: sidecarNode({ id: 'default/ratings-h1', instance: 'ratings-h1', workload: 'ratings' }), token });
      client.send({ type: 'ready', ready: true });
      const error = await client.nth('error');
      assert.equal(error.code, code, error.message);
      await waitFor(() => client.ended, 'the stream to end');
      assert.equal(client.messages.some((m) => m.type === 'welcome' || m.type === 'snapshot'), false, 'no config for a refused proxy');
    }
    const ratings = await api(cp.apiUrl, 'GET', '/apis/weft.dev/v1alpha1/namespaces/default/workloads/ratings-h1');
    assert.equal(ratings.status, 404, 'nothing registered');
  });

  it('creates tokens over the API only in local mode', async () => {
    const refused = await api(cp.apiUrl, 'POST', '/weft/v1/tokens', { namespace: 'default', workload: 'reviews' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.weftCode, ErrorCodes.FORBIDDEN);
    const local = await startTestControlPlane({ localTokens: true });
    try {
      const created = await api(local.apiUrl, 'POST', '/weft/v1/tokens', { namespace: 'default', workload: 'reviews', ttlMs: 60_000 });
      assert.equal(created.status, 201, created.text);
      assert.match(created.body.token, /^weft_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(await local.tokens.verify(created.body.token), { namespace: 'default', workload: 'reviews' });
      const bad = await api(local.apiUrl, 'POST', '/weft/v1/tokens', { namespace: 'Not Valid' });
      assert.equal(bad.status, 422);
      const stored = await local.store.list();
      assert.equal(stored.items.some((o) => JSON.stringify(o).includes(created.body.token)), false, 'only the hash is stored');
    } finally {
      await local.close();
    }
  });
});
