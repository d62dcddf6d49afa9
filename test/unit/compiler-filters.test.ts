// Unit tests of the compiler's HTTPRoute filters, retries and timeouts: what compiles, what the Gateway API forbids, and the statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPRoute, HTTPRouteRule, HTTPRouteSpec, Service } from '../../src/api/resources.ts';
import { parseOriginPattern, type HttpRouteRule, type NodeInfo, type ProxySnapshot } from '../../src/api/snapshot.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, HTTPRouteStatus } from '../../src/compiler/types.ts';

function svc(ns: string, name: string, ports: number[] = [80]): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, generation: 1 },
    spec: { selector: { app: name }, ports: ports.map((port) => ({ protocol: 'TCP' as const, port })) },
  };
}

function rt(name: string, rules: Partial<HTTPRouteRule>[], ns = 'mesh'): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation: 3, creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', namespace: 'mesh' }], rules } as HTTPRouteSpec,
  };
}

const services = [svc('mesh', 'echo'), svc('mesh', 'echo-v1'), svc('mesh', 'echo-v2', [80, 8080]), svc('other', 'elsewhere')];

function input(routes: HTTPRoute[]): CompilerInput {
  return { services, workloads: [], httpRoutes: routes, namespaces: [] };
}

const node: NodeInfo = { id: 'mesh/client-1', mode: 'sidecar', namespace: 'mesh', address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };

function snapshotOf(...routes: HTTPRoute[]): ProxySnapshot {
  const s = compile(input(routes), node);
  assert.deepEqual(checkSnapshot(s), []);
  return s;
}

/** The compiled rule whose path match has this value. */
function ruleAt(s: ProxySnapshot, path: string): HttpRouteRule | undefined {
  return s.routes['mesh/echo:80']!.rules.find((r) => r.match.path?.value === path);
}

function statusOf(route: HTTPRoute, ...others: HTTPRoute[]): Record<string, [string, string, string]> {
  const statuses = computeStatuses(input([route, ...others]));
  const status = statuses.get(`gateway.networking.k8s.io/HTTPRoute/${route.metadata.namespace}/${route.metadata.name}`) as HTTPRouteStatus;
  return Object.fromEntries(status.parents[0]!.conditions.map((c) => [c.type, [c.status, c.reason, c.message] as [string, string, string]]));
}

const prefix = (value: string) => [{ path: { type: 'PathPrefix' as const, value } }];
const toV1 = [{ name: 'echo-v1', port: 80, weight: 1 }];

test('RequestRedirect: status 302 by default, host name lower-cased, scheme, port and both path modifiers', () => {
  const route = rt('redirects', [
    { matches: prefix('/plain'), filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'Example.ORG', statusCode: 302 } }] },
    {
      matches: prefix('/all/'),
      filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', port: 8443, statusCode: 308, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }],
    },
    { matches: prefix('/full'), filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 303, path: { type: 'ReplaceFullPath', replaceFullPath: '/elsewhere' } } }] },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(ruleAt(s, '/plain')!.filters, [{ type: 'RequestRedirect', redirect: { statusCode: 302, hostname: 'example.org' } }]);
  assert.deepEqual(ruleAt(s, '/all')!.filters, [
    { type: 'RequestRedirect', redirect: { statusCode: 308, scheme: 'https', port: 8443, path: { type: 'ReplacePrefixMatch', value: '/new' } } },
  ]);
  assert.deepEqual(ruleAt(s, '/full')!.filters, [{ type: 'RequestRedirect', redirect: { statusCode: 303, path: { type: 'ReplaceFullPath', value: '/elsewhere' } } }]);
  assert.deepEqual(ruleAt(s, '/full')!.backends, [], 'a redirect rule has no backends');
  assert.deepEqual(statusOf(route).PartiallyInvalid, undefined);
  assert.equal(statusOf(route).Accepted![0], 'True');
});

