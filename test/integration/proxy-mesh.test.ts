// Two proxies: a client sidecar sends through the mesh tunnel to a server sidecar, which delivers to its app.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Agent } from 'node:http';
import { freePort } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import {
  adminGet,
  buildSnapshot,
  endpoint,
  startBackend,
  startTestProxy,
  throughConnectTunnel,
  tunnelClientCredentials,
  viaProxy,
  viaTunnel,
  type Backend,
  type TestProxy,
} from './proxy-helpers.ts';

describe('client sidecar → tunnel → server sidecar → app', () => {
  let app: Backend;
  let tcpApp: Server;
  let server: TestProxy;
  let client: TestProxy;
  let out: number;

  before(async () => {
    app = await startBackend('reviews-app');
    tcpApp = createServer((socket) => {
      // A client that resets its end reaches the app as a reset (the mesh passes resets on).
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
    const deadAppPort = await freePort();
    server = await startTestProxy({
      workload: 'reviews',
      instance: 'reviews-0',
      appPorts: [
        { declared: 8080, actual: app.port },
        { declared: 7000, actual: (tcpApp.address() as AddressInfo).port },
        { declared: 8081, actual: deadAppPort },
      ],
      snapshot: buildSnapshot({ workload: 'reviews', inboundPorts: [7000, 8080, 8081] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    client = await startTestProxy({
      workload: 'productpage',
      snapshot: buildSnapshot({
        workload: 'productpage',
        services: [
          { name: 'reviews', ports: [{ port: 8080, endpoints: [endpoint('default/reviews-0', 8080, tunnel)] }] },
          { name: 'reviews-tcp', ports: [{ port: 7000, protocol: 'tcp', endpoints: [endpoint('default/reviews-0', 7000, tunnel)] }] },
          { name: 'unserved', ports: [{ port: 9999, endpoints: [endpoint('default/reviews-0', 9999, tunnel)] }] },
          { name: 'unserved-tcp', ports: [{ port: 9998, protocol: 'tcp', endpoints: [endpoint('default/reviews-0', 9998, tunnel)] }] },
          { name: 'down', ports: [{ port: 8081, endpoints: [endpoint('default/reviews-0', 8081, tunnel)] }] },
          // Two endpoints behind the same peer: one whose app is gone, one that answers.
          { name: 'half', ports: [{ port: 8080, endpoints: [endpoint('default/gone-0', 8081, tunnel), endpoint('default/reviews-0', 8080, tunnel)] }] },
        ],
      }),
    });
    out = client.proxy.ports.outbound;
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await app?.close();
    await new Promise((resolve) => tcpApp?.close(resolve));
  });

  it('delivers the request to the app with the client Host, without weft-* headers', async () => {
    const res = await viaProxy(out, 'http://reviews:8080/reviews/1?x=y', { headers: { 'x-custom': 'kept' } });
    assert.equal(res.status, 200, res.body);
    const seen = res.json();
    assert.equal(seen.name, 'reviews-app');
    assert.equal(seen.url, '/reviews/1?x=y');
    assert.equal(seen.headers.host, 'reviews:8080');
    assert.equal(seen.headers['x-custom'], 'kept');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.ok(seen.headers['x-request-id']);
    assert.deepEqual(Object.keys(seen.headers).filter((h) => h.startsWith('weft-')), []);
    assert.equal(res.headers['x-backend'], 'reviews-app', 'response headers come back');
  });

  it('streams request and response bodies both ways', async () => {
    const body = 'z'.repeat(512 * 1024);
    const res = await viaProxy(out, 'http://reviews:8080/upload', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 200);
    assert.equal(res.json().body.length, body.length);
  });

  it('reuses a few keep-alive connections between the proxies', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      for (let i = 0; i < 5; i++) {
        const batch = await Promise.all(Array.from({ length: 8 }, () => viaProxy(out, 'http://reviews:8080/pooled', { agent })));
        for (const res of batch) assert.equal(res.status, 200);
      }
      const metrics = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
      const open = Number(/weft_active_connections\{listener="inbound"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
      assert.ok(open >= 1 && open <= 8, `the server sidecar holds ${open} tunnel connections`);
      // The called proxy reports too (reporter="destination"), naming the caller from its mTLS identity.
      assert.match(metrics, /weft_requests_total\{reporter="destination",[^}]*source_principal="spiffe:[^"]+",[^}]*connection_security_policy="mutual_tls",route="inbound:8080",response_code="200"[^}]*\} \d+/);
    } finally {
      agent.destroy();
    }
  });

  it('answers 404 WEFT_ERR_INBOUND_PORT for a port the workload does not serve', async () => {
    const res = await viaProxy(out, 'http://unserved:9999/');
    assert.equal(res.status, 404);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_INBOUND_PORT');
    const direct = await viaTunnel(server.proxy.ports.tunnel, '/no-target-port', { headers: { host: 'reviews:8080' }, credentials: await tunnelClientCredentials() });
    assert.equal(direct.status, 404, 'a request without weft-target-port is not delivered');
    assert.equal(direct.headers['weft-reason'], 'WEFT_ERR_INBOUND_PORT');
  });

  it('answers 503 WEFT_ERR_UPSTREAM_CONNECT when the app refuses', async () => {
    const res = await viaProxy(out, 'http://down:8081/');
    assert.equal(res.status, 503);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_CONNECT');
  });

  it("retries elsewhere when the peer's app refuses, for requests without a body", async () => {
    for (let i = 0; i < 6; i++) {
      const res = await viaProxy(out, 'http://half:8080/');
      assert.equal(res.status, 200, `request ${i}: ${res.body}`);
      assert.deepEqual(Object.keys(res.json().headers).filter((h) => h.startsWith('weft-')), []);
    }
  });

  it('carries opaque TCP through the tunnel with CONNECT', async () => {
    const answer = await throughConnectTunnel(out, 'reviews-tcp:7000', 'tcp ping');
    assert.match(answer.head, /^HTTP\/1\.1 200/);
    assert.equal(answer.data, 'tcp ping');
    // The caller's proxy counts the connection (istio_tcp_* under weft_tcp_*) once it has closed.
    await waitFor(async () => /weft_tcp_connections_closed_total\{reporter="source",[^}]*destination_service_name="reviews-tcp",[^}]*request_protocol="tcp",connection_security_policy="mutual_tls"[^}]*\} 1/.test((await adminGet(client.proxy.ports.admin, '/metrics')).body), { timeoutMs: 3000 });
    const metrics = (await adminGet(client.proxy.ports.admin, '/metrics')).body;
    assert.match(metrics, /weft_tcp_connections_opened_total\{reporter="source",[^}]*destination_service_name="reviews-tcp"[^}]*\} 1/);
    assert.match(metrics, /weft_tcp_received_bytes_total\{reporter="source",[^}]*destination_service_name="reviews-tcp"[^}]*\} [1-9]/);
    // And the callee's proxy, on the app's side: what the app was given and what it sent back.
    await waitFor(async () => /weft_tcp_connections_closed_total\{reporter="destination",[^}]*request_protocol="tcp"[^}]*\} 1/.test((await adminGet(server.proxy.ports.admin, '/metrics')).body), {
      timeoutMs: 3000,
    });
    const callee = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
    assert.match(callee, /weft_tcp_received_bytes_total\{reporter="destination",[^}]*\} 8\b/, 'the app was given "tcp ping"');
    assert.match(callee, /weft_tcp_sent_bytes_total\{reporter="destination",[^}]*\} 8\b/, 'and echoed it');
  });

  it('refuses a tunnel to a port the workload does not serve, with the peer reason', async () => {
    const answer = await throughConnectTunnel(out, 'unserved-tcp:9998', 'x');
    assert.match(answer.head, /^HTTP\/1\.1 404/);
    assert.match(answer.head, /weft-reason: WEFT_ERR_INBOUND_PORT/);
  });
});
