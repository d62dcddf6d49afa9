// `weft tap` end to end: real sidecars under a small bounded load, the control plane fanning in their tap batches, the CLI as a process of its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TapLine } from '../../src/api/tap.ts';
import { runWeft } from '../../src/testing/process.ts';
import { api, waitFor } from './control-helpers.ts';
import { viaProxy } from './proxy-helpers.ts';
import { startTrafficMesh, type TrafficMesh } from './traffic-helpers.ts';

const TAPPABLE_CATALOG = `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: catalog, namespace: shop, labels: {app: catalog}, annotations: {weft.dev/tap: enabled}}
spec:
  serviceAccount: catalog
  ports: [{name: http, port: 8080}]
`;

type TapEventLine = Extract<TapLine, { type: 'event' }>;

describe('weft tap', { timeout: 60_000 }, () => {
  let mesh: TrafficMesh;
  let loading = true;
  let load: Promise<void>;

  before(async () => {
    mesh = await startTrafficMesh({ telemetryIntervalMs: 5000 });
    const applied = await api(mesh.cp.apiUrl, 'POST', '/weft/v1/apply', TAPPABLE_CATALOG, 'application/yaml');
    assert.equal(applied.status, 200, applied.text);
    // A small bounded load, about 40 requests/s: ok, 503 and other paths, with a header to show and one never shown.
    load = (async () => {
      let i = 0;
      while (loading) {
        const path = ['/ok', '/status/503', '/other/path', '/status/404'][i % 4]!;
        await viaProxy(mesh.frontend.ports.outbound, `http://catalog.shop${path}`, {
          headers: { 'x-request-id': `req-${i}`, authorization: 'Bearer secret-token', 'x-secret': 'hidden' },
        }).catch(() => undefined);
        i++;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
  });

  after(async () => {
    loading = false;
    await load;
    await mesh?.close();
  });

  it('streams matching requests with the filters applied and header values redacted unless shown', async () => {
    const run = await runWeft(
      ['tap', 'svc/catalog', '-n', 'shop', '--path-prefix', '/status', '--status', '5xx', '--method', 'get', '--show-header', 'x-request-id', '--show-header', 'authorization', '--max', '6', '-o', 'json', '--server', mesh.cp.apiUrl],
      { timeoutMs: 20_000 },
    );
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as TapLine);
    const started = lines[0];
    assert.equal(started?.type, 'started');
    assert.deepEqual(started.type === 'started' && [...started.proxies].sort(), ['shop/catalog-0', 'shop/catalog-1']);
    const events = lines.filter((l): l is TapEventLine => l.type === 'event');
    assert.equal(events.length, 6);
    assert.deepEqual(lines.at(-1), { type: 'end', reason: 'max events reached' });
    for (const event of events) {
      assert.equal(event.direction, 'inbound');
      assert.equal(event.method, 'GET');
      assert.equal(event.path, '/status/503');
      assert.equal(event.status, 503);
      assert.match(event.source, /^spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend$/);
      assert.match(event.proxy, /^shop\/catalog-[01]$/);
      assert.equal(typeof event.latencyMs, 'number');
      assert.ok(event.latencyMs >= 0 && event.latencyMs < 5000);
      assert.match(event.time, /^\d{4}-\d\d-\d\dT/);
      assert.match(event.headers['x-request-id'] ?? '', /^req-\d+$/);
      // Asked for, but a credential: never shown.
      assert.equal(event.headers.authorization, '<redacted>');
      assert.equal(event.headers['x-secret'], '<redacted>');
    }
  });

  it('prints one line per request without -o json', async () => {
    const run = await runWeft(['tap', 'catalog', '-n', 'shop', '--path-prefix', '/ok', '--max', '3', '--server', mesh.cp.apiUrl], { timeoutMs: 20_000 });
    assert.equal(run.code, 0, run.stderr);
    const rows = run.stdout.trim().split('\n');
    assert.equal(rows.length, 3, run.stdout);
    for (const row of rows) assert.match(row, /^\S+Z in  src=spiffe:\/\/\S+ dst=\S+ GET catalog\.shop\/ok 200 [\d.]+ms .*headers\{.*x-request-id=<redacted>/);
    assert.match(run.stderr, /# tapping 2 proxies/);
    assert.match(run.stderr, /# tap ended: max events reached/);
  });

  it('sends no events for a workload whose tap is not enabled', async () => {
    const run = await runWeft(['tap', 'workload/frontend', '-n', 'shop', '-o', 'json', '--server', mesh.cp.apiUrl], { timeoutMs: 20_000 });
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as TapLine);
    assert.equal(lines.filter((l) => l.type === 'event').length, 0);
    const started = lines[0];
    assert.ok(started?.type === 'started');
    assert.deepEqual(started.proxies, []);
    assert.match(started.skipped[0]?.reason ?? '', /weft\.dev\/tap: enabled/);
    assert.equal(lines.at(-1)?.type, 'end');
    assert.equal(mesh.frontend.tapsRunning(), 0);
  });

  it('refuses bad filters and unknown targets with a status', async () => {
    const bad = await api(mesh.cp.apiUrl, 'GET', '/api/v1/tap?target=svc/catalog&namespace=shop&status=abc');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /status "abc"/);
    const missing = await api(mesh.cp.apiUrl, 'GET', '/api/v1/tap?target=nothing&namespace=shop');
    assert.equal(missing.status, 404);
  });

  it('stops on every proxy when the client goes away', async () => {
    const controller = new AbortController();
    const response = await fetch(`${mesh.cp.apiUrl}/api/v1/tap?target=svc/catalog&namespace=shop`, { signal: controller.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /application\/x-ndjson/);
    const reader = response.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    while (!text.includes('"type":"event"')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the tap ended before any event');
      text += decoder.decode(value, { stream: true });
    }
    assert.ok(mesh.catalogs.every((p) => p.tapsRunning() === 1));
    controller.abort();
    await waitFor(() => mesh.catalogs.every((p) => p.tapsRunning() === 0), 'both catalog proxies stop the tap', 5000);
  });
});
