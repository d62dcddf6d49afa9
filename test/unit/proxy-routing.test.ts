// Proxy request-path pieces without sockets: route matches, authorities, protocol detection, balancers, snapshot checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpMatch, SnapshotBackend } from '../../src/api/snapshot.ts';
import { HttpExchange } from '../../src/proxy/exchange.ts';
import { compileMatch } from '../../src/proxy/layers/route/match.ts';
import { compileModifier } from '../../src/proxy/layers/header-modifier/index.ts';
import { BalancerRegistry } from '../../src/proxy/layers/balancer/balancers.ts';
import { parseAuthority, splitAbsoluteForm } from '../../src/proxy/transport/authority.ts';
import { classify } from '../../src/proxy/transport/detect.ts';
import { validateSnapshot } from '../../src/proxy/config/validate.ts';
import { forwardableRequestHeaders, responseHeadersToForward } from '../../src/proxy/transport/headers.ts';
import { buildSnapshot, endpoint } from '../integration/proxy-helpers.ts';

function exchange(method: string, path: string, headers: Record<string, string> = {}): HttpExchange {
  const req = { method, headers } as unknown as IncomingMessage;
  return new HttpExchange('outbound', req, {} as ServerResponse, path, { ...headers }, 0);
}

test('path matches: Exact, segment-wise PathPrefix, full-match RegularExpression', () => {
  const matches = (match: HttpMatch, path: string) => compileMatch(match, 'test')(exchange('GET', path));
  assert.equal(matches({ path: { type: 'Exact', value: '/a' } }, '/a?x=1'), true);
  assert.equal(matches({ path: { type: 'Exact', value: '/a' } }, '/a/'), false);
  for (const prefix of ['/foo', '/foo/']) {
    assert.equal(matches({ path: { type: 'PathPrefix', value: prefix } }, '/foo'), true, prefix);
    assert.equal(matches({ path: { type: 'PathPrefix', value: prefix } }, '/foo/bar'), true, prefix);
    assert.equal(matches({ path: { type: 'PathPrefix', value: prefix } }, '/foobar'), false, prefix);
  }
  assert.equal(matches({ path: { type: 'PathPrefix', value: '/' } }, '/anything'), true);
  assert.equal(matches({ path: { type: 'RegularExpression', value: '/v[0-9]' } }, '/v1'), true);
  assert.equal(matches({ path: { type: 'RegularExpression', value: '/v[0-9]' } }, '/v1/x'), false);
  assert.throws(() => compileMatch({ path: { type: 'RegularExpression', value: '(' } }, 'rule'), /WEFT|regular expression/);
});

test('header, query and method matches all have to hold', () => {
  const match = compileMatch(
    { method: 'post', headers: [{ name: 'X-Env', type: 'Exact', value: 'canary' }], queryParams: [{ name: 'id', type: 'RegularExpression', value: '[0-9]+' }] },
    'test',
  );
  assert.equal(match(exchange('POST', '/?id=42', { 'x-env': 'canary' })), true);
  assert.equal(match(exchange('GET', '/?id=42', { 'x-env': 'canary' })), false);
  assert.equal(match(exchange('POST', '/?id=4x', { 'x-env': 'canary' })), false);
  assert.equal(match(exchange('POST', '/?id=42', { 'x-env': 'prod' })), false);
  assert.equal(match(exchange('POST', '/?id=42')), false);
  assert.equal(compileMatch({}, 'empty')(exchange('GET', '/x')), true);
});

test('header modifiers set, append and remove, case-insensitively', () => {
  const edit = compileModifier({ set: [{ name: 'X-A', value: '1' }], add: [{ name: 'x-b', value: '2' }, { name: 'x-c', value: '3' }], remove: ['X-D'] })!;
  const headers: Record<string, string | string[] | undefined> = { 'x-a': 'old', 'x-b': 'one', 'x-d': 'gone' };
  edit(headers);
  assert.deepEqual(headers, { 'x-a': '1', 'x-b': 'one,2', 'x-c': '3' });
  assert.equal(compileModifier({}), undefined);
});

