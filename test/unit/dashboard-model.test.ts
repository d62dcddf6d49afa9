// The dashboard's pure parts: the topology graph from config and traffic, the layout that never moves a placed node, the line diff, hash routes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from '../../src/api/meta.ts';
import type { HTTPRouteSpec, ServiceSpec, WorkloadSpec } from '../../src/api/resources.ts';
import type { TopologyTraffic } from '../../src/api/topology.ts';
import { buildGraph, edgeLabel, healthOf, mergeStats } from '../../src/dashboard/topology/graph.ts';
import { layeredLayout, placeNewcomers } from '../../src/dashboard/topology/layout.ts';
import { diffLines, withContext } from '../../src/dashboard/components/diff.ts';
import { href, parseRoute } from '../../src/dashboard/router.ts';
import { endpointsOf, partition, policiesOf } from '../../src/dashboard/model.ts';

function service(name: string, namespace = 'default', selector: Record<string, string> = { app: name }): Resource<ServiceSpec> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] } };
}

function workload(name: string, labels: Record<string, string>, spec: Partial<WorkloadSpec> = {}): Resource<WorkloadSpec> {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: 'default', labels },
    spec: { serviceAccount: 'default', ports: [{ port: 8080 }], replicas: 1, upstreams: [], ...spec } as WorkloadSpec,
  };
}

function split(name: string, parent: string, backends: [string, number][], namespace = 'default'): Resource<HTTPRouteSpec> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: parent, port: 8080 }],
      rules: [{ backendRefs: backends.map(([n, weight]) => ({ name: n, port: 8080, weight })) }],
    },
  };
}

const demo = {
  services: ['frontend', 'catalog', 'catalog-v1', 'catalog-v2', 'pricing', 'cart'].map((n) => service(n)),
  workloads: [workload('frontend', { app: 'frontend' }), workload('catalog-v1', { app: 'catalog', version: 'v1' })],
  instances: [] as Resource<WorkloadSpec>[],
  routes: [split('catalog-split', 'catalog', [['catalog-v1', 90], ['catalog-v2', 10]])],
};

