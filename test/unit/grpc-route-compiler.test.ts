// Unit tests of GRPCRoute: validation, compilation to route rules, GRPCRoute precedence, h2c backends, status and conflicts with HTTPRoutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition } from '../../src/api/meta.ts';
import type { Gateway, GatewayListener, GRPCRoute, GRPCRouteSpec, HTTPRoute, HTTPRouteSpec, Service } from '../../src/api/resources.ts';
import { gatewayWorkloadName, type NodeInfo, type ProxySnapshot, type RouteTable } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, GatewayStatus, HTTPRouteStatus } from '../../src/compiler/types.ts';
import { compileMatch } from '../../src/proxy/layers/route/match.ts';
import type { HttpExchange } from '../../src/proxy/exchange.ts';

const GROUP = 'gateway.networking.k8s.io';
const ECHO = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

function svc(ns: string, name: string, port: Partial<Service['spec']['ports'][number]> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, generation: 1 },
    spec: { selector: { app: name }, ports: [{ protocol: 'TCP', port: 8080, ...port }] },
  };
}

function gateway(ns: string, name: string, listeners: Partial<GatewayListener>[]): Gateway {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'Gateway',
    metadata: { name, namespace: ns, generation: 1 },
    spec: { gatewayClassName: 'weft', listeners: listeners.map((l, i) => ({ name: `l${i}`, port: 80, protocol: 'HTTP', ...l })) as GatewayListener[] },
  };
}

function grpcRoute(ns: string, name: string, spec: unknown, creationTimestamp = '2024-01-01T00:00:00Z'): GRPCRoute {
  const checked = validateResource({ apiVersion: `${GROUP}/v1`, kind: 'GRPCRoute', metadata: { name, namespace: ns }, spec });
  assert.ok(checked.ok, `invalid GRPCRoute: ${JSON.stringify(checked)}`);
  const route = checked.resource as GRPCRoute;
  route.metadata.generation = 2;
  route.metadata.creationTimestamp = creationTimestamp;
  return route;
}

function httpRoute(ns: string, name: string, spec: Partial<HTTPRouteSpec>, creationTimestamp: string): HTTPRoute {
  return { apiVersion: `${GROUP}/v1`, kind: 'HTTPRoute', metadata: { name, namespace: ns, generation: 1, creationTimestamp }, spec: { parentRefs: [], rules: [{}], ...spec } as HTTPRouteSpec };
}

function input(parts: Partial<CompilerInput>): CompilerInput {
  return { services: [], workloads: [], httpRoutes: [], namespaces: [], ...parts };
}

function gatewayNode(key: string): NodeInfo {
  const [ns, name] = key.split('/') as [string, string];
  return { id: `${ns}/gw-1`, mode: 'gateway', namespace: ns, workload: gatewayWorkloadName(name), gateway: key, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };
}

function sidecar(ns: string): NodeInfo {
  return { id: `${ns}/client-1`, mode: 'sidecar', namespace: ns, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };
}

function cond(conditions: Condition[], type: string): Pick<Condition, 'status' | 'reason'> | undefined {
  const c = conditions.find((x) => x.type === type);
  return c ? { status: c.status, reason: c.reason } : undefined;
}

/** The backend the first matching rule sends a gRPC call to, as the proxy's own matcher decides; "none" when no rule matches. */
function pick(table: RouteTable, service: string, method: string, metadata: Record<string, string> = {}, httpMethod = 'POST'): string {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) headers[k.toLowerCase()] = v;
  const ex = { pathname: `/${service}/${method}`, method: httpMethod, req: { headers }, queryParams: new URLSearchParams() } as unknown as HttpExchange;
  for (const rule of table.rules) {
    if (compileMatch(rule.match, rule.id)(ex)) return rule.backends.map((b) => b.backend ?? '(invalid)').join('+') || '(no backends)';
  }
  return 'none';
}

function gatewayTable(s: ProxySnapshot, host = '*'): RouteTable {
  const listener = s.gateway?.ports[0]?.listeners[0];
  const key = listener?.hosts.find((h) => h.hostname === host)?.routeKey;
  assert.ok(key, `no virtual host ${host}: ${JSON.stringify(s.gateway)}`);
  return s.routes[key]!;
}

