// Unit tests of the gateway compiler: classes, listeners, route attachment, hostnames, ReferenceGrants, statuses and the gateway snapshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareHostSpecificity, hostMatches, intersectHostnames } from '../../src/api/hostnames.ts';
import type { Condition, Resource } from '../../src/api/meta.ts';
import type {
  EndpointSlice,
  Gateway,
  GatewayClass,
  GatewayListener,
  HTTPRoute,
  HTTPRouteSpec,
  ReferenceGrant,
  Secret,
  Service,
  Workload,
} from '../../src/api/resources.ts';
import { gatewayWorkloadName, type NodeInfo, type ProxySnapshot } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile, snapshotInputKey } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, GatewayStatus, HTTPRouteStatus } from '../../src/compiler/types.ts';

// ---------------------------------------------------------------- fixtures

const GROUP = 'gateway.networking.k8s.io';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGHfake\n-----END PRIVATE KEY-----\n';

function svc(ns: string, name: string, port = 8080): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns, generation: 1 }, spec: { selector: { app: name }, ports: [{ protocol: 'TCP', port }] } };
}

function pod(ns: string, name: string, app: string, address: string): Workload {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name, namespace: ns, labels: { app }, generation: 1 },
    spec: { serviceAccount: 'default', address, ports: [], replicas: 1, upstreams: [] },
  };
}

function namespace(name: string, labels: Record<string, string> = {}): Resource {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, generation: 1 }, spec: {} };
}

function gatewayClass(name: string, controllerName = 'weft.dev/gateway-controller'): GatewayClass {
  return { apiVersion: `${GROUP}/v1`, kind: 'GatewayClass', metadata: { name, generation: 1 }, spec: { controllerName } };
}

function gateway(ns: string, name: string, listeners: Partial<GatewayListener>[], className = 'weft'): Gateway {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'Gateway',
    metadata: { name, namespace: ns, generation: 2 },
    spec: { gatewayClassName: className, listeners: listeners.map((l, i) => ({ name: `l${i}`, port: 80, protocol: 'HTTP', ...l })) as GatewayListener[] },
  };
}

function route(ns: string, name: string, spec: Partial<HTTPRouteSpec>, creationTimestamp = '2024-01-01T00:00:00Z'): HTTPRoute {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation: 3, creationTimestamp },
    spec: { parentRefs: [], rules: [{}], ...spec } as HTTPRouteSpec,
  };
}

function tlsSecret(ns: string, name: string): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns, generation: 1 },
    spec: { type: 'kubernetes.io/tls', data: { 'tls.crt': btoa(CERT), 'tls.key': btoa(KEY) } },
  };
}

function grant(ns: string, from: { group: string; kind: string; namespace: string }[], to: { group: string; kind: string; name?: string }[]): ReferenceGrant {
  return { apiVersion: `${GROUP}/v1beta1`, kind: 'ReferenceGrant', metadata: { name: `grant-${from[0]!.namespace}`, namespace: ns, generation: 1 }, spec: { from, to } };
}

/** A registered instance of a Gateway's proxy, as the control plane writes it. */
function gatewayInstance(ns: string, gatewayName: string, address = '127.0.0.1'): Workload {
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: `${gatewayWorkloadName(gatewayName)}-abc`, namespace: ns, labels: { 'weft.dev/workload': gatewayWorkloadName(gatewayName) }, generation: 1 },
    spec: { serviceAccount: 'default', address, tunnelPort: 15008, ports: [], replicas: 1, upstreams: [] },
  };
}

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

function gatewayNode(gatewayKey: string): NodeInfo {
  const [ns, name] = gatewayKey.split('/') as [string, string];
  return { id: `${ns}/gw-1`, mode: 'gateway', namespace: ns, workload: gatewayWorkloadName(name), gateway: gatewayKey, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };
}

function statusOf<T>(statuses: Map<string, unknown>, key: string): T {
  const status = statuses.get(key);
  assert.ok(status, `no status for ${key}; have ${[...statuses.keys()].join(', ')}`);
  return status as T;
}

function cond(conditions: Condition[], type: string): Pick<Condition, 'status' | 'reason'> | undefined {
  const c = conditions.find((x) => x.type === type);
  return c ? { status: c.status, reason: c.reason } : undefined;
}

const routeKey = (ns: string, name: string) => `${GROUP}/HTTPRoute/${ns}/${name}`;
const gatewayKey = (ns: string, name: string) => `${GROUP}/Gateway/${ns}/${name}`;

