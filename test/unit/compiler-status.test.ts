// Unit tests of computeStatuses: route parent conditions with Gateway API reasons, and the plain Accepted of other kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectKey, type Condition, type Resource } from '../../src/api/meta.ts';
import type { HTTPRoute, HTTPRouteSpec, MeshConfig, Service, ServicePort, Workload, WorkloadSpec } from '../../src/api/resources.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, HTTPRouteStatus, ObjectStatus } from '../../src/compiler/types.ts';

function svc(ns: string, name: string, ports: Partial<ServicePort>[] = [{ port: 80 }]): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, generation: 2 },
    spec: { selector: { app: name }, ports: ports.map((p) => ({ protocol: 'TCP', port: 80, ...p })) },
  };
}

function wl(ns: string, name: string, spec: Partial<WorkloadSpec> = {}): Workload {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns, generation: 4 },
    spec: { serviceAccount: 'default', ports: [], replicas: 1, upstreams: [], ...spec },
  };
}

function rt(ns: string, name: string, spec: Partial<HTTPRouteSpec>, generation = 3): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation, creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { parentRefs: [], rules: [{}], ...spec } as HTTPRouteSpec,
  };
}

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

const parent = (name: string, extra: Record<string, unknown> = {}) => ({ group: '', kind: 'Service', name, ...extra });

function keyOf(r: Resource): string {
  return objectKey({ apiVersion: r.apiVersion, kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name });
}

function routeStatus(statuses: Map<string, unknown>, route: HTTPRoute): HTTPRouteStatus {
  const status = statuses.get(keyOf(route)) as HTTPRouteStatus | undefined;
  assert.ok(status, `no status for ${route.metadata.name}`);
  return status;
}

/** type → [status, reason] of one parent's conditions. */
function summary(conditions: Condition[]): Record<string, [string, string]> {
  return Object.fromEntries(conditions.map((c) => [c.type, [c.status, c.reason]]));
}

const services = [svc('mesh', 'echo', [{ port: 80, name: 'http' }, { port: 9090, name: 'tcp' }]), svc('mesh', 'echo-v1'), svc('other', 'foreign')];

test('a valid route is Accepted and ResolvedRefs on each Service parent, with the generation observed', () => {
  const route = rt('mesh', 'ok', { parentRefs: [parent('echo', { port: 80 })], rules: [{ backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] }] }, 7);
  const status = routeStatus(computeStatuses(input({ services, httpRoutes: [route] })), route);
  assert.deepEqual(status, {
    parents: [
      {
        parentRef: { group: '', kind: 'Service', name: 'echo', port: 80 },
        controllerName: 'weft.dev/mesh',
        conditions: [
          { type: 'Accepted', status: 'True', reason: 'Accepted', message: '', observedGeneration: 7 },
          { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: '', observedGeneration: 7 },
        ],
      },
    ],
  });
});

test('parents: a missing Service, port or Gateway is NoMatchingParent', () => {
  const route = rt('mesh', 'parents', {
    parentRefs: [
      parent('echo'),
      parent('nope'),
      parent('echo', { port: 81 }),
      parent('echo', { sectionName: 'grpc' }),
      parent('echo', { port: 9090 }), // a TCP port: HTTPRoutes don't attach there
      { name: 'my-gateway' },
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' },
    ],
    rules: [{ backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] }],
  });
  const status = routeStatus(computeStatuses(input({ services, httpRoutes: [route] })), route);
  assert.deepEqual(
    status.parents.map((p) => [p.parentRef.name, p.parentRef.port, p.parentRef.sectionName, summary(p.conditions).Accepted]),
    [
      ['echo', undefined, undefined, ['True', 'Accepted']],
      ['nope', undefined, undefined, ['False', 'NoMatchingParent']],
      ['echo', 81, undefined, ['False', 'NoMatchingParent']],
      ['echo', undefined, 'grpc', ['False', 'NoMatchingParent']],
      ['echo', 9090, undefined, ['False', 'NoMatchingParent']],
      ['my-gateway', undefined, undefined, ['False', 'NoMatchingParent']],
      ['gw', undefined, undefined, ['False', 'NoMatchingParent']],
    ],
  );
  assert.match(status.parents[1]!.conditions[0]!.message, /mesh\/nope does not exist/);
  assert.match(status.parents[2]!.conditions[0]!.message, /no port 81/);
});

