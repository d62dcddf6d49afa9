// Access logs through real sidecars: one JSON line per request and per TCP connection with the documented fields, sampling and field selection from MeshConfig.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './control-helpers.ts';
import { startObservedMesh, type ObservedMesh } from './observability-helpers.ts';
import { viaProxy } from './proxy-helpers.ts';

type Line = Record<string, unknown>;

describe('access logs through the mesh', { timeout: 60_000 }, () => {
  let mesh: ObservedMesh;
  let dir: string;
  let file: string;

  const lines = (): Line[] =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as Line)
      : [];
  const spec = (extra = '') => `accessLog:\n  path: ${file}\n${extra}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-access-log-'));
    file = join(dir, 'access.log');
    mesh = await startObservedMesh(spec());
  });

  after(async () => {
    await mesh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes one line per request at every proxy it crosses, with the documented fields', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/orders?id=7', {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'user-agent': 'access-log-test' },
    });
    assert.equal(res.status, 200);
    const ours = await waitFor(() => {
      const found = lines().filter((l) => l.path === '/orders?id=7' || l.path === 'http://frontend.shop/orders?id=7');
      return found.length >= 6 ? found : undefined;
    }, 'six lines (three hops, both ends)', 5000);
    const client = ours.find((l) => l.direction === 'outbound' && l.caller === 'shop/client');
    assert.ok(client, JSON.stringify(ours));
    assert.equal(client.method, 'GET');
    assert.equal(client.protocol, 'HTTP/1.1');
    assert.equal(client.authority, 'frontend.shop');
    assert.equal(client.status, 200);
    assert.equal(client.upstream_service, 'shop/frontend:80');
    assert.equal(client.upstream_endpoint, 'shop/frontend-0');
    assert.match(String(client.upstream_host), /^127\.0\.0\.1:\d+$/);
    assert.equal(client.retries, 0);
    assert.equal(client.trace_id, traceId);
    assert.equal(client.user_agent, 'access-log-test');
    assert.equal(typeof client.route, 'string');
    assert.ok(typeof client.duration_ms === 'number' && client.duration_ms > 0);
    assert.ok(typeof client.upstream_service_time_ms === 'number' && client.upstream_service_time_ms <= client.duration_ms);
    assert.ok(typeof client.bytes_sent === 'number' && client.bytes_sent > 0);
    assert.equal(client.bytes_received, 0);
    assert.ok(!Number.isNaN(Date.parse(String(client.time))));
    const frontendIn = ours.find((l) => l.direction === 'inbound' && l.caller === 'spiffe://cluster.local/ns/shop/sa/client');
    assert.ok(frontendIn, JSON.stringify(ours));
    assert.equal(frontendIn.source, 'shop/client');
    assert.equal(frontendIn.status, 200);
    assert.equal(frontendIn.path, '/orders?id=7');
    assert.equal(frontendIn.trace_id, traceId);
  });

  it("a proxy's own answer carries its weft_reason", async () => {
    const res = await viaProxy(mesh.client.ports.outbound, 'http://nowhere.shop/x');
    assert.equal(res.status, 502);
    const line = await waitFor(() => lines().find((l) => l.authority === 'nowhere.shop'), 'the no-route line', 5000);
    assert.equal(line.status, 502);
    assert.equal(line.weft_reason, 'WEFT_ERR_NO_ROUTE');
    assert.match(String(line.weft_reason_text), /nowhere/);
    assert.equal(line.upstream_service_time_ms, undefined);
  });

  it('logs TCP connections at both ends with their bytes', async () => {
    const before = lines().length;
    const socket = connect(mesh.client.ports.outbound, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write('CONNECT tcpecho.shop:9000 HTTP/1.1\r\nhost: tcpecho.shop:9000\r\n\r\n');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    await waitFor(() => received.includes('\r\n\r\n'), 'CONNECT answered', 5000);
    assert.match(received, /^HTTP\/1\.1 200/);
    received = '';
    socket.write('hello, tcp');
    await waitFor(() => received === 'hello, tcp', 'the echo', 5000);
    socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
    const tcp = await waitFor(() => {
      const found = lines()
        .slice(before)
        .filter((l) => l.protocol === 'tcp');
      return found.length >= 2 ? found : undefined;
    }, 'two TCP lines', 5000);
    const out = tcp.find((l) => l.direction === 'outbound');
    const inbound = tcp.find((l) => l.direction === 'inbound');
    assert.ok(out && inbound, JSON.stringify(tcp));
    assert.equal(out.authority, 'shop/tcpecho:9000');
    assert.equal(out.bytes_received, 10);
    assert.equal(out.bytes_sent, 10);
    assert.equal(out.caller, 'shop/client');
    assert.equal(inbound.caller, 'spiffe://cluster.local/ns/shop/sa/client');
    assert.equal(inbound.bytes_received, 10);
    assert.equal(inbound.bytes_sent, 10);
    assert.equal(out.method, undefined);
  });

  it('logs a TCP connection that could not reach its upstream, with the reason', async () => {
    const socket = connect(mesh.client.ports.outbound, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    socket.write('CONNECT tcpgone.shop:9100 HTTP/1.1\r\nhost: tcpgone.shop:9100\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    const reason = /weft-reason: (\S+)/.exec(received)?.[1];
    assert.ok(reason, received);
    const line = await waitFor(() => lines().find((l) => l.protocol === 'tcp' && l.authority === 'shop/tcpgone:9100'), 'the failed TCP line', 5000);
    assert.equal(line.weft_reason, reason);
    assert.equal(line.bytes_sent, 0);
  });

  it('fields chooses what each line carries, in that order', async () => {
    await mesh.setMeshConfig(spec('  fields: [status, method, path]'));
    const before = lines().length;
    assert.equal((await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/fields')).status, 200);
    const fresh = await waitFor(() => {
      const found = lines().slice(before);
      return found.length >= 6 ? found : undefined;
    }, 'the new lines', 5000);
    for (const line of fresh) assert.deepEqual(Object.keys(line), ['status', 'method', 'path']);
  });

  it('samplingPercent: 0 writes nothing, 50 about half', async () => {
    await mesh.setMeshConfig(spec('  samplingPercent: 0\n  fields: [direction, path]'));
    const before = lines().length;
    for (let i = 0; i < 5; i++) assert.equal((await viaProxy(mesh.client.ports.outbound, `http://frontend.shop/none-${i}`)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(lines().length, before);

    await mesh.setMeshConfig(spec('  samplingPercent: 50\n  fields: [direction, caller, path]'));
    const start = lines().length;
    const n = 60;
    for (let i = 0; i < n; i++) assert.equal((await viaProxy(mesh.client.ports.outbound, `http://frontend.shop/half-${i}`)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const clientLines = lines()
      .slice(start)
      .filter((l) => l.caller === 'shop/client' && String(l.path).includes('/half-'));
    assert.ok(clientLines.length > n * 0.2 && clientLines.length < n * 0.8, `${clientLines.length} of ${n} logged`);
  });

  it('enabled: false turns it off', async () => {
    await mesh.setMeshConfig(spec('  enabled: false'));
    const before = lines().length;
    assert.equal((await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/off')).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(lines().length, before);
  });
});
