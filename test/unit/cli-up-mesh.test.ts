// `weft up` with workloads: sidecars and apps start, calls by service name go through the mesh, stop leaves nothing running.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWeft, startWeft, weftBin } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import type { UpFile } from '../../src/cli/up.ts';

const dir = await mkdtemp(join(tmpdir(), 'weft-up-mesh-'));
after(() => rm(dir, { recursive: true, force: true }));

const mesh = `apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {app: echo}
  ports:
    - {name: http, port: 8080, appProtocol: http}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: echo
  labels: {app: echo}
spec:
  command: [node, ${JSON.stringify(weftBin)}, echo]
  replicas: 2
  ports:
    - {name: http, port: 8080}
`;

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('weft up runs a sidecar and the app for every replica, and the mesh routes between them', async () => {
  await writeFile(join(dir, 'mesh.yaml'), mesh);
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], {
    cwd: dir,
    isReady: (line) => line.startsWith('Ctrl-C stops everything'),
    readyTimeoutMs: 20_000,
  });
  let facts: UpFile | undefined;
  try {
    facts = JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile;
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
    assert.equal(alive(w.pid), false, `${w.instance} app (pid ${w.pid}) is still running`);
    assert.equal(alive(w.proxy.pid), false, `${w.instance} proxy (pid ${w.proxy.pid}) is still running`);
  }
  assert.match(up.stdout(), /weft up: stopped/);
});
