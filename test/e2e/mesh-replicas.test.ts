// One view from any control-plane replica: two real replicas on a real etcd, each holding one proxy's stream; proxies, status, traffic and tap are asked of either.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { Agent } from 'node:http';
import type { ProxyStatus, ReplicaStatus } from '../../src/api/stream.ts';
import type { TapLine } from '../../src/api/tap.ts';
import type { ServiceTraffic, TopologyTraffic } from '../../src/api/topology.ts';
import { runWeft } from '../../src/testing/process.ts';
import { TestMesh, viaProxy, type WorkloadProcesses } from './harness.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { ensureDashboardBuilt, launchBrowser } from './dashboard-browser.ts';

const config = `
apiVersion: v1
kind: Service
metadata: {name: echo-v1}
spec:
  selector: {app: echo, version: v1}
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}, annotations: {weft.dev/tap: enabled}}
spec:
  serviceAccount: echo-v1
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  serviceAccount: client
`;

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The NDJSON lines of a tap, until it ends or `signal` aborts. */
async function* tapLines(url: string, signal: AbortSignal): AsyncGenerator<TapLine> {
  const res = await fetch(url, { signal });
  if (res.status !== 200) assert.fail(`GET ${url}: ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of res.body!) {
    rest += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      if (line.trim()) yield JSON.parse(line) as TapLine;
    }
  }
}

describe('control-plane replicas show one mesh (etcd, two replicas)', { timeout: 120_000 }, () => {
  let mesh: TestMesh;
  let client: WorkloadProcesses;
  let echo: WorkloadProcesses;
  let apis: string[];
  let names: string[];
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  before(async () => {
    mesh = await TestMesh.start({ store: 'etcd', replicas: 2, leaseTtl: '2s', proxyArgs: ['--telemetry-interval', '300ms'] });
    await mesh.apply(config);
    // The harness starts each proxy on the next replica: the client's stream is on the first, the echo's on the second.
    [client, echo] = (await mesh.addHost([
      { workload: 'client', instance: 'client-0' },
      { workload: 'echo-v1', instance: 'echo-v1-0', echo: true },
    ])) as [WorkloadProcesses, WorkloadProcesses];
    apis = mesh.replicas.map((r) => String(r.ready.api));
    names = await Promise.all(apis.map(async (api) => (await getJson<{ replicas: ReplicaStatus[] }>(`${api}/weft/v1/status`)).replicas.find((r) => r.self)!.name));
    await mesh.converged(2);
  });

  after(async () => {
    agent.destroy();
    await mesh?.close();
  });

  it('lists every proxy from either replica, each with the replica that holds its stream', async () => {
    for (const api of apis) {
      const proxies = await waitFor(async () => {
        const list = await getJson<ProxyStatus[]>(`${api}/weft/v1/proxies`);
        return list.filter((p) => p.connected).length === 2 ? list : undefined;
      }, { timeoutMs: 10_000, message: `both proxies listed by ${api}` });
      const holder = Object.fromEntries(proxies.map((p) => [p.id, p.replica]));
      assert.deepEqual(holder, { [client.id]: names[0], [echo.id]: names[1] }, `as ${api} lists them`);
    }
    const status = await getJson<{ replicas: ReplicaStatus[] }>(`${apis[0]}/weft/v1/status`);
    assert.deepEqual(
      status.replicas.map((r) => [r.name, r.self, r.reachable, r.proxies]),
      [[names[0], true, true, 1], [names[1], false, true, 1]],
    );
    assert.match(status.replicas[1]!.stream, /^https:\/\/127\.0\.0\.1:\d+$/);
    // The CLI shows the replicas, and which one holds each proxy.
    const cli = await runWeft(['status'], { env: { WEFT_SERVER: apis[0]! } });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /REPLICA +STREAM +LEADS +PROXIES +REACHABLE/);
    assert.match(cli.stdout, new RegExp(`${names[1]} +https://127\\.0\\.0\\.1:\\d+ +(yes|no) +1 +yes`));
    assert.match(cli.stdout, new RegExp(`${echo.id.replace('/', '\\/')} .* ${names[1]} `));
    // A proxy on the other replica is found for its admin views too.
    const config = await fetch(`${apis[0]}/weft/v1/proxies/${echo.id}/config`);
    assert.equal(config.status, 200, await config.clone().text());
  });

  it("merges traffic: the caller's reports on one replica draw the edge on the other", async () => {
    for (let i = 0; i < 20; i++) {
      const res = await viaProxy(client.ports.outbound, 'http://echo-v1:8080/replicas', { agent });
      assert.equal(res.status, 200, res.body);
    }
    // The client's sidecar (the edge's reporter) holds its stream on the first replica; ask the second.
    const edge = await waitFor(async () => {
      const topology = await getJson<TopologyTraffic>(`${apis[1]}/api/v1/topology?window=1m`);
      const found = topology.edges.find((e) => e.source.workload === 'client' && e.destination.service === 'echo-v1');
      return found && found.requestsPerSecond > 0 ? { topology, found } : undefined;
    }, { timeoutMs: 15_000, message: 'the client → echo-v1 edge seen from the second replica' });
    assert.equal(edge.topology.partial, undefined);
    assert.equal(edge.found.successRate, 1);
    // The Service's series, asked of the second replica, counts every request the first one was told of.
    const counted = (service: ServiceTraffic) => (service.series ?? []).reduce((sum, s) => sum + s.requestsPerSecond * ((service.seriesStepMs ?? 0) / 1000), 0);
    const service = await waitFor(async () => {
      const traffic = await getJson<ServiceTraffic>(`${apis[1]}/api/v1/services/default/echo-v1?window=1m`);
      return counted(traffic) >= 19.5 ? traffic : undefined;
    }, { timeoutMs: 15_000, message: 'all 20 requests in the series seen from the second replica' });
    assert.ok(counted(service) <= 20.5, `the series counts the 20 requests once, not ${counted(service)}`);
    assert.equal(service.inbound.length, 1);
    assert.equal(service.partial, undefined);
  });

  it("taps a workload whose proxy holds its stream on the other replica", async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 20_000);
    try {
      const lines = tapLines(`${apis[0]}/api/v1/tap?target=workload/echo-v1&max=3`, controller.signal);
      const first = await lines.next();
      assert.deepEqual(first.value, { type: 'started', proxies: [echo.id], skipped: [] });
      const sending = (async () => {
        for (let i = 0; i < 30 && !controller.signal.aborted; i++) {
          await viaProxy(client.ports.outbound, `http://echo-v1:8080/tapped/${i}`, { agent }).catch(() => undefined);
        }
      })();
      const events: TapLine[] = [];
      let end: TapLine | undefined;
      for await (const line of lines) {
        if (line.type === 'event') events.push(line);
        if (line.type === 'end') {
          end = line;
          break;
        }
      }
      await sending;
      assert.equal(events.length, 3);
      for (const event of events) assert.equal((event as { proxy: string }).proxy, echo.id);
      assert.deepEqual(end, { type: 'end', reason: 'max events reached' });
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  });

  it("shows in the dashboard (Chromium) every proxy and the replica holding it, from either replica", async () => {
    await ensureDashboardBuilt();
    const browser = await launchBrowser();
    try {
      await browser.page.goto(`${apis[1]}/#/proxies`);
      for (const [id, replica] of [[client.id, names[0]], [echo.id, names[1]]] as const) {
        const row = browser.page.locator(`tr[data-proxy-id="${id}"]`);
        await row.waitFor();
        assert.equal((await row.locator('[data-testid=replica]').textContent())?.trim(), `via ${replica}`);
      }
      // The replicas themselves: both reachable, the one answering marked, one proxy each.
      for (const [i, name] of names.entries()) {
        const row = browser.page.locator(`[data-testid=replicas] tr[data-replica="${name}"]`);
        await row.waitFor();
        const cells = (await row.locator('td').allTextContents()).map((t) => t.trim());
        assert.deepEqual([cells[2], cells[3]], ['1', 'yes'], `replica ${name}: ${cells.join(' | ')}`);
        assert.equal(await row.getByText('answering this page').count(), i === 1 ? 1 : 0);
      }
      assert.deepEqual(browser.problems, []);
    } finally {
      await browser.close();
    }
  });

  it('answers the replicas\' paths to control planes only', async () => {
    const { trustBundle } = await getJson<{ trustBundle: string[] }>(`${apis[1]}/weft/v1/ca`);
    const stream = (await getJson<{ replicas: ReplicaStatus[] }>(`${apis[0]}/weft/v1/status`)).replicas[1]!.stream;
    const ask = (url: string, options: http2.SecureClientSessionOptions) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const session = http2.connect(url, options);
        session.on('error', reject);
        const req = session.request({ ':method': 'GET', ':path': '/weft/internal/v1/proxies' });
        let body = '';
        let status = 0;
        req.setEncoding('utf8');
        req.on('response', (headers) => (status = Number(headers[':status'])));
        req.on('data', (text: string) => (body += text));
        req.on('end', () => {
          session.close();
          resolve({ status, body });
        });
        req.on('error', reject);
      });
    // TLS without a client certificate: refused, and nothing about the proxies said.
    const tls = await ask(stream, { ca: trustBundle, checkServerIdentity: () => undefined });
    assert.equal(tls.status, 403);
    assert.match(tls.body, /control-plane replicas only: the peer's certificate was not verified/);
    // Cleartext from this host (which the port takes for proxies): refused too.
    const clear = await ask(stream.replace('https://', 'http://'), {});
    assert.equal(clear.status, 403);
    assert.match(clear.body, /only over TLS/);
  });

  it('drops a replica that stopped from the view once its record expires, and shows its proxies on the replica they moved to', async () => {
    await mesh.replicas[1]!.stop({ signal: 'SIGKILL' });
    const replicas = await waitFor(async () => {
      const status = await getJson<{ replicas: ReplicaStatus[] }>(`${apis[0]}/weft/v1/status`);
      return status.replicas.length === 1 ? status.replicas : undefined;
    }, { timeoutMs: 15_000, message: 'the killed replica gone from the first one\'s view' });
    assert.equal(replicas[0]!.name, names[0]);
    const moved = await waitFor(async () => {
      const list = await getJson<ProxyStatus[]>(`${apis[0]}/weft/v1/proxies`);
      const proxy = list.find((p) => p.id === echo.id);
      return proxy?.connected ? proxy : undefined;
    }, { timeoutMs: 15_000, message: 'the echo proxy back on the first replica' });
    assert.equal(moved.replica, names[0]);
  });
});
