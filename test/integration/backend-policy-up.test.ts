// BackendTrafficPolicy end to end with real processes (`weft up`): the gateway hashes on a header, and every policy gets its status.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpFile } from '../../src/cli/up.ts';
import type { PolicyStatus } from '../../src/compiler/backend-policy.ts';
import { startWeft, weftBin } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

const dir = await mkdtemp(join(tmpdir(), 'weft-up-policy-'));
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
  replicas: 2
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
  rules:
    - backendRefs: [{name: echo, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: sticky}
spec:
  targetRefs: [{kind: Service, name: echo}]
  loadBalancer:
    type: ConsistentHash
    consistentHash: {type: Header, header: {name: x-user}}
  circuitBreaker: {maxParallelRequests: 100}
---
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: zz-late}
spec:
  targetRefs: [{kind: Service, name: echo}]
  loadBalancer: {type: RoundRobin}
---
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: orphan}
spec:
  targetRefs: [{kind: Service, name: nope}]
`;

function get(port: number, user: string): Promise<{ status: number; pod: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'shop.example.com', 'x-user': user }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, pod: (JSON.parse(body) as { pod: string }).pod });
        } catch {
          resolve({ status: res.statusCode ?? 0, pod: '' });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

test('weft up: a BackendTrafficPolicy hashes the gateway\'s requests by header; conflicting and orphan policies say why in their status', async () => {
  await writeFile(join(dir, 'mesh.yaml'), mesh);
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], {
    cwd: dir,
    isReady: (line) => line.startsWith('Ctrl-C stops everything'),
    readyTimeoutMs: 30_000,
  });
  try {
    const facts = JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile;
    const port = facts.gateways?.[0]?.listeners['80'];
    assert.ok(port !== undefined && port > 0);

    // Both replicas registered: distinct users reach both pods.
    await waitFor(
      async () => {
        const pods = new Set<string>();
        for (let i = 0; i < 30; i++) pods.add((await get(port, `user-${i}`)).pod);
        return pods.size === 2;
      },
      { timeoutMs: 20_000, intervalMs: 200, message: 'both echo replicas to serve' },
    );
    const alice = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const res = await get(port, 'alice');
      assert.equal(res.status, 200);
      alice.add(res.pod);
    }
    assert.equal(alice.size, 1, `alice reached ${[...alice].join(', ')}`);

    const statusOf = async (name: string) => {
      const res = await fetch(`${facts.api}/apis/weft.dev/v1alpha1/namespaces/default/backendtrafficpolicies/${name}`);
      const body = (await res.json()) as { status?: PolicyStatus };
      return body.status?.ancestors.map((a) => `${a.ancestorRef.name} ${a.conditions[0]?.status} ${a.conditions[0]?.reason}`);
    };
    await waitFor(async () => (await statusOf('orphan'))?.length, { message: 'policy statuses to be written' });
    assert.deepEqual(await statusOf('sticky'), ['echo True Accepted']);
    assert.deepEqual(await statusOf('zz-late'), ['echo False Conflicted']);
    assert.deepEqual(await statusOf('orphan'), ['nope False TargetNotFound']);
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
});