test('backendRefs: BackendNotFound, InvalidKind and RefNotPermitted, with every problem in the message', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['missing service', { name: 'ghost', port: 80 }, 'BackendNotFound'],
    ['missing port', { name: 'echo-v1', port: 81 }, 'BackendNotFound'],
    ['no port, not the parent', { name: 'echo-v1' }, 'BackendNotFound'],
    ['unknown kind', { group: 'example.com', kind: 'Bucket', name: 'b', port: 80 }, 'InvalidKind'],
    ['core but not a Service', { group: '', kind: 'ConfigMap', name: 'c' }, 'InvalidKind'],
    ['cross namespace', { name: 'foreign', namespace: 'other', port: 80 }, 'RefNotPermitted'],
  ];
  for (const [label, ref, reason] of cases) {
    const route = rt('mesh', 'r', { parentRefs: [parent('echo')], rules: [{ backendRefs: [{ weight: 1, ...ref } as never, { name: 'echo-v1', port: 80, weight: 1 }] }] });
    const status = routeStatus(computeStatuses(input({ services, httpRoutes: [route] })), route);
    const conditions = summary(status.parents[0]!.conditions);
    assert.deepEqual(conditions.ResolvedRefs, ['False', reason], label);
    // An invalid backendRef doesn't stop the route being accepted: its share of traffic gets 500s.
    assert.deepEqual(conditions.Accepted, ['True', 'Accepted'], label);
  }
  const several = rt('mesh', 'several', {
    parentRefs: [parent('echo')],
    rules: [{ backendRefs: [{ name: 'foreign', namespace: 'other', port: 80, weight: 1 }] }, { backendRefs: [{ name: 'ghost', port: 80, weight: 1 }] }],
  });
  const resolved = routeStatus(computeStatuses(input({ services, httpRoutes: [several] })), several).parents[0]!.conditions[1]!;
  assert.equal(resolved.reason, 'RefNotPermitted');
  assert.match(resolved.message, /rules\[0\]\.backendRefs\[0\].*other\/foreign.*; rules\[1\]\.backendRefs\[0\].*mesh\/ghost/);
});

test('GAMMA: a consumer route may name its parent Service as a backend, and a port-less ref to the parent resolves', () => {
  const consumer = rt('consumer', 'c', {
    parentRefs: [parent('echo', { namespace: 'mesh' })],
    rules: [{ backendRefs: [{ name: 'echo', namespace: 'mesh', port: 80, weight: 1 }] }, { backendRefs: [{ name: 'echo', namespace: 'mesh', weight: 1 }] }],
  });
  const status = routeStatus(computeStatuses(input({ services, httpRoutes: [consumer] })), consumer);
  assert.deepEqual(summary(status.parents[0]!.conditions), { Accepted: ['True', 'Accepted'], ResolvedRefs: ['True', 'ResolvedRefs'] });
});

test('invalid regexes drop the rule; an ExtensionRef of an unknown kind keeps it (answering 500) with ResolvedRefs=False InvalidKind', () => {
  const partly = rt('mesh', 'partly', {
    parentRefs: [parent('echo')],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/ok' } }], backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/r' } }], filters: [{ type: 'ExtensionRef', extensionRef: { group: 'example.com', kind: 'Fault', name: 'f' } }] },
      { matches: [{ path: { type: 'RegularExpression', value: '(' } }], backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] },
    ],
  });
  const allBad = rt('mesh', 'all-bad', {
    parentRefs: [parent('echo')],
    rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'example.com', kind: 'Fault', name: 'f' } }], backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] }],
  });
  const statuses = computeStatuses(input({ services, httpRoutes: [partly, allBad] }));
  const p = routeStatus(statuses, partly).parents[0]!;
  assert.deepEqual(summary(p.conditions), {
    Accepted: ['True', 'Accepted'],
    ResolvedRefs: ['False', 'InvalidKind'],
    PartiallyInvalid: ['True', 'UnsupportedValue'],
  });
  const partial = p.conditions.find((c) => c.type === 'PartiallyInvalid')!;
  assert.match(partial.message, /^Dropped Rule\(s\): rules\[2\].*invalid regular expression/);
  const a = routeStatus(statuses, allBad).parents[0]!;
  assert.deepEqual(summary(a.conditions), { Accepted: ['True', 'Accepted'], ResolvedRefs: ['False', 'InvalidKind'] });
  assert.match(a.conditions[1]!.message, /ExtensionRef example\.com\/Fault is not a kind weft knows/);
});

