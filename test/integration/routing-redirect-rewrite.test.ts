// RequestRedirect and URLRewrite through a real sidecar, modelled on the Gateway API redirect and rewrite conformance cases.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpFilter, RequestRedirect } from '../../src/api/snapshot.ts';
import { buildSnapshot, endpoint, startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { headerFilter, prefixRule, startCapturedEcho, type CapturedEcho } from './routing-helpers.ts';

const redirect = (r: Partial<RequestRedirect>): HttpFilter => ({ type: 'RequestRedirect', redirect: { statusCode: 302, ...r } });

interface EchoSeen {
  path: string;
  host: string;
  pod: string;
  headers: Record<string, string[]>;
}

describe('redirects and rewrites', () => {
  let web: CapturedEcho;
  let other: CapturedEcho;
  let proxy: TestProxy;
  let out: number;

  before(async () => {
    web = await startCapturedEcho('web-v1-abc-def');
    other = await startCapturedEcho('other-v1-abc-def');
    const redirectRule = (id: string, prefix: string, r: Partial<RequestRedirect>, more: HttpFilter[] = []) =>
      prefixRule(id, prefix, { filters: [...more, redirect(r)], backends: [] });
    const rules = [
      redirectRule('hostname', '/hostname-redirect', { hostname: 'example.org' }),
      ...([301, 302, 303, 307, 308] as const).map((code) => redirectRule(`status-${code}`, `/status-${code}`, { statusCode: code })),
      redirectRule('scheme', '/scheme', { scheme: 'https' }),
      redirectRule('scheme-host-status', '/scheme-and-host-and-status', { scheme: 'https', hostname: 'example.org', statusCode: 301 }),
      redirectRule('port', '/port', { port: 8083 }),
      redirectRule('port-host', '/port-and-host', { port: 8083, hostname: 'example.org' }),
      redirectRule('https-443', '/https-443', { scheme: 'https', port: 443, hostname: 'example.org' }),
      redirectRule('https-8443', '/https-8443', { scheme: 'https', port: 8443, hostname: 'example.org' }),
      redirectRule('prefix', '/original-prefix', { path: { type: 'ReplacePrefixMatch', value: '/replacement-prefix' } }),
      redirectRule('full', '/full', { path: { type: 'ReplaceFullPath', value: '/full-path-replacement' } }),
      redirectRule('path-host', '/path-and-host', { hostname: 'example.org', path: { type: 'ReplacePrefixMatch', value: '/replacement-prefix' } }),
      redirectRule('with-header', '/with-header', { hostname: 'example.org' }, [headerFilter('ResponseHeaderModifier', { 'X-Redirected': 'yes' })]),
      prefixRule('rewrite-prefix', '/prefix/one', {
        filters: [{ type: 'URLRewrite', rewrite: { hostname: 'one.example.org', path: { type: 'ReplacePrefixMatch', value: '/one' } } }],
      }),
      prefixRule('strip', '/strip-prefix', { filters: [{ type: 'URLRewrite', rewrite: { path: { type: 'ReplacePrefixMatch', value: '/' } } }] }),
      prefixRule('rewrite-full', '/full-rewrite', {
        filters: [{ type: 'URLRewrite', rewrite: { path: { type: 'ReplaceFullPath', value: '/test' } } }, headerFilter('RequestHeaderModifier', { 'X-Header-Set': 'set-overwrites-values' })],
      }),
      prefixRule('backend-rewrite', '/backend-prefix', {
        backends: [
          { backend: 'default/other:80', weight: 1, filters: [{ type: 'URLRewrite', rewrite: { path: { type: 'ReplacePrefixMatch', value: '/rewritten-prefix' } } }] },
        ],
      }),
      prefixRule('backend-redirect', '/backend-redirect', {
        backends: [{ backend: 'default/other:80', weight: 1, filters: [redirect({ path: { type: 'ReplaceFullPath', value: '/redirected-full' } })] }],
      }),
      prefixRule('plain', '/'),
    ];
    proxy = await startTestProxy({
      snapshot: buildSnapshot({
        services: [
          {
            name: 'web',
            ports: [
              { port: 80, endpoints: [endpoint('default/web-0', web.port)], rules },
              { port: 8080, endpoints: [endpoint('default/web-0', web.port)], rules: [redirectRule('on-8080', '/', { hostname: 'example.org' })] },
            ],
          },
          { name: 'other', ports: [{ port: 80, endpoints: [endpoint('default/other-0', other.port)] }] },
        ],
      }),
    });
    out = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    await web?.close();
    await other?.close();
  });

  const location = async (target: string, status = 302) => {
    const res = await viaProxy(out, target);
    assert.equal(res.status, status, `${target}: ${res.body}`);
    assert.equal(res.body, '', 'a redirect has no body');
    return res.headers.location;
  };

  it('answers redirects itself, with every status code, without reaching the backend', async () => {
    const before = web.lines.length;
    assert.equal(await location('http://web/hostname-redirect'), 'http://example.org/hostname-redirect');
    for (const code of [301, 302, 303, 307, 308]) assert.equal(await location(`http://web/status-${code}`, code), `http://web/status-${code}`);
    assert.equal(web.lines.length, before, 'nothing was sent to the backend');
  });

  it('builds the Location from the scheme, host, port and path rules', async () => {
    assert.equal(await location('http://web/scheme'), 'https://web/scheme', 'a scheme without a port: its default port, left out');
    assert.equal(await location('http://web/scheme-and-host-and-status', 301), 'https://example.org/scheme-and-host-and-status');
    assert.equal(await location('http://web/port'), 'http://web:8083/port');
    assert.equal(await location('http://web/port-and-host'), 'http://example.org:8083/port-and-host');
    assert.equal(await location('http://web/https-443'), 'https://example.org/https-443');
    assert.equal(await location('http://web/https-8443'), 'https://example.org:8443/https-8443');
    assert.equal(await location('http://web/original-prefix/lemon?x=1'), 'http://web/replacement-prefix/lemon?x=1', 'the query is kept');
    assert.equal(await location('http://web/full/path/original'), 'http://web/full-path-replacement');
    assert.equal(await location('http://web/path-and-host'), 'http://example.org/replacement-prefix');
    assert.equal(await location('http://web:80/hostname-redirect'), 'http://example.org/hostname-redirect', 'the Host port is not carried over');
    assert.equal(await location('http://web:8080/anything'), 'http://example.org:8080/anything', 'no scheme and no port: the port the client addressed');
  });

  it('applies the rule\'s response header modifier to the redirect', async () => {
    const res = await viaProxy(out, 'http://web/with-header');
    assert.equal(res.status, 302);
    assert.equal(res.headers['x-redirected'], 'yes');
  });

  it('rewrites path and host on the way to the backend, with the prefix semantics of the specification', async () => {
    const seen = async (target: string, headers: Record<string, string> = {}) => {
      const res = await viaProxy(out, target, { headers });
      assert.equal(res.status, 200, res.body);
      return res.json<EchoSeen>();
    };
    const one = await seen('http://web/prefix/one/two?q=1');
    assert.equal(one.path, '/one/two?q=1');
    assert.equal(one.host, 'one.example.org');
    assert.equal((await seen('http://web/strip-prefix/three')).path, '/three');
    assert.equal((await seen('http://web/strip-prefix')).path, '/');
    const full = await seen('http://web/full-rewrite/anything', { 'X-Header-Set': 'original' });
    assert.equal(full.path, '/test');
    assert.equal(full.host, 'web', 'no hostname rewrite: the Host is kept');
    assert.deepEqual(full.headers['X-Header-Set'], ['set-overwrites-values']);
    assert.equal((await seen('http://web/untouched/path')).path, '/untouched/path');
  });

  it('applies a backendRef\'s own rewrite and redirect', async () => {
    const res = await viaProxy(out, 'http://web/backend-prefix/original');
    assert.equal(res.status, 200);
    const seen = res.json<EchoSeen>();
    assert.equal(seen.pod, 'other-v1-abc-def');
    assert.equal(seen.path, '/rewritten-prefix/original');
    assert.equal(await location('http://web/backend-redirect/x'), 'http://web/redirected-full');
  });
});
