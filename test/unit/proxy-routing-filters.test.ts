// Proxy filter pieces without sockets: path modifiers, redirect Locations, CORS origin matching, retry backoff, snapshot validation of filters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpMatch, HttpRouteRule, RequestRedirect } from '../../src/api/snapshot.ts';
import { validateSnapshot } from '../../src/proxy/config/validate.ts';
import { HttpExchange } from '../../src/proxy/exchange.ts';
import { compileOriginCheck } from '../../src/proxy/layers/cors/index.ts';
import { compileModifier } from '../../src/proxy/layers/header-modifier/index.ts';
import { compileLocation, hostWithoutPort } from '../../src/proxy/layers/redirect/index.ts';
import { backoffMs } from '../../src/proxy/layers/retry/index.ts';
import { compilePathModifier } from '../../src/proxy/layers/url-rewrite/path.ts';
import { buildSnapshot, endpoint, reversion } from '../integration/proxy-helpers.ts';

const prefixMatch = (value: string): HttpMatch => ({ path: { type: 'PathPrefix', value } });

test('ReplacePrefixMatch follows the Gateway API table, keeping the query', () => {
  // [request path, prefix match, replacement, result]: the specification's table, plus the conformance cases.
  const table: [string, string, string, string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/prefix/one/two', '/prefix/one', '/one', '/one/two'],
    ['/strip-prefix/three', '/strip-prefix', '/', '/three'],
    ['/strip-prefix', '/strip-prefix', '/', '/'],
    ['/anything/at/all', '/', '/base', '/base/anything/at/all'],
  ];
  for (const [path, prefix, replacement, expected] of table) {
    const rewrite = compilePathModifier({ type: 'ReplacePrefixMatch', value: replacement }, prefixMatch(prefix));
    assert.equal(rewrite(path), expected, `${path} with ${prefix} → ${replacement}`);
    assert.equal(rewrite(`${path}?a=1&b=2`), `${expected}?a=1&b=2`, 'the query is kept');
  }
  // A rule without a path match matches "/" as a prefix.
  assert.equal(compilePathModifier({ type: 'ReplacePrefixMatch', value: '/v2' }, {})('/x'), '/v2/x');
  const full = compilePathModifier({ type: 'ReplaceFullPath', value: '/one' }, prefixMatch('/full/one'));
  assert.equal(full('/full/one/two'), '/one');
  assert.equal(full('/full/one/two?x=y'), '/one?x=y');
});

function exchange(options: { path?: string; host?: string; scheme?: 'http' | 'https'; addressedPort?: number } = {}): HttpExchange {
  const headers: Record<string, string> = options.host === undefined ? {} : { host: options.host };
  const req = { method: 'GET', headers } as unknown as IncomingMessage;
  const ex = new HttpExchange('outbound', req, {} as ServerResponse, options.path ?? '/p?q=1', { ...headers }, 0);
  ex.scheme = options.scheme ?? 'http';
  ex.addressedPort = options.addressedPort ?? 80;
  return ex;
}

test('redirect Locations: host from the Host header without its port, port rules of the Gateway API', () => {
  const location = (redirect: Omit<RequestRedirect, 'statusCode'>, ex: HttpExchange, match?: HttpMatch) => compileLocation({ statusCode: 302, ...redirect }, match)(ex);
  // Nothing set: the request's scheme, host (port dropped) and addressed port, path and query.
  assert.equal(location({}, exchange({ host: 'echo:80' })), 'http://echo/p?q=1');
  assert.equal(location({}, exchange({ host: 'echo:8080', addressedPort: 8080 })), 'http://echo:8080/p?q=1');
  assert.equal(location({ hostname: 'example.org' }, exchange({ host: 'echo' })), 'http://example.org/p?q=1');
  // A port of its own is kept unless it is the scheme's default.
  assert.equal(location({ port: 8083 }, exchange({ host: 'echo' })), 'http://echo:8083/p?q=1');
  assert.equal(location({ port: 80 }, exchange({ host: 'echo', addressedPort: 8080 })), 'http://echo/p?q=1');
  assert.equal(location({ port: 443, scheme: 'https' }, exchange({ host: 'echo' })), 'https://echo/p?q=1');
  assert.equal(location({ port: 8443, scheme: 'https' }, exchange({ host: 'echo' })), 'https://echo:8443/p?q=1');
  // A scheme without a port: that scheme's well-known port, never the addressed one.
  assert.equal(location({ scheme: 'https' }, exchange({ host: 'echo', addressedPort: 8080 })), 'https://echo/p?q=1');
  assert.equal(location({ scheme: 'http' }, exchange({ host: 'example.org', scheme: 'https', addressedPort: 443 })), 'http://example.org/p?q=1');
  // No scheme and no port on an https listener on 443: https, no port.
  assert.equal(location({ hostname: 'example.org' }, exchange({ host: 'example.org', scheme: 'https', addressedPort: 443 })), 'https://example.org/p?q=1');
  assert.equal(location({ hostname: 'example.org' }, exchange({ host: 'x', scheme: 'https', addressedPort: 8443 })), 'https://example.org:8443/p?q=1');
  // Paths.
  assert.equal(
    location({ path: { type: 'ReplacePrefixMatch', value: '/replacement-prefix' } }, exchange({ host: 'echo', path: '/original-prefix/lemon' }), prefixMatch('/original-prefix')),
    'http://echo/replacement-prefix/lemon',
  );
  assert.equal(location({ path: { type: 'ReplaceFullPath', value: '/full-path-replacement' } }, exchange({ host: 'echo', path: '/full/path/original' })), 'http://echo/full-path-replacement');
  assert.equal(hostWithoutPort('[::1]:8080'), '[::1]');
  assert.equal(hostWithoutPort('[::1]'), '[::1]');
  assert.equal(hostWithoutPort('a.b'), 'a.b');
});

