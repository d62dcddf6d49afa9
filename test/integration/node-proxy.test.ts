// The per-node proxy: two workloads hosted by one node proxy and a third behind a sidecar call each other, each with its own identity.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { startProxy, type RunningProxy } from '../../src/proxy/main.ts';
import { startNodeProxy, type RunningNodeProxy } from '../../src/proxy/node.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { api, startTestControlPlane, waitFor } from './control-helpers.ts';
import { adminGet, startBackend, viaProxy, type Backend } from './proxy-helpers.ts';

const NAMES = ['alpha', 'beta', 'gamma'] as const;

/** A Service and a template Workload per name, each workload with a service account of its own name. */
const mesh = NAMES.map(
  (name) => `
apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ${name}, labels: {app: ${name}}}
spec:
  serviceAccount: ${name}-sa
  ports: [{name: http, port: 8080}]
`,
).join('---\n');

/** The x-forwarded-client-cert the app behind the callee saw: who it was delivered by, and who called. */
function xfccOf(result: { json<T>(): T }): { by: string; uri: string } {
  const value = String(result.json<{ headers: Record<string, string> }>().headers['x-forwarded-client-cert'] ?? '');
  return { by: /By=([^;,]+)/.exec(value)?.[1] ?? '', uri: /URI=([^;,]+)/.exec(value)?.[1] ?? '' };
}

