// The certificate matrix on the mesh tunnel: every flawed certificate is refused by a sidecar's tunnel server (as caller) and by its tunnel client (as upstream); a good one is accepted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { adminGet, buildSnapshot, endpoint, startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';
import { makeRoot, mint, rawTunnelRequest, rootIssuer, type MintOptions, type TestRoot } from './mtls-helpers.ts';
import { TUNNEL_ALPN } from '../../src/proxy/transport/mtls.ts';

const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const HOUR = 3_600_000;

/** Each flaw, as options for mint(); `root: 'stranger'` signs with a CA the mesh does not trust. */
function flaws(identity: string): { name: string; root?: 'stranger'; options: MintOptions }[] {
  const now = Date.now();
  return [
    { name: 'expired', options: { uris: [identity], notBefore: new Date(now - 2 * HOUR), notAfter: new Date(now - HOUR) } },
    { name: 'not yet valid', options: { uris: [identity], notBefore: new Date(now + HOUR), notAfter: new Date(now + 2 * HOUR) } },
    { name: 'another trust domain', options: { uris: [identity.replace('cluster.local', 'other.example')] } },
    { name: 'a CA certificate used as a leaf', options: { uris: [identity], ca: true } },
    { name: 'no URI SAN', options: { uris: [] } },
    { name: 'two URI SANs', options: { uris: [identity, 'spiffe://cluster.local/ns/default/sa/admin'] } },
    { name: 'a URI SAN that is not a mesh SPIFFE ID', options: { uris: ['spiffe://cluster.local/workload/x'] } },
    { name: 'signed by an unknown CA', root: 'stranger', options: { uris: [identity] } },
  ];
}

describe('a sidecar tunnel server refuses every flawed client certificate', () => {
  let root: TestRoot;
  let stranger: TestRoot;
  let app: Backend;
  let server: TestProxy;

  before(async () => {
    root = await makeRoot('cluster.local');
    stranger = await makeRoot('cluster.local');
    app = await startBackend('reviews-app');
    server = await startTestProxy({
      workload: 'reviews',
      instance: 'reviews-0',
      appPorts: [{ declared: 9080, actual: app.port }],
      snapshot: buildSnapshot({ workload: 'reviews', inboundPorts: [9080] }),
      issueCertificate: rootIssuer(root, REVIEWS),
    });
  });

  after(async () => {
    await server?.close();
    await app?.close();
  });

  it('refuses a caller without a client certificate', async () => {
    const outcome = await rawTunnelRequest(server.proxy.ports.tunnel, { ca: [root.certPem] });
    assert.doesNotMatch(outcome, /^HTTP\//, outcome);
    assert.equal(app.requests, 0);
  });

  for (const flaw of flaws(PRODUCTPAGE)) {
    it(`refuses a caller whose certificate is ${flaw.name}`, async () => {
      const seen = app.requests;
      const cert = await mint(flaw.root === 'stranger' ? stranger : root, flaw.options);
      const outcome = await rawTunnelRequest(server.proxy.ports.tunnel, { key: cert.keyPem, cert: cert.certPem, ca: [root.certPem] });
      assert.doesNotMatch(outcome, /^HTTP\//, `${flaw.name}: ${outcome}`);
      assert.equal(app.requests, seen, 'nothing reached the app');
    });
  }

  it('accepts a good certificate of the mesh, and counted every refusal', async () => {
    const cert = await mint(root, { uris: [PRODUCTPAGE] });
    const outcome = await rawTunnelRequest(server.proxy.ports.tunnel, { key: cert.keyPem, cert: cert.certPem, ca: [root.certPem] });
    assert.match(outcome, /^HTTP\/1\.1 200/, outcome);
    const metrics = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
    const refused = Number(/^weft_tunnel_handshakes_total\{side="server",result="refused"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    assert.ok(refused >= flaws(PRODUCTPAGE).length + 1, `${refused} refusals counted`);
  });
});

describe('a sidecar tunnel client refuses every upstream presenting a flawed certificate or another identity', () => {
  let root: TestRoot;
  let stranger: TestRoot;
  let client: TestProxy;
  const upstreams: { name: string; port: number; requests: number; close(): Promise<void> }[] = [];

  /** A tunnel server standing in for a peer proxy: any certificate, answers 200 to whatever it is sent. */
  async function fakePeer(name: string, key: string, cert: string): Promise<(typeof upstreams)[number]> {
    const peer = { name, port: 0, requests: 0, close: async () => {} };
    const http = createHttpServer((req, res) => {
      peer.requests++;
      res.end(`served by ${name}`);
    });
    const tls = createTlsServer({ key, cert, ALPNProtocols: [TUNNEL_ALPN, 'h2'], minVersion: 'TLSv1.3' }, (socket: TLSSocket) => http.emit('connection', socket));
    tls.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    peer.port = (tls.address() as AddressInfo).port;
    peer.close = () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        tls.close(() => resolve());
      });
    upstreams.push(peer);
    return peer;
  }

  const cases = () => [
    ...flaws(REVIEWS),
    { name: 'the wrong identity for the destination', options: { uris: ['spiffe://cluster.local/ns/default/sa/ratings'] } as MintOptions },
  ];

  before(async () => {
    root = await makeRoot('cluster.local');
    stranger = await makeRoot('cluster.local');
    const services = [];
    for (const [i, flaw] of [...cases(), { name: 'good', options: { uris: [REVIEWS] } as MintOptions, root: undefined }].entries()) {
      const cert = await mint(flaw.root === 'stranger' ? stranger : root, flaw.options);
      const peer = await fakePeer(flaw.name, cert.keyPem, cert.certPem);
      services.push({ name: `case${i}`, ports: [{ port: 9080, endpoints: [endpoint(`default/case${i}-0`, 9080, peer.port, REVIEWS)] }] });
    }
    client = await startTestProxy({
      workload: 'productpage',
      snapshot: buildSnapshot({ workload: 'productpage', services }),
      issueCertificate: rootIssuer(root, PRODUCTPAGE),
    });
  });

  after(async () => {
    await client?.close();
    for (const peer of upstreams) await peer.close();
  });

  it('answers 503 WEFT_ERR_PEER_IDENTITY for each flawed upstream and never sends it the request; delivers to the good one', async () => {
    const names = cases().map((c) => c.name);
    for (const [i, name] of names.entries()) {
      const res = await viaProxy(client.proxy.ports.outbound, `http://case${i}:9080/secret`);
      assert.equal(res.status, 503, `${name}: ${res.status} ${res.body}`);
      assert.equal(res.headers['weft-reason'], 'WEFT_ERR_PEER_IDENTITY', `${name}: ${res.body}`);
      assert.equal(upstreams[i]!.requests, 0, `${name}: the upstream got the request`);
    }
    const good = await viaProxy(client.proxy.ports.outbound, `http://case${names.length}:9080/secret`);
    assert.equal(good.status, 200, good.body);
    assert.equal(good.body, 'served by good');
  });
});