/** Which backend a request for host+path would reach through the snapshot's port 80, by the snapshot's own order. */
function hostsOf(s: ProxySnapshot, port = 80): Record<string, { hostname?: string; hosts: string[] }> {
  const out: Record<string, { hostname?: string; hosts: string[] }> = {};
  for (const l of s.gateway?.ports.find((p) => p.port === port)?.listeners ?? []) {
    out[l.name] = { ...(l.hostname !== undefined ? { hostname: l.hostname } : {}), hosts: l.hosts.map((h) => h.hostname) };
  }
  return out;
}

// ---------------------------------------------------------------- host names

test('host patterns: matching, specificity and the intersection of listener and route hostnames', () => {
  assert.ok(hostMatches('*.example.com', 'a.example.com'));
  assert.ok(hostMatches('*.example.com', 'a.b.example.com'), 'a wildcard covers any depth');
  assert.ok(!hostMatches('*.example.com', 'example.com'));
  assert.ok(hostMatches('*', 'anything'));
  assert.deepEqual(['*', '*.a.com', 'x.a.com', '*.b.a.com'].sort(compareHostSpecificity), ['x.a.com', '*.b.a.com', '*.a.com', '*']);
  assert.equal(intersectHostnames(undefined, 'foo.com'), 'foo.com');
  assert.equal(intersectHostnames('*.foo.com', 'bar.foo.com'), 'bar.foo.com');
  assert.equal(intersectHostnames('bar.foo.com', '*.foo.com'), 'bar.foo.com');
  assert.equal(intersectHostnames('*.foo.com', '*.bar.foo.com'), '*.bar.foo.com');
  assert.equal(intersectHostnames('*.bar.foo.com', '*.foo.com'), '*.bar.foo.com');
  assert.equal(intersectHostnames('*.foo.com', 'foo.com'), undefined);
  assert.equal(intersectHostnames('*.ab.com', '*.b.com'), undefined);
});

// ---------------------------------------------------------------- schemas

test('Secret and EndpointSlice keep their content beside metadata; weft validates and stores it as spec', () => {
  const secret = validateResource({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls', namespace: 'a' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'QUJD' } });
  assert.ok(secret.ok);
  assert.deepEqual(secret.resource.spec, { type: 'kubernetes.io/tls', data: { 'tls.crt': 'QUJD' } });
  // Re-applied from the store (spec) it is the same object.
  const again = validateResource(secret.resource);
  assert.ok(again.ok);
  assert.deepEqual(again.resource.spec, secret.resource.spec);
  const bad = validateResource({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls' }, data: { x: '%%%' } });
  assert.ok(!bad.ok);
  assert.equal(bad.issues[0]!.path, 'data.x');
  const slice = validateResource({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's' }, addressType: 'IPv4', ports: [{ port: 3000 }] });
  assert.ok(slice.ok);
  assert.deepEqual(slice.resource.spec, { addressType: 'IPv4', endpoints: [], ports: [{ port: 3000, protocol: 'TCP' }] });
});

test('a Gateway with two listeners of one name is refused', () => {
  const result = validateResource({
    apiVersion: `${GROUP}/v1`,
    kind: 'Gateway',
    metadata: { name: 'g' },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'a', port: 80, protocol: 'HTTP' }, { name: 'a', port: 81, protocol: 'HTTP' }] },
  });
  assert.ok(!result.ok);
  assert.equal(result.issues[0]!.path, 'spec.listeners[1].name');
});

// ---------------------------------------------------------------- classes and gateways