test('URLRewrite on a rule and on a backendRef; header modifiers beside them', () => {
  const route = rt('rewrites', [
    {
      matches: prefix('/prefix/one'),
      filters: [
        { type: 'URLRewrite', urlRewrite: { hostname: 'one.example.org', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/one' } } },
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-A', value: '1' }] } },
      ],
      backendRefs: toV1,
    },
    {
      matches: prefix('/b'),
      backendRefs: [{ name: 'echo-v1', port: 80, weight: 1, filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/x' } } }] }],
    },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(ruleAt(s, '/prefix/one')!.filters, [
    { type: 'URLRewrite', rewrite: { hostname: 'one.example.org', path: { type: 'ReplacePrefixMatch', value: '/one' } } },
    { type: 'RequestHeaderModifier', modifier: { set: [{ name: 'x-a', value: '1' }] } },
  ]);
  assert.deepEqual(ruleAt(s, '/b')!.backends[0]!.filters, [{ type: 'URLRewrite', rewrite: { path: { type: 'ReplaceFullPath', value: '/x' } } }]);
});

test('the Gateway API filter rules: each broken rule is dropped and named, the others serve', () => {
  const redirect = { type: 'RequestRedirect' as const, requestRedirect: { statusCode: 302 as const } };
  const rewritePrefix = { type: 'URLRewrite' as const, urlRewrite: { path: { type: 'ReplacePrefixMatch' as const, replacePrefixMatch: '/x' } } };
  const route = rt('rules', [
    { matches: prefix('/ok'), backendRefs: toV1 },
    { matches: prefix('/redirect-and-backends'), filters: [redirect], backendRefs: toV1 },
    { matches: prefix('/redirect-and-rewrite'), filters: [redirect, { type: 'URLRewrite', urlRewrite: { hostname: 'a.b' } }] },
    { matches: prefix('/twice'), filters: [redirect, redirect] },
    { matches: [{ path: { type: 'Exact', value: '/exact' } }], filters: [rewritePrefix], backendRefs: toV1 },
    { matches: [...prefix('/two'), ...prefix('/matches')], filters: [rewritePrefix], backendRefs: toV1 },
    { matches: [{ path: { type: 'Exact', value: '/exact-backend' } }], backendRefs: [{ ...toV1[0]!, filters: [rewritePrefix] }] },
    { matches: prefix('/stray'), filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 302 }, urlRewrite: { hostname: 'a' } }] },
    { matches: prefix('/missing'), filters: [{ type: 'URLRewrite' }] },
    { matches: prefix('/bad-path'), filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replacePrefixMatch: '/x' } } }], backendRefs: toV1 },
    { matches: prefix('/bad-host'), filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'a.b:80' } }], backendRefs: toV1 },
    { matches: prefix('/mirror-both'), filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 80 }, percent: 5, fraction: { numerator: 1, denominator: 2 } } }], backendRefs: toV1 },
    { matches: prefix('/fraction'), filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 80 }, fraction: { numerator: 3, denominator: 2 } } }], backendRefs: toV1 },
    { matches: prefix('/cors'), filters: [{ type: 'CORS', cors: { allowOrigins: ['*', 'https://a.example'], allowMethods: ['GET', 'FETCH'] } }], backendRefs: toV1 },
    { matches: prefix('/timeouts'), timeouts: { request: '1s', backendRequest: '2s' }, backendRefs: toV1 },
    { matches: prefix('/backoff'), retry: { attempts: 2, backoff: '1.5s' }, backendRefs: toV1 },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(
    s.routes['mesh/echo:80']!.rules.map((r) => r.match.path?.value),
    ['/ok'],
    'only the valid rule is served',
  );
  const [status, reason, message] = statusOf(route).PartiallyInvalid!;
  assert.equal(status, 'True');
  assert.equal(reason, 'UnsupportedValue');
  for (const expected of [
    /rules\[1\]: a RequestRedirect filter must not be used together with backendRefs/,
    /rules\[2\]\.filters: RequestRedirect and URLRewrite cannot be used together/,
    /rules\[3\]\.filters\[1\]: RequestRedirect filter cannot be repeated/,
    /rules\[4\]\.filters\[0\]\.urlRewrite\.path: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix/,
    /rules\[5\]\.filters\[0\]\.urlRewrite\.path: ReplacePrefixMatch needs/,
    /rules\[6\]\.backendRefs\[0\]\.filters\[0\]\.urlRewrite\.path: ReplacePrefixMatch needs/,
    /rules\[7\]\.filters\[0\]: filter\.urlRewrite must not be set when the filter type is RequestRedirect/,
    /rules\[8\]\.filters\[0\]: filter type URLRewrite needs urlRewrite/,
    /rules\[9\]\.filters\[0\]\.urlRewrite\.path: replaceFullPath must be set/,
    /rules\[10\]\.filters\[0\]\.urlRewrite\.hostname: "a\.b:80" is not a host name/,
    /rules\[11\]\.filters\[0\]\.requestMirror: only one of percent and fraction may be set/,
    /rules\[12\]\.filters\[0\]\.requestMirror\.fraction: the numerator \(3\) must not exceed the denominator \(2\)/,
    /rules\[13\]\.filters\[0\]\.cors\.allowOrigins: "\*" cannot be listed with other values/,
    /rules\[13\]\.filters\[0\]\.cors\.allowMethods: "FETCH" is not an HTTP method/,
    /rules\[14\]\.timeouts: backendRequest \(2s\) cannot be longer than request \(1s\)/,
    /rules\[15\]\.retry\.backoff: "1\.5s" is not a Gateway API duration/,
  ]) {
    assert.match(message, expected);
  }
});