const v1 = 'infra/grpc-v1:8080';
const v2 = 'infra/grpc-v2:8080';
const backends = [svc('infra', 'grpc-v1', { appProtocol: 'kubernetes.io/h2c' }), svc('infra', 'grpc-v2', { appProtocol: 'kubernetes.io/h2c' })];

test('GRPCRoute validation names the field: a method match needs service or method, exact names must be gRPC names', () => {
  const issues = (spec: unknown) => {
    const result = validateResource({ apiVersion: `${GROUP}/v1`, kind: 'GRPCRoute', metadata: { name: 'r' }, spec });
    return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
  };
  assert.deepEqual(issues({ rules: [{ matches: [{ method: { service: ECHO, method: 'Echo' } }] }] }), []);
  assert.match(issues({ rules: [{ matches: [{ method: {} }] }] }).join('\n'), /spec\.rules\[0\]\.matches\[0\]\.method.*one or both of service and method/);
  assert.match(issues({ rules: [{ matches: [{ method: { service: 'not-a-service' } }] }] }).join('\n'), /spec\.rules\[0\]\.matches\[0\]\.method\.service/);
  assert.match(issues({ rules: [{ matches: [{ method: { method: '9lives' } }] }] }).join('\n'), /matches\[0\]\.method\.method/);
  // Regular expressions are not held to the name syntax.
  assert.deepEqual(issues({ rules: [{ matches: [{ method: { type: 'RegularExpression', service: '.*Echo' } }] }] }), []);
  assert.match(issues({ rules: [{ filters: [{ type: 'URLRewrite', urlRewrite: {} }] }] }).join('\n'), /spec\.rules\[0\]\.filters\[0\]/);
});