describe('topology graph', () => {
  it('has every service and the split edges with their shares', () => {
    const graph = buildGraph({ ...demo, showWorkloads: false });
    assert.deepEqual(graph.nodes.map((n) => n.name).sort(), ['cart', 'catalog', 'catalog-v1', 'catalog-v2', 'frontend', 'pricing']);
    const edges = graph.edges.map((e) => [e.source, e.target, e.kind, e.label]);
    assert.deepEqual(edges, [
      ['svc:default/catalog', 'svc:default/catalog-v1', 'split', '90%'],
      ['svc:default/catalog', 'svc:default/catalog-v2', 'split', '10%'],
    ]);
  });

  it('draws routes attached to a Gateway from a gateway node', () => {
    const route = split('web', 'edge', [['frontend', 1]]);
    route.spec.parentRefs = [{ name: 'edge' }];
    const gateway = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: 'default' }, spec: {} };
    const graph = buildGraph({ ...demo, routes: [route], gateways: [gateway], showWorkloads: false });
    assert.deepEqual(graph.nodes.find((n) => n.id === 'gw:default/edge')?.kind, 'gateway');
    assert.deepEqual(graph.edges.map((e) => [e.source, e.target, e.label]), [['gw:default/edge', 'svc:default/frontend', '100%']]);
  });

  it("puts a gateway's traffic on its routes' edges from the gateway node, with no node for its proxy or its listener", () => {
    const route = split('web', 'edge', [['frontend', 1]]);
    route.spec.parentRefs = [{ name: 'edge' }];
    const gateway = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: 'default' }, spec: {} };
    // As the control plane reports a gateway's requests: from workload "<gateway>.gateway", addressed to one of its listeners.
    const traffic: TopologyTraffic = {
      available: true,
      window: '5m',
      generatedAt: '2026-01-01T00:00:00Z',
      services: [],
      edges: [
        { source: { namespace: 'default', workload: 'edge.gateway' }, destination: { namespace: 'default', service: 'frontend' }, via: { namespace: 'gateway:default', service: 'edge/http/*' }, requestsPerSecond: 4, successRate: 1, p99Ms: 12, mtls: true },
      ],
    };
    const graph = buildGraph({ ...demo, routes: [route], gateways: [gateway], showWorkloads: false, traffic });
    assert.deepEqual(graph.edges.map((e) => [e.source, e.target, e.kind, e.stats?.requestsPerSecond, e.observedShare, e.mtls]), [['gw:default/edge', 'svc:default/frontend', 'split', 4, 1, true]]);
    assert.equal(graph.nodes.some((n) => n.name.includes('gateway') || n.namespace.startsWith('gateway:')), false, graph.nodes.map((n) => n.id).join(', '));
  });

  it('keeps element ids across changes, so the view can update in place', () => {
    const before = buildGraph({ ...demo, showWorkloads: false });
    const after = buildGraph({ ...demo, routes: [split('catalog-split', 'catalog', [['catalog-v1', 50], ['catalog-v2', 50]])], showWorkloads: false });
    assert.deepEqual(after.edges.map((e) => e.id), before.edges.map((e) => e.id));
    assert.deepEqual(after.edges.map((e) => e.label), ['50%', '50%']);
  });

  it('draws upstreams from the services that select the workload, and marks undefined targets', () => {
    const withUpstream = { ...demo, workloads: [...demo.workloads, workload('cart', { app: 'cart' }, { upstreams: [{ service: 'ledger.money', port: 5432, localPort: 15432 }] })] };
    const graph = buildGraph({ ...withUpstream, showWorkloads: false });
    const upstream = graph.edges.find((e) => e.kind === 'upstream');
    assert.equal(upstream?.source, 'svc:default/cart');
    assert.equal(upstream?.target, 'svc:money/ledger');
    assert.equal(graph.nodes.find((n) => n.id === 'svc:money/ledger')?.missing, true);
  });

  it('filters by namespace and keeps the neighbours an edge reaches, marked foreign', () => {
    const services = [service('a', 'one'), service('b', 'two'), service('c', 'two')];
    const routes = [split('r', 'a', [['b', 1]], 'one')];
    routes[0]!.spec.rules[0]!.backendRefs![0]!.namespace = 'two';
    const graph = buildGraph({ services, workloads: [], instances: [], routes, namespace: 'one', showWorkloads: false });
    assert.deepEqual(graph.nodes.map((n) => [n.id, n.foreign]), [
      ['svc:one/a', false],
      ['svc:two/b', true],
    ]);
  });

  it('puts traffic onto the split edges, with observed shares and health', () => {
    const traffic: TopologyTraffic = {
      available: true,
      window: '5m',
      generatedAt: '2026-01-01T00:00:00Z',
      services: [{ namespace: 'default', service: 'catalog-v1', requestsPerSecond: 9, successRate: 1, p99Ms: 20 }],
      edges: [
        { source: { namespace: 'default', workload: 'frontend' }, destination: { namespace: 'default', service: 'catalog-v1' }, via: { namespace: 'default', service: 'catalog' }, requestsPerSecond: 9, successRate: 1, p99Ms: 20, mtls: true },
        { source: { namespace: 'default', workload: 'frontend' }, destination: { namespace: 'default', service: 'catalog-v2' }, via: { namespace: 'default', service: 'catalog' }, requestsPerSecond: 1, successRate: 0.9, p99Ms: 30, mtls: true },
      ],
    };
    const graph = buildGraph({ ...demo, showWorkloads: false, traffic });
    const toV1 = graph.edges.find((e) => e.target === 'svc:default/catalog-v1')!;
    const toV2 = graph.edges.find((e) => e.target === 'svc:default/catalog-v2')!;
    assert.equal(toV1.observedShare, 0.9);
    assert.equal(toV2.health, 'failing');
    assert.equal(toV1.health, 'healthy');
    assert.equal(edgeLabel(toV1, true), '90% (seen 90%)\n9.00 rps · 100% · p99 20 ms');
    assert.equal(toV1.mtls, true);
    const fromFrontend = graph.edges.find((e) => e.kind === 'traffic')!;
    assert.deepEqual([fromFrontend.source, fromFrontend.target, fromFrontend.stats?.requestsPerSecond], ['svc:default/frontend', 'svc:default/catalog', 10]);
    assert.equal(fromFrontend.stats?.successRate, 0.99);
  });

  it('merges numbers: rates add, success weighs by rate, percentiles keep the worse', () => {
    assert.deepEqual(mergeStats({ requestsPerSecond: 3, successRate: 1, p99Ms: 10 }, { requestsPerSecond: 1, successRate: 0.6, p99Ms: 50 }), { requestsPerSecond: 4, successRate: 0.9, p99Ms: 50 });
    assert.equal(healthOf(undefined), 'unknown');
    assert.equal(healthOf({ requestsPerSecond: 0 }), 'idle');
    assert.equal(healthOf({ requestsPerSecond: 5, successRate: 0.999, p99Ms: 2000 }), 'degraded');
  });

  it('counts registered endpoints and their readiness from the proxies', () => {
    const instance = workload('catalog-v1-0', { app: 'catalog', version: 'v1', 'weft.dev/workload': 'catalog-v1' }, { address: '127.0.0.1', tunnelPort: 1 });
    instance.metadata.annotations = { 'weft.dev/proxy': 'default/catalog-v1-0' };
    const objects = partition([...demo.services, ...demo.workloads, instance]);
    assert.equal(objects.instances.length, 1);
    const proxy = { id: 'default/catalog-v1-0', mode: 'sidecar' as const, namespace: 'default', address: '127.0.0.1', tunnelPort: 1, connected: true, ready: false, lastSeen: '' };
    const [endpoint] = endpointsOf(objects.services.find((s) => s.metadata.name === 'catalog')!, objects.instances, [proxy]);
    assert.deepEqual([endpoint?.ready, endpoint?.reason], [false, 'app not answering its proxy']);
  });
});