test('only Gateways of weft classes are served: an explicit class with weft’s controller, or "weft" when no such class object exists', () => {
  const statuses = computeStatuses(
    input({
      gatewayClasses: [gatewayClass('mine'), gatewayClass('theirs', 'example.com/other')],
      gateways: [gateway('a', 'g1', [{}], 'mine'), gateway('a', 'g2', [{}], 'theirs'), gateway('a', 'g3', [{}], 'weft'), gateway('a', 'g4', [{}], 'missing')],
    }),
  );
  assert.deepEqual(cond(statusOf<{ conditions: Condition[] }>(statuses, `${GROUP}/GatewayClass//mine`).conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.equal(statuses.has(`${GROUP}/GatewayClass//theirs`), false, 'another controller’s class is not ours to report');
  assert.ok(statuses.has(gatewayKey('a', 'g1')));
  assert.equal(statuses.has(gatewayKey('a', 'g2')), false);
  assert.ok(statuses.has(gatewayKey('a', 'g3')));
  assert.equal(statuses.has(gatewayKey('a', 'g4')), false);
});

test('a Gateway is Programmed, with an address, once a gateway proxy for it has registered', () => {
  const base = { services: [svc('a', 'web')], gateways: [gateway('a', 'g', [{ name: 'http' }])] };
  const before = statusOf<GatewayStatus>(computeStatuses(input(base)), gatewayKey('a', 'g'));
  assert.deepEqual(cond(before.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(cond(before.conditions, 'Programmed'), { status: 'False', reason: 'AddressNotAssigned' });
  assert.deepEqual(before.addresses, []);
  assert.deepEqual(cond(before.listeners[0]!.conditions, 'Programmed'), { status: 'False', reason: 'Pending' });

  const after = statusOf<GatewayStatus>(computeStatuses(input({ ...base, workloads: [gatewayInstance('a', 'g', '10.0.0.7'), gatewayInstance('b', 'g', '10.0.0.9')] })), gatewayKey('a', 'g'));
  assert.deepEqual(cond(after.conditions, 'Programmed'), { status: 'True', reason: 'Programmed' });
  assert.deepEqual(after.addresses, [{ type: 'IPAddress', value: '10.0.0.7' }], 'only instances in the Gateway’s namespace count');
  assert.deepEqual(cond(after.listeners[0]!.conditions, 'Programmed'), { status: 'True', reason: 'Programmed' });
  assert.equal(after.conditions[0]!.observedGeneration, 2);
});

test('listeners: unsupported protocols, route kinds, conflicts and certificate references are reported per listener', () => {
  const statuses = computeStatuses(
    input({
      secrets: [tlsSecret('a', 'cert'), tlsSecret('b', 'cert'), { ...tlsSecret('a', 'opaque'), spec: { type: 'Opaque', data: {} } }],
      gateways: [
        gateway('a', 'g', [
          { name: 'http' },
          { name: 'tls', port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' } },
          { name: 'udp', port: 53, protocol: 'UDP' },
          { name: 'kinds', port: 81, allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }, { kind: 'TCPRoute' }] } },
          { name: 'dup', port: 80 },
          { name: 'https-80', port: 80, protocol: 'HTTPS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } },
          { name: 'https', port: 8443, protocol: 'HTTPS', hostname: 'a.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } },
          { name: 'missing', port: 8443, protocol: 'HTTPS', hostname: 'b.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'nope' }] } },
          { name: 'opaque', port: 8443, protocol: 'HTTPS', hostname: 'c.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'opaque' }] } },
          { name: 'elsewhere', port: 8443, protocol: 'HTTPS', hostname: 'd.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert', namespace: 'b' }] } },
        ]),
      ],
    }),
  );
  const status = statusOf<GatewayStatus>(statuses, gatewayKey('a', 'g'));
  const listener = (name: string) => status.listeners.find((l) => l.name === name)!;
  assert.deepEqual(cond(listener('http').conditions, 'Programmed'), { status: 'False', reason: 'Pending' });
  assert.deepEqual(cond(listener('udp').conditions, 'Accepted'), { status: 'False', reason: 'UnsupportedProtocol' });
  assert.deepEqual(listener('udp').supportedKinds, []);
  // TLS passthrough is served (l4-routes.ts): it takes TLSRoutes.
  assert.deepEqual(cond(listener('tls').conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(listener('tls').supportedKinds, [{ group: GROUP, kind: 'TLSRoute' }]);
  assert.deepEqual(listener('kinds').supportedKinds, [{ group: GROUP, kind: 'HTTPRoute' }]);
  assert.deepEqual(cond(listener('kinds').conditions, 'ResolvedRefs'), { status: 'False', reason: 'InvalidRouteKinds' });
  assert.deepEqual(cond(listener('dup').conditions, 'Conflicted'), { status: 'True', reason: 'HostnameConflict' });
  assert.deepEqual(cond(listener('https-80').conditions, 'Conflicted'), { status: 'True', reason: 'ProtocolConflict' });
  assert.deepEqual(cond(listener('https').conditions, 'ResolvedRefs'), { status: 'True', reason: 'ResolvedRefs' });
  assert.deepEqual(cond(listener('missing').conditions, 'ResolvedRefs'), { status: 'False', reason: 'InvalidCertificateRef' });
  assert.deepEqual(cond(listener('missing').conditions, 'Programmed'), { status: 'False', reason: 'Invalid' });
  assert.deepEqual(cond(listener('opaque').conditions, 'ResolvedRefs'), { status: 'False', reason: 'InvalidCertificateRef' });
  assert.deepEqual(cond(listener('elsewhere').conditions, 'ResolvedRefs'), { status: 'False', reason: 'RefNotPermitted' });
  assert.deepEqual(cond(status.conditions, 'Accepted'), { status: 'True', reason: 'ListenersNotValid' });

  const granted = computeStatuses(
    input({
      secrets: [tlsSecret('b', 'cert')],
      referenceGrants: [grant('b', [{ group: GROUP, kind: 'Gateway', namespace: 'a' }], [{ group: '', kind: 'Secret', name: 'cert' }])],
      gateways: [gateway('a', 'g', [{ name: 'elsewhere', port: 443, protocol: 'HTTPS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert', namespace: 'b' }] } }])],
    }),
  );
  const grantedListener = statusOf<GatewayStatus>(granted, gatewayKey('a', 'g')).listeners[0]!;
  assert.deepEqual(cond(grantedListener.conditions, 'ResolvedRefs'), { status: 'True', reason: 'ResolvedRefs' });
});

// ---------------------------------------------------------------- attachment

test('route attachment: parent, sectionName and port, allowed namespaces and kinds, hostnames; attachedRoutes counts what attached', () => {
  const gw = gateway('infra', 'g', [
    { name: 'same', port: 80, hostname: 'foo.example.com' },
    { name: 'all', port: 8080, allowedRoutes: { namespaces: { from: 'All' } } },
    { name: 'selected', port: 8081, allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'blue' } } } } },
    { name: 'by-name', port: 8082, allowedRoutes: { namespaces: { from: 'Selector', selector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['infra'] }] } } } },
  ]);
  const ref = (extra: Record<string, unknown> = {}) => ({ name: 'g', namespace: 'infra', ...extra });
  const routes = [
    route('infra', 'whole', { parentRefs: [ref()] }),
    route('infra', 'section', { parentRefs: [ref({ sectionName: 'all' })] }),
    route('infra', 'wrong-section', { parentRefs: [ref({ sectionName: 'nope' })] }),
    route('infra', 'wrong-port', { parentRefs: [ref({ port: 81 })] }),
    route('infra', 'wrong-host', { parentRefs: [ref({ sectionName: 'same' })], hostnames: ['bar.example.com'] }),
    route('blue', 'from-blue', { parentRefs: [ref({ sectionName: 'same' })] }),
    route('blue', 'selected', { parentRefs: [ref({ sectionName: 'selected' })] }),
    route('red', 'not-selected', { parentRefs: [ref({ sectionName: 'selected' })] }),
    route('infra', 'missing-gateway', { parentRefs: [ref({ name: 'nope' })] }),
  ];
  const statuses = computeStatuses(
    input({ namespaces: [namespace('infra'), namespace('blue', { team: 'blue' }), namespace('red')], services: [svc('infra', 'web')], gateways: [gw], httpRoutes: routes }),
  );
  const accepted = (ns: string, name: string) => cond(statusOf<HTTPRouteStatus>(statuses, routeKey(ns, name)).parents[0]!.conditions, 'Accepted');
  assert.deepEqual(accepted('infra', 'whole'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(accepted('infra', 'section'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(accepted('infra', 'wrong-section'), { status: 'False', reason: 'NoMatchingParent' });
  assert.deepEqual(accepted('infra', 'wrong-port'), { status: 'False', reason: 'NoMatchingParent' });
  assert.deepEqual(accepted('infra', 'wrong-host'), { status: 'False', reason: 'NoMatchingListenerHostname' });
  assert.deepEqual(accepted('blue', 'from-blue'), { status: 'False', reason: 'NotAllowedByListeners' });
  assert.deepEqual(accepted('blue', 'selected'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(accepted('red', 'not-selected'), { status: 'False', reason: 'NotAllowedByListeners' });
  assert.deepEqual(accepted('infra', 'missing-gateway'), { status: 'False', reason: 'NoMatchingParent' });
  const parent = statusOf<HTTPRouteStatus>(statuses, routeKey('infra', 'whole')).parents[0]!;
  assert.equal(parent.controllerName, 'weft.dev/gateway-controller');
  assert.deepEqual(parent.parentRef, ref());
  assert.equal(parent.conditions[0]!.observedGeneration, 3);

  const listeners = statusOf<GatewayStatus>(statuses, gatewayKey('infra', 'g')).listeners;
  assert.deepEqual(
    Object.fromEntries(listeners.map((l) => [l.name, l.attachedRoutes])),
    { same: 1, all: 2, selected: 1, 'by-name': 1 },
    'whole attaches to every listener it is allowed on; section to "all" only',
  );
});

test('ReferenceGrants let a route reach a Service in another namespace; without one the ref is RefNotPermitted and answers 500', () => {
  const gw = gateway('infra', 'g', [{ name: 'http', allowedRoutes: { namespaces: { from: 'All' } } }]);
  const r = route('infra', 'cross', { parentRefs: [{ name: 'g' }], rules: [{ backendRefs: [{ name: 'web', namespace: 'apps', port: 8080, weight: 1 }] }] });
  const base = { services: [svc('apps', 'web')], gateways: [gw], httpRoutes: [r] };
  const denied = computeStatuses(input(base));
  assert.deepEqual(cond(statusOf<HTTPRouteStatus>(denied, routeKey('infra', 'cross')).parents[0]!.conditions, 'ResolvedRefs'), { status: 'False', reason: 'RefNotPermitted' });
  const deniedSnapshot = compile(input(base), gatewayNode('infra/g'));
  const deniedTable = Object.values(deniedSnapshot.routes)[0]!;
  assert.deepEqual(deniedTable.rules[0]!.backends, [{ weight: 1, filters: [] }], 'an unresolved backend answers 500');

  const withGrant = { ...base, referenceGrants: [grant('apps', [{ group: GROUP, kind: 'HTTPRoute', namespace: 'infra' }], [{ group: '', kind: 'Service' }])] };
  const allowed = computeStatuses(input(withGrant));
  assert.deepEqual(cond(statusOf<HTTPRouteStatus>(allowed, routeKey('infra', 'cross')).parents[0]!.conditions, 'ResolvedRefs'), { status: 'True', reason: 'ResolvedRefs' });
  const snapshot = compile(input(withGrant), gatewayNode('infra/g'));
  assert.equal(Object.values(snapshot.routes)[0]!.rules[0]!.backends[0]!.backend, 'apps/web:8080');

  const otherName = { ...base, referenceGrants: [grant('apps', [{ group: GROUP, kind: 'HTTPRoute', namespace: 'infra' }], [{ group: '', kind: 'Service', name: 'db' }])] };
  assert.deepEqual(
    cond(statusOf<HTTPRouteStatus>(computeStatuses(input(otherName)), routeKey('infra', 'cross')).parents[0]!.conditions, 'ResolvedRefs'),
    { status: 'False', reason: 'RefNotPermitted' },
    'a grant naming another Service does not cover this one',
  );
});

// ---------------------------------------------------------------- the gateway snapshot

test('a gateway proxy’s snapshot: ports, listeners most specific first, one route table per host pattern in mesh precedence', () => {
  const gw = gateway('infra', 'g', [
    { name: 'any', port: 80 },
    { name: 'wild', port: 80, hostname: '*.example.com' },
    { name: 'exact', port: 80, hostname: 'abc.example.com' },
    { name: 'secure', port: 443, protocol: 'HTTPS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } },
  ]);
  const older = route('infra', 'older', { parentRefs: [{ name: 'g', sectionName: 'any' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'v1', port: 8080, weight: 1 }] }] }, '2024-01-01T00:00:00Z');
  const newer = route('infra', 'newer', { parentRefs: [{ name: 'g', sectionName: 'any' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'v2', port: 8080, weight: 1 }] }] }, '2024-06-01T00:00:00Z');
  const longer = route('infra', 'longer', { parentRefs: [{ name: 'g', sectionName: 'any' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'v2', port: 8080, weight: 1 }] }] }, '2024-09-01T00:00:00Z');
  const hosts = route('infra', 'hosts', { parentRefs: [{ name: 'g', sectionName: 'wild' }], hostnames: ['*.example.com', 'x.example.com', 'other.org'], rules: [{ backendRefs: [{ name: 'v1', port: 8080, weight: 1 }] }] });
  const secure = route('infra', 'secure', { parentRefs: [{ name: 'g', port: 443 }], rules: [{ backendRefs: [{ name: 'v1', port: 8080, weight: 1 }] }] });
  const everything = input({
    services: [svc('infra', 'v1'), svc('infra', 'v2')],
    workloads: [pod('infra', 'v1-a', 'v1', '10.0.0.1')],
    secrets: [tlsSecret('infra', 'cert')],
    gateways: [gw],
    httpRoutes: [newer, hosts, older, longer, secure],
  });
  const snapshot = compile(everything, gatewayNode('infra/g'));
  assert.deepEqual(checkSnapshot(snapshot), []);
  assert.equal(snapshot.node.mode, 'gateway');
  assert.deepEqual(snapshot.services, [], 'a gateway is no forward proxy for the mesh');
  assert.deepEqual(snapshot.upstreams, []);
  assert.deepEqual(snapshot.inbound.ports, []);
  assert.ok(snapshot.backends['infra/v1:8080']?.endpoints.length, 'the mesh’s backends, with their endpoints');
  assert.deepEqual(snapshot.gateway?.ports.map((p) => [p.port, p.protocol]), [[80, 'HTTP'], [443, 'HTTPS']]);
  assert.deepEqual(hostsOf(snapshot), {
    exact: { hostname: 'abc.example.com', hosts: [] },
    wild: { hostname: '*.example.com', hosts: ['x.example.com', '*.example.com'] },
    any: { hosts: ['*'] },
  });
  assert.deepEqual(snapshot.gateway!.ports[0]!.listeners.map((l) => l.name), ['exact', 'wild', 'any']);
  const anyTable = snapshot.routes[snapshot.gateway!.ports[0]!.listeners[2]!.hosts[0]!.routeKey]!;
  assert.deepEqual(
    anyTable.rules.map((r) => r.id),
    ['infra/longer/0/0', 'infra/older/0/0', 'infra/newer/0/0'],
    'the longest prefix first, then the oldest route',
  );
  const secureListener = snapshot.gateway!.ports[1]!.listeners[0]!;
  assert.deepEqual(secureListener.tls, { certificates: [{ certPem: CERT, keyPem: KEY }] });

  // Another Gateway's proxy, and a proxy for a Gateway that does not exist, get none of it.
  assert.equal(compile(everything, gatewayNode('infra/nope')).gateway, undefined);
  assert.notEqual(snapshotInputKey(gatewayNode('infra/g')), snapshotInputKey(gatewayNode('infra/h')));
});