test('CORS origins: exact, "*." wildcards greedy to the left, default ports, "*" for any', () => {
  const allowed = compileOriginCheck(['https://www.foo.com', 'https://*.bar.com', 'http://local.test:8080']);
  assert.equal(allowed('https://www.foo.com'), true);
  assert.equal(allowed('https://www.foo.com:443'), true, 'the default port is the same origin');
  assert.equal(allowed('http://www.foo.com'), false, 'another scheme is another origin');
  assert.equal(allowed('https://www.foo.com:8443'), false);
  assert.equal(allowed('https://www.bar.com'), true);
  assert.equal(allowed('https://xpto.www.bar.com'), true);
  assert.equal(allowed('https://bar.com'), false, 'the wildcard needs at least one label');
  assert.equal(allowed('https://foobar.com'), false);
  assert.equal(allowed('http://local.test:8080'), true);
  assert.equal(allowed('http://local.test'), false);
  assert.equal(allowed('null'), false);
  assert.equal(allowed('https://*.bar.com'), false, 'a request Origin never has a wildcard');
  const any = compileOriginCheck(['*']);
  assert.equal(any('https://foobar.com:12345'), true);
  assert.equal(any('null'), true);
});

test('retry backoff: never under the base, doubling per retry up to 10×, jitter at most half again', () => {
  assert.equal(backoffMs(100, 1, () => 0), 100);
  assert.equal(backoffMs(100, 2, () => 0), 200);
  assert.equal(backoffMs(100, 3, () => 0), 400);
  assert.equal(backoffMs(100, 5, () => 0), 1000, 'capped at 10× the base');
  assert.equal(backoffMs(100, 9, () => 0), 1000);
  assert.ok(backoffMs(100, 1, () => 0.999999) < 150);
  assert.equal(backoffMs(0, 3, () => 0.5), 0);
});

test('header add: a value of its own line where the header already has several, and always for Set-Cookie', () => {
  const edit = compileModifier({ add: [{ name: 'X-Multi', value: 'c' }, { name: 'Set-Cookie', value: 'b=2' }, { name: 'x-one', value: 'two' }] })!;
  const headers: Record<string, string | string[] | undefined> = { 'x-multi': ['a', 'b'], 'set-cookie': 'a=1', 'x-one': 'one' };
  edit(headers);
  assert.deepEqual(headers, { 'x-multi': ['a', 'b', 'c'], 'set-cookie': ['a=1', 'b=2'], 'x-one': 'one,two' });
});

test('snapshot validation accepts every filter and a retry policy, and refuses unknown filters and dangling mirrors', () => {
  const rules: HttpRouteRule[] = [
    {
      id: 'all',
      match: { path: { type: 'PathPrefix', value: '/a' } },
      filters: [
        { type: 'RequestRedirect', redirect: { statusCode: 301, scheme: 'https', hostname: 'example.org', port: 8443, path: { type: 'ReplaceFullPath', value: '/x' } } },
        { type: 'URLRewrite', rewrite: { hostname: 'b.example', path: { type: 'ReplacePrefixMatch', value: '' } } },
        { type: 'RequestMirror', mirror: { backend: 'default/web:80', percent: 12.5 } },
        { type: 'CORS', cors: { allowOrigins: ['*'], allowCredentials: false, allowMethods: ['*'], allowHeaders: [], exposeHeaders: [], maxAgeSeconds: 5 } },
      ],
      backends: [{ backend: 'default/web:80', weight: 1, filters: [{ type: 'RequestMirror', mirror: { percent: 100 } }] }],
      timeouts: { requestMs: 1000 },
      retry: { codes: [500, 503], attempts: 2, backoffMs: 25 },
    },
  ];
  const good = buildSnapshot({ services: [{ name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/web-0', 8080)], rules }] }] });
  assert.equal(validateSnapshot(good), good);

  const unknown = structuredClone(good);
  (unknown.routes['default/web:80']!.rules[0]!.filters as unknown[]).push({ type: 'Teleport', where: 'mars' });
  assert.throws(() => validateSnapshot(reversion(unknown)), /WEFT_ERR|malformed snapshot/);

  const dangling = structuredClone(good);
  dangling.routes['default/web:80']!.rules[0]!.filters[2] = { type: 'RequestMirror', mirror: { backend: 'default/gone:80', percent: 100 } };
  assert.throws(() => validateSnapshot(reversion(dangling)), /mirrors to backend default\/gone:80, which is not in backends/);
});
