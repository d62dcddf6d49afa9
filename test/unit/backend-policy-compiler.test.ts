// BackendTrafficPolicy in the compiler: validation with field names, settings on SnapshotBackend, route variants, precedence, conflicts, missing targets, status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectKey } from '../../src/api/meta.ts';
import type { BackendTrafficPolicy, BackendTrafficPolicySpec, Gateway, GRPCRoute, HTTPRoute, Service, Workload } from '../../src/api/resources.ts';
import { validateResource } from '../../src/api/validate.ts';
import { parseResources } from '../../src/api/yaml.ts';
import { readFile } from 'node:fs/promises';
import { compile, checkSnapshot } from '../../src/compiler/compile.ts';
import { compileTraffic, type PolicyStatus } from '../../src/compiler/backend-policy.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';

function svc(name: string, ports = [{ port: 80, name: 'http' }, { port: 9090, name: 'metrics' }]): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', generation: 1 },
    spec: { selector: { app: name }, ports: ports.map((p) => ({ protocol: 'TCP' as const, ...p })) },
  };
}

function endpointWorkload(name: string, app: string, zone: string): Workload {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: 'default', labels: { app } },
    spec: { serviceAccount: 'default', address: '10.0.0.1', ports: [], replicas: 1, upstreams: [], locality: { region: 'eu', zone } },
  };
}

/** A policy, validated (defaults filled) as the API server stores it. */
function policy(name: string, spec: unknown, created = '2025-01-01T00:00:00Z'): BackendTrafficPolicy {
  const result = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'BackendTrafficPolicy', metadata: { name, namespace: 'default' }, spec });
  assert.ok(result.ok, JSON.stringify(result));
  const resource = result.resource as BackendTrafficPolicy;
  resource.metadata.creationTimestamp = created;
  resource.metadata.generation = 1;
  return resource;
}

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

const node: NodeInfo = { id: 'default/client-0', mode: 'sidecar', namespace: 'default', address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };

const statusOf = (statuses: Map<string, unknown>, name: string) =>
  statuses.get(objectKey({ apiVersion: 'weft.dev/v1alpha1', kind: 'BackendTrafficPolicy', namespace: 'default', name })) as PolicyStatus;

test('invalid policies are refused with the field and the reason', () => {
  const bad = (spec: unknown) => {
    const result = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'BackendTrafficPolicy', metadata: { name: 'p', namespace: 'default' }, spec });
    assert.equal(result.ok, false);
    return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
  };
  assert.match(bad({ targetRefs: [] }).join('\n'), /targetRefs.*at least one targetRef/);
  assert.match(bad({ targetRefs: [{ kind: 'Service', name: 'a' }], loadBalancer: { type: 'ConsistentHash' } }).join('\n'), /loadBalancer.*consistentHash/);
  assert.match(
    bad({ targetRefs: [{ kind: 'Service', name: 'a' }], loadBalancer: { type: 'ConsistentHash', consistentHash: { type: 'Header' } } }).join('\n'),
    /consistentHash\.header.*header\.name/,
  );
  assert.match(bad({ targetRefs: [{ kind: 'Service', name: 'a' }], circuitBreaker: { maxParallelRequests: 0 } }).join('\n'), /circuitBreaker\.maxParallelRequests/);
  assert.match(bad({ targetRefs: [{ kind: 'Service', name: 'a' }], outlierDetection: { baseEjectionTime: 'soon' } }).join('\n'), /outlierDetection\.baseEjectionTime.*duration/);
  assert.match(bad({ targetRefs: [{ kind: 'Service', name: 'a' }], healthCheck: { type: 'HTTP' } }).join('\n'), /healthCheck\.http/);
  assert.match(bad({ targetRefs: [{ kind: 'Service', name: 'a' }], retryBudget: { percent: -1 } }).join('\n'), /retryBudget\.percent/);
});

