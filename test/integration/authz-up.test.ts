// AuthorizationPolicy with real processes (`weft up`): a DENY at the gateway, a DENY by caller at a sidecar, the audit line on the proxy's stderr (the default --audit-log), and `weft explain` naming the policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { ECHO_SERVICE_YAML, echoWorkloadYaml, edgeGatewayYaml, getWithHost, scratchDir, startUp } from './up-helpers.ts';

const dir = await scratchDir('weft-authz-up-');

const app = (name: string) => echoWorkloadYaml(name, [`serviceAccount: ${name}`]);

const mesh = `${ECHO_SERVICE_YAML}---
${app('echo')}---
${app('client')}---
${app('intruder')}---
${edgeGatewayYaml()}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: echo, port: 8080}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: edge-deny}
spec:
  targetRefs: [{kind: Gateway, name: edge}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/api/admin*"]}}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-intruder}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules: [{from: [{source: {principals: ["*/sa/intruder"]}}]}]
`;

/** A GET to `port` with a raw target (origin-form at the gateway, absolute-form at a sidecar's outbound port). */
async function get(port: number, target: string, host: string): Promise<{ status: number; reason: string | undefined }> {
  const { status, reason } = await getWithHost(port, target, { host });
  return { status, reason };
}

test('weft up: policies enforced at the gateway and at a sidecar, audited, and explained', async () => {
  const { up, facts } = await startUp(dir, mesh);
  try {
    const port = facts.gateways![0]!.listeners['80']!;
    const outboundOf = (workload: string) => facts.workloads.find((w) => w.workload === workload)!.proxy.outbound;
    await waitFor(async () => (await get(port, '/api/ready', 'shop.example')).status === 200, { timeoutMs: 20_000, intervalMs: 200, message: 'the echo to answer through the gateway' });

    // At the gateway: a DENY on the normalised path.
    for (const path of ['/api/admin', '/api/x/../admin/users', '/api/%61dmin']) assert.deepEqual(await get(port, path, 'shop.example'), { status: 403, reason: 'WEFT_ERR_RBAC_DENIED' }, path);
    assert.equal((await get(port, '/api/items', 'shop.example')).status, 200);
    assert.deepEqual(await get(port, '/api/bad%zz', 'shop.example'), { status: 400, reason: 'WEFT_ERR_INVALID_PATH' });

    // At echo's sidecar: the intruder's identity is refused, the client's is not.
    await waitFor(async () => (await get(outboundOf('client'), 'http://echo:8080/hello', 'echo:8080')).status === 200, { timeoutMs: 15_000, intervalMs: 200, message: 'client → echo' });
    assert.deepEqual(await get(outboundOf('intruder'), 'http://echo:8080/hello', 'echo:8080'), { status: 403, reason: 'WEFT_ERR_RBAC_DENIED' });

    // The audit lines come on the proxies' stderr (the default), which weft up passes on as they are.
    await waitFor(() => /"policy":"default\/no-intruder"/.test(up.stdout()), { timeoutMs: 5000, message: 'the sidecar\'s audit line' });
    const gatewayLine = up.stdout().split('\n').find((line) => line.includes('"policy":"default/edge-deny"'));
    assert.ok(gatewayLine, up.stdout().slice(-2000));
    const audit = JSON.parse(gatewayLine.slice(gatewayLine.indexOf('{'))) as Record<string, unknown>;
    assert.equal(audit.action, 'DENY');
    assert.equal(audit.decision, 'deny');
    assert.equal(audit.at, 'gateway');
    assert.equal(audit.principal, null);
    assert.match(String(audit.path), /^\/api\/admin/);

    // weft explain says which policy denies, by the caller's identity.
    const denied = await runWeft(['explain', '--from', 'default/intruder', 'GET', 'http://echo:8080/hello'], { cwd: dir });
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stdout, /Verdict: DENIED — the proxy answers 403, weft-reason: WEFT_ERR_RBAC_DENIED/);
    assert.match(denied.stdout, /denied by policy default\/no-intruder at workload default\/echo/);
    const allowed = await runWeft(['explain', '--from', 'default/client', 'GET', 'http://echo:8080/hello'], { cwd: dir });
    assert.match(allowed.stdout, /Verdict: FORWARDED/);
    const atEdge = await runWeft(['explain', '--gateway', 'default/edge', 'GET', 'http://shop.example/api/x/../admin'], { cwd: dir });
    assert.match(atEdge.stdout, /denied by policy default\/edge-deny at gateway default\/edge/);
    // The caller's address goes along for policies on addresses; a value that is none is refused by the API, naming the field.
    const withAddress = await runWeft(['explain', '--gateway', 'default/edge', '--source-ip', '203.0.113.7', 'GET', 'http://shop.example/api/items'], { cwd: dir });
    assert.equal(withAddress.code, 0, withAddress.stderr);
    assert.match(withAddress.stdout, /from gateway default\/edge \(caller 203\.0\.113\.7\)/);
    assert.match(withAddress.stdout, /Verdict: FORWARDED/);
    const notAnAddress = await runWeft(['explain', '--gateway', 'default/edge', '--source-ip', 'shop.example', 'GET', 'http://shop.example/api/items'], { cwd: dir });
    assert.equal(notAnAddress.code, 1);
    assert.match(notAnAddress.stderr, /sourceIp: must be an IPv4 or IPv6 address/);
  } finally {
    await up.stop();
  }
});
