// `weft up` with a Gateway: it starts one gateway proxy per Gateway, prints and records its listener ports, and the Gateway serves its routes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpFile } from '../../src/cli/up.ts';
import { startWeft, weftBin } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

const dir = await mkdtemp(join(tmpdir(), 'weft-up-gateway-'));
after(() => rm(dir, { recursive: true, force: true }));

const mesh = `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo, labels: {app: echo}}
spec:
  command: [node, ${JSON.stringify(weftBin)}, echo]
  ports: [{name: http, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs: [{name: echo, port: 8080}]
`;

/** fetch() may not set Host; a gateway routes by it. */
function get(port: number, host: string, path: string): Promise<{ status: number; reason: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.headers['weft-reason'] as string | undefined, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
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

test('weft up starts a gateway proxy per Gateway, shows where its ports listen, and the Gateway routes to the mesh', async () => {
  await writeFile(join(dir, 'mesh.yaml'), mesh);
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], {
    cwd: dir,
    isReady: (line) => line.startsWith('Ctrl-C stops everything'),
    readyTimeoutMs: 30_000,
  });
  let facts: UpFile | undefined;
  try {
    facts = JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile;
    const gateway = facts.gateways?.[0];
    assert.ok(gateway, 'up.json records the gateway');
    assert.deepEqual([gateway.namespace, gateway.name], ['default', 'edge']);
    const local = gateway.listeners['80'];
    assert.ok(local !== undefined && local > 0, 'port 80 is served on a free local port');
    assert.match(up.stdout(), /^GATEWAY\s+NAMESPACE\s+LISTENERS\s+ADMIN\s+PID$/m);
    assert.match(up.stdout(), new RegExp(`^edge\\s+default\\s+80→${local}\\s`, 'm'));

    const answer = await waitFor(
      async () => {
        const res = await get(local, 'shop.example.com', '/api/items?x=1');
        if (res.status !== 200) throw new Error(`${res.status} ${res.reason ?? ''} ${res.body}`);
        return JSON.parse(res.body) as { path: string; pod: string; host: string };
      },
      { timeoutMs: 15_000, message: 'the Gateway to route to the echo' },
    );
    assert.equal(answer.path, '/api/items?x=1');
    assert.equal(answer.pod, 'echo-0');
    assert.equal(answer.host, 'shop.example.com');
    const other = await get(local, 'other.example.com', '/api');
    assert.equal(other.status, 404);
    assert.equal(other.reason, 'WEFT_ERR_NO_ROUTE');
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
  for (const g of facts?.gateways ?? []) assert.equal(alive(g.proxy.pid), false, `the gateway proxy (pid ${g.proxy.pid}) is still running`);
});