test('a policy on a Service compiles onto each of its backends, durations in ms, with endpoint localities', () => {
  const p = policy('reviews', {
    targetRefs: [{ kind: 'Service', name: 'reviews' }],
    loadBalancer: { type: 'ConsistentHash', consistentHash: { type: 'Header', header: { name: 'X-User' } }, slowStart: { window: '30s' } },
    circuitBreaker: { maxConnections: 10, maxParallelRequests: 100 },
    outlierDetection: { consecutive5xxErrors: 5, baseEjectionTime: '10s' },
    healthCheck: { type: 'HTTP', http: { path: '/healthz' }, interval: '2s' },
    connection: { connectTimeout: '250ms', idleTimeout: '1m', maxRequestsPerConnection: 50 },
    retryBudget: { percent: 25, minRetriesPerSecond: 5 },
  });
  const snapshot = compile(input({ services: [svc('reviews'), svc('other')], workloads: [endpointWorkload('reviews-0', 'reviews', 'a')], backendTrafficPolicies: [p] }), node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  for (const key of ['default/reviews:80', 'default/reviews:9090']) {
    const backend = snapshot.backends[key]!;
    assert.equal(backend.lb, 'consistent-hash');
    assert.deepEqual(backend.traffic, {
      policy: 'default/reviews',
      hash: { source: 'header', name: 'x-user', algorithm: 'maglev' },
      slowStartMs: 30_000,
      localityFailover: true,
      circuitBreaker: { maxConnections: 10, maxRequests: 100 },
      outlierDetection: { consecutive5xx: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 10 },
      healthCheck: { type: 'http', path: '/healthz', expectedStatuses: [200], intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 3 },
      connection: { connectTimeoutMs: 250, idleTimeoutMs: 60_000, maxRequestsPerConnection: 50 },
      retryBudget: { percent: 25, minRetriesPerSecond: 5, windowMs: 10_000 },
    });
    assert.deepEqual(backend.endpoints[0]!.locality, { region: 'eu', zone: 'a' });
  }
  assert.equal(snapshot.backends['default/other:80']!.traffic, undefined, 'a Service without a policy is untouched');
  assert.equal(snapshot.backends['default/other:80']!.lb, 'least-request');
});

test('conflicts: the older policy wins, the other is Conflicted; a port policy beats a Service policy; a missing target is reported', () => {
  const older = policy('older', { targetRefs: [{ kind: 'Service', name: 'reviews' }], loadBalancer: { type: 'RoundRobin' } }, '2025-01-01T00:00:00Z');
  const newer = policy('newer', { targetRefs: [{ kind: 'Service', name: 'reviews' }], loadBalancer: { type: 'Random' } }, '2025-02-01T00:00:00Z');
  const port = policy('port', { targetRefs: [{ kind: 'Service', name: 'reviews', sectionName: 'metrics' }], loadBalancer: { type: 'Random' } }, '2025-03-01T00:00:00Z');
  const missing = policy('missing', { targetRefs: [{ kind: 'Service', name: 'nope' }, { kind: 'Service', name: 'reviews', sectionName: 'grpc' }] });
  const data = input({ services: [svc('reviews')], backendTrafficPolicies: [newer, port, older, missing] });
  const snapshot = compile(data, node);
  assert.equal(snapshot.backends['default/reviews:80']!.lb, 'round-robin');
  assert.equal(snapshot.backends['default/reviews:80']!.traffic?.policy, 'default/older');
  assert.equal(snapshot.backends['default/reviews:9090']!.lb, 'random');
  assert.equal(snapshot.backends['default/reviews:9090']!.traffic?.policy, 'default/port');

  const statuses = computeStatuses(data);
  const accepted = (name: string) => statusOf(statuses, name).ancestors.map((a) => [a.ancestorRef.name, a.conditions[0]!.status, a.conditions[0]!.reason]);
  assert.deepEqual(accepted('older'), [['reviews', 'True', 'Accepted']]);
  assert.deepEqual(accepted('port'), [['reviews', 'True', 'Accepted']]);
  assert.deepEqual(accepted('newer'), [['reviews', 'False', 'Conflicted']]);
  assert.match(statusOf(statuses, 'newer').ancestors[0]!.conditions[0]!.message, /default\/older is older/);
  assert.deepEqual(accepted('missing'), [
    ['nope', 'False', 'TargetNotFound'],
    ['reviews', 'False', 'TargetNotFound'],
  ]);
  assert.equal(statusOf(statuses, 'missing').ancestors[0]!.controllerName, 'weft.dev/mesh');

  // Without the older policy, the newer one takes over.
  const after = compile(input({ services: [svc('reviews')], backendTrafficPolicies: [newer, port] }), node);
  assert.equal(after.backends['default/reviews:80']!.lb, 'random');
});

test('locality failover is on only with a way to tell endpoints are down; the caller gets its own locality', () => {
  const plain = policy('plain', { targetRefs: [{ kind: 'Service', name: 'a' }], circuitBreaker: { maxParallelRequests: 5 } });
  const checked = policy('checked', { targetRefs: [{ kind: 'Service', name: 'b' }], healthCheck: { type: 'TCP' } });
  const off = policy('off', { targetRefs: [{ kind: 'Service', name: 'c' }], healthCheck: { type: 'TCP' }, loadBalancer: { localityFailover: false } });
  const template: Workload = {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'client', namespace: 'default' },
    spec: { serviceAccount: 'default', ports: [], replicas: 1, upstreams: [], locality: { region: 'eu', zone: 'a' } },
  };
  const snapshot = compile(
    input({ services: [svc('a', [{ port: 80, name: 'http' }]), svc('b', [{ port: 80, name: 'http' }]), svc('c', [{ port: 80, name: 'http' }])], workloads: [template], backendTrafficPolicies: [plain, checked, off] }),
    { ...node, workload: 'client' },
  );
  assert.equal(snapshot.backends['default/a:80']!.traffic?.localityFailover, undefined);
  assert.equal(snapshot.backends['default/b:80']!.traffic?.localityFailover, true);
  assert.equal(snapshot.backends['default/c:80']!.traffic?.localityFailover, undefined);
  assert.deepEqual(snapshot.node.locality, { region: 'eu', zone: 'a' });
});