test('exact method matches become POST /<service>/<method> rules on the gateway; an unmatched method finds no rule', () => {
  const route = grpcRoute('infra', 'exact', {
    parentRefs: [{ name: 'gw' }],
    rules: [
      { matches: [{ method: { service: ECHO, method: 'Echo' } }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ method: { service: ECHO, method: 'EchoTwo' } }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
    ],
  });
  const data = input({ services: backends, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [route] });
  const s = compile(data, gatewayNode('infra/gw'));
  assert.deepEqual(checkSnapshot(s), []);
  const table = gatewayTable(s);
  assert.deepEqual(table.rules.find((r) => r.id === 'infra/exact/0/0')!.match, { path: { type: 'Exact', value: `/${ECHO}/Echo` }, method: 'POST' });
  assert.equal(pick(table, ECHO, 'Echo'), v1);
  assert.equal(pick(table, ECHO, 'EchoTwo'), v2);
  assert.equal(pick(table, ECHO, 'EchoThree'), 'none');
  assert.equal(pick(table, ECHO, 'Echo', {}, 'GET'), 'none', 'gRPC is POST only');

  const status = computeStatuses(data).get(`${GROUP}/GRPCRoute/infra/exact`) as HTTPRouteStatus;
  assert.equal(status.parents.length, 1);
  assert.deepEqual(cond(status.parents[0]!.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(cond(status.parents[0]!.conditions, 'ResolvedRefs'), { status: 'True', reason: 'ResolvedRefs' });
  const gw = computeStatuses(data).get(`${GROUP}/Gateway/infra/gw`) as GatewayStatus;
  assert.deepEqual(gw.listeners[0]!.supportedKinds.map((k) => k.kind), ['HTTPRoute', 'GRPCRoute'], 'HTTP listeners take GRPCRoutes by default');
  assert.equal(gw.listeners[0]!.attachedRoutes, 1);
});

test('service-only, method-only and regular-expression method matches', () => {
  const route = grpcRoute('infra', 'partial', {
    parentRefs: [{ name: 'gw' }],
    rules: [
      { matches: [{ method: { service: 'other.Svc' } }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ method: { method: 'Ping' } }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
      { matches: [{ method: { type: 'RegularExpression', service: 'regex\\..*', method: 'Get.*' } }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
    ],
  });
  const table = gatewayTable(compile(input({ services: backends, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [route] }), gatewayNode('infra/gw')));
  assert.equal(pick(table, 'other.Svc', 'Anything'), v1);
  assert.equal(pick(table, 'other.SvcX', 'Anything'), 'none', 'a service match is the whole service name');
  assert.equal(pick(table, 'any.Service', 'Ping'), v2);
  assert.equal(pick(table, 'regex.Store', 'GetItem'), v1);
  assert.equal(pick(table, 'regex.Store', 'PutItem'), 'none');
});

test('GRPCRoute precedence: longer exact service, then longer exact method, then more headers, then rule order', () => {
  // The conformance GRPCRouteHeaderMatching manifest: two headers beat one; equal counts keep rule order.
  const headers = grpcRoute('infra', 'headers', {
    parentRefs: [{ name: 'gw' }],
    rules: [
      { matches: [{ headers: [{ name: 'version', value: 'one' }] }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ headers: [{ name: 'version', value: 'two' }] }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
      { matches: [{ headers: [{ name: 'version', value: 'two' }, { name: 'color', value: 'orange' }] }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ headers: [{ name: 'color', value: 'blue' }] }, { headers: [{ name: 'color', value: 'green' }] }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ headers: [{ name: 'color', value: 'red' }] }, { headers: [{ name: 'color', value: 'yellow' }] }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
    ],
  });
  let table = gatewayTable(compile(input({ services: backends, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [headers] }), gatewayNode('infra/gw')));
  assert.equal(pick(table, ECHO, 'Echo', { Version: 'one' }), v1);
  assert.equal(pick(table, ECHO, 'Echo', { Version: 'two' }), v2);
  assert.equal(pick(table, ECHO, 'Echo', { Version: 'two', Color: 'orange' }), v1);
  assert.equal(pick(table, ECHO, 'Echo', { Version: 'two', Color: 'blue' }), v2, 'a tie in header count goes to the earlier rule');
  assert.equal(pick(table, ECHO, 'Echo', { Color: 'blue' }), v1);
  assert.equal(pick(table, ECHO, 'Echo', { Color: 'yellow' }), v2);
  assert.equal(pick(table, ECHO, 'Echo', { Color: 'orange' }), 'none');

  // Across routes: the service match outranks a method-only match with headers, whatever the routes' age.
  const older = grpcRoute('infra', 'a-method-only', {
    parentRefs: [{ name: 'gw' }],
    rules: [{ matches: [{ method: { method: 'Echo' }, headers: [{ name: 'x', value: '1' }] }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] }],
  }, '2020-01-01T00:00:00Z');
  const newer = grpcRoute('infra', 'b-service', {
    parentRefs: [{ name: 'gw' }],
    rules: [
      { matches: [{ method: { service: ECHO } }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { matches: [{ method: { service: ECHO, method: 'Echo' } }], backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
    ],
  }, '2025-01-01T00:00:00Z');
  table = gatewayTable(compile(input({ services: backends, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [newer, older] }), gatewayNode('infra/gw')));
  assert.deepEqual(
    table.rules.map((r) => r.id),
    ['infra/b-service/1/0', 'infra/b-service/0/0', 'infra/a-method-only/0/0'],
  );
  assert.equal(pick(table, ECHO, 'Echo', { x: '1' }), v2);
  assert.equal(pick(table, ECHO, 'EchoTwo', { x: '1' }), v1);
  assert.equal(pick(table, 'other.Svc', 'Echo', { x: '1' }), v2);
});

test('GRPCRoute backends are spoken to in h2c unless their port declares a protocol', () => {
  const route = grpcRoute('infra', 'r', {
    parentRefs: [{ name: 'gw' }],
    rules: [{ backendRefs: [{ name: 'plain', port: 8080 }, { name: 'declared', port: 8080 }, { name: 'named', port: 8080 }] }],
  });
  const services = [svc('infra', 'plain'), svc('infra', 'declared', { appProtocol: 'kubernetes.io/h2c' }), svc('infra', 'named', { name: 'http-web' }), svc('infra', 'untouched')];
  const s = compile(input({ services, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [route] }), gatewayNode('infra/gw'));
  assert.equal(s.backends['infra/plain:8080']!.protocol, 'grpc');
  assert.equal(s.backends['infra/declared:8080']!.protocol, 'http2');
  assert.equal(s.backends['infra/named:8080']!.protocol, 'http', 'a port named http-* declares HTTP');
  assert.equal(s.backends['infra/untouched:8080']!.protocol, 'http', 'ports no GRPCRoute sends to keep their protocol');
  assert.deepEqual(checkSnapshot(s), []);
});

test('listeners that allow only HTTPRoutes refuse GRPCRoutes; hostnames attach as for HTTPRoutes', () => {
  const route = grpcRoute('infra', 'r', { parentRefs: [{ name: 'gw' }], hostnames: ['grpc.example.com'], rules: [{ backendRefs: [{ name: 'grpc-v1', port: 8080 }] }] });
  const onlyHttp = gateway('infra', 'gw', [{ allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }] } }]);
  let status = computeStatuses(input({ services: backends, gateways: [onlyHttp], grpcRoutes: [route] })).get(`${GROUP}/GRPCRoute/infra/r`) as HTTPRouteStatus;
  assert.deepEqual(cond(status.parents[0]!.conditions, 'Accepted'), { status: 'False', reason: 'NotAllowedByListeners' });

  const elsewhere = gateway('infra', 'gw', [{ hostname: 'web.example.com' }]);
  status = computeStatuses(input({ services: backends, gateways: [elsewhere], grpcRoutes: [route] })).get(`${GROUP}/GRPCRoute/infra/r`) as HTTPRouteStatus;
  assert.deepEqual(cond(status.parents[0]!.conditions, 'Accepted'), { status: 'False', reason: 'NoMatchingListenerHostname' });

  const s = compile(input({ services: backends, gateways: [gateway('infra', 'gw', [{ hostname: '*.example.com' }])], grpcRoutes: [route] }), gatewayNode('infra/gw'));
  assert.equal(pick(gatewayTable(s, 'grpc.example.com'), ECHO, 'Echo'), v1);
});

test('an HTTPRoute and a GRPCRoute whose hostnames intersect on one listener: only the older is accepted', () => {
  const gw = gateway('infra', 'gw', [{}]);
  const grpc = grpcRoute('infra', 'grpc', { parentRefs: [{ name: 'gw' }], hostnames: ['api.example.com'], rules: [{ backendRefs: [{ name: 'grpc-v1', port: 8080 }] }] }, '2024-06-01T00:00:00Z');
  const web = httpRoute('infra', 'web', { parentRefs: [{ name: 'gw' }], hostnames: ['*.example.com'], rules: [{ backendRefs: [{ name: 'grpc-v2', port: 8080, weight: 1 }] }] }, '2024-01-01T00:00:00Z');
  const data = input({ services: backends, gateways: [gw], grpcRoutes: [grpc], httpRoutes: [web] });
  const statuses = computeStatuses(data);
  const grpcStatus = statuses.get(`${GROUP}/GRPCRoute/infra/grpc`) as HTTPRouteStatus;
  const webStatus = statuses.get(`${GROUP}/HTTPRoute/infra/web`) as HTTPRouteStatus;
  assert.deepEqual(cond(webStatus.parents[0]!.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(cond(grpcStatus.parents[0]!.conditions, 'Accepted'), { status: 'False', reason: 'NotAllowedByListeners' });
  assert.match(grpcStatus.parents[0]!.conditions[0]!.message, /HTTPRoute infra\/web/);
  assert.equal((statuses.get(`${GROUP}/Gateway/infra/gw`) as GatewayStatus).listeners[0]!.attachedRoutes, 1);
  const s = compile(data, gatewayNode('infra/gw'));
  assert.deepEqual(s.gateway!.ports[0]!.listeners[0]!.hosts.map((h) => h.hostname), ['*.example.com']);

  // Hostnames that do not intersect: both serve.
  const apart = httpRoute('infra', 'web', { parentRefs: [{ name: 'gw' }], hostnames: ['www.example.org'], rules: [{ backendRefs: [{ name: 'grpc-v2', port: 8080, weight: 1 }] }] }, '2024-01-01T00:00:00Z');
  const both = computeStatuses(input({ services: backends, gateways: [gw], grpcRoutes: [grpc], httpRoutes: [apart] }));
  assert.deepEqual(cond((both.get(`${GROUP}/GRPCRoute/infra/grpc`) as HTTPRouteStatus).parents[0]!.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
});

test('mesh (GAMMA): a GRPCRoute on a Service port routes its callers, filters and weights included', () => {
  const services = [svc('mesh', 'echo', { name: 'grpc', port: 7070 }), svc('mesh', 'echo-v1', { name: 'grpc', port: 7070 }), svc('mesh', 'echo-v2', { name: 'grpc', port: 7070 })];
  const route = grpcRoute('mesh', 'split', {
    parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 7070 }],
    rules: [
      {
        matches: [{ headers: [{ name: 'x-test-case', value: 'set' }] }],
        filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Header-Set', value: 'v' }] } }],
        backendRefs: [{ name: 'echo-v1', port: 7070 }],
      },
      { backendRefs: [{ name: 'echo-v1', port: 7070, weight: 70 }, { name: 'echo-v2', port: 7070, weight: 30 }, { name: 'echo-v3', port: 7070, weight: 0 }] },
    ],
  });
  const data = input({ services, grpcRoutes: [route] });
  const s = compile(data, sidecar('mesh'));
  assert.deepEqual(checkSnapshot(s), []);
  const table = s.routes['mesh/echo:7070']!;
  assert.equal(pick(table, 'any.Svc', 'Call', { 'x-test-case': 'set' }), 'mesh/echo-v1:7070');
  assert.deepEqual(table.rules[0]!.filters, [{ type: 'RequestHeaderModifier', modifier: { set: [{ name: 'x-header-set', value: 'v' }] } }]);
  assert.deepEqual(table.rules[1]!.backends.map((b) => [b.backend, b.weight]), [['mesh/echo-v1:7070', 70], ['mesh/echo-v2:7070', 30]]);

  const status = computeStatuses(data).get(`${GROUP}/GRPCRoute/mesh/split`) as HTTPRouteStatus;
  assert.deepEqual(cond(status.parents[0]!.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  assert.deepEqual(cond(status.parents[0]!.conditions, 'ResolvedRefs'), { status: 'False', reason: 'BackendNotFound' }, 'echo-v3 does not exist');

  // An older HTTPRoute on the same port keeps it; the GRPCRoute is not accepted there.
  const web = httpRoute('mesh', 'web', { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 7070 }], rules: [{ backendRefs: [{ name: 'echo-v2', port: 7070, weight: 1 }] }] }, '2023-01-01T00:00:00Z');
  const mixed = input({ services, grpcRoutes: [route], httpRoutes: [web] });
  const conflicted = computeStatuses(mixed).get(`${GROUP}/GRPCRoute/mesh/split`) as HTTPRouteStatus;
  assert.deepEqual(cond(conflicted.parents[0]!.conditions, 'Accepted'), { status: 'False', reason: 'NotAllowedByListeners' });
  assert.deepEqual(compile(mixed, sidecar('mesh')).routes['mesh/echo:7070']!.rules.map((r) => r.id), ['mesh/web/0/0']);
});

test('a rule with an invalid method regular expression is dropped and named in the status', () => {
  const route = grpcRoute('infra', 'bad', {
    parentRefs: [{ name: 'gw' }],
    rules: [
      { matches: [{ method: { type: 'RegularExpression', service: '(' } }], backendRefs: [{ name: 'grpc-v1', port: 8080 }] },
      { backendRefs: [{ name: 'grpc-v2', port: 8080 }] },
    ],
  });
  const data = input({ services: backends, gateways: [gateway('infra', 'gw', [{}])], grpcRoutes: [route] });
  const status = computeStatuses(data).get(`${GROUP}/GRPCRoute/infra/bad`) as HTTPRouteStatus;
  assert.deepEqual(cond(status.parents[0]!.conditions, 'Accepted'), { status: 'True', reason: 'Accepted' });
  const partly = status.parents[0]!.conditions.find((c) => c.type === 'PartiallyInvalid');
  assert.match(partly?.message ?? '', /rules\[0\]\.matches\[0\]\.method\.service: invalid regular expression/);
  const table = gatewayTable(compile(data, gatewayNode('infra/gw')));
  assert.equal(pick(table, ECHO, 'Echo'), v2);
});

test('a gRPC call routed to an invalid backend (or a rule without backends) is UNAVAILABLE, where HTTP gets 500', async () => {
  const [{ ErrorCodes }, { grpcStatusOf, proxyError, statusOf }] = await Promise.all([import('../../src/api/errors.ts'), import('../../src/proxy/errors.ts')]);
  const error = proxyError(ErrorCodes.BACKEND_NOT_FOUND, 'rule r has no backends', 500);
  assert.equal(statusOf(error), 500);
  assert.equal(grpcStatusOf(error), 14);
  assert.equal(grpcStatusOf(proxyError(ErrorCodes.NO_ROUTE, 'no route')), 12, 'no matching rule: UNIMPLEMENTED');
});
