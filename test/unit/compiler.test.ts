// Unit tests of the compiler: services, endpoints, GAMMA routes and precedence, upstreams, versions and the snapshot check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HTTPRoute, HTTPRouteSpec, Service, ServicePort, Workload, WorkloadSpec } from '../../src/api/resources.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';
import { checkSnapshot, compile, snapshotInputKey, snapshotVersion } from '../../src/compiler/compile.ts';
import { parseGatewayDuration } from '../../src/compiler/duration.ts';
import { canonicalJson, sha256Hex } from '../../src/compiler/hash.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';

// ---------------------------------------------------------------- fixtures

function svc(ns: string, name: string, ports: Partial<ServicePort>[] = [{ port: 80 }], selector: Record<string, string> | undefined = { app: name }): Service {
  const spec: Service['spec'] = { ports: ports.map((p) => ({ protocol: 'TCP', port: 80, ...p })) };
  if (selector) spec.selector = selector;
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns, generation: 1 }, spec };
}

function wl(ns: string, name: string, spec: Partial<WorkloadSpec> = {}, labels: Record<string, string> = {}): Workload {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns, labels, generation: 1 },
    spec: { serviceAccount: 'default', ports: [], replicas: 1, upstreams: [], ...spec },
  };
}

function rt(ns: string, name: string, spec: Partial<HTTPRouteSpec>, creationTimestamp = '2024-01-01T00:00:00Z'): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation: 1, creationTimestamp },
    spec: { parentRefs: [], rules: [{}], ...spec } as HTTPRouteSpec,
  };
}

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

function node(namespace: string, workload?: string, extra: Partial<NodeInfo> = {}): NodeInfo {
  const n: NodeInfo = { id: `${namespace}/${workload ?? 'proxy'}-1`, mode: 'sidecar', namespace, address: '127.0.0.1', tunnelPort: 15008, appPorts: [], ...extra };
  if (workload !== undefined) n.workload = workload;
  return n;
}

const parent = (name: string, extra: Record<string, unknown> = {}) => ({ group: '', kind: 'Service', name, ...extra });

function ruleIds(s: ProxySnapshot, key: string): string[] {
  return s.routes[key]!.rules.map((r) => r.id);
}

// ---------------------------------------------------------------- hashing

test('sha256Hex matches known vectors and canonicalJson sorts keys', () => {
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  assert.equal(sha256Hex('a'.repeat(1000)), '41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3');
  assert.equal(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }], e: undefined }), '{"a":[{"c":"x"}],"b":1}');
});

// ---------------------------------------------------------------- services and endpoints

test('services get full host names, and the short name only in the node namespace', () => {
  const data = input({ services: [svc('shop', 'Reviews'.toLowerCase()), svc('other', 'db', [{ port: 5432, name: 'tcp-pg' }])] });
  const s = compile(data, node('shop'));
  assert.deepEqual(
    s.services.map((x) => [x.namespace, x.name, x.hosts]),
    [
      ['other', 'db', ['db.other', 'db.other.svc', 'db.other.svc.cluster.local']],
      ['shop', 'reviews', ['reviews', 'reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.cluster.local']],
    ],
  );
  const fromOther = compile(data, node('other'));
  assert.deepEqual(fromOther.services.find((x) => x.name === 'db')!.hosts[0], 'db');
  assert.deepEqual(fromOther.services.find((x) => x.name === 'reviews')!.hosts, ['reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.cluster.local']);
  assert.equal(s.mesh.clusterDomain, 'cluster.local');
  assert.equal(s.mesh.trustDomain, 'cluster.local');
});

