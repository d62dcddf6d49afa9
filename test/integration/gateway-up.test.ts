// `weft up` with a Gateway: it starts one gateway proxy per Gateway, prints and records its listener ports, and the Gateway serves its routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../src/testing/wait.ts';
import { ECHO_SERVICE_YAML, echoWorkloadYaml, edgeGatewayYaml, getWithHost, processAlive, scratchDir, startUp } from './up-helpers.ts';

const dir = await scratchDir('weft-up-gateway-');

const mesh = `${ECHO_SERVICE_YAML}---
${echoWorkloadYaml()}---
${edgeGatewayYaml()}---
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

const get = (port: number, host: string, path: string) => getWithHost(port, path, { host }, 5000);

test('weft up starts a gateway proxy per Gateway, shows where its ports listen, and the Gateway routes to the mesh', async () => {
  const { up, facts } = await startUp(dir, mesh);
  try {
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
  for (const g of facts.gateways ?? []) assert.equal(processAlive(g.proxy.pid), false, `the gateway proxy (pid ${g.proxy.pid}) is still running`);
});