test('the example policy validates', async () => {
  const text = await readFile(new URL('../../examples/policies/pricing-traffic.yaml', import.meta.url), 'utf8');
  const parsed = parseResources(text, 'pricing-traffic.yaml');
  assert.deepEqual(parsed.issues, []);
  assert.deepEqual(parsed.resources.map((r) => r.kind), ['BackendTrafficPolicy']);
  const traffic = compileTraffic('default/pricing', parsed.resources[0]!.spec as BackendTrafficPolicySpec).traffic;
  assert.equal(traffic.healthCheck?.path, '/health');
  assert.equal(traffic.localityFailover, true);
});

test('weft get shows a policy\'s targets and whether each accepted it', async () => {
  const { formatTable } = await import('../../src/cli/get.ts');
  const p = policy('late', { targetRefs: [{ kind: 'Service', name: 'reviews' }, { kind: 'Service', name: 'ratings', sectionName: 'http' }] });
  p.status = statusOf(
    computeStatuses(input({ services: [svc('reviews'), svc('ratings')], backendTrafficPolicies: [policy('early', { targetRefs: [{ kind: 'Service', name: 'reviews' }] }, '2024-01-01T00:00:00Z'), p] })),
    'late',
  );
  const text = formatTable({ kind: 'BackendTrafficPolicy', namespaced: true }, [p], true, Date.parse('2025-01-01T00:01:00Z'));
  assert.match(text, /^NAME\s+NAMESPACE\s+TARGETS\s+ACCEPTED\s+LB\s+AGE$/m);
  assert.match(text, /^late\s+default\s+Service\/reviews,Service\/ratings:http\s+False \(Conflicted\), True\s+LeastRequest\s+60s$/m);
});

// ---------------------------------------------------------------- route targets (HTTPRoute, GRPCRoute)

