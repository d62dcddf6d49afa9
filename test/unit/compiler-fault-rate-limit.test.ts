// Unit tests of FaultInjection and RateLimitPolicy in the compiler: field errors, ExtensionRef resolution, targets, conflicts and statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FaultInjection, Gateway, HTTPRoute, HTTPRouteRule, RateLimitPolicy, Service, Workload } from '../../src/api/resources.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, HTTPRouteStatus, ObjectStatus } from '../../src/compiler/types.ts';

const NS = 'mesh';

function svc(name: string): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, generation: 1 }, spec: { selector: { app: name }, ports: [{ protocol: 'TCP', port: 80 }] } };
}

function route(name: string, rules: Partial<HTTPRouteRule>[]): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS, generation: 2, creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo' }], rules: rules as HTTPRouteRule[] },
  };
}

/** Parses through the real schema, as `weft apply` does, so that defaults are filled in. */
function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.resource as T;
}

function fault(name: string, spec: unknown): FaultInjection {
  return parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'FaultInjection', metadata: { name, namespace: NS }, spec });
}

function policy(name: string, spec: unknown, creationTimestamp = '2024-01-01T00:00:00Z'): RateLimitPolicy {
  const p = parsed<RateLimitPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name, namespace: NS }, spec });
  p.metadata.creationTimestamp = creationTimestamp;
  p.metadata.generation = 1;
  return p;
}

function issues(raw: unknown): string[] {
  const result = validateResource(raw);
  return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
}

const node: NodeInfo = { id: 'mesh/client-1', mode: 'sidecar', namespace: NS, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };
const ext = (kind: string, name: string, group = 'weft.dev') => ({ type: 'ExtensionRef' as const, extensionRef: { group, kind, name } });
const toEcho = [{ name: 'echo', port: 80, weight: 1 }];
const prefix = (value: string) => [{ path: { type: 'PathPrefix' as const, value } }];

function snapshotOf(input: CompilerInput, who = node): ProxySnapshot {
  const s = compile(input, who);
  assert.deepEqual(checkSnapshot(s), []);
  return s;
}

/** The conditions of a status: a route's first parent, a policy's first ancestor, or an object's own. */
function conditions(status: unknown): Record<string, [string, string, string]> {
  const s = status as Partial<HTTPRouteStatus> & Partial<ObjectStatus> & { ancestors?: { conditions: ObjectStatus['conditions'] }[] };
  const list = s.parents ? s.parents[0]!.conditions : s.ancestors ? s.ancestors[0]!.conditions : s.conditions!;
  return Object.fromEntries(list.map((c) => [c.type, [c.status, c.reason, c.message] as [string, string, string]]));
}

test('FaultInjection: invalid percentages, statuses and empty specs are field errors', () => {
  const base = { apiVersion: 'weft.dev/v1alpha1', kind: 'FaultInjection', metadata: { name: 'f', namespace: NS } };
  assert.match(issues({ ...base, spec: { abort: { httpStatus: 503, percentage: 120 } } }).join(), /spec\.abort\.percentage: must be between 0 and 100/);
  assert.match(issues({ ...base, spec: { delay: { fixedDelay: '1s', percentage: -1 } } }).join(), /spec\.delay\.percentage: must be between 0 and 100/);
  assert.match(issues({ ...base, spec: { abort: { httpStatus: 99 } } }).join(), /spec\.abort\.httpStatus/);
  assert.match(issues({ ...base, spec: { abort: { percentage: 5 } } }).join(), /spec\.abort: an abort needs httpStatus, grpcStatus or both/);
  assert.match(issues({ ...base, spec: {} }).join(), /spec: a FaultInjection needs a delay, an abort or both/);
  assert.match(issues({ ...base, spec: { delay: { fixedDelay: '1.5s' } } }).join(), /spec\.delay\.fixedDelay/);
  assert.deepEqual(issues({ ...base, spec: { abort: { httpStatus: 503, percentage: 0.5 } } }), []);
});

