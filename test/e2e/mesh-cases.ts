// The end-to-end mesh cases, run with sidecars (mesh.test.ts) and with node proxies (mesh-node.test.ts): routing, identity, propagation, failures, drain.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import { TestMesh, viaProxy, podOf, percentile, type MeshStore, type ProxyMode, type WorkloadProcesses } from './harness.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { freePort } from '../../src/testing/ports.ts';

const services = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v1}
spec:
  selector: {app: echo, version: v1}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2}
spec:
  selector: {app: echo, version: v2}
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec:
  serviceAccount: echo-v1
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo-v2, labels: {app: echo, version: v2}}
spec:
  serviceAccount: echo-v2
  ports: [{name: http, port: 8080}]
`;

function clientWorkload(upstreamPort?: number): string {
  return `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  serviceAccount: client
  upstreams: ${upstreamPort ? `[{service: echo-v1, port: 8080, localPort: ${upstreamPort}}]` : '[]'}
`;
}

function splitRoute(v1: number, v2: number): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-split}
spec:
  parentRefs: [{kind: Service, group: "", name: echo, port: 8080}]
  rules:
  - backendRefs:
    - {name: echo-v1, port: 8080, weight: ${v1}}
    - {name: echo-v2, port: 8080, weight: ${v2}}
`;
}

/** The x-forwarded-client-cert the echo app saw: which identity delivered it (By) and which called (URI). */
function xfccOf(result: { body: string }): { by: string; uri: string } {
  const headers = (JSON.parse(result.body) as { headers: Record<string, string[]> }).headers;
  const value = Object.entries(headers).find(([name]) => name.toLowerCase() === 'x-forwarded-client-cert')?.[1]?.join(',') ?? '';
  return { by: /By=([^;,]+)/.exec(value)?.[1] ?? '', uri: /URI=([^;,]+)/.exec(value)?.[1] ?? '' };
}

/**
 * The suite. Two hosts: client-0, echo-v1-0 and echo-v2-0 on the first,
 * echo-v1-1 on the second (so that the failover case can take one whole host
 * away). In sidecar mode every instance has its own proxy process anyway; in
 * node mode each host is one `weft proxy --mode node`. The node-mode run
 * leaves out what does not depend on the proxy mode (CLI validation, the
 * weighted split, which the node-mode demo also checks) and the 30 s
 * control-plane outage.
 *
 * With `store: 'etcd'` and several `replicas` (mesh-etcd.test.ts) the same
 * cases run against control-plane replicas sharing one etcd, the proxies
 * spread over them; the outage case then takes every replica down at once.
 */
