// `weft explain` end to end with real processes (`weft up`): the control plane's trace, the gateway proxy's live state from its admin, the CLI's text and JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import type { ExplainTrace, LiveProxyState } from '../../src/api/explain.ts';
import { runWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { ECHO_SERVICE_YAML, echoWorkloadYaml, edgeGatewayYaml, getWithHost, scratchDir, startUp } from './up-helpers.ts';

const dir = await scratchDir('weft-explain-');

const mesh = `${ECHO_SERVICE_YAML}---
${echoWorkloadYaml()}---
${echoWorkloadYaml('client')}---
${edgeGatewayYaml('*.example.com')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      timeouts: {request: 10s}
      backendRefs: [{name: echo, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: one-at-a-time}
spec:
  targetRefs: [{kind: Service, name: echo}]
  circuitBreaker: {maxParallelRequests: 1}
`;

/** A request through the gateway; resolves with its status once answered. */
const get = async (port: number, path: string) => (await getWithHost(port, path, { host: 'shop.example.com' })).status;

test('weft explain: routed, no route, unknown workload, circuit open from the gateway proxy\'s live state, and from a sidecar', async () => {
  const { up, facts } = await startUp(dir, mesh);
  try {
    const gateway = facts.gateways![0]!;
    const port = gateway.listeners['80']!;
    await waitFor(async () => (await get(port, '/api/ready')) === 200, { timeoutMs: 20_000, intervalMs: 200, message: 'the echo to answer through the gateway' });

    // The admin's read-only view of the balancer registry: the echo backend, its one endpoint, no request in flight.
    const state = (await (await fetch(`http://127.0.0.1:${gateway.proxy.admin}/debug/backends`)).json()) as LiveProxyState;
    const echo = state.backends.find((b) => b.key === 'default/echo:8080');
    assert.ok(echo, JSON.stringify(state));
    assert.equal(echo.requests, 0);
    assert.equal(echo.endpoints.length, 1);
    assert.equal(echo.endpoints[0]!.healthy, true);

    // Routed: text names the listener, the rule, the backend and its endpoint; the live state came from the gateway's admin.
    const routed = await runWeft(['explain', '--gateway', 'default/edge', 'GET', 'http://shop.example.com/api/items'], { cwd: dir });
    assert.equal(routed.code, 0, routed.stderr);
    assert.match(routed.stdout, /Verdict: FORWARDED/);
    assert.match(routed.stdout, /listener http/);
    assert.match(routed.stdout, /✓ \[0\] default\/shop\/0\/0: matches: path PathPrefix "\/api"/);
    assert.match(routed.stdout, /default\/echo:8080/);
    assert.match(routed.stdout, /circuit breaker: maxRequests 1; now 0 in flight/);
    assert.match(routed.stdout, /Timeouts: gives up after 10000 ms/);
    assert.match(routed.stdout, /Live state: from /);

    // No route: a path no rule takes, in JSON.
    const noRule = await runWeft(['explain', '--gateway', 'default/edge', 'http://shop.example.com/other', '-o', 'json'], { cwd: dir });
    const noRuleTrace = JSON.parse(noRule.stdout) as ExplainTrace;
    assert.equal(noRuleTrace.verdict.outcome, 'no-route');
    assert.equal(noRuleTrace.verdict.reason, 'WEFT_ERR_NO_ROUTE');
    assert.match(noRuleTrace.rules[0]!.why, /needs path PathPrefix "\/api"/);
    // What the proxy really answers agrees.
    assert.equal(await get(port, '/other'), 404);

    // An unknown workload is the API's 404, said as such.
    const unknown = await runWeft(['explain', '--from', 'default/nope', 'GET', 'http://echo:8080/'], { cwd: dir });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no Workload default\/nope/);

    // Circuit open: one slow request holds the only slot; the trace reads the counters from the proxy and says 503 WEFT_ERR_CIRCUIT_OPEN.
    const slow = get(port, '/api/slow?delay=4s');
    await waitFor(
      async () => ((await (await fetch(`http://127.0.0.1:${gateway.proxy.admin}/debug/backends`)).json()) as LiveProxyState).backends.some((b) => b.key === 'default/echo:8080' && b.requests === 1),
      { timeoutMs: 5000, intervalMs: 50, message: 'the slow request to be in flight' },
    );
    const open = await runWeft(['explain', '--gateway', 'default/edge', 'GET', 'http://shop.example.com/api/items', '-o', 'json'], { cwd: dir });
    const openTrace = JSON.parse(open.stdout) as ExplainTrace;
    assert.equal(openTrace.verdict.outcome, 'circuit-open');
    assert.equal(openTrace.verdict.status, 503);
    assert.equal(openTrace.verdict.reason, 'WEFT_ERR_CIRCUIT_OPEN');
    assert.equal(openTrace.live.used, true);
    // And the proxy does refuse such a request now.
    assert.equal(await get(port, '/api/items'), 503);
    assert.equal(await slow, 200);

    // From a workload's sidecar: the mesh's default route to the service; live state from that sidecar's admin (up.json).
    const fromClient = await runWeft(['explain', '--from', 'default/client', 'GET', 'http://echo:8080/x'], { cwd: dir });
    assert.equal(fromClient.code, 0, fromClient.stderr);
    assert.match(fromClient.stdout, /Verdict: FORWARDED/);
    assert.match(fromClient.stdout, /Entry: echo:8080 is service default\/echo port 8080 \(http\), http/);
    assert.match(fromClient.stdout, /✓ \[0\] default: matches: every request/);
    assert.match(fromClient.stdout, /Live state: from default\/client-/);

    // Elsewhere than the weft up directory: the admin address comes from the control plane's proxy list (each proxy says it in its hello).
    const elsewhere = await runWeft(['explain', '--server', facts.api, '--from', 'default/client', 'GET', 'http://echo:8080/x', '-o', 'json'], { cwd: tmpdir() });
    const elsewhereTrace = JSON.parse(elsewhere.stdout) as ExplainTrace;
    assert.equal(elsewhereTrace.live.used, true, JSON.stringify(elsewhereTrace.live));
    assert.match(elsewhereTrace.live.source!, /^default\/client-/);

    // Without live state the CLI says why.
    const offline = await runWeft(['explain', '--gateway', 'default/edge', 'http://shop.example.com/api', '--no-live'], { cwd: dir });
    assert.match(offline.stdout, /Live state: not used — not asked for \(--no-live\)/);
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
});