describe('topology layout', () => {
  const nodes = (ids: string[]) => ids.map((id) => ({ id, order: id }));

  it('lays connected nodes out left to right and the rest in a grid below', () => {
    const positions = layeredLayout(nodes(['a', 'b', 'c', 'lonely']), [
      { source: 'a', target: 'b' },
      { source: 'a', target: 'c' },
    ]);
    const [a, b, c, lonely] = ['a', 'b', 'c', 'lonely'].map((id) => positions.get(id)!);
    assert.ok(b!.x > a!.x && c!.x > a!.x && b!.x === c!.x);
    assert.ok(lonely!.y > Math.max(a!.y, b!.y, c!.y));
  });

  it('survives cycles and long chains', () => {
    const ids = Array.from({ length: 300 }, (_, i) => `n${String(i).padStart(3, '0')}`);
    const edges = ids.map((id, i) => ({ source: id, target: ids[(i + 1) % ids.length]! }));
    const positions = layeredLayout(nodes(ids), edges);
    assert.equal(positions.size, 300);
    assert.equal(new Set([...positions.values()].map((p) => `${p.x},${p.y}`)).size, 300, 'no two nodes share a spot');
  });

  it('places newcomers without moving anyone, next to their neighbour and clear of others', () => {
    const placed = layeredLayout(nodes(['a', 'b']), [{ source: 'a', target: 'b' }]);
    const frozen = new Map([...placed].map(([id, p]) => [id, { ...p }]));
    const added = placeNewcomers(placed, nodes(['c', 'd']), [
      { source: 'a', target: 'b' },
      { source: 'a', target: 'c' },
    ]);
    assert.deepEqual(placed, frozen, 'placed nodes keep their positions');
    const c = added.get('c')!;
    assert.ok(c.x > placed.get('a')!.x, 'c goes right of a, which points at it');
    assert.ok([...placed.values()].every((p) => Math.abs(p.x - c.x) > 100 || Math.abs(p.y - c.y) > 40), 'c overlaps nobody');
    assert.ok(added.get('d')!.y > Math.max(...[...placed.values()].map((p) => p.y)), 'a loner goes below');
  });

  it('lays out 200 services quickly', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `svc:ns${i % 5}/s${i}`);
    const edges = ids.slice(0, 150).map((id, i) => ({ source: id, target: ids[(i * 7 + 3) % 200]! }));
    const started = performance.now();
    layeredLayout(nodes(ids), edges);
    assert.ok(performance.now() - started < 200, `${performance.now() - started} ms`);
  });
});