test('an ExtensionRef to a FaultInjection compiles into the rule’s and the backendRef’s filters', () => {
  const f = fault('flaky', { delay: { fixedDelay: '250ms', percentage: 12.5 }, abort: { httpStatus: 503, grpcStatus: 14, percentage: 0.1 }, match: { headers: [{ name: 'X-Chaos', value: 'on' }] } });
  const r = route('faulty', [
    { matches: prefix('/rule'), filters: [ext('FaultInjection', 'flaky')], backendRefs: toEcho },
    { matches: prefix('/ref'), backendRefs: [{ ...toEcho[0]!, filters: [ext('FaultInjection', 'flaky')] }] },
  ]);
  const input: CompilerInput = { services: [svc('echo')], workloads: [], httpRoutes: [r], namespaces: [], faultInjections: [f] };
  const rules = snapshotOf(input).routes['mesh/echo:80']!.rules;
  const expected = {
    type: 'FaultInjection',
    fault: { name: 'mesh/flaky', delay: { ms: 250, percent: 12.5 }, abort: { percent: 0.1, httpStatus: 503, grpcStatus: 14 }, headers: [{ name: 'x-chaos', type: 'Exact', value: 'on' }] },
  };
  assert.deepEqual(rules.find((x) => x.match.path?.value === '/rule')!.filters, [expected]);
  assert.deepEqual(rules.find((x) => x.match.path?.value === '/ref')!.backends[0]!.filters, [expected]);
  assert.deepEqual(conditions(computeStatuses(input).get('gateway.networking.k8s.io/HTTPRoute/mesh/faulty')), {
    Accepted: ['True', 'Accepted', ''],
    ResolvedRefs: ['True', 'ResolvedRefs', ''],
  });
  assert.deepEqual(conditions(computeStatuses(input).get('weft.dev/FaultInjection/mesh/flaky')), { Accepted: ['True', 'Accepted', ''] });
});

test('an ExtensionRef of an unknown kind or to a missing FaultInjection: ResolvedRefs=False and the requests it covers answer 500', () => {
  const r = route('broken', [
    { matches: prefix('/unknown'), filters: [ext('Chaos', 'x', 'example.com')], backendRefs: toEcho },
    { matches: prefix('/missing'), filters: [ext('FaultInjection', 'nope')], backendRefs: toEcho },
    { matches: prefix('/ref'), backendRefs: [{ ...toEcho[0]!, weight: 1, filters: [ext('FaultInjection', 'nope')] }, { ...toEcho[0]!, weight: 3 }] },
    { matches: prefix('/ok'), backendRefs: toEcho },
  ]);
  const input: CompilerInput = { services: [svc('echo')], workloads: [], httpRoutes: [r], namespaces: [], faultInjections: [] };
  const rules = snapshotOf(input).routes['mesh/echo:80']!.rules;
  const at = (path: string) => rules.find((x) => x.match.path?.value === path)!;
  assert.deepEqual(at('/unknown').backends, []);
  assert.deepEqual(at('/missing').backends, []);
  // Only the backendRef with the unresolved filter answers 500, for its share of the weight.
  assert.deepEqual(at('/ref').backends, [{ weight: 1, filters: [] }, { backend: 'mesh/echo:80', weight: 3, filters: [] }]);
  assert.equal(at('/ok').backends[0]!.backend, 'mesh/echo:80');
  const status = conditions(computeStatuses(input).get('gateway.networking.k8s.io/HTTPRoute/mesh/broken'));
  assert.deepEqual(status.Accepted!.slice(0, 2), ['True', 'Accepted']);
  assert.deepEqual(status.ResolvedRefs!.slice(0, 2), ['False', 'InvalidKind']);
  assert.match(status.ResolvedRefs![2], /example\.com\/Chaos is not a kind weft knows.*FaultInjection mesh\/nope does not exist/);
});

test('a FaultInjection with an invalid header regex is not Accepted, and routes naming it answer 500', () => {
  const f = fault('bad', { abort: { httpStatus: 500 }, match: { headers: [{ name: 'x', type: 'RegularExpression', value: '(' }] } });
  const r = route('uses-bad', [{ filters: [ext('FaultInjection', 'bad')], backendRefs: toEcho }]);
  const input: CompilerInput = { services: [svc('echo')], workloads: [], httpRoutes: [r], namespaces: [], faultInjections: [f] };
  assert.deepEqual(snapshotOf(input).routes['mesh/echo:80']!.rules[0]!.backends, []);
  const statuses = computeStatuses(input);
  assert.deepEqual(conditions(statuses.get('weft.dev/FaultInjection/mesh/bad')).Accepted!.slice(0, 2), ['False', 'Invalid']);
  assert.deepEqual(conditions(statuses.get('gateway.networking.k8s.io/HTTPRoute/mesh/uses-bad')).ResolvedRefs!.slice(0, 2), ['False', 'BackendNotFound']);
});