test('port protocols come from appProtocol, then the port name prefix, else http; UDP ports are not carried', () => {
  const ports: Partial<ServicePort>[] = [
    { port: 1, appProtocol: 'kubernetes.io/h2c' },
    { port: 2, appProtocol: 'kubernetes.io/ws' },
    { port: 3, appProtocol: 'grpc', name: 'tcp-x' },
    { port: 4, name: 'grpc-api' },
    { port: 5, name: 'http2' },
    { port: 6, name: 'tcp-db' },
    { port: 7, name: 'web' },
    { port: 8, appProtocol: 'http2' },
    { port: 9, name: 'https' },
    { port: 10, appProtocol: 'TCP' },
    { port: 11, protocol: 'UDP', name: 'dns' },
  ];
  const s = compile(input({ services: [svc('a', 's', ports)] }), node('a'));
  assert.deepEqual(
    s.services[0]!.ports.map((p) => [p.port, p.protocol]),
    [
      [1, 'http2'],
      [2, 'http'],
      [3, 'grpc'],
      [4, 'grpc'],
      [5, 'http2'],
      [6, 'tcp'],
      [7, 'http'],
      [8, 'http2'],
      [9, 'tcp'],
      [10, 'tcp'],
    ],
  );
  assert.equal(s.services[0]!.ports[3]!.routeKey, 'a/s:4');
  assert.equal(s.backends['a/s:6']!.protocol, 'tcp');
  assert.equal(s.backends['a/s:11'], undefined);
});

test('endpoints: workloads with an address whose labels match, targetPort by number, by name, or the service port', () => {
  const service = svc('shop', 'reviews', [
    { port: 80, targetPort: 8080 },
    { port: 81, targetPort: 'web' },
    { port: 82 },
  ]);
  const data = input({
    services: [service, svc('shop', 'headless', [{ port: 80 }], undefined), svc('other', 'reviews')],
    workloads: [
      wl('shop', 'reviews-b', { address: '10.0.0.2', tunnelPort: 15008, ports: [{ name: 'web', port: 9090 }] }, { app: 'reviews', v: '2' }),
      wl('shop', 'reviews-a', { address: '10.0.0.1', ports: [] }, { app: 'reviews', v: '1' }),
      wl('shop', 'reviews', { ports: [{ name: 'web', port: 9090 }] }, { app: 'reviews' }), // a template: no address
      wl('shop', 'ratings-1', { address: '10.0.0.3' }, { app: 'ratings' }),
      wl('other', 'reviews-x', { address: '10.0.1.1' }, { app: 'reviews' }),
    ],
  });
  const s = compile(data, node('shop'));
  const ep = (key: string) => s.backends[key]!.endpoints.map((e) => [e.id, e.address, e.port, e.tunnelPort]);
  assert.deepEqual(ep('shop/reviews:80'), [
    ['shop/reviews-a', '10.0.0.1', 8080, undefined],
    ['shop/reviews-b', '10.0.0.2', 8080, 15008],
  ]);
  // reviews-a declares no port named "web": left out of that port only.
  assert.deepEqual(ep('shop/reviews:81'), [['shop/reviews-b', '10.0.0.2', 9090, 15008]]);
  assert.deepEqual(ep('shop/reviews:82'), [
    ['shop/reviews-a', '10.0.0.1', 82, undefined],
    ['shop/reviews-b', '10.0.0.2', 82, 15008],
  ]);
  assert.deepEqual(ep('shop/headless:80'), []);
  assert.deepEqual(ep('other/reviews:80'), [['other/reviews-x', '10.0.1.1', 80, undefined]]);
  assert.deepEqual(s.backends['shop/reviews:80']!.endpoints[1]!.labels, { app: 'reviews', v: '2' });
  const backend = s.backends['shop/reviews:80']!;
  assert.deepEqual([backend.key, backend.namespace, backend.service, backend.port, backend.protocol, backend.lb], ['shop/reviews:80', 'shop', 'reviews', 80, 'http', 'least-request']);
});

// ---------------------------------------------------------------- routes

test('a service port with no route gets the default rule to itself', () => {
  const s = compile(input({ services: [svc('shop', 'reviews', [{ port: 80 }, { port: 5432, name: 'tcp' }])] }), node('shop'));
  for (const key of ['shop/reviews:80', 'shop/reviews:5432']) {
    assert.deepEqual(s.routes[key], { key, rules: [{ id: 'default', match: {}, filters: [], backends: [{ backend: key, weight: 1, filters: [] }] }] });
  }
});

