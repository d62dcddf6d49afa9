// TCPRoute and TLSRoute compilation: gateway TCP/TLS listeners, mesh Service ports (GAMMA), statuses and validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';

const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';

function object(kind: string, apiVersion: string, name: string, spec: unknown, metadata: Record<string, unknown> = {}) {
  return { apiVersion, kind, metadata: { name, namespace: NS, generation: 1, ...metadata }, spec } as never;
}

function tcpService(name: string, port = 7000, appProtocol = 'tcp') {
  return object('Service', 'v1', name, { selector: { app: name }, ports: [{ port, appProtocol, protocol: 'TCP' }] });
}

function endpointOf(name: string, port: number) {
  return object('Workload', 'weft.dev/v1alpha1', `${name}-1`, { address: '127.0.0.1', ports: [{ port }], serviceAccount: 'default', replicas: 1, upstreams: [] }, { labels: { app: name } });
}

function gateway(listeners: unknown[]) {
  return object('Gateway', `${GROUP}/v1`, 'gw', { gatewayClassName: 'weft', listeners });
}

function tcpRoute(name: string, parentRefs: unknown[], backendRefs: unknown[], metadata: Record<string, unknown> = {}) {
  return object('TCPRoute', `${GROUP}/v1alpha2`, name, { parentRefs, rules: [{ backendRefs }] }, metadata);
}

function tlsRoute(name: string, hostnames: string[], backendRefs: unknown[]) {
  return object('TLSRoute', `${GROUP}/v1alpha3`, name, { parentRefs: [{ name: 'gw', sectionName: 'tls' }], hostnames, rules: [{ backendRefs }] });
}

const gatewayNode: NodeInfo = { id: `${NS}/gw`, mode: 'gateway', namespace: NS, address: '127.0.0.1', tunnelPort: 1, appPorts: [], gateway: `${NS}/gw`, workload: 'gw.gateway' };
const sidecarNode = (namespace = NS): NodeInfo => ({ id: `${namespace}/c`, mode: 'sidecar', namespace, address: '127.0.0.1', tunnelPort: 1, appPorts: [] });

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

function conditions(statuses: Map<string, unknown>, key: string): [string, string, string][][] {
  const status = statuses.get(key) as { parents: { conditions: { type: string; status: string; reason: string }[] }[] } | undefined;
  return (status?.parents ?? []).map((p) => p.conditions.map((c) => [c.type, c.status, c.reason]));
}

test('schemas: TCPRoute and TLSRoute validate; a rule without backendRefs is refused with the field named', () => {
  const ok = validateResource({ apiVersion: `${GROUP}/v1alpha2`, kind: 'TCPRoute', metadata: { name: 'r', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 's', port: 1 }] }] } });
  assert.ok(ok.ok, JSON.stringify(ok));
  const bad = validateResource({ apiVersion: `${GROUP}/v1alpha3`, kind: 'TLSRoute', metadata: { name: 'r', namespace: NS }, spec: { rules: [{ backendRefs: [] }] } });
  assert.ok(!bad.ok);
  assert.match(JSON.stringify(bad), /backendRefs/);
});