test('RequestMirror: percent, fraction as a percentage, several mirrors; an unresolved mirror is left out and reported', () => {
  const route = rt('mirrors', [
    {
      matches: prefix('/m'),
      filters: [
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 8080 } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 80 }, percent: 20 } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 80 }, fraction: { numerator: 25, denominator: 50 } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'missing', port: 80 } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'elsewhere', namespace: 'other', port: 80 } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2' } } },
      ],
      backendRefs: toV1,
    },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(ruleAt(s, '/m')!.filters, [
    { type: 'RequestMirror', mirror: { percent: 100, backend: 'mesh/echo-v2:8080' } },
    { type: 'RequestMirror', mirror: { percent: 20, backend: 'mesh/echo-v2:80' } },
    { type: 'RequestMirror', mirror: { percent: 50, backend: 'mesh/echo-v2:80' } },
    { type: 'RequestMirror', mirror: { percent: 100 } },
    { type: 'RequestMirror', mirror: { percent: 100 } },
    { type: 'RequestMirror', mirror: { percent: 100 } },
  ]);
  const status = statusOf(route);
  assert.equal(status.Accepted![0], 'True', 'the rule still serves');
  assert.equal(status.ResolvedRefs![0], 'False');
  assert.equal(status.ResolvedRefs![1], 'BackendNotFound');
  assert.match(status.ResolvedRefs![2], /requestMirror\.backendRef: Service mesh\/missing does not exist/);
  assert.match(status.ResolvedRefs![2], /Service other\/elsewhere is in another namespace and no ReferenceGrant allows it/);
  assert.match(status.ResolvedRefs![2], /the mirror to Service mesh\/echo-v2 needs a port/);
});

test('CORS: origins, methods and headers compile; maxAge defaults to 5 seconds', () => {
  const route = rt('cors', [
    {
      matches: prefix('/c'),
      filters: [
        {
          type: 'CORS',
          cors: { allowOrigins: ['https://www.foo.com', 'HTTPS://*.Bar.com'], allowMethods: ['GET', 'OPTIONS'], allowHeaders: ['X-Header-1'], exposeHeaders: ['X-Header-3'], allowCredentials: true },
        },
      ],
      backendRefs: toV1,
    },
  ]);
  assert.deepEqual(ruleAt(snapshotOf(route), '/c')!.filters, [
    {
      type: 'CORS',
      cors: {
        allowOrigins: ['https://www.foo.com', 'https://*.bar.com'],
        allowCredentials: true,
        allowMethods: ['GET', 'OPTIONS'],
        allowHeaders: ['x-header-1'],
        exposeHeaders: ['x-header-3'],
        maxAgeSeconds: 5,
      },
    },
  ]);
  assert.deepEqual(parseOriginPattern('https://*.bar.com'), { scheme: 'https', host: '.bar.com', wildcard: true, port: 443 });
  assert.deepEqual(parseOriginPattern('http://foo.com:8080'), { scheme: 'http', host: 'foo.com', wildcard: false, port: 8080 });
  assert.deepEqual(parseOriginPattern('http://foo.com'), { scheme: 'http', host: 'foo.com', wildcard: false, port: 80 });
  for (const bad of ['ftp://a.com', 'https://a.*.com', 'https://', 'https://a.com/path', 'a.com', 'https://a..com']) assert.equal(parseOriginPattern(bad), undefined, bad);
});

