// The conformance harness's judging rules (upstream's CompareRoundTrip, AwaitConvergence, weights, status), without processes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { objectPath } from './api.ts';
import type { Captured, EchoBody } from './client.ts';
import { awaitConvergence, compareRoundTrip, deploymentOfPod, judgeDistribution, parseLocation, prepare, type PreparedRequest } from './evaluate.ts';
import type { Check, CheckExpect } from './model.ts';
import { judgeStatus, patched } from './status.ts';

function echoed(fields: Partial<Omit<EchoBody, 'headers'>> & { headers?: Record<string, string[]> } = {}, responseHeaders: [string, string][] = []): Captured {
  const echo: EchoBody = {
    path: fields.path ?? '/',
    host: fields.host ?? 'echo',
    method: fields.method ?? 'GET',
    headers: new Map(Object.entries(fields.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    namespace: fields.namespace ?? 'gateway-conformance-mesh',
    pod: fields.pod ?? 'echo-v1-7d9f8c5b4-x2k9q',
  };
  const headers = new Map<string, string[]>([['content-type', ['application/json']]]);
  for (const [name, value] of responseHeaders) headers.set(name.toLowerCase(), [...(headers.get(name.toLowerCase()) ?? []), value]);
  return { status: 200, headers, contentType: 'application/json', body: '{}', echo };
}

function answer(status: number, headers: [string, string][] = [], body = ''): Captured {
  const map = new Map<string, string[]>();
  for (const [name, value] of headers) map.set(name.toLowerCase(), [...(map.get(name.toLowerCase()) ?? []), value]);
  return { status, headers: map, contentType: map.get('content-type')?.[0] ?? '', body };
}

const request: PreparedRequest = { scheme: 'http', method: 'GET', authority: 'echo', path: '/?a=1', headers: { Host: 'echo' }, followRedirects: true };

describe('compareRoundTrip', () => {
  it('treats 408 and 504 as the same timeout code and checks nothing else for other codes', () => {
    assert.equal(compareRoundTrip('gateway', request, { status: 504 }, answer(408)), undefined);
    assert.equal(compareRoundTrip('gateway', request, { status: 408 }, answer(504)), undefined);
    assert.match(compareRoundTrip('gateway', request, { status: 500 }, answer(503)) ?? '', /expected status 500, got 503/);
    assert.equal(compareRoundTrip('mesh', request, { status: 404, backend: 'x/y' }, answer(404)), undefined);
  });

  it('defaults the expected path to the request-URI for gateways only', () => {
    const atRoot = echoed({ path: '/' });
    assert.match(compareRoundTrip('gateway', request, { backend: 'gateway-conformance-mesh/echo-v1' }, atRoot) ?? '', /path "\/\?a=1"/);
    assert.equal(compareRoundTrip('mesh', request, { backend: 'gateway-conformance-mesh/echo-v1' }, atRoot), undefined);
    assert.match(compareRoundTrip('mesh', request, { backend: 'gateway-conformance-mesh/echo-v1', backendRequest: { path: '/x' } }, atRoot) ?? '', /path "\/x"/);
  });

  it('checks the pod prefix, the namespace, and "ns/*" as any pod of the namespace', () => {
    const v2 = echoed({ pod: 'echo-v2-abc-def' });
    assert.match(compareRoundTrip('mesh', request, { backend: 'gateway-conformance-mesh/echo-v1' }, v2) ?? '', /expected a pod of echo-v1/);
    assert.equal(compareRoundTrip('mesh', request, { backend: 'gateway-conformance-mesh/*' }, v2), undefined);
    assert.match(compareRoundTrip('mesh', request, { backend: 'other-ns/*' }, v2) ?? '', /namespace other-ns/);
    // A 200 expected from no backend must not be echo JSON.
    assert.match(compareRoundTrip('gateway', request, { status: 200, backend: null, answeredByGateway: true }, v2) ?? '', /path ""|not from a backend/);
    assert.equal(compareRoundTrip('gateway', { ...request, method: 'OPTIONS' }, { status: [200, 204], answeredByGateway: true }, answer(204)), undefined);
  });

  it('joins repeated request and response headers with "," and compares names case-insensitively', () => {
    const captured = echoed({ headers: { 'X-Header-Add': ['a', 'b'], 'Some-Other-Header': ['val'] } }, [['X-Multi', '1'], ['x-multi', '2']]);
    const expect: CheckExpect = {
      backend: 'gateway-conformance-mesh/echo-v1',
      backendRequest: { headers: { 'x-header-add': 'a,b' }, absentHeaders: ['X-Header-Remove'] },
      responseHeaders: { 'X-MULTI': '1,2' },
    };
    assert.equal(compareRoundTrip('mesh', request, expect, captured), undefined);
    assert.match(compareRoundTrip('mesh', request, { ...expect, backendRequest: { headers: { 'X-Header-Add': 'a, b' } } }, captured) ?? '', /saw "a,b"/);
    assert.match(compareRoundTrip('mesh', request, { ...expect, backendRequest: { absentHeaders: ['some-other-header'] } }, captured) ?? '', /not to see request header/);
    assert.match(compareRoundTrip('mesh', request, { ...expect, absentResponseHeaders: ['x-multi'] }, captured) ?? '', /no response header x-multi/);
    assert.match(compareRoundTrip('mesh', request, { ...expect, responseHeaders: { 'X-Missing': 'v' } }, captured) ?? '', /X-Missing: "v", it was missing/);
  });

  it('reads a non-JSON 200 as an empty echo with the request method', () => {
    const plain = answer(200, [['content-type', 'application/json; charset=utf-8']], '{"pod":"echo-v1-a-b"}');
    assert.match(compareRoundTrip('mesh', request, { backend: 'gateway-conformance-mesh/echo-v1' }, plain) ?? '', /namespace gateway-conformance-mesh/);
  });

  it('ignores whitespace in header values when asked, and accepts any listed value', () => {
    const captured = answer(204, [['access-control-allow-methods', 'GET,OPTIONS']]);
    const expect: CheckExpect = { status: [200, 204], answeredByGateway: true, responseHeadersOneOf: { 'access-control-allow-methods': ['GET, OPTIONS', 'OPTIONS, GET'] } };
    assert.match(compareRoundTrip('gateway', { ...request, method: 'OPTIONS' }, expect, captured) ?? '', /one of/);
    assert.equal(compareRoundTrip('gateway', { ...request, method: 'OPTIONS' }, { ...expect, ignoreWhitespaceInHeaderValues: true }, captured), undefined);
  });

  it('judges redirects by scheme, host, port and path, with default ports allowed only when no port is expected', () => {
    const redirect = (location: string, status = 302) => answer(status, [['location', location]]);
    const req = { ...request, path: '/port?x=1' };
    assert.equal(compareRoundTrip('mesh', req, { status: 302, redirect: { scheme: 'http', port: '8083', path: '/port' } }, redirect('http://echo:8083/port')), undefined);
    assert.match(compareRoundTrip('mesh', req, { status: 302, redirect: { scheme: 'http', port: '8083' } }, redirect('http://echo/port')) ?? '', /port 8083/);
    assert.equal(compareRoundTrip('mesh', req, { status: 302, redirect: {} }, redirect('http://echo:80/port')), undefined);
    assert.match(compareRoundTrip('mesh', req, { status: 302, redirect: {} }, redirect('http://echo:8080/port')) ?? '', /no port/);
    assert.equal(compareRoundTrip('mesh', req, { status: 301, redirect: { scheme: 'https', host: 'example.org' } }, redirect('https://example.org:443/port', 301)), undefined);
    assert.match(compareRoundTrip('mesh', req, { status: 302, redirect: { host: 'example.org' } }, redirect('http://echo/port')) ?? '', /host example.org/);
    assert.match(compareRoundTrip('mesh', req, { status: 302, redirect: { path: '/other' } }, redirect('http://echo/port')) ?? '', /path \/other/);
    // Relative Locations have no scheme, as Go's url.Parse sees them.
    assert.match(compareRoundTrip('mesh', req, { status: 302, redirect: {} }, redirect('/port')) ?? '', /scheme http/);
  });
});

describe('parseLocation', () => {
  it('keeps explicit default ports and IPv6 hosts as Go does', () => {
    assert.deepEqual(parseLocation('http://example.org:80/a?b=c'), { scheme: 'http', host: 'example.org', port: '80', path: '/a' });
    assert.deepEqual(parseLocation('https://[::1]:8443/x'), { scheme: 'https', host: '::1', port: '8443', path: '/x' });
    assert.deepEqual(parseLocation('/relative?q'), { scheme: '', host: '', port: '', path: '/relative' });
  });
});

describe('prepare', () => {
  const check: Check = {
    name: 'c',
    target: { type: 'mesh', client: 'ns/echo-v1' },
    request: { host: '{podIP:ns/echo-v2}:8080', path: '/mirror?id={uuid}', headers: { Host: 'echo-v1', Version: 'one' }, echoSetResponseHeaders: { A: '1', B: '2' } },
    expect: { backendRequest: { path: '/mirror?id={uuid}' } },
  };

  it('substitutes one fresh UUID in request and expectation, pod IPs, Host and X-Echo-Set-Header', () => {
    const a = prepare(check, { mode: 'mesh', podIP: (app) => (app === 'ns/echo-v2' ? '127.9.9.2' : 'x') });
    const b = prepare(check, { mode: 'mesh', podIP: () => '127.9.9.2' });
    assert.notEqual(a.uuid, b.uuid);
    assert.equal(a.request.path, `/mirror?id=${a.uuid}`);
    assert.equal(a.expect.backendRequest?.path, a.request.path);
    assert.equal(a.request.authority, '127.9.9.2:8080');
    assert.deepEqual(a.request.headers, { Version: 'one', 'X-Echo-Set-Header': 'A:1,B:2', Host: 'echo-v1' });
    assert.equal(check.request.path, '/mirror?id={uuid}', 'the case itself is left alone');
  });

  it('defaults to GET, "/", the Service "echo" in the mesh and an empty X-Echo-Set-Header', () => {
    const p = prepare({ name: 'd', target: { type: 'mesh', client: 'ns/a' }, request: {}, expect: {} }, { mode: 'mesh', podIP: () => '' });
    assert.equal(p.request.method, 'GET');
    assert.equal(p.request.path, '/');
    assert.equal(p.request.authority, 'echo');
    assert.deepEqual(p.request.headers, { 'X-Echo-Set-Header': '', Host: 'echo' });
  });
});

describe('awaitConvergence', () => {
  it('needs the threshold in a row; a failure resets the count', async () => {
    const outcomes = [undefined, 'no', undefined, undefined, undefined];
    let calls = 0;
    const verdict = await awaitConvergence(async () => outcomes[calls++], { threshold: 3, maxMs: 5000, pollMs: 1 });
    assert.deepEqual(verdict, { ok: true, attempts: 5 });
  });

  it('gives up at the deadline, or early once the config is settled', async () => {
    const timedOut = await awaitConvergence(async () => 'nope', { threshold: 3, maxMs: 50, pollMs: 5 });
    assert.equal(timedOut.ok, false);
    assert.match(timedOut.ok ? '' : timedOut.reason, /nope \(not 3 passes in a row within 0.05 s/);
    let asked = 0;
    const early = await awaitConvergence(async () => 'nope', {
      threshold: 3,
      maxMs: 30_000,
      pollMs: 1,
      earlyFailAfter: 5,
      settled: async () => ++asked > 1,
    });
    assert.equal(early.ok, false);
    assert.equal(early.attempts, 15, 'asked after 5 failures (not settled) and again after 15');
  });

  it('counts a thrown error as a failed attempt', async () => {
    const verdict = await awaitConvergence(async () => {
      throw new Error('connection refused');
    }, { threshold: 1, maxMs: 20, pollMs: 5 });
    assert.match(verdict.ok ? '' : verdict.reason, /request failed: connection refused/);
  });
});

describe('weights', () => {
  it('strips the two hash parts of a pod name', () => {
    assert.equal(deploymentOfPod('infra-backend-v1-7d9f8c5b4-x2k9q'), 'infra-backend-v1');
    assert.equal(deploymentOfPod('solo'), 'solo');
  });

  it('judges shares within the tolerance, unexpected backends and weight-0 backends as upstream does', () => {
    const weights = { 'ns/a': 0.7, 'ns/b': 0.3, 'ns/c': 0 };
    assert.equal(judgeDistribution(new Map([['ns/a', 360], ['ns/b', 140]]), weights, 500, 0.05), undefined);
    assert.match(judgeDistribution(new Map([['ns/a', 400], ['ns/b', 100]]), weights, 500, 0.05) ?? '', /ns\/a got 80.0%/);
    assert.match(judgeDistribution(new Map([['ns/a', 500]]), weights, 500, 0.05) ?? '', /ns\/b got nothing/);
    assert.match(judgeDistribution(new Map([['ns/a', 350], ['ns/b', 149], ['ns/c', 1]]), weights, 500, 0.05) ?? '', /ns\/c got 1 with weight 0/);
    assert.match(judgeDistribution(new Map([['ns/a', 350], ['ns/b', 149], ['ns/d', 1]]), weights, 500, 0.05) ?? '', /unexpected backend ns\/d/);
  });
});

describe('status checks', () => {
  const route = (parents: unknown[], generation = 2) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'ns', generation },
    status: { parents },
  });
  const parent = { parentRef: { name: 'gw', namespace: 'ns' }, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 2 }] };

  it('finds the parent entry with defaulted kind, group and namespace, and compares conditions', () => {
    const check = { kind: 'HTTPRoute', namespace: 'ns', name: 'r', parentRef: { kind: 'Gateway', namespace: 'ns', name: 'gw' }, conditions: [{ type: 'Accepted', status: 'True' }] };
    assert.equal(judgeStatus(check, route([parent])), undefined);
    assert.equal(judgeStatus({ ...check, latestObservedGeneration: true }, route([parent])), undefined);
    assert.match(judgeStatus({ ...check, latestObservedGeneration: true }, route([parent], 3)) ?? '', /observed generation 2/);
    assert.match(judgeStatus({ ...check, conditions: [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners' }] }, route([parent])) ?? '', /expected Accepted=False/);
    assert.match(judgeStatus({ ...check, parentRef: { name: 'gw', sectionName: 'http' } }, route([parent])) ?? '', /no status for parent/);
    assert.match(judgeStatus(check, undefined) ?? '', /does not exist/);
  });

  it('accepts no parents or one rejected parent for noAcceptedParents', () => {
    const check = { kind: 'HTTPRoute', namespace: 'ns', name: 'r', noAcceptedParents: true };
    assert.equal(judgeStatus(check, route([])), undefined);
    assert.equal(judgeStatus(check, route([{ ...parent, conditions: [{ type: 'Accepted', status: 'False' }] }])), undefined);
    assert.match(judgeStatus(check, route([parent])) ?? '', /no accepted parent/);
  });

  it('checks Gateway addresses and listeners', () => {
    const gateway = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: 'ns' },
      status: {
        conditions: [{ type: 'Programmed', status: 'True' }],
        addresses: [{ value: '127.0.0.1' }],
        listeners: [{ name: 'http', attachedRoutes: 1, supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], conditions: [] }],
      },
    };
    const check = { kind: 'Gateway', namespace: 'ns', name: 'gw', conditions: [{ type: 'Programmed', status: 'True' }], hasAddress: true };
    assert.equal(judgeStatus({ ...check, listeners: [{ name: 'http', attachedRoutes: 1, supportedKinds: [{ kind: 'HTTPRoute' }] }] }, gateway), undefined);
    assert.match(judgeStatus({ ...check, listeners: [{ name: 'http', attachedRoutes: 2 }] }, gateway) ?? '', /expected 2 attached routes/);
    // As upstream's listenersMatch: the expected kinds must be among the supported ones; an empty list means none.
    const both = { ...gateway, status: { ...gateway.status, listeners: [{ ...gateway.status.listeners[0]!, supportedKinds: [{ kind: 'GRPCRoute' }, { kind: 'HTTPRoute' }] }] } };
    assert.equal(judgeStatus({ ...check, listeners: [{ name: 'http', supportedKinds: [{ kind: 'HTTPRoute' }] }] }, both), undefined);
    assert.match(judgeStatus({ ...check, listeners: [{ name: 'http', supportedKinds: [{ kind: 'TCPRoute' }] }] }, both) ?? '', /expected supported kinds/);
    assert.match(judgeStatus({ ...check, listeners: [{ name: 'http', supportedKinds: [] }] }, both) ?? '', /expected supported kinds none/);
    assert.match(judgeStatus({ ...check, zeroAttachedRoutes: true }, gateway) ?? '', /no attached routes/);
  });

  it('patches dotted paths with indexes', () => {
    const object = { spec: { rules: [{ backendRefs: [{ name: 'v1', port: 8080 }] }] } };
    assert.deepEqual(patched(object, { 'spec.rules[0].backendRefs[0].name': 'v2' }), { spec: { rules: [{ backendRefs: [{ name: 'v2', port: 8080 }] }] } });
    assert.equal(object.spec.rules[0]!.backendRefs[0]!.name, 'v1');
  });
});

describe('objectPath', () => {
  it('builds Kubernetes-style paths for kinds weft knows and kinds it does not know yet', () => {
    assert.equal(objectPath({ kind: 'Namespace', name: 'n' }), '/api/v1/namespaces/n');
    assert.equal(objectPath({ apiVersion: 'v1', kind: 'Service', namespace: 'ns', name: 's' }), '/api/v1/namespaces/ns/services/s');
    assert.equal(objectPath({ kind: 'HTTPRoute', namespace: 'ns', name: 'r' }), '/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/r');
    assert.equal(objectPath({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', namespace: 'ns', name: 'g' }), '/apis/gateway.networking.k8s.io/v1beta1/namespaces/ns/referencegrants/g');
    assert.equal(objectPath({ kind: 'GatewayClass', name: 'weft' }), '/apis/gateway.networking.k8s.io/v1/gatewayclasses/weft');
  });
});