test('gateway: a TCP listener gets its TCPRoute’s weighted backends; a TLS listener one virtual host per SNI name, exact before wildcard', () => {
  const compilerInput = input({
    services: [tcpService('a'), tcpService('b'), tcpService('tls-a', 8443, 'tls'), tcpService('tls-any', 8443, 'tls')],
    workloads: [endpointOf('a', 1001), endpointOf('b', 1002), endpointOf('tls-a', 1003), endpointOf('tls-any', 1004)],
    gateways: [gateway([
      { name: 'tcp', port: 9000, protocol: 'TCP' },
      { name: 'tls', port: 9443, protocol: 'TLS', tls: { mode: 'Passthrough' } },
    ])],
    tcpRoutes: [tcpRoute('split', [{ name: 'gw', sectionName: 'tcp' }], [{ name: 'a', port: 7000, weight: 80 }, { name: 'b', port: 7000, weight: 20 }])],
    tlsRoutes: [tlsRoute('wild', ['*.example'], [{ name: 'tls-any', port: 8443 }]), tlsRoute('exact', ['a.example'], [{ name: 'tls-a', port: 8443 }])],
  });
  const snapshot = compile(compilerInput, gatewayNode);
  assert.deepEqual(checkSnapshot(snapshot), []);
  const ports = snapshot.gateway!.ports;
  assert.deepEqual(ports.map((p) => [p.port, p.protocol]), [[9000, 'TCP'], [9443, 'TLS']]);
  const tcpHosts = ports[0]!.listeners[0]!.hosts;
  assert.deepEqual(tcpHosts.map((h) => h.hostname), ['*']);
  assert.deepEqual(snapshot.routes[tcpHosts[0]!.routeKey]!.rules[0]!.backends.map((b) => [b.backend, b.weight]), [['edge/a:7000', 80], ['edge/b:7000', 20]]);
  const tlsHosts = ports[1]!.listeners[0]!.hosts;
  assert.deepEqual(tlsHosts.map((h) => h.hostname), ['a.example', '*.example']);
  assert.equal(snapshot.routes[tlsHosts[0]!.routeKey]!.rules[0]!.backends[0]!.backend, 'edge/tls-a:8443');

  const statuses = computeStatuses(compilerInput);
  assert.deepEqual(conditions(statuses, `${GROUP}/TCPRoute/${NS}/split`), [[['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'True', 'ResolvedRefs']]]);
  const gw = statuses.get(`${GROUP}/Gateway/${NS}/gw`) as { listeners: { name: string; attachedRoutes: number; supportedKinds: { kind: string }[] }[] };
  assert.deepEqual(gw.listeners.map((l) => [l.name, l.attachedRoutes, l.supportedKinds.map((k) => k.kind)]), [['tcp', 1, ['TCPRoute']], ['tls', 2, ['TLSRoute']]]);
});

test('gateway: a TLS listener must pass through; a second TCPRoute on a TCP listener is refused; unresolved backends are reported', () => {
  const compilerInput = input({
    services: [tcpService('a')],
    workloads: [endpointOf('a', 1001)],
    gateways: [gateway([
      { name: 'tcp', port: 9000, protocol: 'TCP' },
      { name: 'tls', port: 9443, protocol: 'TLS', tls: { mode: 'Terminate' } },
    ])],
    tcpRoutes: [
      tcpRoute('first', [{ name: 'gw', sectionName: 'tcp' }], [{ name: 'a', port: 7000 }], { creationTimestamp: '2026-01-01T00:00:00Z' }),
      tcpRoute('second', [{ name: 'gw', sectionName: 'tcp' }], [{ name: 'missing', port: 7000 }, { name: 'a' }], { creationTimestamp: '2026-01-02T00:00:00Z' }),
      // An HTTPRoute-only listener kind: a TCPRoute is not allowed on the TLS listener.
      tcpRoute('wrong-listener', [{ name: 'gw', sectionName: 'tls' }], [{ name: 'a', port: 7000 }]),
    ],
  });
  const statuses = computeStatuses(compilerInput);
  const gw = statuses.get(`${GROUP}/Gateway/${NS}/gw`) as { listeners: { name: string; conditions: { type: string; status: string; reason: string }[] }[] };
  const tls = gw.listeners.find((l) => l.name === 'tls')!;
  const tlsAccepted = tls.conditions.find((c) => c.type === 'Accepted')!;
  assert.deepEqual([tlsAccepted.status, tlsAccepted.reason], ['False', 'UnsupportedValue']);
  const second = conditions(statuses, `${GROUP}/TCPRoute/${NS}/second`)[0]!;
  assert.deepEqual(second[0], ['Accepted', 'False', 'NotAllowedByListeners']);
  assert.deepEqual(second[1], ['ResolvedRefs', 'False', 'BackendNotFound']);
  assert.deepEqual(conditions(statuses, `${GROUP}/TCPRoute/${NS}/wrong-listener`)[0]![0], ['Accepted', 'False', 'NotAllowedByListeners']);
  const snapshot = compile(compilerInput, gatewayNode);
  assert.deepEqual(snapshot.gateway!.ports.map((p) => p.port), [9000], 'the Terminate TLS listener is not served');
  const table = snapshot.routes[snapshot.gateway!.ports[0]!.listeners[0]!.hosts[0]!.routeKey]!;
  assert.deepEqual(table.rules[0]!.backends.map((b) => b.backend), ['edge/a:7000'], 'the older route carries the listener');
});

test('mesh: a TCPRoute on a Service’s TCP port gives its connections the route’s backends; consumers override producers for their namespace', () => {
  const compilerInput = input({
    services: [tcpService('db'), tcpService('db-v2'), tcpService('db-canary'), object('Service', 'v1', 'web', { selector: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }] })],
    workloads: [endpointOf('db', 1001), endpointOf('db-v2', 1002), endpointOf('db-canary', 1003)],
    tcpRoutes: [
      tcpRoute('db-split', [{ group: '', kind: 'Service', name: 'db' }], [{ name: 'db', port: 7000, weight: 90 }, { name: 'db-v2', port: 7000, weight: 10 }]),
      object('TCPRoute', `${GROUP}/v1alpha2`, 'mine', { parentRefs: [{ kind: 'Service', name: 'db', namespace: NS }], rules: [{ backendRefs: [{ name: 'db-canary', namespace: NS, port: 7000 }] }] }, { namespace: 'team' }),
      tcpRoute('on-http', [{ kind: 'Service', name: 'web', port: 80 }], [{ name: 'db', port: 7000 }]),
    ],
  });
  const own = compile(compilerInput, sidecarNode());
  assert.deepEqual(checkSnapshot(own), []);
  assert.deepEqual(own.routes['edge/db:7000']!.rules[0]!.backends.map((b) => [b.backend, b.weight]), [['edge/db:7000', 90], ['edge/db-v2:7000', 10]]);
  const team = compile(compilerInput, sidecarNode('team'));
  // The consumer route needs a ReferenceGrant for its cross-namespace backend: it is reported, and its share refused.
  assert.deepEqual(team.routes['edge/db:7000']!.rules[0]!.backends.map((b) => b.backend), [undefined]);
  const statuses = computeStatuses(compilerInput);
  assert.deepEqual(conditions(statuses, `${GROUP}/TCPRoute/team/mine`)[0], [['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'False', 'RefNotPermitted']]);
  assert.deepEqual(conditions(statuses, `${GROUP}/TCPRoute/${NS}/on-http`)[0]![0], ['Accepted', 'False', 'NoMatchingParent']);
  assert.deepEqual(own.routes['edge/web:80']!.rules[0]!.backends.map((b) => b.backend), ['edge/web:80'], 'an HTTP port keeps its own table');
});

test('mesh: TLSRoutes on a TLS Service port become SNI rules, most specific first, with a TCPRoute as the catch-all', () => {
  const tlsRouteOn = (name: string, hostnames: string[], backend: string) =>
    object('TLSRoute', `${GROUP}/v1alpha2`, name, { parentRefs: [{ kind: 'Service', name: 'secure' }], hostnames, rules: [{ backendRefs: [{ name: backend, port: 8443 }] }] });
  const compilerInput = input({
    services: [tcpService('secure', 8443, 'tls'), tcpService('a', 8443, 'tls'), tcpService('any', 8443, 'tls'), tcpService('rest', 8443, 'tcp')],
    workloads: [endpointOf('a', 1001), endpointOf('any', 1002), endpointOf('rest', 1003)],
    tlsRoutes: [tlsRouteOn('wild', ['*.example'], 'any'), tlsRouteOn('exact', ['a.example'], 'a')],
    tcpRoutes: [tcpRoute('rest', [{ kind: 'Service', name: 'secure' }], [{ name: 'rest', port: 8443 }])],
  });
  const snapshot = compile(compilerInput, sidecarNode());
  assert.deepEqual(checkSnapshot(snapshot), []);
  assert.deepEqual(
    snapshot.routes['edge/secure:8443']!.rules.map((r) => [r.sni, r.backends[0]!.backend]),
    [['a.example', 'edge/a:8443'], ['*.example', 'edge/any:8443'], [undefined, 'edge/rest:8443']],
  );
});

test('MeshConfig protocolDetectionTimeout reaches every snapshot’s mesh part in milliseconds; unset, nothing is added', () => {
  const meshConfig = { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default', generation: 1 }, spec: { trustDomain: 'cluster.local', protocolDetectionTimeout: '250ms' } } as never;
  assert.equal(compile(input({ meshConfig }), sidecarNode()).mesh.protocolDetectionTimeoutMs, 250);
  assert.equal('protocolDetectionTimeoutMs' in compile(input({}), sidecarNode()).mesh, false);
});
