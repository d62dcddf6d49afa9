// TLS on the control plane's stream port: proxies verify it with the mesh trust bundle and the control plane's SPIFFE ID; tokens never go to another host in cleartext.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { controlPlaneSpiffeId } from '../../src/api/identity.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import { postCertificateRequest } from '../../src/proxy/identity/client.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { peerSpiffeId } from '../../src/api/peer-identity.ts';
import { startProxy } from '../../src/proxy/main.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { adminGet, startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';

const mesh = [
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews', labels: { app: 'reviews' } }, spec: { serviceAccount: 'reviews', ports: [{ name: 'http', port: 9080 }] } },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'productpage', labels: { app: 'productpage' } }, spec: { serviceAccount: 'productpage' } },
  // A template that asks for the control plane's own identity: the CA must refuse it.
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' }, spec: {} },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'impostor', namespace: 'weft-system' }, spec: { serviceAccount: 'weft-control-plane' } },
];

describe('TLS on the control plane stream port', () => {
  let cp: RunningControlPlane;
  let app: Backend;
  const proxies: TestProxy[] = [];

  before(async () => {
    cp = await startTestControlPlane();
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: mesh });
    assert.equal(applied.status, 200, applied.text);
    app = await startBackend('reviews-app');
  });

  after(async () => {
    for (const proxy of proxies.reverse()) await proxy.close();
    await app?.close();
    await cp?.close();
  });

  it('presents a certificate of the mesh CA naming the control plane, on the same port as cleartext for this host', async () => {
    assert.match(cp.streamTlsUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(new URL(cp.streamTlsUrl).port, new URL(cp.streamUrl).port);
    const presented = await new Promise<string>((resolve, reject) => {
      const url = new URL(cp.streamTlsUrl);
      const socket = tlsConnect({ host: url.hostname, port: Number(url.port), ca: cp.trustBundle, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      socket.on('secureConnect', () => {
        assert.equal(socket.authorized, true, String(socket.authorizationError));
        assert.equal(socket.getProtocol(), 'TLSv1.3');
        resolve(peerSpiffeId(socket.getPeerX509Certificate()));
        socket.destroy();
      });
      socket.on('error', reject);
    });
    assert.equal(presented, controlPlaneSpiffeId('cluster.local'));
    const state = await api(cp.apiUrl, 'GET', '/weft/v1/ca');
    assert.deepEqual(state.body.trustBundle, cp.trustBundle, '`weft ca bundle` has the bundle to hand to proxies');
  });

  it('serves proxies that dial https:// with the trust bundle: certificate, config and mesh traffic', async () => {
    const common = { controlPlane: cp.streamTlsUrl, controlPlaneCa: cp.trustBundle };
    const server = await startTestProxy({
      ...common,
      workload: 'reviews',
      instance: 'reviews-0',
      appPorts: [{ declared: 9080, actual: app.port }],
      readinessIntervalMs: 100,
      token: await cp.tokens.create({ namespace: 'default', workload: 'reviews' }),
    });
    proxies.push(server);
    const client = await startTestProxy({ ...common, workload: 'productpage', instance: 'productpage-0', token: await cp.tokens.create({ namespace: 'default', workload: 'productpage' }) });
    proxies.push(client);
    await waitFor(async () => (await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/over-tls')).status === 200, { timeoutMs: 10_000, message: 'mesh traffic between proxies configured over TLS' });
    const config = (await adminGet(client.proxy.ports.admin, '/config')).json<{ controlPlane: { url: string; connected: boolean } }>();
    assert.equal(config.controlPlane.url, cp.streamTlsUrl);
    assert.equal(config.controlPlane.connected, true);
  });

  it('never talks to a stream port whose certificate the bundle does not vouch for', async () => {
    const stranger = await CertificateAuthority.generate({ trustDomain: 'cluster.local', clock: systemClock });
    const { csrPem } = await generateKeyAndCsr();
    const token = await cp.tokens.create({ namespace: 'default', workload: 'reviews' });
    await assert.rejects(
      postCertificateRequest(cp.streamTlsUrl, token, { csr: csrPem, namespace: 'default', workload: 'reviews', proxy: 'default/x' }, 3000, { roots: () => stranger.trustBundle() }),
      /unable to verify the first certificate/,
    );
    await assert.rejects(
      postCertificateRequest(cp.streamTlsUrl, token, { csr: csrPem, namespace: 'default', workload: 'reviews', proxy: 'default/x' }, 3000),
      /needs the mesh trust bundle/,
    );
  });

  it('refuses a stream port presenting a workload certificate of the same CA (an impostor inside the mesh)', async () => {
    const { keyPem, csrPem } = await generateKeyAndCsr();
    const signed = await cp.ca.signCsr(csrPem, { spiffeId: 'spiffe://cluster.local/ns/default/sa/reviews', ttlMs: 3_600_000 });
    const impostor = http2.createSecureServer({ key: keyPem, cert: signed.certPem + signed.chainPem });
    let asked = 0;
    impostor.on('stream', (stream) => {
      asked++;
      stream.respond({ ':status': 500 });
      stream.end('{}');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const token = await cp.tokens.create({ namespace: 'default', workload: 'reviews' });
      const url = `https://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
      await assert.rejects(
        postCertificateRequest(url, token, { csr: csrPem, namespace: 'default', workload: 'reviews', proxy: 'default/x' }, 3000, { roots: () => cp.trustBundle }),
        /sa\/reviews, not an identity allowed here/,
      );
      assert.equal(asked, 0, 'the token never reached the impostor');
    } finally {
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
  });

  it("does not grant a workload the control plane's identity", async () => {
    const { csrPem } = await generateKeyAndCsr();
    const token = await cp.tokens.create({ namespace: 'weft-system', workload: 'impostor' });
    await assert.rejects(
      postCertificateRequest(cp.streamTlsUrl, token, { csr: csrPem, namespace: 'weft-system', workload: 'impostor', proxy: 'weft-system/impostor-0' }, 3000, { roots: () => cp.trustBundle }),
      /control plane's identity/,
    );
  });

  it('refuses to send a bootstrap token over cleartext to another host', async () => {
    const options = {
      mode: 'sidecar' as const,
      controlPlane: 'http://192.0.2.10:15010',
      namespace: 'default',
      appPorts: [],
      outboundPort: 0,
      tunnelPort: 0,
      adminPort: 0,
      token: 'weft-token',
      logger: silentLogger(),
      clock: systemClock,
    };
    await assert.rejects(startProxy(options), /cross the network in cleartext/);
    // Without --ca-bundle a bare host:port is http://, so it is refused too.
    await assert.rejects(startProxy({ ...options, controlPlane: '192.0.2.10:15010' }), /cross the network in cleartext/);
  });
});
