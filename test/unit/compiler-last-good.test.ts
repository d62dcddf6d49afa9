// Unit tests of last known good in the compiler: which problems are self-contained, and the statuses of objects whose older version stays in force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectKey, type Condition, type Resource } from '../../src/api/meta.ts';
import type { BackendTrafficPolicy, FaultInjection, GRPCRoute, HTTPRoute, RateLimitPolicy, Service } from '../../src/api/resources.ts';
import { validateResource } from '../../src/api/validate.ts';
import { compile } from '../../src/compiler/compile.ts';
import { selfContainedProblems, type FallBack } from '../../src/compiler/last-good.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, HTTPRouteStatus, ObjectStatus } from '../../src/compiler/types.ts';

const NS = 'mesh';

function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  const resource = result.resource as T & Resource;
  resource.metadata.generation = 1;
  resource.metadata.creationTimestamp = '2024-01-01T00:00:00Z';
  return resource;
}

function svc(name: string): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, generation: 1 }, spec: { selector: { app: name }, ports: [{ protocol: 'TCP', port: 80 }] } };
}

function route(rules: unknown[], generation = 1): HTTPRoute {
  const r = parsed<HTTPRoute>({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: NS },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules },
  });
  r.metadata.generation = generation;
  return r;
}

const to = (name: string) => [{ name, port: 80 }];
const prefix = (value: string) => [{ path: { type: 'PathPrefix' as const, value } }];
const regex = (value: string) => [{ path: { type: 'RegularExpression' as const, value } }];

function keyOf(r: Resource): string {
  return objectKey({ apiVersion: r.apiVersion, kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name });
}

function byType(conditions: Condition[]): Record<string, Condition> {
  return Object.fromEntries(conditions.map((c) => [c.type, c]));
}

test('an HTTPRoute: invalid regexes, filters and durations are self-contained; missing backends, kinds and grants are not', () => {
  assert.deepEqual(selfContainedProblems(route([{ matches: prefix('/a'), backendRefs: to('a') }])), []);
  // A backend that does not exist (yet), in another namespace without a grant, of an unknown kind: ResolvedRefs, not the route's own fault.
  assert.deepEqual(
    selfContainedProblems(
      route([
        { matches: prefix('/gone'), backendRefs: to('does-not-exist') },
        { matches: prefix('/far'), backendRefs: [{ name: 'x', namespace: 'elsewhere', port: 80 }] },
        { matches: prefix('/kind'), backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'x' }] },
        { matches: prefix('/ext'), filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'FaultInjection', name: 'later' } }], backendRefs: to('a') },
      ]),
    ),
    [],
  );
  const bad = selfContainedProblems(
    route([
      { matches: prefix('/a'), backendRefs: to('a') },
      { matches: regex('/b/(['), backendRefs: to('b') },
      { matches: prefix('/c'), timeouts: { request: '1s', backendRequest: '2s' }, backendRefs: to('c') },
    ]),
  );
  assert.equal(bad?.length, 2);
  assert.match(bad![0]!, /^rules\[1\]\.matches\[0\]\.path: invalid regular expression "\/b\/\(\["/);
  assert.match(bad![1]!, /^rules\[2\]\.timeouts: backendRequest \(2s\) cannot be longer than request \(1s\)/);
  // Every weight of a rule at 0: the spec's 500 for a route made so, but an update to it keeps the version before.
  const zeroed = selfContainedProblems(route([{ matches: prefix('/a'), backendRefs: [{ name: 'a', port: 80, weight: 0 }, { name: 'b', port: 80, weight: 0 }] }]));
  assert.deepEqual(zeroed, ['spec.rules[0].backendRefs: every weight is 0, so the rule could only answer 500']);
  assert.deepEqual(selfContainedProblems(route([{ matches: prefix('/a'), backendRefs: [{ name: 'a', port: 80, weight: 0 }, { name: 'b', port: 80, weight: 1 }] }])), []);
});

test('a GRPCRoute: an invalid method regex is self-contained', () => {
  const grpc = (value: string) =>
    parsed<GRPCRoute>({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GRPCRoute',
      metadata: { name: 'rpc', namespace: NS },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [{ matches: [{ method: { type: 'RegularExpression', service: value } }], backendRefs: to('missing') }] },
    });
  assert.deepEqual(selfContainedProblems(grpc('pkg\\..*')), []);
  assert.match(selfContainedProblems(grpc('pkg.(('))!.join(), /invalid regular expression/);
});