test('authorities and absolute-form targets', () => {
  assert.deepEqual(parseAuthority('Reviews.Default:9080'), { host: 'reviews.default', port: 9080 });
  assert.deepEqual(parseAuthority('reviews'), { host: 'reviews', port: undefined });
  assert.deepEqual(parseAuthority('reviews.default.svc.cluster.local.'), { host: 'reviews.default.svc.cluster.local', port: undefined });
  assert.deepEqual(parseAuthority('user:pw@reviews:80'), { host: 'reviews', port: 80 });
  assert.deepEqual(parseAuthority('[::1]:8080'), { host: '::1', port: 8080 });
  for (const bad of ['', ':80', 'a:0', 'a:70000', 'a:x', '[::1']) assert.equal(parseAuthority(bad), undefined, bad);
  assert.deepEqual(splitAbsoluteForm('http://reviews.default:9080/x?y=1#frag'), { authority: 'reviews.default:9080', path: '/x?y=1' });
  assert.deepEqual(splitAbsoluteForm('HTTP://reviews'), { authority: 'reviews', path: '/' });
  assert.deepEqual(splitAbsoluteForm('http://reviews?q'), { authority: 'reviews', path: '/?q' });
  assert.equal(splitAbsoluteForm('https://reviews/'), undefined);
});

test('protocol detection tells HTTP/1 from TLS, HTTP/2 and silence', () => {
  assert.equal(classify(Buffer.from('GET / HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(Buffer.from('M-SEARCH * HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(Buffer.from('GE')), undefined, 'too short to tell');
  assert.equal(classify(Buffer.from([0x16, 0x03, 0x01])), 'tls');
  assert.equal(classify(Buffer.from([0x16])), undefined);
  assert.equal(classify(Buffer.from([0x16, 0x09, 0x01])), 'opaque');
  assert.equal(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'http2');
  assert.equal(classify(Buffer.from('PRI * HT')), undefined);
  assert.equal(classify(Buffer.from('get / HTTP/1.1')), 'opaque');
  assert.equal(classify(Buffer.from('A'.repeat(30))), 'opaque');
});

test('hop-by-hop headers are dropped both ways', () => {
  assert.deepEqual(
    forwardableRequestHeaders({ host: 'a', connection: 'keep-alive, x-secret', 'x-secret': '1', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'x', accept: '*/*' }),
    { host: 'a', accept: '*/*' },
  );
  const response: Record<string, string | string[] | undefined> = { 'transfer-encoding': 'chunked', connection: 'x-y', 'x-y': '1', 'set-cookie': ['a', 'b'] };
  assert.deepEqual(responseHeadersToForward(response), { 'set-cookie': ['a', 'b'] });
  // Nothing hop-by-hop: the same object goes on, uncopied.
  const clean = { 'content-type': 'text/plain', 'content-length': '2' };
  assert.equal(responseHeadersToForward(clean), clean);
});

function backend(ids: string[], lb: SnapshotBackend['lb'] = 'round-robin'): SnapshotBackend {
  return { key: 'default/s:80', namespace: 'default', service: 's', port: 80, protocol: 'http', lb, endpoints: ids.map((id, i) => endpoint(id, 1000 + i)) };
}

test('round-robin cycles and keeps its place across snapshots with the same endpoints', () => {
  const registry = new BalancerRegistry(() => 0);
  const first = registry.balancerFor(backend(['a', 'b', 'c']));
  assert.deepEqual([first.pick(), first.pick()].map((p) => p?.endpoint.id), ['a', 'b']);
  const second = registry.balancerFor(backend(['a', 'b', 'c']));
  assert.deepEqual([second.pick(), second.pick()].map((p) => p?.endpoint.id), ['c', 'a']);
  assert.equal(registry.balancerFor(backend([])).pick(), undefined);
});

test('least-request prefers the endpoint with fewer requests in flight, counts shared across snapshots', () => {
  let i = 0;
  const sequence = [0, 0.99];
  const registry = new BalancerRegistry(() => sequence[i++ % sequence.length]!);
  const one = registry.balancerFor(backend(['a', 'b'], 'least-request'));
  const busy = one.pick()!;
  busy.load.inFlight = 5;
  const two = registry.balancerFor(backend(['a', 'b', 'c'], 'least-request'));
  assert.equal(registry.inFlight('default/s:80', busy.endpoint.id), 5, 'the in-flight count survives the new snapshot');
  for (let n = 0; n < 10; n++) assert.notEqual(two.pick()?.endpoint.id, busy.endpoint.id);
});

test('snapshot validation names what is wrong', () => {
  const good = buildSnapshot({ services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('x', 1)] }] }] });
  assert.equal(validateSnapshot(good), good);
  assert.throws(() => validateSnapshot({ ...good, services: 'nope' }), /WEFT_ERR|malformed snapshot: services/);
  const dangling = structuredClone(good);
  dangling.routes['default/a:80']!.rules[0]!.backends[0]!.backend = 'default/missing:80';
  assert.throws(() => validateSnapshot(dangling), /not in backends/);
  const twice = structuredClone(good);
  twice.backends['default/a:80']!.endpoints.push(endpoint('x', 2));
  assert.throws(() => validateSnapshot(twice), /twice/);
});
