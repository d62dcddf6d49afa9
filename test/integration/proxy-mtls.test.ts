// Two real proxies on the mTLS tunnel: certificates from the control plane's CA, XFCC to the app, STRICT and PERMISSIVE, wrong identities refused, rotation under keep-alive traffic.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent } from 'node:http';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api } from './control-helpers.ts';
import {
  adminGet,
  buildSnapshot,
  endpoint,
  startBackend,
  startTestProxy,
  testCertificateAuthority,
  testIssuer,
  tunnelClientCredentials,
  viaProxy,
  viaTunnel,
  type Backend,
  type TestProxy,
} from './proxy-helpers.ts';
import { plaintextTunnelRequest, startSidecarPair, type SidecarPair } from './mtls-helpers.ts';

const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const FORGED_XFCC = 'By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/default/sa/admin';

function meshConfig(mode: 'STRICT' | 'PERMISSIVE') {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls: { mode } } };
}

function metric(text: string, pattern: RegExp): number {
  return Number(pattern.exec(text)?.[1] ?? NaN);
}

describe('the mesh tunnel on mTLS, with certificates from the control plane', () => {
  let cp: RunningControlPlane;
  let app: Backend;
  let server: TestProxy;
  let client: TestProxy;
  let pair: SidecarPair | undefined;

  before(async () => {
    pair = await startSidecarPair({ controlPlane: { leaseTtlMs: 3000 } });
    ({ cp, app, server, client } = pair);
  });

  after(() => pair?.close());

  it("delivers over mTLS; the app sees the caller's verified identity in XFCC, never one a client made up", async () => {
    const res = await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/who', { headers: { 'x-forwarded-client-cert': FORGED_XFCC } });
    assert.equal(res.status, 200, res.body);
    const xfcc = res.json().headers['x-forwarded-client-cert'];
    assert.match(String(xfcc), /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    assert.doesNotMatch(String(xfcc), /admin/);
  });

  it('gets each proxy the identity of its template, shown in the proxy list and the expiry metric', async () => {
    const proxies = (await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as ProxyStatus[];
    const byId = new Map(proxies.map((p) => [p.id, p]));
    assert.equal(byId.get('default/reviews-0')?.identity, REVIEWS);
    assert.equal(byId.get('default/productpage-0')?.identity, PRODUCTPAGE);
    const expiresAt = Date.parse(byId.get('default/reviews-0')!.certExpiresAt!);
    assert.ok(expiresAt > Date.now() + 23 * 3600_000, 'a 24 h certificate by default');
    const metrics = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
    assert.equal(metric(metrics, /^weft_certificate_expiry_timestamp_seconds (\d+)$/m), Math.floor(expiresAt / 1000));
    const config = (await adminGet(server.proxy.ports.admin, '/config')).json<{ identity: { spiffeId: string } }>();
    assert.equal(config.identity.spiffeId, REVIEWS);
  });

  it('refuses a plaintext client on the tunnel port in STRICT, before any of its request is read', async () => {
    const seen = app.requests;
    const outcome = await plaintextTunnelRequest(server.proxy.ports.tunnel);
    assert.doesNotMatch(outcome, /^HTTP\//, `plaintext got an answer: ${outcome}`);
    assert.equal(app.requests, seen, 'nothing reached the app');
    const metrics = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
    assert.ok(metric(metrics, /^weft_tunnel_handshakes_total\{side="server",result="plaintext_refused"\} (\d+)$/m) >= 1);
    assert.ok(metric(metrics, /^weft_tunnel_handshakes_total\{side="server",result="ok"\} (\d+)$/m) >= 1);
  });

  it('accepts plaintext too in PERMISSIVE (without XFCC), keeps mTLS working, and refuses it again back in STRICT', async () => {
    await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [meshConfig('PERMISSIVE')] });
    const answer = await waitFor(
      async () => {
        const outcome = await plaintextTunnelRequest(server.proxy.ports.tunnel, { headers: { 'x-forwarded-client-cert': FORGED_XFCC } });
        return outcome.startsWith('HTTP/1.1 200') ? outcome : undefined;
      },
      { timeoutMs: 5000, message: 'plaintext accepted in PERMISSIVE' },
    );
    assert.match(answer, /x-backend: reviews-app/i);
    const plain = await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/still-mtls');
    assert.equal(plain.status, 200);
    assert.match(String(plain.json().headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);

    // What the app got from the plaintext caller: no identity, forged or otherwise.
    const direct = await new Promise<string>((resolve) => {
      const socket = netConnect(server.proxy.ports.tunnel, '127.0.0.1');
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      socket.write(`GET /xfcc HTTP/1.1\r\nhost: reviews:9080\r\nweft-target-port: 9080\r\nx-forwarded-client-cert: ${FORGED_XFCC}\r\nconnection: close\r\n\r\n`);
    });
    assert.match(direct, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(direct.slice(direct.indexOf('\r\n\r\n')), /x-forwarded-client-cert/);

    await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [meshConfig('STRICT')] });
    await waitFor(async () => !(await plaintextTunnelRequest(server.proxy.ports.tunnel)).startsWith('HTTP/'), { timeoutMs: 5000, message: 'plaintext refused again' });
  });
});

describe('peer identities and rotation on the tunnel', () => {
  const started: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of started.reverse()) await s.close();
  });

  async function pair(options: { serverIdentity: string; expected: string; ttlMs?: number }): Promise<{ app: Backend; server: TestProxy; client: TestProxy }> {
    const app = await startBackend('reviews-app');
    started.push(app);
    const server = await startTestProxy({
      workload: 'reviews',
      instance: 'reviews-0',
      appPorts: [{ declared: 9080, actual: app.port }, { declared: 7000, actual: app.port }],
      snapshot: buildSnapshot({ workload: 'reviews', inboundPorts: [7000, 9080] }),
      issueCertificate: testIssuer(options.serverIdentity, options.ttlMs),
    });
    started.push(server);
    const tunnel = server.proxy.ports.tunnel;
    const client = await startTestProxy({
      workload: 'productpage',
      snapshot: buildSnapshot({
        workload: 'productpage',
        services: [
          { name: 'reviews', ports: [{ port: 9080, endpoints: [endpoint('default/reviews-0', 9080, tunnel, options.expected)] }] },
          { name: 'reviews-tcp', ports: [{ port: 7000, protocol: 'tcp', endpoints: [endpoint('default/reviews-0', 7000, tunnel, options.expected)] }] },
        ],
      }),
      issueCertificate: testIssuer(PRODUCTPAGE, options.ttlMs),
    });
    started.push(client);
    return { app, server, client };
  }

  it('refuses to deliver to an endpoint presenting another identity than the expected one', async () => {
    const { app, client } = await pair({ serverIdentity: 'spiffe://cluster.local/ns/default/sa/ratings', expected: REVIEWS });
    const res = await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/impostor');
    assert.equal(res.status, 503, res.body);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_PEER_IDENTITY');
    assert.match(res.body, /ratings/);
    const tcp = await new Promise<string>((resolve) => {
      const socket = netConnect(client.proxy.ports.outbound, '127.0.0.1');
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      socket.write('CONNECT reviews-tcp:7000 HTTP/1.1\r\nhost: reviews-tcp:7000\r\n\r\n');
    });
    assert.match(tcp, /^HTTP\/1\.1 503/);
    assert.match(tcp, /weft-reason: WEFT_ERR_PEER_IDENTITY/);
    assert.equal(app.requests, 0, 'the impostor never got the request');
  });

  it('refuses callers with a certificate of another CA, or with none', async () => {
    const { server } = await pair({ serverIdentity: REVIEWS, expected: REVIEWS });
    const stranger = await CertificateAuthority.generate({ trustDomain: 'cluster.local', clock: systemClock });
    const forged = await tunnelClientCredentials(PRODUCTPAGE, stranger);
    await assert.rejects(viaTunnel(server.proxy.ports.tunnel, '/', { headers: { 'weft-target-port': '9080' }, credentials: forged }));
    const bundle = (await testCertificateAuthority()).trustBundle();
    const anonymous = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: server.proxy.ports.tunnel, ca: bundle, ALPNProtocols: ['weft-tunnel/1'], checkServerIdentity: () => undefined });
      let text = '';
      socket.setEncoding('latin1');
      socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\nweft-target-port: 9080\r\n\r\n'));
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
      socket.on('close', () => resolve(text || 'closed'));
    });
    assert.doesNotMatch(anonymous, /^HTTP\//, 'no answer without a client certificate');
    const ok = await viaTunnel(server.proxy.ports.tunnel, '/', { headers: { 'weft-target-port': '9080', host: 'reviews' }, credentials: await tunnelClientCredentials(PRODUCTPAGE) });
    assert.equal(ok.status, 200, 'a caller with a certificate of the mesh CA is served');
  });

  it('rotates certificates at half life under keep-alive traffic without failing a request or dropping a connection', { timeout: 30_000 }, async () => {
    const ttlMs = 2000;
    const { server, client } = await pair({ serverIdentity: REVIEWS, expected: REVIEWS, ttlMs });
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    const serials = new Set<string>();
    const serverCertificate = () =>
      new Promise<string>((resolve, reject) => {
        tunnelClientCredentials(PRODUCTPAGE).then((credentials) => {
          const socket = tlsConnect({ host: '127.0.0.1', port: server.proxy.ports.tunnel, ...credentials, ALPNProtocols: ['weft-tunnel/1'], checkServerIdentity: () => undefined });
          socket.on('secureConnect', () => {
            resolve(socket.getPeerX509Certificate()!.serialNumber);
            socket.destroy();
          });
          socket.on('error', reject);
        }, reject);
      });
    const expiries = new Set<string>();
    const until = performance.now() + 2.5 * ttlMs;
    let ok = 0;
    const failures: string[] = [];
    try {
      serials.add(await serverCertificate());
      const load = Promise.all(
        Array.from({ length: 2 }, async () => {
          while (performance.now() < until) {
            try {
              const res = await viaProxy(client.proxy.ports.outbound, 'http://reviews:9080/rotating', { agent });
              if (res.status === 200) ok++;
              else failures.push(`${res.status} ${String(res.headers['weft-reason'])}`);
            } catch (error) {
              failures.push(String(error));
            }
          }
        }),
      );
      while (performance.now() < until) {
        const config = (await adminGet(server.proxy.ports.admin, '/config')).json<{ identity: { expiresAt: string } | null }>();
        if (config.identity) expiries.add(config.identity.expiresAt);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await load;
      serials.add(await serverCertificate());
    } finally {
      agent.destroy();
    }
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${ok + failures.length} requests failed`);
    assert.ok(ok > 50, `only ${ok} requests`);
    assert.ok(expiries.size >= 3, `the server renewed ${expiries.size - 1} times in ${2.5 * ttlMs} ms`);
    assert.equal(serials.size, 2, 'a new connection is served with the new certificate');
    const metrics = (await adminGet(client.proxy.ports.admin, '/metrics')).body;
    const handshakes = metric(metrics, /^weft_tunnel_handshakes_total\{side="client",result="ok"\} (\d+)$/m);
    assert.ok(handshakes <= 4, `the client opened ${handshakes} tunnel connections: kept-alive ones survived the rotations`);
  });
});