describe('dashboard helpers', () => {
  it('diffs lines with removals first and folds unchanged runs', () => {
    const before = ['a', 'b', 'weight: 90', 'c', 'd', 'e', 'f', 'g'].join('\n');
    const after = ['a', 'b', 'weight: 50', 'c', 'd', 'e', 'f', 'g'].join('\n');
    const lines = diffLines(before, after)!;
    assert.deepEqual(
      lines.filter((l) => l.op !== ' '),
      [
        { op: '-', text: 'weight: 90' },
        { op: '+', text: 'weight: 50' },
      ],
    );
    assert.deepEqual(withContext(lines, 1).map((l) => ('count' in l ? `…${l.count}` : l.op + l.text)), ['…1', ' b', '-weight: 90', '+weight: 50', ' c', '…4']);
    assert.deepEqual(diffLines('', 'x\n'), [{ op: '+', text: 'x' }]);
  });

  it('round-trips hash routes', () => {
    for (const route of [
      { page: 'topology' },
      { page: 'proxies' },
      { page: 'proxies', id: 'default/frontend-0' },
      { page: 'service', namespace: 'default', name: 'catalog' },
      { page: 'config' },
      { page: 'config', kind: 'HTTPRoute' },
      { page: 'config', kind: 'HTTPRoute', namespace: 'default', name: 'catalog-split' },
      { page: 'config', kind: 'MeshConfig', name: 'default' },
    ] as const) {
      assert.deepEqual(parseRoute(href(route)), route);
    }
    assert.deepEqual(parseRoute('#/nonsense'), { page: 'topology' });
  });

  it('lists the policies that apply to a service: by targetRef, through an attached route, by selector, namespace-wide', () => {
    const policy = (kind: string, name: string, spec: unknown, namespace = 'default'): Resource => ({ apiVersion: 'weft.dev/v1alpha1', kind, metadata: { name, namespace }, spec });
    const route = split('catalog-split', 'catalog', [['catalog-v1', 90]]);
    const all = [
      policy('BackendTrafficPolicy', 'by-service', { targetRefs: [{ kind: 'Service', name: 'catalog', sectionName: 'http' }] }),
      policy('RateLimitPolicy', 'by-route', { targetRefs: [{ kind: 'HTTPRoute', name: 'catalog-split' }] }),
      policy('RateLimitPolicy', 'other-route', { targetRefs: [{ kind: 'HTTPRoute', name: 'cart-route' }] }),
      policy('AuthorizationPolicy', 'by-selector', { selector: { matchLabels: { app: 'catalog' } } }),
      policy('AuthorizationPolicy', 'other-selector', { selector: { matchLabels: { app: 'cart' } } }),
      policy('PeerAuthentication', 'namespace-wide', {}),
      policy('PeerAuthentication', 'elsewhere', {}, 'other'),
      policy('BackendTrafficPolicy', 'no-target-is-nothing', { targetRefs: [{ kind: 'Service', name: 'cart' }] }),
      route,
    ];
    const applied = policiesOf('default', 'catalog', all, [workload('catalog-v1', { app: 'catalog', version: 'v1' })], [route]);
    assert.deepEqual(
      applied.map((p) => `${p.policy.metadata.name}: ${p.why}`),
      [
        'by-service: targets Service catalog (http)',
        'by-route: targets HTTPRoute catalog-split, attached to it',
        'by-selector: selects app=catalog (catalog-v1)',
        'namespace-wide: namespace-wide (every workload in default)',
      ],
    );
  });
});