test('attached routes replace the default rule: a request matching no rule has no route', () => {
  const route = rt('mesh', 'split', {
    parentRefs: [parent('echo')],
    rules: [
      { matches: [{ path: { type: 'Exact', value: '/v1' } }], backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'Exact', value: '/v2' } }], backendRefs: [{ name: 'echo-v2', port: 80, weight: 1 }] },
    ],
  });
  const s = compile(input({ services: [svc('mesh', 'echo'), svc('mesh', 'echo-v1'), svc('mesh', 'echo-v2')], httpRoutes: [route] }), node('mesh'));
  const table = s.routes['mesh/echo:80']!;
  assert.deepEqual(
    table.rules.map((r) => [r.id, r.match, r.backends]),
    [
      ['mesh/split/0/0', { path: { type: 'Exact', value: '/v1' } }, [{ backend: 'mesh/echo-v1:80', weight: 1, filters: [] }]],
      ['mesh/split/1/0', { path: { type: 'Exact', value: '/v2' } }, [{ backend: 'mesh/echo-v2:80', weight: 1, filters: [] }]],
    ],
  );
  assert.ok(!table.rules.some((r) => r.id === 'default'));
  assert.equal(ruleIds(s, 'mesh/echo-v1:80')[0], 'default');
  assert.deepEqual(checkSnapshot(s), []);
});

test('a parentRef port limits the route to that port; without a port it attaches to every HTTP port', () => {
  const ports: Partial<ServicePort>[] = [{ port: 80, name: 'http' }, { port: 8080, name: 'http-alt' }, { port: 9090, name: 'tcp' }];
  const routes = [
    rt('mesh', 'v1', { parentRefs: [parent('echo-v1', { port: 80 })], rules: [{ backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] }] }),
    rt('mesh', 'v2', { parentRefs: [parent('echo-v2')], rules: [{ backendRefs: [{ name: 'echo-v2', port: 80, weight: 1 }] }] }),
    rt('mesh', 'by-section', { parentRefs: [parent('echo-v3', { sectionName: 'http-alt' })], rules: [{ backendRefs: [{ name: 'echo-v3', port: 80, weight: 1 }] }] }),
  ];
  const services = ['echo-v1', 'echo-v2', 'echo-v3'].map((n) => svc('mesh', n, ports));
  const s = compile(input({ services, httpRoutes: routes }), node('mesh'));
  assert.deepEqual(ruleIds(s, 'mesh/echo-v1:80'), ['mesh/v1/0/0']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v1:8080'), ['default']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v2:80'), ['mesh/v2/0/0']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v2:8080'), ['mesh/v2/0/0']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v2:9090'), ['default']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v3:80'), ['default']);
  assert.deepEqual(ruleIds(s, 'mesh/echo-v3:8080'), ['mesh/by-section/0/0']);
});

test('producer routes apply to every caller; a consumer route applies only to its namespace, instead of the producer routes', () => {
  const producer = rt('mesh', 'producer', {
    parentRefs: [parent('echo')],
    rules: [{ filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'X-From', value: 'producer' }] } }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] }],
  });
  const consumer = rt('consumer', 'mine', {
    parentRefs: [parent('echo', { namespace: 'mesh' })],
    // A consumer route may send to the Service it is attached to, though that is in another namespace.
    rules: [{ backendRefs: [{ name: 'echo', namespace: 'mesh', port: 80, weight: 1 }] }],
  });
  const data = input({ services: [svc('mesh', 'echo', [{ port: 80 }, { port: 8080 }])], httpRoutes: [producer, consumer] });
  assert.deepEqual(ruleIds(compile(data, node('mesh')), 'mesh/echo:80'), ['mesh/producer/0/0']);
  assert.deepEqual(ruleIds(compile(data, node('elsewhere')), 'mesh/echo:80'), ['mesh/producer/0/0']);
  const fromConsumer = compile(data, node('consumer'));
  assert.deepEqual(ruleIds(fromConsumer, 'mesh/echo:80'), ['consumer/mine/0/0']);
  assert.deepEqual(fromConsumer.routes['mesh/echo:80']!.rules[0]!.backends, [{ backend: 'mesh/echo:80', weight: 1, filters: [] }]);
  // The consumer route attaches to every HTTP port of its parent, so it replaces the producer on 8080 too.
  assert.deepEqual(ruleIds(fromConsumer, 'mesh/echo:8080'), ['consumer/mine/0/0']);
  assert.deepEqual(ruleIds(compile(data, node('mesh')), 'mesh/echo:8080'), ['mesh/producer/0/0']);
});