test('retry: codes sorted and unique, attempts and backoff defaulted; zero attempts kept as "no retries"', () => {
  const route = rt('retries', [
    { matches: prefix('/r1'), retry: { codes: [503, 500, 503], attempts: 3, backoff: '100ms' }, backendRefs: toV1 },
    { matches: prefix('/r2'), retry: {}, backendRefs: toV1 },
    { matches: prefix('/r3'), retry: { attempts: 0 }, timeouts: { request: '0s', backendRequest: '5s' }, backendRefs: toV1 },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(ruleAt(s, '/r1')!.retry, { codes: [500, 503], attempts: 3, backoffMs: 100 });
  assert.deepEqual(ruleAt(s, '/r2')!.retry, { codes: [], attempts: 1, backoffMs: 25 });
  assert.deepEqual(ruleAt(s, '/r3')!.retry, { codes: [], attempts: 0, backoffMs: 25 });
  assert.deepEqual(ruleAt(s, '/r3')!.timeouts, { backendRequestMs: 5000 }, 'a request timeout of 0s is none, so any backendRequest fits under it');
  assert.equal(ruleAt(snapshotOf(rt('plain', [{ matches: prefix('/p'), backendRefs: toV1 }])), '/p')!.retry, undefined);
});

test('a route with every supported filter is Accepted with no rule dropped', () => {
  const route = rt('everything', [
    {
      matches: prefix('/all'),
      filters: [
        { type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'a', value: '1' }] } },
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['b'] } },
        { type: 'URLRewrite', urlRewrite: { hostname: 'x.example' } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'echo-v2', port: 80 }, percent: 10 } },
        { type: 'CORS', cors: { allowOrigins: ['*'] } },
      ],
      backendRefs: [{ name: 'echo-v1', port: 80, weight: 1, filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 307, scheme: 'https' } }] }],
      timeouts: { request: '2s', backendRequest: '500ms' },
      retry: { codes: [502], attempts: 2 },
    },
  ]);
  const status = statusOf(route);
  assert.deepEqual(
    Object.fromEntries(Object.entries(status).map(([type, [s, r]]) => [type, [s, r]])),
    { Accepted: ['True', 'Accepted'], ResolvedRefs: ['True', 'ResolvedRefs'] },
  );
  snapshotOf(route);
});

test('sessionPersistence: Cookie by default with weft-session as its name; a Permanent cookie needs an absolute timeout', () => {
  const route = rt('sessions', [
    { matches: prefix('/default'), sessionPersistence: {}, backendRefs: toV1 },
    {
      matches: prefix('/cookie'),
      sessionPersistence: { sessionName: 'app-session', absoluteTimeout: '1h', idleTimeout: '10m', cookieConfig: { lifetimeType: 'Permanent' } },
      backendRefs: toV1,
    },
    { matches: prefix('/header'), sessionPersistence: { type: 'Header', sessionName: 'X-Session' }, backendRefs: toV1 },
    { matches: prefix('/permanent-forever'), sessionPersistence: { cookieConfig: { lifetimeType: 'Permanent' } }, backendRefs: toV1 },
    { matches: prefix('/header-cookie'), sessionPersistence: { type: 'Header', cookieConfig: { lifetimeType: 'Session' } }, backendRefs: toV1 },
    { matches: prefix('/bad-name'), sessionPersistence: { sessionName: 'a b' }, backendRefs: toV1 },
    { matches: prefix('/bad-type'), sessionPersistence: { type: 'Carrier-Pigeon' }, backendRefs: toV1 },
  ]);
  const s = snapshotOf(route);
  assert.deepEqual(ruleAt(s, '/default')!.sessionPersistence, { type: 'Cookie', name: 'weft-session' });
  assert.deepEqual(ruleAt(s, '/cookie')!.sessionPersistence, {
    type: 'Cookie',
    name: 'app-session',
    absoluteTimeoutMs: 3_600_000,
    idleTimeoutMs: 600_000,
    cookieLifetime: 'Permanent',
  });
  assert.deepEqual(ruleAt(s, '/header')!.sessionPersistence, { type: 'Header', name: 'X-Session' });
  const message = statusOf(route).PartiallyInvalid![2];
  assert.match(message, /rules\[3\]\.sessionPersistence: a Permanent cookie needs an absoluteTimeout/);
  assert.match(message, /rules\[4\]\.sessionPersistence\.cookieConfig: only a Cookie session has a cookie to configure/);
  assert.match(message, /rules\[5\]\.sessionPersistence\.sessionName: "a b" is not a valid cookie or header name/);
  assert.match(message, /rules\[6\]\.sessionPersistence\.type: "Carrier-Pigeon" is not Cookie or Header/);
});