/** An HTTPRoute attached to Service `reviews` (GAMMA), validated as stored; each rule: [name, path prefix, backendRef port or none]. */
function reviewsRoute(name: string, rules: [string | undefined, string, number | undefined][], created = '2025-01-01T00:00:00Z'): HTTPRoute {
  const result = validateResource({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'default' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 80 }],
      rules: rules.map(([ruleName, prefix, port]) => ({
        ...(ruleName ? { name: ruleName } : {}),
        matches: [{ path: { type: 'PathPrefix', value: prefix } }],
        backendRefs: [port === undefined ? { name: 'reviews' } : { name: 'reviews', port }],
      })),
    },
  });
  assert.ok(result.ok, JSON.stringify(result));
  const route = result.resource as HTTPRoute;
  route.metadata.creationTimestamp = created;
  return route;
}

/** The backend keys each route rule of a table sends to, by the rule's "route/rule" id prefix. */
function backendsByRule(snapshot: ProxySnapshot, table: string): Record<string, string[]> {
  const byRule: Record<string, string[]> = {};
  for (const rule of snapshot.routes[table]!.rules) byRule[rule.id.split('/').slice(1, 3).join('/')] = rule.backends.map((b) => b.backend ?? '');
  return byRule;
}

test('a policy on an HTTPRoute gives that route a variant of the backend; the other route keeps the Service policy', () => {
  const service = policy('svc', {
    targetRefs: [{ kind: 'Service', name: 'reviews' }],
    loadBalancer: { type: 'RoundRobin' },
    circuitBreaker: { maxConnections: 8 },
    connection: { idleTimeout: '5s' },
  });
  const onRoute = policy('cart-policy', {
    targetRefs: [{ kind: 'HTTPRoute', name: 'cart' }],
    loadBalancer: { type: 'ConsistentHash', consistentHash: { type: 'Header', header: { name: 'x-user' } } },
    circuitBreaker: { maxParallelRequests: 1 },
  });
  const data = input({
    services: [svc('reviews')],
    workloads: [endpointWorkload('reviews-0', 'reviews', 'a')],
    httpRoutes: [reviewsRoute('cart', [[undefined, '/cart', 80]]), reviewsRoute('browse', [[undefined, '/browse', undefined]])],
    backendTrafficPolicies: [service, onRoute],
  });
  const snapshot = compile(data, node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  const variantKey = 'default/reviews:80~HTTPRoute/default/cart';
  assert.deepEqual(Object.keys(snapshot.backends).sort(), ['default/reviews:80', variantKey, 'default/reviews:9090'], 'one variant, only where a route policy applies');
  const base = snapshot.backends['default/reviews:80']!;
  const variant = snapshot.backends[variantKey]!;
  assert.equal(variant.variant, 'HTTPRoute/default/cart');
  assert.deepEqual([variant.namespace, variant.service, variant.port, variant.protocol], [base.namespace, base.service, base.port, base.protocol]);
  assert.deepEqual(variant.endpoints, base.endpoints);
  assert.equal(variant.lb, 'consistent-hash');
  // The route's policy as a whole (no merging with the Service's), except the per-endpoint pool settings it cannot set.
  assert.deepEqual(variant.traffic, {
    policy: 'default/cart-policy',
    hash: { source: 'header', name: 'x-user', algorithm: 'maglev' },
    circuitBreaker: { maxRequests: 1, maxConnections: 8 },
    connection: { idleTimeoutMs: 5000 },
  });
  assert.equal(base.lb, 'round-robin');
  assert.equal(base.traffic?.policy, 'default/svc');
  assert.deepEqual(backendsByRule(snapshot, 'default/reviews:80'), { 'cart/0': [variantKey], 'browse/0': ['default/reviews:80'] });

  // Same input, policies in another order: the same snapshot.
  assert.equal(compile(input({ ...data, backendTrafficPolicies: [onRoute, service] }), node).version, snapshot.version);
  // Without route policies, no variants at all.
  const plain = compile(input({ ...data, backendTrafficPolicies: [service] }), node);
  assert.deepEqual(Object.keys(plain.backends).filter((k) => k.includes('~')), []);
});

test('precedence: a policy on a named rule beats one on its route, which beats the Service; two on one route conflict', () => {
  const onService = policy('svc', { targetRefs: [{ kind: 'Service', name: 'reviews', sectionName: 'http' }], loadBalancer: { type: 'RoundRobin' } });
  const onRoute = policy('route', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'cart' }], loadBalancer: { type: 'Random' } }, '2025-02-01T00:00:00Z');
  const onRule = policy('rule', { targetRefs: [{ kind: 'HTTPRoute', name: 'cart', sectionName: 'checkout' }], loadBalancer: { type: 'LeastRequest' } }, '2025-03-01T00:00:00Z');
  const rival = policy('rival', { targetRefs: [{ kind: 'HTTPRoute', name: 'cart' }], loadBalancer: { type: 'RoundRobin' } }, '2025-04-01T00:00:00Z');
  const routes = [reviewsRoute('cart', [['checkout', '/cart/checkout', 80], ['view', '/cart', 80]])];
  const data = input({ services: [svc('reviews')], httpRoutes: routes, backendTrafficPolicies: [rival, onRule, onService, onRoute] });
  const snapshot = compile(data, node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  assert.deepEqual(backendsByRule(snapshot, 'default/reviews:80'), {
    'cart/checkout': ['default/reviews:80~HTTPRoute/default/cart/checkout'],
    'cart/view': ['default/reviews:80~HTTPRoute/default/cart'],
  });
  assert.equal(snapshot.backends['default/reviews:80~HTTPRoute/default/cart/checkout']!.traffic?.policy, 'default/rule');
  assert.equal(snapshot.backends['default/reviews:80~HTTPRoute/default/cart/checkout']!.lb, 'least-request');
  assert.equal(snapshot.backends['default/reviews:80~HTTPRoute/default/cart']!.traffic?.policy, 'default/route');
  assert.equal(snapshot.backends['default/reviews:80~HTTPRoute/default/cart']!.lb, 'random');
  assert.equal(snapshot.backends['default/reviews:80']!.traffic?.policy, 'default/svc');

  const statuses = computeStatuses(data);
  const accepted = (name: string) => statusOf(statuses, name).ancestors.map((a) => [a.ancestorRef.kind, a.ancestorRef.name, a.conditions[0]!.status, a.conditions[0]!.reason]);
  assert.deepEqual(accepted('svc'), [['Service', 'reviews', 'True', 'Accepted']]);
  assert.deepEqual(accepted('route'), [['HTTPRoute', 'cart', 'True', 'Accepted']]);
  assert.deepEqual(accepted('rule'), [['HTTPRoute', 'cart', 'True', 'Accepted']]);
  assert.deepEqual(accepted('rival'), [['HTTPRoute', 'cart', 'False', 'Conflicted']]);
  assert.match(statusOf(statuses, 'rival').ancestors[0]!.conditions[0]!.message, /default\/route is older and targets HTTPRoute\/default\/cart too/);
  assert.deepEqual(statusOf(statuses, 'rule').ancestors[0]!.ancestorRef, { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'default', name: 'cart', sectionName: 'checkout' });

  // The older route policy deleted: the rival takes the route over.
  const after = compile(input({ ...data, backendTrafficPolicies: [rival, onRule, onService] }), node);
  assert.equal(after.backends['default/reviews:80~HTTPRoute/default/cart']!.traffic?.policy, 'default/rival');
});