test('a consumer route on one port replaces the producer routes on that port only', () => {
  const producer = rt('mesh', 'producer', { parentRefs: [parent('echo')], rules: [{ backendRefs: [{ name: 'echo', port: 80, weight: 1 }] }] });
  const consumer = rt('consumer', 'mine', { parentRefs: [parent('echo', { namespace: 'mesh', port: 80 })], rules: [{ backendRefs: [{ name: 'echo', namespace: 'mesh', port: 80, weight: 1 }] }] });
  const s = compile(input({ services: [svc('mesh', 'echo', [{ port: 80 }, { port: 8080 }])], httpRoutes: [producer, consumer] }), node('consumer'));
  assert.deepEqual(ruleIds(s, 'mesh/echo:80'), ['consumer/mine/0/0']);
  assert.deepEqual(ruleIds(s, 'mesh/echo:8080'), ['mesh/producer/0/0']);
});

test('precedence: exact, longest prefix, regex, method, headers, query params, age, name, rule and match order', () => {
  // Each row: [route name, creationTimestamp, rule] — the expected order is the order of `expected` below.
  const m = (match: Record<string, unknown>) => ({ matches: [match], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] });
  const routes = [
    rt('mesh', 'b-route', {
      parentRefs: [parent('echo')],
      rules: [
        m({ path: { type: 'PathPrefix', value: '/' } }), // 0: plain catch-all
        m({ path: { type: 'RegularExpression', value: '/re/[0-9]+' } }), // 1
        m({ path: { type: 'PathPrefix', value: '/api/' } }), // 2: trailing slash ignored → "/api"
        m({ path: { type: 'PathPrefix', value: '/api/v1' } }), // 3
        m({ path: { type: 'Exact', value: '/health' } }), // 4
        m({ path: { type: 'PathPrefix', value: '/api' }, method: 'GET' }), // 5
        m({ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'X-A', value: '1', type: 'Exact' }, { name: 'x-b', value: '2', type: 'Exact' }] }), // 6
        m({ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-a', value: '1', type: 'Exact' }] }), // 7
        m({ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-a', value: '1', type: 'Exact' }], queryParams: [{ name: 'q', value: '1', type: 'Exact' }] }), // 8
        {
          // 9: a rule with two matches
          matches: [{ path: { type: 'PathPrefix', value: '/two' } }, { path: { type: 'PathPrefix', value: '/two' }, method: 'POST' }],
          backendRefs: [{ name: 'echo', port: 80, weight: 1 }],
        },
        m({ path: { type: 'Exact', value: '/health' } }), // 10: ties with 4 → rule order
      ],
    }, '2024-01-01T00:00:00Z'),
    // Same specificity as b-route's catch-all: the older route wins, then the name.
    rt('mesh', 'c-old', { parentRefs: [parent('echo')], rules: [m({ path: { type: 'PathPrefix', value: '/' } })] }, '2023-06-01T00:00:00Z'),
    rt('mesh', 'a-route', { parentRefs: [parent('echo')], rules: [m({ path: { type: 'PathPrefix', value: '/' } })] }, '2024-01-01T00:00:00Z'),
    rt('mesh', 'z-route', { parentRefs: [parent('echo')], rules: [m({ path: { type: 'PathPrefix', value: '/' } })] }, '2024-01-01T00:00:00Z'),
    // No matches: one PathPrefix "/" match.
    rt('mesh', 'd-nomatch', { parentRefs: [parent('echo')], rules: [{ backendRefs: [{ name: 'echo', port: 80, weight: 1 }] }] }, '2025-01-01T00:00:00Z'),
  ];
  const s = compile(input({ services: [svc('mesh', 'echo')], httpRoutes: [...routes].reverse() }), node('mesh'));
  const expected = [
    'mesh/b-route/4/0', // Exact
    'mesh/b-route/10/0', // Exact, later rule
    'mesh/b-route/3/0', // /api/v1 (7 chars)
    'mesh/b-route/5/0', // /api + method (4 chars, method)
    'mesh/b-route/9/1', // /two + method: ties with rule 5, so rule order
    'mesh/b-route/6/0', // /api + 2 headers
    'mesh/b-route/8/0', // /api + 1 header + 1 query
    'mesh/b-route/7/0', // /api + 1 header
    'mesh/b-route/2/0', // /api
    'mesh/b-route/9/0', // /two
    'mesh/c-old/0/0', // "/" oldest route
    'mesh/a-route/0/0', // "/" same age: alphabetical
    'mesh/b-route/0/0',
    'mesh/z-route/0/0',
    'mesh/d-nomatch/0/0', // "/" newest
    'mesh/b-route/1/0', // regex last
  ];
  assert.deepEqual(ruleIds(s, 'mesh/echo:80'), expected);
  const table = s.routes['mesh/echo:80']!.rules;
  assert.deepEqual(table.find((r) => r.id === 'mesh/b-route/2/0')!.match.path, { type: 'PathPrefix', value: '/api' });
  assert.deepEqual(table.find((r) => r.id === 'mesh/b-route/6/0')!.match.headers!.map((h) => h.name), ['x-a', 'x-b']);
  assert.deepEqual(table.find((r) => r.id === 'mesh/d-nomatch/0/0')!.match, { path: { type: 'PathPrefix', value: '/' } });
});

test('the mesh conformance matching case orders header-only matches before the catch-all', () => {
  // MeshHTTPRouteMatching: header-only matches get PathPrefix "/" and rank by header count.
  const route = rt('mesh', 'mesh-matching', {
    parentRefs: [parent('echo', { port: 80 })],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/' } }, { headers: [{ name: 'version', value: 'one', type: 'Exact' }] }], backendRefs: [{ name: 'echo-v1', port: 8080, weight: 1 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }, { headers: [{ name: 'version', value: 'two', type: 'Exact' }] }], backendRefs: [{ name: 'echo-v2', port: 8080, weight: 1 }] },
    ],
  });
  const ports = [{ port: 80, name: 'http', targetPort: 8080 }, { port: 8080, name: 'http-alt' }];
  const s = compile(input({ services: ['echo', 'echo-v1', 'echo-v2'].map((n) => svc('mesh', n, ports)), httpRoutes: [route] }), node('mesh'));
  assert.deepEqual(ruleIds(s, 'mesh/echo:80'), ['mesh/mesh-matching/1/0', 'mesh/mesh-matching/0/1', 'mesh/mesh-matching/1/1', 'mesh/mesh-matching/0/0']);
  assert.deepEqual(ruleIds(s, 'mesh/echo:8080'), ['default']);
});