export function meshSuite(proxyMode: ProxyMode, options: { store?: MeshStore; replicas?: number } = {}): void {
  const store = options.store ?? 'sqlite';
  const replicas = options.replicas ?? 1;
  // Node mode and the etcd run go through every case too, with a shorter outage: the long one is the single-machine sidecar run's.
  const outageSeconds = proxyMode === 'sidecar' && store === 'sqlite' ? 30 : 10;
  const setup = store === 'sqlite' ? `${proxyMode} proxies` : `${proxyMode} proxies, ${replicas} control-plane replicas on ${store}`;
  describe(`a mesh of real processes (${setup})`, { timeout: 240_000 }, () => {
    let mesh: TestMesh;
    let client: WorkloadProcesses;
    let v1a: WorkloadProcesses;
    let v1b: WorkloadProcesses;
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });

    before(async () => {
      mesh = await TestMesh.start({ leaseTtl: '3s', proxyMode, store, replicas });
      await mesh.apply(services + '---' + clientWorkload() + '---' + splitRoute(90, 10));
      [client, v1a] = (await mesh.addHost([
        { workload: 'client', instance: 'client-0' },
        { workload: 'echo-v1', instance: 'echo-v1-0', echo: true },
        { workload: 'echo-v2', instance: 'echo-v2-0', echo: true },
      ])) as [WorkloadProcesses, WorkloadProcesses, WorkloadProcesses];
      v1b = (await mesh.addHost([{ workload: 'echo-v1', instance: 'echo-v1-1', echo: true }]))[0]!;
      await waitFor(async () => (await mesh.endpoints()).filter((n) => n.startsWith('echo-')).length === 3, { timeoutMs: 10_000, message: 'three registered echo endpoints' });
      await mesh.converged(4);
    });

    after(async () => {
      agent.destroy();
      await mesh?.close();
    });

    it('carries a request from one workload to another through both proxies', async () => {
      const res = await viaProxy(client.ports.outbound, 'http://echo-v1:8080/hello?x=1', { agent });
      assert.equal(res.status, 200, res.body);
      const echoed = JSON.parse(res.body) as { path: string; pod: string; host: string };
      assert.equal(echoed.path, '/hello?x=1');
      assert.match(echoed.pod, /^echo-v1-[01]$/);
      assert.equal(echoed.host, 'echo-v1:8080', 'the Host header arrives as the client sent it');
    });

    it('routes requests tunnelled with CONNECT, as Node fetch sends them through HTTP_PROXY', async () => {
      const dispatcher = new ProxyAgent(`http://127.0.0.1:${client.ports.outbound}`);
      try {
        for (const host of ['echo-v2', 'echo-v2.default', 'echo-v2.default.svc', 'echo-v2.default.svc.cluster.local']) {
          const res = await undiciFetch(`http://${host}:8080/tunnelled`, { dispatcher });
          assert.equal(res.status, 200, host);
          assert.equal(((await res.json()) as { pod: string }).pod, 'echo-v2-0', host);
        }
      } finally {
        await dispatcher.close();
      }
    });

    it('calls with the caller workload\'s identity and serves with the callee\'s (mTLS, x-forwarded-client-cert)', async () => {
      assert.match((await mesh.proxyConfig(client)).identity?.spiffeId ?? '', /\/ns\/default\/sa\/client$/);
      assert.match((await mesh.proxyConfig(v1a)).identity?.spiffeId ?? '', /\/ns\/default\/sa\/echo-v1$/);
      // client-0 and echo-v1-0 share a proxy process in node mode: each request still leaves with its own workload's certificate.
      for (const [caller, from] of [[client, 'client'], [v1a, 'echo-v1']] as const) {
        const res = await viaProxy(caller.ports.outbound, 'http://echo-v2:8080/who', { agent });
        assert.equal(res.status, 200, res.body);
        const xfcc = xfccOf(res);
        assert.match(xfcc.uri, new RegExp(`/ns/default/sa/${from}$`), `the callee saw ${from} as ${xfcc.uri}`);
        assert.match(xfcc.by, /\/ns\/default\/sa\/echo-v2$/, `delivered by ${xfcc.by}`);
      }
    });

    it('answers an unknown mesh host with 502 and a reason instead of hanging', async () => {
      const res = await viaProxy(client.ports.outbound, 'http://no-such-service:8080/', { agent, timeoutMs: 3000 });
      assert.equal(res.status, 502);
      assert.equal(res.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
    });

    it('splits 1,000 requests 90/10 within ±4 points', async () => {
      let v2 = 0;
      const total = 1000;
      for (let sent = 0; sent < total; sent += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => viaProxy(client.ports.outbound, 'http://echo:8080/split', { agent })));
        for (const res of batch) {
          assert.equal(res.status, 200);
          if (podOf(res).startsWith('echo-v2')) v2++;
        }
      }
      const share = (100 * v2) / total;
      assert.ok(Math.abs(share - 10) <= 4, `echo-v2 got ${share}% of the requests`);
    });

    it('follows a changed route within 1 s of the apply (propagation median and p99 reported)', async () => {
      const samples: number[] = [];
      for (let i = 0; i < 20; i++) {
        const target = i % 2 === 0 ? 'echo-v2' : 'echo-v1';
        const yaml = target === 'echo-v2' ? splitRoute(0, 1) : splitRoute(1, 0);
        const started = performance.now();
        await mesh.putYaml(yaml);
        await waitFor(async () => podOf(await viaProxy(client.ports.outbound, 'http://echo:8080/propagation', { agent })).startsWith(target), {
          timeoutMs: 5000,
          intervalMs: 2,
          message: `traffic on ${target}`,
        });
        samples.push(performance.now() - started);
      }
      const median = percentile(samples, 50);
      const p99 = percentile(samples, 99);
      writeFileSync(join(mesh.dir, '..', 'weft-propagation.json'), JSON.stringify({ samples, median, p99 }));
      console.log(`# propagation apply → traffic: median ${median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms over ${samples.length}`);
      assert.ok(p99 < 1000, `p99 ${p99} ms`);
      await mesh.putYaml(splitRoute(90, 10));
    });

    it('rejects invalid config with the object, field path and reason, and keeps the previous config', async () => {
      const file = join(mesh.dir, 'bad.yaml');
      writeFileSync(file, splitRoute(90, 10).replace('weight: 10', 'weight: -5'));
      const result = await mesh.weft(['apply', '-f', file]);
      assert.notEqual(result.code, 0);
      const output = result.stdout + result.stderr;
      assert.match(output, /bad\.yaml:\d+/);
      assert.match(output, /HTTPRoute default\/echo-split/);
      assert.match(output, /spec\.rules\[0\]\.backendRefs\[1\]\.weight/);
      const stored = await (await fetch(`${mesh.api}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/echo-split`)).json();
      assert.equal((stored as { spec: { rules: { backendRefs: { weight: number }[] }[] } }).spec.rules[0]?.backendRefs[1]?.weight, 10);
      const res = await viaProxy(client.ports.outbound, 'http://echo:8080/still-fine', { agent });
      assert.equal(res.status, 200);
    });

    it('NACKs a snapshot the proxy cannot apply, keeps serving, and shows it in weft status', async () => {
      const blocker: Server = createServer();
      const taken = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
      try {
        await mesh.apply(clientWorkload(taken));
        const nacked = await waitFor(async () => (await mesh.proxies()).find((p) => p.instance === 'client-0' && p.lastNack), {
          timeoutMs: 10_000,
          message: 'a NACK from client-0',
        });
        assert.match(nacked.lastNack!.message, new RegExp(String(taken)));
        const status = await mesh.status();
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, /client-0/);
        assert.match(status.stdout, /NACK|nack|EADDRINUSE|in use/i);
        const res = await viaProxy(client.ports.outbound, 'http://echo-v1:8080/after-nack', { agent });
        assert.equal(res.status, 200, 'the proxy keeps serving on its last good snapshot');
      } finally {
        await new Promise((resolve) => blocker.close(resolve));
      }
      const upstreamPort = await freePort();
      await mesh.apply(clientWorkload(upstreamPort));
      await mesh.converged(4);
      const res = await waitFor(async () => {
        const r = await fetch(`http://127.0.0.1:${upstreamPort}/through-upstream-port`);
        return r.status === 200 ? ((await r.json()) as { pod: string }) : undefined;
      }, { timeoutMs: 5000, message: 'the upstream port answering' });
      assert.match(res.pod, /^echo-v1-/);
    });

    it('takes a killed workload out of the rotation within the lease TTL', async () => {
      const killedAt = performance.now();
      await v1b.app!.stop({ signal: 'SIGKILL' });
      // "In the rotation" means in the calling proxy's balancer: read it from the client's admin /config.
      const endpointsSeenByClient = async () => {
        const snapshot = (await mesh.proxyConfig(client)).snapshot as ProxySnapshot;
        return snapshot.backends['default/echo-v1:8080']?.endpoints.map((e) => e.id) ?? [];
      };
      await waitFor(async () => !(await endpointsSeenByClient()).includes('default/echo-v1-1'), {
        timeoutMs: 3000,
        intervalMs: 20,
        message: 'echo-v1-1 leaving the client proxy\'s rotation within the 3 s lease TTL',
      });
      const gone = performance.now() - killedAt;
      console.log(`# killed workload left the caller's rotation after ${gone.toFixed(0)} ms (lease TTL 3000 ms)`);
      assert.deepEqual(await endpointsSeenByClient(), ['default/echo-v1-0']);
      assert.ok(!(await mesh.endpoints()).includes('echo-v1-1'));
      for (let i = 0; i < 200; i++) {
        const res = await viaProxy(client.ports.outbound, 'http://echo-v1:8080/after-kill', { agent });
        assert.equal(res.status, 200, `request ${i}: ${res.status} ${res.body}`);
        assert.equal(podOf(res), 'echo-v1-0');
      }
      // The rest of the pod (its host, in node mode) goes too, so that the next test sees a mesh of ready proxies.
      await v1b.proxy.stop();
      await waitFor(async () => (await mesh.proxies()).filter((p) => p.connected).length === 3, { timeoutMs: 5000, message: 'echo-v1-1\'s proxy disconnecting' });
    });

    it('drains on SIGTERM: a request in flight through the stopping proxy completes, then its instances leave the mesh', async () => {
      // Without the NACK case's upstream port: a second client instance could not bind it beside client-0.
      await mesh.putYaml(clientWorkload());
      const [leaving] = (await mesh.addHost([{ workload: 'client', instance: 'client-1' }])) as [WorkloadProcesses];
      await waitFor(async () => (await viaProxy(leaving.ports.outbound, 'http://echo-v1:8080/warm')).status === 200, { timeoutMs: 10_000, message: 'client-1 reaching echo-v1' });
      const openOutbound = async () => {
        const metrics = await (await fetch(`http://127.0.0.1:${leaving.ports.admin}/metrics`)).text();
        return Number(/weft_active_connections\{listener="outbound"\} (\d+)/.exec(metrics)?.[1] ?? 0);
      };
      await waitFor(async () => (await openOutbound()) === 0, { timeoutMs: 5000, message: 'the warm-up connection closing' });
      const slow = viaProxy(leaving.ports.outbound, 'http://echo-v1:8080/slow?delay=1500ms', { timeoutMs: 10_000 });
      await waitFor(async () => (await openOutbound()) === 1, { timeoutMs: 5000, intervalMs: 10, message: 'the slow request in flight' });
      const stopped = leaving.proxy.stop({ signal: 'SIGTERM', timeoutMs: 10_000 });
      const res = await slow;
      assert.equal(res.status, 200, `the request in flight: ${res.status} ${res.body}`);
      assert.equal(podOf(res), 'echo-v1-0');
      assert.deepEqual(await stopped, { code: 0, signal: null });
      await waitFor(async () => !(await mesh.proxies()).some((p) => p.connected && p.instance === 'client-1'), { timeoutMs: 5000, message: 'client-1 leaving the mesh' });
      assert.ok(!(await mesh.endpoints()).includes('client-1'));
    });

    it(`loses no request for ${outageSeconds} s while the control plane is down, and recovers when it returns`, { timeout: 90_000 }, async () => {
      const before = await (await fetch(`${mesh.api}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/echo-split`)).json();
      // Every replica: an outage of the whole control plane.
      await mesh.stopControlPlane();
      const until = performance.now() + outageSeconds * 1000;
      let ok = 0;
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (performance.now() < until) {
            try {
              const res = await viaProxy(client.ports.outbound, 'http://echo:8080/cp-down', { agent });
              if (res.status === 200) ok++;
              else failures.push(`${res.status} ${String(res.headers['weft-reason'] ?? '')}`);
            } catch (error) {
              failures.push(String(error));
            }
          }
        }),
      );
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed of ${ok + failures.length}`);
      assert.ok(ok > outageSeconds * 3, `only ${ok} requests in ${outageSeconds} s`);

      await mesh.startControlPlane();
      // Returning proxies re-register one by one, each a new version; with several replicas, each learns of it through its own store watch,
      // so converged and `weft status` agree once the versions settle, not necessarily on the first look.
      let status: Awaited<ReturnType<TestMesh['status']>> | undefined;
      const proxies = await waitFor(
        async () => {
          const converged = await mesh.converged(3, 15_000);
          const shown = (status = await mesh.status()).stdout;
          return converged.every((p) => p.ackedVersion && shown.includes(p.ackedVersion.slice(0, 8))) ? converged : undefined;
        },
        { timeoutMs: 20_000, message: "weft status showing every proxy's acked version" },
      );
      const versions = new Set(proxies.map((p) => p.ackedVersion));
      assert.ok(proxies.every((p) => p.connected && p.ready), JSON.stringify(proxies, null, 1));
      assert.equal(status?.code, 0, status?.stderr);
      assert.ok(versions.size >= 1);
      const afterRestart = await (await fetch(`${mesh.api}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/echo-split`)).json();
      assert.deepEqual((afterRestart as { spec: unknown }).spec, (before as { spec: unknown }).spec, 'the applied route survived the restart');
      assert.deepEqual(await mesh.endpoints(), ['client-0', 'echo-v1-0', 'echo-v2-0']);
      const res = await viaProxy(client.ports.outbound, 'http://echo:8080/after-restart', { agent });
      assert.equal(res.status, 200);
    });
  });
}
