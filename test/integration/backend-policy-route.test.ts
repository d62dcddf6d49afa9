// A BackendTrafficPolicy on an HTTPRoute through a real sidecar: that route's requests get its policy, the other route to the same Service keeps the Service's.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendTrafficPolicy, HTTPRoute, Service, Workload } from '../../src/api/resources.ts';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { startTestProxy, viaProxy } from './proxy-helpers.ts';
import { requestMany, startControlled, tally, type ControlledBackend } from './backend-policy-helpers.ts';

/** Parsed through the real schema, as `weft apply` stores it. */
function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  assert.ok(result.ok, JSON.stringify(result));
  return result.resource as T;
}

/** Service `web` (port 80) on `backends`, routes /cart and /browse to it, and the two policies. */
function snapshotFor(backends: readonly ControlledBackend[]): ProxySnapshot {
  const service = parsed<Service>({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
  });
  const workloads = backends.map((b) =>
    parsed<Workload>({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: b.name, namespace: 'default', labels: { app: 'web' } },
      spec: { address: '127.0.0.1', ports: [{ name: 'http', port: b.port }] },
    }),
  );
  const route = (name: string, prefix: string) =>
    parsed<HTTPRoute>({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name, namespace: 'default' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], backendRefs: [{ name: 'web', port: 80 }] }],
      },
    });
  const policy = (name: string, spec: unknown) =>
    parsed<BackendTrafficPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'BackendTrafficPolicy', metadata: { name, namespace: 'default' }, spec });
  const snapshot = compile(
    {
      services: [service],
      workloads,
      httpRoutes: [route('cart', '/cart'), route('browse', '/browse')],
      namespaces: [],
      backendTrafficPolicies: [
        policy('web', {
          targetRefs: [{ kind: 'Service', name: 'web' }],
          loadBalancer: { type: 'ConsistentHash', consistentHash: { type: 'Header', header: { name: 'x-user' } } },
          circuitBreaker: { maxParallelRequests: 4 },
        }),
        policy('cart', { targetRefs: [{ kind: 'HTTPRoute', name: 'cart' }], loadBalancer: { type: 'RoundRobin' }, circuitBreaker: { maxParallelRequests: 1 } }),
      ],
    },
    { id: 'default/client-0', mode: 'sidecar', namespace: 'default', address: '127.0.0.1', tunnelPort: 15008, appPorts: [] },
  );
  assert.deepEqual(checkSnapshot(snapshot), []);
  return snapshot;
}

async function setUp(t: TestContext): Promise<{ out: number; backends: ControlledBackend[] }> {
  const backends = await Promise.all(['w0', 'w1'].map((name) => startControlled(name)));
  t.after(() => Promise.all(backends.map((b) => b.close())));
  const proxy = await startTestProxy({ snapshot: snapshotFor(backends) });
  t.after(() => proxy.close());
  return { out: proxy.proxy.ports.outbound, backends };
}

describe('BackendTrafficPolicy on an HTTPRoute', () => {
  it('replaces the Service policy for that route only: round robin there, hashing on the other route', async (t) => {
    const { out } = await setUp(t);
    const alice = () => ({ 'x-user': 'alice' });
    const browse = tally(await requestMany(out, 20, 1, () => 'http://web/browse', alice));
    assert.equal(Object.keys(browse).length, 1, `the Service's hashing keeps alice on one endpoint via /browse: ${JSON.stringify(browse)}`);
    const cart = tally(await requestMany(out, 20, 1, () => 'http://web/cart', alice));
    assert.deepEqual(cart, { w0: 10, w1: 10 }, 'the route policy (round robin, no hashing: no merging) spreads alice via /cart');
  });

  it('the route\'s circuit breaker trips for that route only; its counters are not the Service\'s', async (t) => {
    const { out, backends } = await setUp(t);
    for (const b of backends) b.delayMs = 300;
    // At once: 4 requests via /cart (route limit 1) and 4 via /browse (Service limit 4).
    const send = (path: string) =>
      Array.from({ length: 4 }, async () => {
        const res = await viaProxy(out, `http://web${path}`, { headers: { 'x-user': 'bob' } });
        return { status: res.status, reason: res.headers['weft-reason'] };
      });
    const [cart, browse] = await Promise.all([Promise.all(send('/cart')), Promise.all(send('/browse'))]);
    assert.equal(cart.filter((r) => r.status === 200).length, 1, JSON.stringify(cart));
    for (const r of cart.filter((r) => r.status !== 200)) assert.deepEqual(r, { status: 503, reason: 'WEFT_ERR_CIRCUIT_OPEN' });
    // Were the counters shared, /cart's request would take one of /browse's 4 places.
    assert.deepEqual(browse.map((r) => r.status), [200, 200, 200, 200], JSON.stringify(browse));
    assert.equal(backends[0]!.requests + backends[1]!.requests, 5, 'refused requests never reach a backend');

    // The route's limit frees up once its request is done.
    for (const b of backends) b.delayMs = 0;
    assert.equal((await viaProxy(out, 'http://web/cart')).status, 200);
  });
});