test('RateLimitPolicy: bad rates, descriptors and targets are field errors', () => {
  const base = { apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'p', namespace: NS } };
  const target = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'r' }];
  assert.match(issues({ ...base, spec: { targetRefs: target, limits: [{ requests: 0 }] } }).join(), /spec\.limits\[0\]\.requests: must be at least 1/);
  assert.match(issues({ ...base, spec: { targetRefs: target, limits: [{ requests: 5, interval: 'soon' }] } }).join(), /spec\.limits\[0\]\.interval/);
  assert.match(issues({ ...base, spec: { targetRefs: target, limits: [{ requests: 5, descriptors: [{ type: 'Cookie' }] }] } }).join(), /spec\.limits\[0\]\.descriptors\[0\]\.type/);
  assert.match(issues({ ...base, spec: { targetRefs: target, limits: [{ requests: 5, descriptors: [{ type: 'Header' }] }] } }).join(), /spec\.limits\[0\]\.descriptors\[0\]\.header: a Header descriptor needs the header name/);
  assert.match(issues({ ...base, spec: { targetRefs: [{ kind: 'Deployment', name: 'x' }], limits: [{ requests: 5 }] } }).join(), /spec\.targetRefs\[0\]\.kind/);
  assert.match(issues({ ...base, spec: { targetRefs: target, limits: [] } }).join(), /spec\.limits: a RateLimitPolicy needs at least one limit/);
  assert.deepEqual(issues({ ...base, spec: { targetRefs: target, limits: [{ requests: 5, interval: '1m', descriptors: [{ type: 'Header', header: 'X-User' }, { type: 'ClientIP' }], scope: 'Global' }] } }), []);
});

test('RateLimitPolicy limits land on the rules of the targeted route, on every rule of a Gateway, and on the inbound side of a Service', () => {
  const r = route('limited', [{ matches: prefix('/a'), backendRefs: toEcho }, { matches: prefix('/b'), backendRefs: toEcho }]);
  const onRoute = policy('per-user', {
    targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'limited' }],
    limits: [{ name: 'users', requests: 10, interval: '1s', burst: 20, descriptors: [{ type: 'Header', header: 'X-User' }] }],
  });
  const onService = policy('echo-total', { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], limits: [{ requests: 100, interval: '1m', descriptors: [{ type: 'SourceIdentity' }], scope: 'Global' }] });
  const template: Workload = parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'echo-v1', namespace: NS, labels: { app: 'echo' } }, spec: { ports: [{ port: 80 }] } });
  const input: CompilerInput = { services: [svc('echo')], workloads: [template], httpRoutes: [r], namespaces: [], rateLimitPolicies: [onRoute, onService] };
  const rules = snapshotOf(input).routes['mesh/echo:80']!.rules;
  const users = {
    id: 'mesh/per-user/users@HTTPRoute/mesh/limited',
    policy: 'mesh/per-user/users',
    requests: 10,
    intervalMs: 1000,
    burst: 20,
    descriptors: [{ type: 'Header', header: 'x-user' }],
    scope: 'Local',
    maxKeys: 10_000,
  };
  for (const rule of rules) assert.deepEqual(rule.rateLimits, [users]);
  // The Service's limit is enforced where the Service is served: its workloads' sidecars.
  const server = snapshotOf(input, { ...node, id: 'mesh/echo-v1-0', workload: 'echo-v1' });
  assert.deepEqual(server.inbound.rateLimits?.map((l) => [l.id, l.requests, l.intervalMs, l.scope]), [['mesh/echo-total/0@Service/mesh/echo', 100, 60_000, 'Global']]);
  assert.equal(snapshotOf(input).inbound.rateLimits, undefined);
  const statuses = computeStatuses(input);
  assert.deepEqual(conditions(statuses.get('weft.dev/RateLimitPolicy/mesh/per-user')).Accepted, ['True', 'Accepted', '']);
});

test('RateLimitPolicy on a Gateway covers every rule of its virtual hosts', () => {
  const gateway: Gateway = parsed({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: NS },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  });
  const r: HTTPRoute = { ...route('public', [{ matches: prefix('/'), backendRefs: toEcho }]), spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: toEcho } as HTTPRouteRule] } };
  const p = policy('edge-limit', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], limits: [{ requests: 50, descriptors: [{ type: 'ClientIP' }] }] });
  const input: CompilerInput = { services: [svc('echo')], workloads: [], httpRoutes: [r], namespaces: [], gateways: [gateway], rateLimitPolicies: [p] };
  const s = snapshotOf(input, { id: 'mesh/edge-1', mode: 'gateway', namespace: NS, address: '127.0.0.1', tunnelPort: 15008, appPorts: [], gateway: 'mesh/edge' });
  const table = s.routes[s.gateway!.ports[0]!.listeners[0]!.hosts[0]!.routeKey]!;
  assert.deepEqual(table.rules.map((rule) => rule.rateLimits?.map((l) => l.id)), [['mesh/edge-limit/0@Gateway/mesh/edge']]);
});

