// What the dashboard needs from the API server, over real HTTP: static files (types, caching, no traversal), apply's dry run, the events stream, kinds, the topology seam.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ProxyStatus } from '../../src/api/stream.ts';
import type { TopologyTraffic } from '../../src/api/topology.ts';
import { ApiServer } from '../../src/control/api/server.ts';
import { safeFilePath } from '../../src/control/api/static.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { freePort } from '../../src/testing/ports.ts';
import { runWeft } from '../../src/testing/process.ts';
import { browserCommand } from '../../src/cli/dashboard.ts';

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 8080}]
  rules:
    - backendRefs:
        - {name: catalog-v1, port: 8080, weight: 90}
        - {name: catalog-v2, port: 8080, weight: 10}
`;
const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: catalog}
spec:
  ports: [{name: http, port: 8080}]
`;

/** A raw GET: fetch would normalise the dot segments and percent-encodings a traversal attempt is made of. */
function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, headers, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface SseEvent {
  event: string;
  id?: string;
  data: any;
}

/** Reads Server-Sent Events from a stream until `until` says enough (bounded by the caller's wait). */
async function openEvents(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  let buffer = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: Partial<SseEvent> & { lines: string[] } = { lines: [] };
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event.event = line.slice(7);
            else if (line.startsWith('id: ')) event.id = line.slice(4);
            else if (line.startsWith('data: ')) event.lines.push(line.slice(6));
          }
          if (event.event) events.push({ event: event.event, ...(event.id ? { id: event.id } : {}), data: JSON.parse(event.lines.join('\n')) });
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    response,
    events,
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