test('weights: zero-weight backends are dropped, invalid backendRefs stay without a backend key, no backendRefs means no backends', () => {
  const route = rt('mesh', 'w', {
    parentRefs: [parent('echo')],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/split' } }],
        backendRefs: [
          { name: 'echo-v1', port: 80, weight: 70 },
          { name: 'echo-v2', port: 80, weight: 30 },
          { name: 'echo-v3', port: 80, weight: 0 },
        ],
      },
      {
        matches: [{ path: { type: 'PathPrefix', value: '/broken' } }],
        backendRefs: [
          { name: 'echo-v1', port: 80, weight: 1 },
          { name: 'missing', port: 80, weight: 1 },
          { name: 'echo-v1', port: 9999, weight: 2 },
          { name: 'other-ns', namespace: 'elsewhere', port: 80, weight: 3 },
          { group: 'example.com', kind: 'Bucket', name: 'b', weight: 4 },
          { name: 'echo-v2', weight: 5 }, // no port and not the parent
        ],
      },
      { matches: [{ path: { type: 'PathPrefix', value: '/none' } }] },
      // No port: the parent port, since the backend is the parent Service.
      { matches: [{ path: { type: 'PathPrefix', value: '/self' } }], backendRefs: [{ name: 'echo', weight: 1 }] },
    ],
  });
  const services = [svc('mesh', 'echo', [{ port: 80 }, { port: 8080 }]), svc('mesh', 'echo-v1'), svc('mesh', 'echo-v2'), svc('elsewhere', 'other-ns')];
  const s = compile(input({ services, httpRoutes: [route] }), node('mesh'));
  const rule = (prefix: string, key = 'mesh/echo:80') => s.routes[key]!.rules.find((r) => r.match.path?.value === prefix)!;
  assert.deepEqual(rule('/split').backends, [
    { backend: 'mesh/echo-v1:80', weight: 70, filters: [] },
    { backend: 'mesh/echo-v2:80', weight: 30, filters: [] },
  ]);
  assert.deepEqual(rule('/broken').backends, [
    { backend: 'mesh/echo-v1:80', weight: 1, filters: [] },
    { weight: 1, filters: [] },
    { weight: 2, filters: [] },
    { weight: 3, filters: [] },
    { weight: 4, filters: [] },
    { weight: 5, filters: [] },
  ]);
  assert.deepEqual(rule('/none').backends, []);
  assert.deepEqual(rule('/self').backends, [{ backend: 'mesh/echo:80', weight: 1, filters: [] }]);
  assert.deepEqual(rule('/self', 'mesh/echo:8080').backends, [{ backend: 'mesh/echo:8080', weight: 1, filters: [] }]);
  assert.deepEqual(checkSnapshot(s), []);
});