test('conflicting RateLimitPolicies on one target: the oldest holds it, the other is Conflicted; missing targets and bad groups are reported', () => {
  const r = route('limited', [{ backendRefs: toEcho }]);
  const target = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'limited' }];
  const older = policy('older', { targetRefs: target, limits: [{ requests: 5 }] }, '2024-01-01T00:00:00Z');
  const newer = policy('newer', { targetRefs: target, limits: [{ requests: 500 }] }, '2024-06-01T00:00:00Z');
  const lost = policy('lost', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'ghost' }], limits: [{ requests: 5 }] });
  const wrongGroup = policy('wrong-group', { targetRefs: [{ group: 'apps', kind: 'Service', name: 'echo' }], limits: [{ requests: 5 }] });
  const dupNames = policy('dup', { targetRefs: [{ kind: 'Service', name: 'echo' }], limits: [{ name: 'a', requests: 5 }, { name: 'a', requests: 6 }] });
  const input: CompilerInput = { services: [svc('echo')], workloads: [], httpRoutes: [r], namespaces: [], rateLimitPolicies: [newer, older, lost, wrongGroup, dupNames] };
  assert.deepEqual(snapshotOf(input).routes['mesh/echo:80']!.rules[0]!.rateLimits?.map((l) => l.requests), [5]);
  const statuses = computeStatuses(input);
  const of = (name: string) => conditions(statuses.get(`weft.dev/RateLimitPolicy/mesh/${name}`)).Accepted!;
  assert.deepEqual(of('older').slice(0, 2), ['True', 'Accepted']);
  assert.deepEqual(of('newer').slice(0, 2), ['False', 'Conflicted']);
  assert.match(of('newer')[2], /the older RateLimitPolicy mesh\/older holds HTTPRoute mesh\/limited/);
  assert.deepEqual(of('lost').slice(0, 2), ['False', 'TargetNotFound']);
  assert.deepEqual(of('wrong-group').slice(0, 2), ['False', 'Invalid']);
  assert.match(of('wrong-group')[2], /spec\.targetRefs\[0\]\.group/);
  assert.match(of('dup')[2], /spec\.limits\[1\]\.name: "a" is used by another limit/);
});

test('the example policies file is valid and compiles without problems', async () => {
  const { readFile } = await import('node:fs/promises');
  const { parseAllDocuments } = await import('yaml');
  const text = await readFile(new URL('../../examples/policies/cart-faults-and-limits.yaml', import.meta.url), 'utf8');
  const objects = parseAllDocuments(text).map((d) => d.toJS() as unknown);
  for (const object of objects) assert.deepEqual(issues(object), [], JSON.stringify(object));
  const resources = objects.map((o) => parsed<{ kind: string }>(o));
  const cart: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'cart', namespace: 'default' }, spec: { selector: { app: 'cart' }, ports: [{ protocol: 'TCP', port: 8080 }] } };
  const pricing: Service = { ...cart, metadata: { name: 'pricing', namespace: 'default' }, spec: { selector: { app: 'pricing' }, ports: [{ protocol: 'TCP', port: 8080 }] } };
  const input: CompilerInput = {
    services: [cart, pricing],
    workloads: [],
    namespaces: [],
    httpRoutes: resources.filter((r) => r.kind === 'HTTPRoute') as unknown as HTTPRoute[],
    faultInjections: resources.filter((r) => r.kind === 'FaultInjection') as unknown as FaultInjection[],
    rateLimitPolicies: resources.filter((r) => r.kind === 'RateLimitPolicy') as unknown as RateLimitPolicy[],
  };
  for (const status of computeStatuses(input).values()) {
    const s = status as Partial<HTTPRouteStatus> & Partial<ObjectStatus> & { ancestors?: { conditions: ObjectStatus['conditions'] }[] };
    const list = s.parents ? s.parents.flatMap((p) => p.conditions) : s.ancestors ? s.ancestors.flatMap((a) => a.conditions) : s.conditions!;
    for (const c of list) assert.equal(c.status, 'True', JSON.stringify(c));
  }
  const s = compile(input, { ...node, namespace: 'default' });
  assert.equal(s.routes['default/cart:8080']!.rules[0]!.filters[0]!.type, 'FaultInjection');
});

test('a RateLimitPolicy on a GRPCRoute lands on that route’s rules', () => {
  const grpcRoute = parsed<HTTPRoute>({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name: 'rpc', namespace: NS },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo' }], rules: [{ matches: [{ method: { service: 'pkg.Svc' } }], backendRefs: toEcho }] },
  });
  const p = policy('rpc-limit', { targetRefs: [{ kind: 'GRPCRoute', name: 'rpc' }], limits: [{ requests: 7 }] });
  const input = { services: [svc('echo')], workloads: [], httpRoutes: [], grpcRoutes: [grpcRoute], namespaces: [], rateLimitPolicies: [p] } as unknown as CompilerInput;
  const rules = snapshotOf(input).routes['mesh/echo:80']!.rules;
  assert.ok(rules.length > 0);
  for (const rule of rules) assert.deepEqual(rule.rateLimits?.map((l) => l.id), ['mesh/rpc-limit/0@GRPCRoute/mesh/rpc']);
  assert.deepEqual(conditions(computeStatuses(input).get('weft.dev/RateLimitPolicy/mesh/rpc-limit')).Accepted!.slice(0, 2), ['True', 'Accepted']);
});