test('route targets that do not resolve are reported, and the policy\'s other targets still apply', () => {
  const p = policy('mixed', {
    targetRefs: [
      { kind: 'HTTPRoute', name: 'nope' },
      { kind: 'HTTPRoute', name: 'cart', sectionName: 'no-such-rule' },
      { group: 'example.com', kind: 'HTTPRoute', name: 'cart' },
      { kind: 'GRPCRoute', name: 'cart' },
      { kind: 'Service', name: 'reviews' },
    ],
    loadBalancer: { type: 'Random' },
  });
  const pool = policy('pool', { targetRefs: [{ kind: 'HTTPRoute', name: 'cart' }], connection: { connectTimeout: '1s' } });
  const data = input({ services: [svc('reviews')], httpRoutes: [reviewsRoute('cart', [['checkout', '/cart', 80]])], backendTrafficPolicies: [p, pool] });
  const statuses = computeStatuses(data);
  const reasons = (name: string) => statusOf(statuses, name).ancestors.map((a) => `${a.conditions[0]!.status} ${a.conditions[0]!.reason}: ${a.conditions[0]!.message}`);
  const mixed = reasons('mixed');
  assert.match(mixed[0]!, /^False TargetNotFound: HTTPRoute default\/nope does not exist$/);
  assert.match(mixed[1]!, /^False TargetNotFound: HTTPRoute default\/cart has no rule named no-such-rule$/);
  assert.match(mixed[2]!, /^False TargetNotFound: group "example.com" has no kind HTTPRoute/);
  assert.match(mixed[3]!, /^False TargetNotFound: GRPCRoute default\/cart does not exist$/);
  assert.equal(mixed[4], 'True Accepted: ');
  assert.match(reasons('pool')[0]!, /^False Invalid: connection size the connection pools .* set them in a policy that targets the Service$/);
  const snapshot = compile(data, node);
  assert.equal(snapshot.backends['default/reviews:80']!.traffic?.policy, 'default/mixed');
  assert.deepEqual(Object.keys(snapshot.backends).filter((k) => k.includes('~')), [], 'no variant for targets that did not resolve');
});