test('filters: header modifiers compile with lower-case names; rules with invalid regexes are left out, an unknown ExtensionRef answers 500', () => {
  const route = rt('mesh', 'f', {
    parentRefs: [parent('echo')],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/mod' } }],
        filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: 'a' }], add: [{ name: 'X-Add', value: 'b' }], remove: ['X-Gone'] } }],
        backendRefs: [{ name: 'echo', port: 80, weight: 1, filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'X-Backend', value: 'c' }] } }] }],
      },
      { matches: [{ path: { type: 'PathPrefix', value: '/ext' } }], filters: [{ type: 'ExtensionRef', extensionRef: { group: 'example.com', kind: 'Fault', name: 'f' } }] },
      { matches: [{ path: { type: 'RegularExpression', value: '/(unclosed' } }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
      { matches: [{ headers: [{ name: 'x', type: 'RegularExpression', value: '[' }] }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
      { matches: [{ queryParams: [{ name: 'q', type: 'RegularExpression', value: '*' }] }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'RegularExpression', value: '/ok/[a-z]+' } }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
    ],
  });
  const s = compile(input({ services: [svc('mesh', 'echo')], httpRoutes: [route] }), node('mesh'));
  assert.deepEqual(ruleIds(s, 'mesh/echo:80'), ['mesh/f/0/0', 'mesh/f/1/0', 'mesh/f/5/0']);
  // The Gateway API: a filter that cannot be resolved is not skipped; the requests it covers answer 500 (no backends).
  assert.deepEqual(s.routes['mesh/echo:80']!.rules[1]!.backends, []);
  const mod = s.routes['mesh/echo:80']!.rules[0]!;
  assert.deepEqual(mod.filters, [{ type: 'RequestHeaderModifier', modifier: { set: [{ name: 'x-set', value: 'a' }], add: [{ name: 'x-add', value: 'b' }], remove: ['x-gone'] } }]);
  assert.deepEqual(mod.backends[0]!.filters, [{ type: 'ResponseHeaderModifier', modifier: { set: [{ name: 'x-backend', value: 'c' }] } }]);
});

test('a route none of whose rules compile is ignored: the service keeps its default route', () => {
  const route = rt('mesh', 'all-bad', {
    parentRefs: [parent('echo')],
    rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/(unclosed' } }], backendRefs: [{ name: 'echo', port: 80, weight: 1 }] }],
  });
  const s = compile(input({ services: [svc('mesh', 'echo')], httpRoutes: [route] }), node('mesh'));
  assert.deepEqual(ruleIds(s, 'mesh/echo:80'), ['default']);
});

test('timeouts: Gateway API durations become milliseconds; zero means none', () => {
  const cases: [string, number | undefined][] = [
    ['1h2m3s4ms', 3_723_004],
    ['10s', 10_000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['0s', 0],
    ['2h', 7_200_000],
    ['1.5s', undefined],
    ['', undefined],
    ['10', undefined],
    ['1d', undefined],
  ];
  for (const [text, ms] of cases) assert.equal(parseGatewayDuration(text), ms, text);
  const route = rt('mesh', 't', {
    parentRefs: [parent('echo')],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/a' } }], timeouts: { request: '10s', backendRequest: '2s500ms' }, backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/b' } }], timeouts: { request: '0s' }, backendRefs: [{ name: 'echo', port: 80, weight: 1 }] },
    ],
  });
  const s = compile(input({ services: [svc('mesh', 'echo')], httpRoutes: [route] }), node('mesh'));
  const rules = s.routes['mesh/echo:80']!.rules;
  assert.deepEqual(rules[0]!.timeouts, { requestMs: 10_000, backendRequestMs: 2500 });
  assert.equal(rules[1]!.timeouts, undefined);
});