test('a route whose only parent is another controller’s Gateway gets an empty parents list', () => {
  const route = rt('mesh', 'gw-only', { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'echo-v1', port: 80, weight: 1 }] }] });
  const gatewayClasses = [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'other' }, spec: { controllerName: 'example.com/gateway' } }];
  const gateways = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'mesh' },
      spec: { gatewayClassName: 'other', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    },
  ];
  assert.deepEqual(routeStatus(computeStatuses(input({ services, httpRoutes: [route], gatewayClasses, gateways })), route), { parents: [] });
});

test('Services, Namespaces, MeshConfig and Workloads are Accepted; a template with an unknown upstream has ResolvedRefs False', () => {
  const namespace: Resource = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh', generation: 1 }, spec: {} };
  const meshConfig: MeshConfig = { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default', generation: 5 }, spec: { trustDomain: 'example.org' } };
  const good = wl('mesh', 'client', { upstreams: [{ service: 'echo', port: 80, localPort: 7000 }] });
  const bad = wl('mesh', 'broken', {
    upstreams: [
      { service: 'echo', port: 80, localPort: 7000 },
      { service: 'nothing.mesh', port: 80, localPort: 7001 },
      { service: 'echo', port: 80, localPort: 7000 },
    ],
  });
  const instance = wl('mesh', 'client-abc', { address: '10.0.0.1' });
  const statuses = computeStatuses(input({ services, namespaces: [namespace], meshConfig, workloads: [good, bad, instance] }));
  const accepted = (generation: number) => ({ conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: '', observedGeneration: generation }] });
  assert.deepEqual(statuses.get('core/Namespace//mesh'), accepted(1));
  assert.deepEqual(statuses.get('weft.dev/MeshConfig//default'), accepted(5));
  assert.deepEqual(statuses.get('core/Service/mesh/echo'), accepted(2));
  assert.deepEqual(statuses.get(keyOf(instance)), accepted(4));
  const goodStatus = statuses.get(keyOf(good)) as ObjectStatus;
  assert.deepEqual(summary(goodStatus.conditions), { Accepted: ['True', 'Accepted'], ResolvedRefs: ['True', 'ResolvedRefs'] });
  const badStatus = statuses.get(keyOf(bad)) as ObjectStatus;
  assert.deepEqual(summary(badStatus.conditions), {
    Accepted: ['True', 'Accepted'],
    ResolvedRefs: ['False', 'BackendNotFound'],
    PartiallyInvalid: ['True', 'DuplicateLocalPort'],
  });
  assert.match(badStatus.conditions[1]!.message, /upstreams\[1\]: Service mesh\/nothing does not exist/);
  // Every object has a status, and nothing carries a timestamp.
  assert.equal(statuses.size, 1 + 1 + services.length + 3);
  assert.doesNotMatch(JSON.stringify([...statuses.values()]), /lastTransitionTime/);
});

test('HTTPRoute statuses are keyed by group, so v1beta1 and v1 share a key', () => {
  const route = rt('mesh', 'old', { parentRefs: [parent('echo')] });
  route.apiVersion = 'gateway.networking.k8s.io/v1beta1';
  const statuses = computeStatuses(input({ services, httpRoutes: [route] }));
  assert.ok(statuses.has('gateway.networking.k8s.io/HTTPRoute/mesh/old'));
});