describe('the API server, as the dashboard uses it', () => {
  let dir: string;
  let store: MemoryStore;
  let api: ApiServer;
  let bare: ApiServer;
  let base: string;
  const proxies: ProxyStatus[] = [];
  let traffic: TopologyTraffic | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-dashboard-api-'));
    const dist = join(dir, 'dist');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), '<!doctype html><div id="app"></div><script type="module" src="/assets/index-abc123.js"></script>');
    writeFileSync(join(dist, 'assets', 'index-abc123.js'), `console.log(${JSON.stringify('x'.repeat(5000))});`);
    writeFileSync(join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(dist, '.hidden'), 'not for you');
    writeFileSync(join(dir, 'secret.txt'), 'outside the dashboard');
    store = new MemoryStore({ clock: systemClock, logger: silentLogger() });
    const common = { store, logger: silentLogger(), host: '127.0.0.1', port: 0, proxies: () => structuredClone(proxies), status: async () => ({}) };
    api = await ApiServer.start({ ...common, dashboardDir: dist, topology: async (window) => traffic ?? { available: false, window, generatedAt: '', services: [], edges: [] } });
    bare = await ApiServer.start({ ...common, dashboardDir: join(dir, 'not-built') });
    base = api.url;
  });

  after(async () => {
    await api.close();
    await bare.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the dashboard with content types, caching headers and ETags', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await index.text(), /id="app"/);

    const asset = await rawGet(base, '/assets/index-abc123.js', { 'accept-encoding': 'gzip' });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(asset.headers['content-encoding'], 'gzip');
    assert.match(gunzipSync(asset.body).toString(), /^console\.log/);

    const etag = asset.headers.etag as string;
    const again = await rawGet(base, '/assets/index-abc123.js', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);

    assert.equal((await fetch(`${base}/favicon.svg`)).headers.get('content-type'), 'image/svg+xml');
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await fetch(`${base}/`, { method: 'POST' })).status, 405);
  });

  it('never serves anything outside the dashboard directory, nor hidden files', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/assets/..%2f..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/.hidden', '/assets/%00x', '/assets/..\\..\\secret.txt', '/nope.js']) {
      const res = await rawGet(base, path);
      assert.equal(res.status, 404, `${path} → ${res.status} ${res.body.toString().slice(0, 80)}`);
      assert.doesNotMatch(res.body.toString(), /outside the dashboard|not for you/);
    }
    assert.equal(safeFilePath('/srv/dash', '/'), '/srv/dash/index.html');
    assert.equal(safeFilePath('/srv/dash', '/a/../../etc/passwd'), undefined);
    assert.equal(safeFilePath('/srv/dash', '/%2e%2e/x'), undefined);
  });

  it('keeps the API paths and /healthz, and says so when the dashboard is not built', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/weft/v1/nothing`)).status, 404);
    assert.equal((await fetch(`${base}/api/v1/services`)).status, 200);
    const page = await (await fetch(`${bare.url}/`)).text();
    assert.match(page, /npm run build:dashboard/);
    assert.match(page, /\/weft\/v1\/proxies/);
  });

  it('lists the kinds with what a client needs to build their paths', async () => {
    const { kinds } = (await (await fetch(`${base}/weft/v1/kinds`)).json()) as { kinds: { kind: string; plural: string; namespaced: boolean; group: string }[] };
    assert.deepEqual(kinds.find((k) => k.kind === 'HTTPRoute'), { group: 'gateway.networking.k8s.io', versions: ['v1', 'v1beta1'], kind: 'HTTPRoute', plural: 'httproutes', namespaced: true });
  });

  it('dry-runs an apply: what would be created, configured or unchanged, with the fields that change, writing nothing', async () => {
    const apply = (yaml: string, query = '') => fetch(`${base}/weft/v1/apply${query}`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yaml });
    const revision = await store.revision();
    const created = (await (await apply(`${SERVICE}---\n${ROUTE}`, '?dryRun=All')).json()) as { dryRun: boolean; results: { action: string; object: any; before?: any; changes: unknown[] }[] };
    assert.equal(created.dryRun, true);
    assert.deepEqual(created.results.map((r) => r.action), ['created', 'created']);
    assert.equal(created.results[1]!.object.metadata.namespace, 'default');
    assert.equal(await store.revision(), revision, 'a dry run writes nothing');

    assert.equal((await apply(`${SERVICE}---\n${ROUTE}`)).status, 200);
    const changed = (await (await apply(`${SERVICE}---\n${ROUTE.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50')}`, '?dryRun=All')).json()) as typeof created;
    assert.deepEqual(changed.results.map((r) => r.action), ['unchanged', 'configured']);
    const route = changed.results[1]!;
    assert.equal(route.before.spec.rules[0].backendRefs[0].weight, 90);
    assert.equal(route.object.spec.rules[0].backendRefs[0].weight, 50);
    assert.equal(route.object.metadata.generation, route.before.metadata.generation + 1);
    assert.equal(route.object.metadata.uid, route.before.metadata.uid);
    assert.deepEqual(route.changes, [
      { path: 'spec.rules[0].backendRefs[0].weight', before: 90, after: 50 },
      { path: 'spec.rules[0].backendRefs[1].weight', before: 10, after: 50 },
    ]);
    const stored = await (await fetch(`${base}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/split`)).json();
    assert.equal((stored as any).spec.rules[0].backendRefs[0].weight, 90, 'still what was applied for real');

    const invalid = await apply(ROUTE.replace('weight: 90', 'weight: -1'), '?dryRun=All');
    assert.equal(invalid.status, 422);
    const status = (await invalid.json()) as { details: { causes: { field: string; line: number }[] } };
    assert.deepEqual(status.details.causes.map((c) => [c.field, c.line]), [['spec.rules[0].backendRefs[0].weight', 8]]);
    const stale = ROUTE.replace('metadata: {name: split}', 'metadata: {name: split, resourceVersion: "1"}').replace('weight: 90', 'weight: 1');
    assert.equal((await apply(stale, '?dryRun=All')).status, 409, 'the same compare-and-swap check as a real apply');
    assert.equal((await apply(SERVICE, '?dryRun=true')).status, 400);
  });

  it('streams a sync, then every change and every proxy status change, and resumes from Last-Event-ID', async () => {
    proxies.splice(0, proxies.length, { id: 'default/a-0', mode: 'sidecar', namespace: 'default', address: '127.0.0.1', tunnelPort: 1, connected: true, ready: true, lastSeen: 'then' });
    // The store's internal records (bootstrap tokens) are no kind of the API: never streamed.
    const internal = (name: string) => store.put({ apiVersion: 'internal.weft.dev/v1', kind: 'BootstrapToken', metadata: { name }, spec: { hash: 'secret' } });
    await internal('before');
    const secret = await fetch(`${base}/weft/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml' },
      body: 'apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2}\n',
    });
    assert.equal(secret.status, 200, await secret.text());
    const stream = await openEvents(`${base}/weft/v1/events`);
    try {
      assert.equal(stream.response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      await waitFor(() => stream.events.some((e) => e.event === 'sync'), { timeoutMs: 3000, message: 'the sync event' });
      assert.equal(stream.events[0]!.event, 'proxies');
      const sync = stream.events.find((e) => e.event === 'sync')!;
      assert.deepEqual(sync.data.items.map((o: any) => o.metadata.name).sort(), ['catalog', 'creds', 'split']);
      const creds = JSON.stringify(sync.data.items.find((o: any) => o.kind === 'Secret'));
      assert.doesNotMatch(creds, /hunter2/, 'a Secret streams its keys, not its values');
      assert.match(creds, /"password":"\(redacted\)"/);
      assert.equal(sync.id, String(sync.data.revision));

      await internal('during');
      const put = await fetch(`${base}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: ROUTE.replace('weight: 90', 'weight: 70') });
      assert.equal(put.status, 200);
      const change = await waitFor(() => stream.events.find((e) => e.event === 'change'), { timeoutMs: 3000, message: 'a change event' });
      assert.equal(change.data.type, 'MODIFIED', 'the first change is the route, not the internal record');
      assert.equal(change.data.object.kind, 'HTTPRoute');
      assert.equal(change.data.object.spec.rules[0].backendRefs[0].weight, 70);

      // A heartbeat alone is no news; a NACK is.
      proxies[0]!.lastSeen = 'now';
      proxies[0]!.lastNack = { version: 'v2', code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'port taken', at: 'now' };
      const nack = await waitFor(() => stream.events.filter((e) => e.event === 'proxies')[1], { timeoutMs: 3000, message: 'a second proxies event' });
      assert.equal(nack.data[0].lastNack.message, 'port taken');
      assert.equal(stream.events.filter((e) => e.event === 'proxies').length, 2);

      // Reconnecting with the last id gets what happened since, without a full sync.
      const resumed = await openEvents(`${base}/weft/v1/events`, { 'last-event-id': change.id! });
      try {
        await fetch(`${base}/api/v1/namespaces/default/services/catalog`, { method: 'DELETE' });
        const deleted = await waitFor(() => resumed.events.find((e) => e.event === 'change'), { timeoutMs: 3000, message: 'the delete after resuming' });
        assert.equal(deleted.data.type, 'DELETED');
        assert.equal(deleted.data.object.metadata.name, 'catalog');
        assert.equal(resumed.events.some((e) => e.event === 'sync'), false);
      } finally {
        await resumed.close();
      }
    } finally {
      await stream.close();
    }
  });

  it('answers the topology seam: no data until a provider has some', async () => {
    const empty = (await (await fetch(`${base}/api/v1/topology?window=1m`)).json()) as TopologyTraffic;
    assert.deepEqual([empty.available, empty.window], [false, '1m']);
    const fallback = (await (await fetch(`${bare.url}/api/v1/topology`)).json()) as TopologyTraffic;
    assert.equal(fallback.available, false);
    assert.match(fallback.reason ?? '', /no traffic data yet/);
    traffic = { available: true, window: '5m', generatedAt: new Date().toISOString(), services: [], edges: [] };
    assert.equal(((await (await fetch(`${base}/api/v1/topology`)).json()) as TopologyTraffic).available, true);
    assert.equal((await fetch(`${base}/api/v1/topology`, { method: 'POST' })).status, 405);
  });

  it("relays a proxy's running config and live backends from the admin listener it announced, and says why when it cannot", async (t) => {
    const admin = createServer((req, res) => {
      const body = req.url === '/config' ? { id: 'default/frontend-0', version: 'v1' } : req.url === '/debug/backends?workload=default%2Ffrontend' ? { backends: [], rateLimits: [], readAt: 'now' } : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(body ? JSON.stringify(body) : 'no');
    });
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
    t.after(() => admin.close());
    const adminPort = (admin.address() as { port: number }).port;
    const closed = await freePort();
    const common = { namespace: 'default', address: '127.0.0.1', tunnelPort: 1, connected: true, ready: true, lastSeen: new Date().toISOString() } as const;
    proxies.push({ ...common, id: 'default/frontend-0', mode: 'sidecar', workload: 'frontend', admin: `127.0.0.1:${adminPort}` }, { ...common, id: 'default/gone-0', mode: 'sidecar', admin: `127.0.0.1:${closed}` }, { ...common, id: 'default/quiet-0', mode: 'sidecar' });
    t.after(() => proxies.splice(0));

    const config = await fetch(`${base}/weft/v1/proxies/default/frontend-0/config`);
    assert.equal(config.status, 200);
    assert.equal(config.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await config.json(), { id: 'default/frontend-0', version: 'v1' });
    const backends = await fetch(`${base}/weft/v1/proxies/default/frontend-0/backends?workload=default/frontend`);
    assert.equal(backends.status, 200);
    assert.deepEqual(((await backends.json()) as { backends: unknown[] }).backends, []);

    const unknown = await fetch(`${base}/weft/v1/proxies/default/nobody-0/config`);
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { message: string }).message, /no proxy default\/nobody-0/);
    const quiet = await fetch(`${base}/weft/v1/proxies/default/quiet-0/config`);
    assert.equal(quiet.status, 404);
    assert.match(((await quiet.json()) as { message: string }).message, /announced no admin listener/);
    const gone = await fetch(`${base}/weft/v1/proxies/default/gone-0/config`);
    assert.equal(gone.status, 502);
    assert.match(((await gone.json()) as { message: string }).message, /not reachable from the control plane/);
    assert.equal((await fetch(`${base}/weft/v1/proxies/default/frontend-0/secrets`)).status, 404, 'only the two views');
    assert.equal((await fetch(`${base}/weft/v1/proxies/default/frontend-0/config`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/weft/v1/proxies`)).status, 200, 'the list is still the list');
  });

  it('weft dashboard prints the URL, warns when there is nothing built, and opens a browser only where there is one', async () => {
    const env = { BROWSER: '', DISPLAY: '', WAYLAND_DISPLAY: '' };
    const built = await runWeft(['--server', base, 'dashboard', '--no-open'], { env });
    assert.equal(built.code, 0, built.stderr);
    assert.equal(built.stdout, `Dashboard: ${base}/\n`);
    assert.equal(built.stderr, '');
    const bareRun = await runWeft(['--server', bare.url, 'dashboard'], { env });
    assert.equal(bareRun.code, 0, bareRun.stderr);
    assert.match(bareRun.stderr, /no built dashboard/);
    assert.match(bareRun.stderr, /no browser to open here/);
    const nobody = await runWeft(['--server', `http://127.0.0.1:${await freePort()}`, 'dashboard'], { env });
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /cannot reach the weft control plane/);

    assert.deepEqual(browserCommand({ BROWSER: 'firefox:chromium' }, 'linux', () => false), { command: 'firefox', args: [] });
    assert.deepEqual(browserCommand({}, 'darwin', () => false), { command: 'open', args: [] });
    assert.equal(browserCommand({}, 'linux', () => true), undefined, 'no display, no browser');
    assert.deepEqual(browserCommand({ DISPLAY: ':0' }, 'linux', (c) => c === 'xdg-open'), { command: 'xdg-open', args: [] });
  });
});