// ---------------------------------------------------------------- inbound and upstreams

test('upstreams come from the template: "name" or "name.ns", unknown services and duplicate localPorts skipped', () => {
  const template = wl('shop', 'web', {
    ports: [{ port: 8080 }, { port: 8443 }],
    upstreams: [
      { service: 'reviews', port: 80, localPort: 7001 },
      { service: 'db.data', port: 5432, localPort: 6000 },
      { service: 'cache.data.svc.cluster.local', port: 6379, localPort: 6001 },
      { service: 'missing', port: 80, localPort: 7002 },
      { service: 'reviews', port: 81, localPort: 7003 },
      { service: 'reviews', port: 80, localPort: 6000 },
    ],
  });
  const data = input({
    services: [svc('shop', 'reviews'), svc('data', 'db', [{ port: 5432, name: 'tcp' }]), svc('data', 'cache', [{ port: 6379, name: 'tcp' }])],
    workloads: [template, wl('shop', 'web-abc', { address: '10.0.0.9', ports: [{ port: 8080 }] }, { app: 'web' })],
  });
  const s = compile(data, node('shop', 'web', { appPorts: [1234] }));
  assert.deepEqual(s.upstreams, [
    { localPort: 6000, routeKey: 'data/db:5432', host: 'db.data:5432' },
    { localPort: 6001, routeKey: 'data/cache:6379', host: 'cache.data:6379' },
    { localPort: 7001, routeKey: 'shop/reviews:80', host: 'reviews.shop:80' },
  ]);
  assert.deepEqual(s.inbound, { ports: [8080, 8443] });
  assert.deepEqual(s.node, { mode: 'sidecar', namespace: 'shop', workload: 'web' });
  assert.deepEqual(checkSnapshot(s), []);
  // No template: the ports the proxy was told, and no upstreams.
  const bare = compile(data, node('shop', 'nothing', { appPorts: [9000, 3000, 9000] }));
  assert.deepEqual(bare.inbound, { ports: [3000, 9000] });
  assert.deepEqual(bare.upstreams, []);
});

// ---------------------------------------------------------------- versions

function sampleInput(): CompilerInput {
  return input({
    services: [svc('shop', 'reviews'), svc('shop', 'ratings', [{ port: 9080 }])],
    workloads: [
      wl('shop', 'reviews-1', { address: '10.0.0.1' }, { app: 'reviews' }),
      wl('shop', 'reviews-2', { address: '10.0.0.2' }, { app: 'reviews' }),
      wl('shop', 'web', { ports: [{ port: 8080 }], upstreams: [{ service: 'reviews', port: 80, localPort: 7000 }] }),
    ],
    httpRoutes: [rt('shop', 'r', { parentRefs: [parent('reviews')], rules: [{ backendRefs: [{ name: 'ratings', port: 9080, weight: 1 }] }] })],
  });
}

test('versions: same input gives the same version, whatever the order of the input lists', () => {
  const a = compile(sampleInput(), node('shop', 'web'));
  const b = compile(sampleInput(), node('shop', 'web'));
  assert.match(a.version, /^[0-9a-f]{64}$/);
  assert.equal(a.version, b.version);
  assert.deepEqual(a, b);
  const shuffled = sampleInput();
  const reversed = input({ ...shuffled, services: [...shuffled.services].reverse(), workloads: [...shuffled.workloads].reverse() });
  assert.equal(compile(reversed, node('shop', 'web')).version, a.version);
  assert.equal(snapshotVersion(a), a.version);
  // Backends and route tables are shared by every snapshot of one input: they are frozen.
  assert.throws(() => a.backends['shop/reviews:80']!.endpoints.pop(), TypeError);
  assert.throws(() => a.routes['shop/reviews:80']!.rules.pop(), TypeError);
});