test('listeners that cannot be served are left out of the snapshot; a snapshot pointing at a missing table is inconsistent', () => {
  const gw = gateway('infra', 'g', [
    { name: 'ok', port: 80 },
    { name: 'no-cert', port: 443, protocol: 'HTTPS', tls: { mode: 'Terminate', certificateRefs: [{ name: 'missing' }] } },
    { name: 'udp', port: 9000, protocol: 'UDP' },
  ]);
  const snapshot = compile(input({ gateways: [gw] }), gatewayNode('infra/g'));
  assert.deepEqual(snapshot.gateway?.ports.map((p) => p.port), [80]);
  const broken = structuredClone(snapshot);
  broken.gateway!.ports[0]!.listeners[0]!.hosts.push({ hostname: 'x.com', routeKey: 'gateway:nope' });
  assert.ok(checkSnapshot(broken).some((p) => p.includes('gateway:nope')));
});

test('Services without a selector get their endpoints from EndpointSlices', () => {
  const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'manual', namespace: 'a' }, spec: { ports: [{ name: 'web', protocol: 'TCP', port: 8080, targetPort: 3000 }] } };
  const slice = (name: string, addressType: 'IPv4' | 'IPv6', addresses: string[]): EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'a', labels: { 'kubernetes.io/service-name': 'manual' } },
    spec: { addressType, endpoints: addresses.map((a) => ({ addresses: [a] })), ports: [{ name: 'web', port: 3000, protocol: 'TCP' }] },
  });
  const snapshot = compile(
    input({ services: [service], endpointSlices: [slice('manual-ip4', 'IPv4', ['10.0.0.2', '10.0.0.1']), slice('manual-ip6', 'IPv6', [])] }),
    { id: 'a/p', mode: 'sidecar', namespace: 'a', address: '127.0.0.1', tunnelPort: 1, appPorts: [] },
  );
  assert.deepEqual(
    snapshot.backends['a/manual:8080']!.endpoints.map((e) => [e.address, e.port, e.tunnelPort]),
    [['10.0.0.1', 3000, undefined], ['10.0.0.2', 3000, undefined]],
  );
});