test('a policy on a GRPCRoute: the variant speaks the gRPC backend\'s protocol', () => {
  const grpc = validateResource({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name: 'rpc', namespace: 'default' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'pricing' }], rules: [{ matches: [{ method: { service: 'pkg.Prices' } }], backendRefs: [{ name: 'pricing', port: 50051 }] }] },
  });
  assert.ok(grpc.ok, JSON.stringify(grpc));
  const p = policy('rpc', { targetRefs: [{ kind: 'GRPCRoute', name: 'rpc' }], outlierDetection: { consecutiveGatewayErrors: 3 } });
  const data = input({ services: [svc('pricing', [{ port: 50051, name: 'rpc' }])], grpcRoutes: [grpc.resource as GRPCRoute], backendTrafficPolicies: [p] });
  const snapshot = compile(data, node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  const variant = snapshot.backends['default/pricing:50051~GRPCRoute/default/rpc']!;
  assert.equal(variant.protocol, snapshot.backends['default/pricing:50051']!.protocol);
  assert.equal(variant.protocol, 'grpc');
  assert.equal(variant.traffic?.outlierDetection?.consecutiveGatewayErrors, 3);
  assert.deepEqual(snapshot.routes['default/pricing:50051']!.rules.map((r) => r.backends.map((b) => b.backend)), [['default/pricing:50051~GRPCRoute/default/rpc']]);
  assert.deepEqual(statusOf(computeStatuses(data), 'rpc').ancestors.map((a) => a.conditions[0]!.reason), ['Accepted']);
});

test('a policy on a route attached to a Gateway: the gateway proxy\'s table names the variant', () => {
  const gateway = validateResource({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'default' },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  });
  const route = validateResource({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'shop', namespace: 'default' },
    spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'reviews', port: 80 }] }] },
  });
  assert.ok(gateway.ok && route.ok);
  const p = policy('shop', { targetRefs: [{ kind: 'HTTPRoute', name: 'shop' }], loadBalancer: { type: 'Random' } });
  const data = input({ services: [svc('reviews')], httpRoutes: [route.resource as HTTPRoute], gateways: [gateway.resource as Gateway], backendTrafficPolicies: [p] });
  const snapshot = compile(data, { id: 'default/edge-0', mode: 'gateway', namespace: 'default', address: '127.0.0.1', tunnelPort: 15008, appPorts: [], gateway: 'default/edge' });
  assert.deepEqual(checkSnapshot(snapshot), []);
  const table = snapshot.routes[snapshot.gateway!.ports[0]!.listeners[0]!.hosts[0]!.routeKey]!;
  assert.deepEqual(table.rules.map((r) => r.backends.map((b) => b.backend)), [['default/reviews:80~HTTPRoute/default/shop']]);
  assert.equal(snapshot.backends['default/reviews:80~HTTPRoute/default/shop']!.lb, 'random');
});