test('versions: a changed input gives a different version, and a new input object is not served from the cache', () => {
  const base = sampleInput();
  const before = compile(base, node('shop', 'web'));
  const changed = input({ ...base, workloads: [...base.workloads, wl('shop', 'reviews-3', { address: '10.0.0.3' }, { app: 'reviews' })] });
  const after = compile(changed, node('shop', 'web'));
  assert.notEqual(after.version, before.version);
  assert.equal(after.backends['shop/reviews:80']!.endpoints.length, 3);
  const otherNamespace = compile(base, node('other', 'web'));
  assert.notEqual(otherNamespace.version, before.version);
});

test('replicas of one workload share one snapshot: the key and version ignore id, instance and address', () => {
  const data = sampleInput();
  const r1 = node('shop', 'web', { id: 'shop/web-a', instance: 'web-a', address: '10.0.0.5', tunnelPort: 15008, appPorts: [8080, 9090] });
  const r2 = node('shop', 'web', { id: 'shop/web-b', instance: 'web-b', address: '10.0.0.6', tunnelPort: 25008, appPorts: [9090, 8080] });
  assert.equal(snapshotInputKey(r1), snapshotInputKey(r2));
  assert.equal(compile(data, r1).version, compile(data, r2).version);
  assert.notEqual(snapshotInputKey(r1), snapshotInputKey(node('shop', 'other')));
  assert.notEqual(snapshotInputKey(r1), snapshotInputKey({ ...r1, mode: 'node' }));
  assert.notEqual(snapshotInputKey(r1), snapshotInputKey({ ...r1, appPorts: [8080] }));
});

// ---------------------------------------------------------------- checkSnapshot

test('checkSnapshot finds missing backends and routes, duplicate local ports and a stale version', () => {
  const good = compile(sampleInput(), node('shop', 'web'));
  assert.deepEqual(checkSnapshot(good), []);

  const broken = structuredClone(good) as ProxySnapshot;
  delete broken.backends['shop/ratings:9080'];
  broken.upstreams.push({ localPort: 7000, routeKey: 'shop/nowhere:1', host: 'nowhere.shop:1' });
  broken.services[0]!.ports[0]!.routeKey = 'shop/gone:80';
  broken.version = snapshotVersion(broken);
  const problems = checkSnapshot(broken);
  assert.ok(problems.some((p) => p.includes('shop/ratings:9080') && p.includes('not in backends')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('shop/gone:80') && p.includes('not in routes')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('shop/nowhere:1')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('localPort 7000 is used twice')), problems.join('\n'));

  const stale = structuredClone(good) as ProxySnapshot;
  stale.inbound.ports.push(1);
  assert.ok(checkSnapshot(stale).some((p) => p.includes('not the content hash')));
});

// ---------------------------------------------------------------- purity

test('no file in src/compiler imports node: modules or does I/O', () => {
  const dir = join(import.meta.dirname, '..', '..', 'src', 'compiler');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.includes('compile.ts') && files.includes('status.ts'));
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    assert.doesNotMatch(text, /from\s+['"]node:|import\(\s*['"]node:|require\(/, `${file} imports a node: module`);
    // `new Date(ms)` only formats a time it is given; `new Date()` reads the clock.
    assert.doesNotMatch(text, /\bDate\.now\(|\bnew Date\(\s*\)|Math\.random\(|performance\.now\(|process\./, `${file} reads the clock, randomness or the process`);
    // Imports stay inside the compiler or the API contracts, besides graphql-js: pure parsing and validation of a GraphQLApi's schema, no I/O.
    for (const [, spec] of text.matchAll(/from\s+['"]([^'"]+)['"]/g)) {
      assert.ok(spec!.startsWith('./') || spec!.startsWith('../api/') || spec === 'graphql', `${file} imports ${spec}`);
    }
  }
});
