// `weft up` with workloads: sidecars and apps start, calls by service name go through the mesh, stop leaves nothing running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { runWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { ECHO_SERVICE_YAML, echoWorkloadYaml, processAlive, scratchDir, startUp } from '../integration/up-helpers.ts';

const dir = await scratchDir('weft-up-mesh-');

const mesh = `${ECHO_SERVICE_YAML}---
${echoWorkloadYaml('echo', ['replicas: 2'])}`;

/** A request in absolute form to a sidecar's outbound port, as curl -x sends it. */
function viaProxy(outbound: number, url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request({ host: '127.0.0.1', port: outbound, path: url, headers: { host: target.host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('weft up runs a sidecar and the app for every replica, and the mesh routes between them', async () => {
  const { up, facts } = await startUp(dir, mesh, 20_000);
  try {
    assert.deepEqual(facts.workloads.map((w) => w.instance), ['echo-0', 'echo-1']);
    const [first] = facts.workloads;
    assert.ok(first);
    assert.match(up.stdout(), /^INSTANCE\s+NAMESPACE\s+APP PORTS\s+OUTBOUND\s+TUNNEL\s+ADMIN\s+PID$/m);
    assert.match(up.stdout(), new RegExp(`^echo-0\\s+default\\s+8080→${first.appPorts[0]!.actual}\\s+${first.proxy.outbound}\\s`, 'm'));

    // The app got its environment: it reports the namespace and pod weft up gave it.
    const direct = (await (await fetch(`${first.url}/direct`)).json()) as { pod: string; namespace: string };
    assert.deepEqual([direct.pod, direct.namespace], ['echo-0', 'default']);

    // Through echo-0's sidecar, by service name: both replicas answer, in time.
    const pods = new Set<string>();
    await waitFor(
      async () => {
        const reply = await viaProxy(first.proxy.outbound, 'http://echo:8080/through-the-mesh?x=1');
        assert.equal(reply.status, 200, `${reply.status} ${String(reply.headers['weft-reason'] ?? '')} ${reply.body}`);
        const body = JSON.parse(reply.body) as { pod: string; path: string };
        assert.equal(body.path, '/through-the-mesh?x=1');
        pods.add(body.pod);
        return pods.size === 2;
      },
      { timeoutMs: 15_000, intervalMs: 50, message: 'both echo replicas to answer through the mesh' },
    );

    const status = await runWeft(['--server', facts.api, 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^2 proxies: 2 connected/m);
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
  assert.ok(facts);
  for (const w of facts.workloads) {
    assert.equal(processAlive(w.pid), false, `${w.instance} app (pid ${w.pid}) is still running`);
    assert.equal(processAlive(w.proxy.pid), false, `${w.instance} proxy (pid ${w.proxy.pid}) is still running`);
  }
  assert.match(up.stdout(), /weft up: stopped/);
});