test('policies: their own invalid settings count; a missing target or an older policy on it does not', () => {
  const rlp = (spec: unknown) => parsed<RateLimitPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'rl', namespace: NS }, spec });
  assert.deepEqual(selfContainedProblems(rlp({ targetRefs: [{ kind: 'Service', name: 'nowhere' }], limits: [{ requests: 5 }] })), []);
  assert.match(selfContainedProblems(rlp({ targetRefs: [{ kind: 'Service', name: 'web' }], limits: [{ name: 'a', requests: 5 }, { name: 'a', requests: 6 }] }))!.join(), /"a" is used by another limit/);

  const btp = (spec: unknown) => parsed<BackendTrafficPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'BackendTrafficPolicy', metadata: { name: 'bt', namespace: NS }, spec });
  assert.deepEqual(selfContainedProblems(btp({ targetRefs: [{ kind: 'Service', name: 'nowhere', sectionName: 'grpc' }], loadBalancer: { type: 'RoundRobin' } })), []);
  assert.deepEqual(selfContainedProblems(btp({ targetRefs: [{ kind: 'HTTPRoute', name: 'ghost', sectionName: 'r1' }], loadBalancer: { type: 'RoundRobin' } })), []);
  assert.match(selfContainedProblems(btp({ targetRefs: [{ kind: 'HTTPRoute', name: 'cart' }], connection: { connectTimeout: '1s' } }))!.join(), /connection size the connection pools/);

  const fi = (spec: unknown) => parsed<FaultInjection>({ apiVersion: 'weft.dev/v1alpha1', kind: 'FaultInjection', metadata: { name: 'f', namespace: NS }, spec });
  assert.deepEqual(selfContainedProblems(fi({ abort: { httpStatus: 503 } })), []);
  assert.match(selfContainedProblems(fi({ abort: { httpStatus: 503 }, match: { headers: [{ name: 'x', type: 'RegularExpression', value: '(' }] } }))!.join(), /invalid regular expression/);

  assert.equal(selfContainedProblems(svc('web')), undefined, 'no last good version of Services');
});

test('a route that falls back: compiled from the version in force, its status speaks of the new generation in the "Fall Back" form', () => {
  const good = route([{ matches: prefix('/a'), backendRefs: to('a') }], 2);
  const bad = route([{ matches: prefix('/a'), backendRefs: to('b') }, { matches: regex('(') }], 3);
  const fallBack: FallBack = { generation: 3, inForceGeneration: 2, problems: selfContainedProblems(bad)! };
  const input: CompilerInput = { services: [svc('web'), svc('a'), svc('b')], workloads: [], httpRoutes: [good], namespaces: [], fallBacks: new Map([[keyOf(bad), fallBack]]) };

  const snapshot = compile(input, { id: 'mesh/c', mode: 'sidecar', namespace: NS, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] });
  const rules = snapshot.routes['mesh/web:80']!.rules;
  assert.deepEqual(rules.map((r) => r.backends.map((b) => b.backend)), [['mesh/a:80']], '/a still goes to a');

  const status = computeStatuses(input).get(keyOf(bad)) as HTTPRouteStatus;
  const conditions = byType(status.parents[0]!.conditions);
  assert.equal(conditions.Accepted!.status, 'True');
  assert.equal(conditions.Accepted!.observedGeneration, 2, 'Accepted is about the generation in force');
  assert.equal(conditions.PartiallyInvalid!.status, 'True');
  assert.equal(conditions.PartiallyInvalid!.reason, 'UnsupportedValue');
  assert.equal(conditions.PartiallyInvalid!.observedGeneration, 3);
  assert.match(conditions.PartiallyInvalid!.message, /^Fall Back: generation 3 is invalid: rules\[1\]\.matches\[0\]\.path: invalid regular expression "\("/);
  assert.match(conditions.PartiallyInvalid!.message, /; generation 2 stays in force$/);
});

test('a policy that falls back: Accepted=False, Invalid, for the new generation, saying which stays in force', () => {
  const fault = parsed<FaultInjection>({ apiVersion: 'weft.dev/v1alpha1', kind: 'FaultInjection', metadata: { name: 'f', namespace: NS }, spec: { abort: { httpStatus: 503 } } });
  const rl = parsed<RateLimitPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'rl', namespace: NS }, spec: { targetRefs: [{ kind: 'Service', name: 'web' }], limits: [{ requests: 5 }] } });
  const fallBacks = new Map<string, FallBack>([
    [keyOf(fault), { generation: 5, inForceGeneration: 4, problems: ['spec.match.headers[0]: invalid regular expression "("'] }],
    [keyOf(rl), { generation: 2, inForceGeneration: 1, problems: ['spec.limits[1].name: "a" is used by another limit of this policy'] }],
  ]);
  const statuses = computeStatuses({ services: [svc('web')], workloads: [], httpRoutes: [], namespaces: [], faultInjections: [fault], rateLimitPolicies: [rl], fallBacks });
  const faultAccepted = byType((statuses.get(keyOf(fault)) as ObjectStatus).conditions).Accepted!;
  assert.deepEqual([faultAccepted.status, faultAccepted.reason, faultAccepted.observedGeneration], ['False', 'Invalid', 5]);
  assert.equal(faultAccepted.message, 'generation 5 is invalid: spec.match.headers[0]: invalid regular expression "("; generation 4 stays in force');
  const rlAccepted = byType((statuses.get(keyOf(rl)) as { ancestors: { conditions: Condition[] }[] }).ancestors[0]!.conditions).Accepted!;
  assert.deepEqual([rlAccepted.status, rlAccepted.reason, rlAccepted.observedGeneration], ['False', 'Invalid', 2]);
  assert.match(rlAccepted.message, /generation 1 stays in force$/);
});