describe('weft proxy --mode node', { timeout: 60_000 }, () => {
  let cp: RunningControlPlane;
  const apps = new Map<string, Backend>();
  let node: RunningNodeProxy;
  let gamma: RunningProxy;
  const outbound = new Map<string, number>();
  const logger = silentLogger();

  before(async () => {
    cp = await startTestControlPlane({ leaseTtlMs: 5000 });
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', mesh, 'application/yaml');
    assert.equal(applied.status, 200, applied.text);
    for (const name of NAMES) apps.set(name, await startBackend(`${name}-app`));
    const token = (workload: string) => cp.tokens.create({ namespace: 'default', workload });
    node = await startNodeProxy({
      name: 'host-a',
      controlPlane: cp.streamUrl,
      adminPort: 0,
      workloads: await Promise.all(
        (['alpha', 'beta'] as const).map(async (name) => ({
          namespace: 'default',
          workload: name,
          instance: `${name}-0`,
          appPorts: [{ declared: 8080, actual: apps.get(name)!.port }],
          token: await token(name),
        })),
      ),
      readinessIntervalMs: 100,
      logger,
      clock: systemClock,
    });
    gamma = await startProxy({
      mode: 'sidecar',
      controlPlane: cp.streamUrl,
      namespace: 'default',
      workload: 'gamma',
      instance: 'gamma-0',
      appPorts: [{ declared: 8080, actual: apps.get('gamma')!.port }],
      token: await token('gamma'),
      outboundPort: 0,
      tunnelPort: 0,
      adminPort: 0,
      readinessIntervalMs: 100,
      logger,
      clock: systemClock,
    });
    for (const w of node.workloads) outbound.set(w.workload, w.proxy.ports.outbound);
    outbound.set('gamma', gamma.ports.outbound);
    // Every caller reaches every callee once the three instances are registered and pushed.
    for (const from of NAMES) {
      for (const to of NAMES) {
        if (from === to) continue;
        await waitFor(async () => (await viaProxy(outbound.get(from)!, `http://${to}:8080/warm`)).status === 200, `${from} → ${to}`, 10_000);
      }
    }
  });

  after(async () => {
    await gamma?.close();
    await node?.close();
    for (const app of apps.values()) await app.close();
    await cp?.close();
  });

  it('hosts each workload as its own registered instance, on its own outbound and tunnel ports', async () => {
    assert.deepEqual(node.workloads.map((w) => w.id), ['default/alpha-0', 'default/beta-0']);
    const [alpha, beta] = node.workloads;
    assert.notEqual(alpha!.proxy.ports.outbound, beta!.proxy.ports.outbound);
    assert.notEqual(alpha!.proxy.ports.tunnel, beta!.proxy.ports.tunnel);
    const proxies = (await api(cp.apiUrl, 'GET', '/weft/v1/proxies')).body as { id: string; mode: string; ready: boolean }[];
    const byId = new Map(proxies.map((p) => [p.id, p]));
    assert.equal(byId.get('default/alpha-0')?.mode, 'node');
    assert.equal(byId.get('default/beta-0')?.mode, 'node');
    assert.equal(byId.get('default/gamma-0')?.mode, 'sidecar');
    assert.ok(['default/alpha-0', 'default/beta-0', 'default/gamma-0'].every((id) => byId.get(id)?.ready), JSON.stringify(proxies));
  });

  it('sends each workload\'s requests with its own certificate, and serves each with the callee\'s', async () => {
    const calls: [string, string][] = [
      ['alpha', 'beta'], // both on the node
      ['beta', 'alpha'],
      ['alpha', 'gamma'], // node → sidecar
      ['beta', 'gamma'],
      ['gamma', 'alpha'], // sidecar → node
      ['gamma', 'beta'],
    ];
    for (const [from, to] of calls) {
      const res = await viaProxy(outbound.get(from)!, `http://${to}:8080/who`);
      assert.equal(res.status, 200, `${from} → ${to}: ${res.body}`);
      assert.equal(res.json().name, `${to}-app`, `${from} → ${to} reached ${to}'s app`);
      const xfcc = xfccOf(res);
      assert.match(xfcc.uri, new RegExp(`/ns/default/sa/${from}-sa$`), `${from} → ${to}: the callee saw the caller as ${xfcc.uri}`);
      assert.match(xfcc.by, new RegExp(`/ns/default/sa/${to}-sa$`), `${from} → ${to}: delivered by ${xfcc.by}`);
    }
  });

  it('answers /ready, /config and /metrics once for the whole node', async () => {
    const ready = await adminGet(node.ports.admin, '/ready');
    assert.equal(ready.status, 200, ready.body);
    const config = JSON.parse((await adminGet(node.ports.admin, '/config')).body) as {
      node: string;
      workloads: Record<string, { identity: { spiffeId: string } | null; snapshot: { node: { mode: string } } | null }>;
    };
    assert.equal(config.node, 'host-a');
    assert.deepEqual(Object.keys(config.workloads).sort(), ['default/alpha-0', 'default/beta-0']);
    assert.match(config.workloads['default/alpha-0']!.identity!.spiffeId, /\/sa\/alpha-sa$/);
    assert.match(config.workloads['default/beta-0']!.identity!.spiffeId, /\/sa\/beta-sa$/);
    assert.equal(config.workloads['default/alpha-0']!.snapshot!.node.mode, 'node');
    const metrics = (await adminGet(node.ports.admin, '/metrics')).body;
    assert.match(metrics, /weft_requests_total\{reporter="source"/);
    assert.match(metrics, /weft_requests_total\{reporter="destination"/);
  });

  it('gets no certificate for a hosted workload whose token is another workload\'s, and says so in /ready', async () => {
    const impostor = await startNodeProxy({
      name: 'host-b',
      controlPlane: cp.streamUrl,
      adminPort: 0,
      workloads: [
        { namespace: 'default', workload: 'alpha', instance: 'alpha-9', appPorts: [], token: await cp.tokens.create({ namespace: 'default', workload: 'alpha' }) },
        { namespace: 'default', workload: 'beta', instance: 'beta-9', appPorts: [], token: await cp.tokens.create({ namespace: 'default', workload: 'gamma' }) },
      ],
      logger,
      clock: systemClock,
    });
    try {
      const alphaReady = impostor.workloads.find((w) => w.workload === 'alpha')!.proxy.identityReady;
      assert.match(await alphaReady, /\/sa\/alpha-sa$/);
      const ready = await waitFor(async () => {
        const res = await adminGet(impostor.ports.admin, '/ready');
        return res.status === 503 && !res.body.includes('alpha-9') ? res : undefined;
      }, 'only beta-9 to be waiting', 5000);
      // The control plane refuses that token for beta: no certificate, and (since the stream checks it too) no config.
      assert.match(ready.body, /default\/beta-9: no (config|workload certificate) yet/);
      const config = JSON.parse((await adminGet(impostor.ports.admin, '/config')).body) as { workloads: Record<string, { identity: unknown }> };
      assert.equal(config.workloads['default/beta-9']?.identity, null);
    } finally {
      await impostor.close();
    }
  });

  it('enforces an AuthorizationPolicy on a hosted workload as a sidecar would: its own caller identities, 403 with weft-reason', async () => {
    const policy = `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: alpha-from-gamma-only}
spec:
  selector: {matchLabels: {app: alpha}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/gamma-sa"]}}]
`;
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', policy, 'application/yaml');
    assert.equal(applied.status, 200, applied.text);
    try {
      // beta shares alpha's node proxy, yet calls with its own identity: refused; gamma (a sidecar) is allowed.
      const denied = await waitFor(async () => {
        const res = await viaProxy(outbound.get('beta')!, `http://alpha:8080/who`);
        return res.status === 403 ? res : undefined;
      }, 'beta → alpha to be denied', 10_000);
      assert.equal(denied.headers['weft-reason'], 'WEFT_ERR_RBAC_DENIED');
      const allowed = await viaProxy(outbound.get('gamma')!, `http://alpha:8080/who`);
      assert.equal(allowed.status, 200, allowed.body);
      // beta itself is not selected: alpha (on the same node) still reaches it.
      assert.equal((await viaProxy(outbound.get('alpha')!, `http://beta:8080/who`)).status, 200);
    } finally {
      const removed = await api(cp.apiUrl, 'DELETE', '/apis/weft.dev/v1alpha1/namespaces/default/authorizationpolicies/alpha-from-gamma-only');
      assert.equal(removed.status, 200, removed.text);
    }
  });
});
