// BackendTrafficPolicy end to end with real processes (`weft up`): the gateway hashes on a header, and every policy gets its status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyStatus } from '../../src/compiler/backend-policy.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { ECHO_SERVICE_YAML, echoWorkloadYaml, edgeGatewayYaml, getWithHost, scratchDir, startUp } from './up-helpers.ts';

const dir = await scratchDir('weft-up-policy-');

const mesh = `${ECHO_SERVICE_YAML}---
${echoWorkloadYaml('echo', ['replicas: 2'])}---
${edgeGatewayYaml()}---
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

async function get(port: number, user: string): Promise<{ status: number; pod: string }> {
  const { status, body } = await getWithHost(port, '/', { host: 'shop.example.com', 'x-user': user }, 5000);
  try {
    return { status, pod: (JSON.parse(body) as { pod: string }).pod };
  } catch {
    return { status, pod: '' };
  }
}

test('weft up: a BackendTrafficPolicy hashes the gateway\'s requests by header; conflicting and orphan policies say why in their status', async () => {
  const { up, facts } = await startUp(dir, mesh);
  try {
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
