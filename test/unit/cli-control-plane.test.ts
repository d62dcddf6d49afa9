// apply/get/delete/status against a real `weft control-plane` process, and its ready line and clean stop.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { runWeft, startWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

const demo = new URL('../../examples/demo/mesh.yaml', import.meta.url).pathname;
const dataDir = await mkdtemp(join(tmpdir(), 'weft-cp-'));
const controlPlane = await startWeft(['control-plane', '--data-dir', dataDir, '--api-port', '0', '--stream-port', '0', '--lease-ttl', '5s', '--insecure-local-tokens']);
after(async () => {
  await controlPlane.stop({ signal: 'SIGKILL', timeoutMs: 2000 });
  await rm(dataDir, { recursive: true, force: true });
});
const api = controlPlane.ready.api as string;

/** An absolute-form request to a proxy's outbound port, as curl -x sends it. */
function fetchVia(port: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, headers: { host: new URL(url).host }, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
const weft = (args: string[], input?: string) => runWeft(['--server', api, ...args], { ...(input !== undefined ? { input } : {}) });

test('the ready line names both listeners', () => {
  assert.match(api, /^http:\/\/127\.0\.0\.1:[0-9]+$/);
  assert.match(controlPlane.ready.stream as string, /^http:\/\/127\.0\.0\.1:[0-9]+$/);
});

test('apply creates, then leaves unchanged, then configures what changed', async () => {
  const first = await weft(['apply', '-f', demo]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^service\/catalog created$/m);
  assert.match(first.stdout, /^httproute\/catalog-split created$/m);
  assert.match(first.stdout, /^workload\/pricing created$/m);

  const again = await weft(['apply', '-f', demo]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /created|configured/);

  const changed = (await readFile(demo, 'utf8')).replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50');
  const third = await weft(['apply', '-f', '-'], changed);
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stdout, /^httproute\/catalog-split configured$/m);
  assert.equal(third.stdout.match(/configured/g)?.length, 1, third.stdout);
});

test('get shows what was applied, as a table and as JSON', async () => {
  const services = await weft(['get', 'services']);
  assert.equal(services.code, 0, services.stderr);
  assert.match(services.stdout, /^NAME\s+NAMESPACE\s+PORTS\s+AGE$/m);
  assert.match(services.stdout, /^catalog-v2\s+default\s+http:8080\s+[0-9]+s$/m);

  const route = await weft(['get', 'httproutes', '-o', 'wide']);
  assert.equal(route.code, 0, route.stderr);
  assert.match(route.stdout, /^catalog-split\s+default\s+Service\/catalog:8080\s+\S.*catalog-v1:8080\(50\),catalog-v2:8080\(50\)/m);

  const json = await weft(['get', 'workload', 'pricing', '-o', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const pricing = JSON.parse(json.stdout) as { kind: string; metadata: { labels: Record<string, string> }; spec: { replicas: number } };
  assert.equal(pricing.kind, 'Workload');
  assert.equal(pricing.spec.replicas, 2);
  assert.equal(pricing.metadata.labels.app, 'pricing');

  const all = await weft(['get', 'svc', '-A', '-o', 'json']);
  assert.equal((JSON.parse(all.stdout) as { items: unknown[] }).items.length, 6);
});

test('the route gets an Accepted status', async () => {
  // The status writer runs after the compile pass: poll, bounded.
  const deadline = Date.now() + 5000;
  let last = '';
  while (Date.now() < deadline) {
    last = (await weft(['get', 'httproute', 'catalog-split'])).stdout;
    if (/\sTrue\s/.test(last)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`catalog-split was never accepted:\n${last}`);
});

test('delete removes an object; a second delete is a NotFound error', async () => {
  const first = await weft(['delete', 'httproute', 'catalog-split']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, 'httproute/catalog-split deleted\n');
  const second = await weft(['delete', 'httproute', 'catalog-split']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /NotFound/);
  const gone = await weft(['get', 'httproute', 'catalog-split']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^Error from server \(NotFound\): /m);
});

test('status answers with the control plane facts and no proxies', async () => {
  const status = await weft(['status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /store=sqlite/);
  assert.match(status.stdout, /^0 proxies: 0 connected/m);
  const json = await weft(['status', '-o', 'json']);
  assert.deepEqual((JSON.parse(json.stdout) as { proxies: unknown[] }).proxies, []);
});

test('weft proxy beside weft echo: ready line, registration, a call through it by name, drain on SIGTERM', async (t) => {
  const applied = await weft(['apply', '-f', '-'], `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: team}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo, namespace: team, labels: {app: echo}}
spec:
  ports: [{name: http, port: 8080}]
`);
  assert.equal(applied.code, 0, applied.stderr);
  const echo = await startWeft(['echo', '--port', '0', '--namespace', 'team', '--pod', 'echo-0']);
  t.after(() => echo.stop({ signal: 'SIGKILL', timeoutMs: 1000 }));
  const token = await weft(['token', 'create', '--namespace', 'team', '--workload', 'echo']);
  assert.equal(token.code, 0, token.stderr);
  const proxy = await startWeft([
    'proxy',
    '--mode', 'sidecar',
    '--control-plane', controlPlane.ready.stream as string,
    '--namespace', 'team',
    '--workload', 'echo',
    '--instance', 'echo-0',
    '--app-port', `8080=${echo.ready.port as number}`,
    '--outbound-port', '0',
    '--tunnel-port', '0',
    '--admin-port', '0',
    '--drain', '1s',
  ], { env: { WEFT_TOKEN: token.stdout.trim() } });
  t.after(() => proxy.stop({ signal: 'SIGKILL', timeoutMs: 1000 }));
  const ports = proxy.ready.ports as { outbound: number; tunnel: number; admin: number };
  assert.ok(ports.outbound > 0 && ports.tunnel > 0 && ports.admin > 0, JSON.stringify(proxy.ready));

  await waitFor(
    async () => {
      const reply = await fetchVia(ports.outbound, 'http://echo.team:8080/via-proxy');
      return reply.status === 200 && (JSON.parse(reply.body) as { pod: string }).pod === 'echo-0';
    },
    { timeoutMs: 10_000, intervalMs: 100, message: 'a call to echo.team through the proxy' },
  );
  const status = await weft(['status']);
  assert.match(status.stdout, /^team\/echo-0\s+echo\s+yes\s+yes\s/m);
  assert.deepEqual(await proxy.stop(), { code: 0, signal: null });
});

test('SIGTERM stops the control plane with exit 0; the config survives a restart', async () => {
  assert.deepEqual(await controlPlane.stop(), { code: 0, signal: null });
  const again = await startWeft(['control-plane', '--data-dir', dataDir, '--api-port', '0', '--stream-port', '0']);
  try {
    const services = await runWeft(['--server', again.ready.api as string, 'get', 'services', '-o', 'json']);
    assert.equal((JSON.parse(services.stdout) as { items: unknown[] }).items.length, 6);
  } finally {
    assert.deepEqual(await again.stop(), { code: 0, signal: null });
  }
});
