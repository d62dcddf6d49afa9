// CORS and RequestMirror through a real sidecar, modelled on HTTPRouteCORS and the request mirror conformance cases.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CorsPolicy, HttpFilter } from '../../src/api/snapshot.ts';
import { freePort } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { buildSnapshot, endpoint, startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { headerFilter, prefixRule, startRecorder, type RecordingServer } from './routing-helpers.ts';

const cors = (policy: Partial<CorsPolicy>): HttpFilter => ({
  type: 'CORS',
  cors: { allowOrigins: [], allowCredentials: false, allowMethods: [], allowHeaders: [], exposeHeaders: [], maxAgeSeconds: 5, ...policy },
});
const mirror = (backend: string, percent = 100): HttpFilter => ({ type: 'RequestMirror', mirror: { backend, percent } });

/** Compares a header list ignoring order and spaces, as the conformance case allows. */
function sameList(actual: string | string[] | undefined, expected: string[]): boolean {
  if (typeof actual !== 'string') return false;
  const items = actual.split(',').map((s) => s.trim());
  return items.length === expected.length && expected.every((e) => items.includes(e));
}

describe('CORS and mirrors', () => {
  let web: RecordingServer;
  let v2: RecordingServer;
  let v3: RecordingServer;
  let hanging: RecordingServer;
  let proxy: TestProxy;
  let out: number;

  before(async () => {
    web = await startRecorder('web');
    v2 = await startRecorder('v2');
    v3 = await startRecorder('v3');
    hanging = await startRecorder('hanging', { hang: true });
    const deadPort = await freePort();
    const rules = [
      prefixRule('cors-1', '/cors-1', {
        filters: [
          cors({
            allowOrigins: ['https://www.foo.com', 'https://*.bar.com'],
            allowMethods: ['GET', 'OPTIONS'],
            allowHeaders: ['x-header-1', 'x-header-2'],
            exposeHeaders: ['x-header-3', 'x-header-4'],
            allowCredentials: true,
            maxAgeSeconds: 3600,
          }),
        ],
      }),
      prefixRule('cors-2', '/cors-2', { filters: [cors({ allowOrigins: ['https://www.foo.com'], allowMethods: ['*'] })] }),
      prefixRule('cors-wildcard-origin', '/cors-wildcard-origin', { filters: [cors({ allowOrigins: ['*'], allowMethods: ['PUT'] })] }),
      prefixRule('cors-wildcard-credentials', '/cors-wildcard-methods-headers', {
        filters: [cors({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true })],
      }),
      prefixRule('mirror', '/mirror', { filters: [mirror('default/v2:80')] }),
      prefixRule('multi-mirror', '/multi-mirror', {
        filters: [headerFilter('RequestHeaderModifier', { 'X-Header-Set': 'set-overwrites-values' }), mirror('default/v2:80'), mirror('default/v3:80')],
      }),
      prefixRule('percent-mirror', '/percent-mirror', { filters: [mirror('default/v2:80', 20)] }),
      prefixRule('fraction-mirror', '/fraction-mirror', { filters: [mirror('default/v3:80', 50)] }),
      prefixRule('bad-mirrors', '/bad-mirrors', { filters: [mirror('default/hanging:80'), mirror('default/dead:80')] }),
      prefixRule('backend-mirror', '/backend-mirror', { backends: [{ backend: 'default/web:80', weight: 1, filters: [mirror('default/v3:80')] }] }),
    ];
    proxy = await startTestProxy({
      snapshot: buildSnapshot({
        services: [
          { name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/web-0', web.port)], rules }] },
          { name: 'v2', ports: [{ port: 80, endpoints: [endpoint('default/v2-0', v2.port)] }] },
          { name: 'v3', ports: [{ port: 80, endpoints: [endpoint('default/v3-0', v3.port)] }] },
          { name: 'hanging', ports: [{ port: 80, endpoints: [endpoint('default/hanging-0', hanging.port)] }] },
          { name: 'dead', ports: [{ port: 80, endpoints: [endpoint('default/dead-0', deadPort)] }] },
        ],
      }),
    });
    out = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    for (const server of [web, v2, v3, hanging]) await server?.close();
  });

  const preflight = (path: string, headers: Record<string, string>) => viaProxy(out, `http://web${path}`, { method: 'OPTIONS', headers });

  it('answers preflights itself, echoing an allowed origin with the configured lists', async () => {
    const before = web.requests.length;
    for (const origin of ['https://www.foo.com', 'https://www.bar.com', 'https://xpto.www.bar.com']) {
      const res = await preflight('/cors-1', { Origin: origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-header-1, x-header-2' });
      assert.ok(res.status === 200 || res.status === 204, String(res.status));
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.ok(sameList(res.headers['access-control-allow-methods'], ['GET', 'OPTIONS']), String(res.headers['access-control-allow-methods']));
      assert.ok(sameList(res.headers['access-control-allow-headers'], ['x-header-1', 'x-header-2']));
      assert.ok(sameList(res.headers['access-control-expose-headers'], ['x-header-3', 'x-header-4']));
      assert.equal(res.headers['access-control-max-age'], '3600');
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      assert.equal(res.body, '');
    }
    const refused = await preflight('/cors-1', { Origin: 'https://foobar.com', 'access-control-request-method': 'GET' });
    assert.ok([200, 204, 403].includes(refused.status));
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
    assert.equal(web.requests.length, before, 'no preflight reached the backend');
  });

  it('wildcards: "*" or the request\'s own method and origin, never "*" with credentials', async () => {
    const post = await preflight('/cors-2', { Origin: 'https://www.foo.com', 'access-control-request-method': 'POST' });
    assert.equal(post.headers['access-control-allow-origin'], 'https://www.foo.com');
    assert.ok(['POST', '*'].includes(String(post.headers['access-control-allow-methods'])));
    assert.equal(post.headers['access-control-allow-credentials'], undefined);
    assert.equal(post.headers['access-control-max-age'], '5', 'the default max age');
    for (const origin of ['https://foobar.com', 'https://foobar.com:12345']) {
      const res = await preflight('/cors-wildcard-origin', { Origin: origin, 'access-control-request-method': 'PUT' });
      assert.ok([origin, '*'].includes(String(res.headers['access-control-allow-origin'])));
      assert.equal(res.headers['access-control-allow-methods'], 'PUT');
    }
    const credentialed = await preflight('/cors-wildcard-methods-headers', {
      Origin: 'https://other.foo.com',
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'x-header-1, x-header-2',
    });
    assert.equal(credentialed.headers['access-control-allow-origin'], 'https://other.foo.com');
    assert.equal(credentialed.headers['access-control-allow-methods'], 'PUT');
    assert.ok(sameList(credentialed.headers['access-control-allow-headers'], ['x-header-1', 'x-header-2']));
    assert.equal(credentialed.headers['access-control-allow-credentials'], 'true');
  });

  it('forwards other requests, adding the headers only for an allowed origin', async () => {
    const allowed = await viaProxy(out, 'http://web/cors-1', { headers: { Origin: 'https://www.bar.com', 'access-control-request-method': 'GET' } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body, 'web');
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://www.bar.com');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
    assert.match(String(allowed.headers.vary), /Origin/);
    assert.equal(web.seen('/cors-1').at(-1)!.headers.origin, 'https://www.bar.com', 'the backend sees the Origin');
    const other = await viaProxy(out, 'http://web/cors-1', { headers: { Origin: 'https://foobar.com' } });
    assert.equal(other.status, 200);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const put = await viaProxy(out, 'http://web/cors-wildcard-origin', { method: 'PUT', headers: { Origin: 'https://foobar.com:12345' } });
    assert.ok(['https://foobar.com:12345', '*'].includes(String(put.headers['access-control-allow-origin'])));
    assert.equal(put.headers['access-control-allow-credentials'], undefined);
    const noOrigin = await viaProxy(out, 'http://web/cors-1', { method: 'OPTIONS' });
    assert.equal(noOrigin.body, 'web', 'an OPTIONS without Origin is not a preflight');
  });

  it('mirrors each request to one or several backends, after the rule\'s header changes', async () => {
    const id = randomUUID();
    const res = await viaProxy(out, `http://web/mirror?request-id=${id}`);
    assert.equal(res.body, 'web', 'the client gets the main backend\'s answer');
    await waitFor(() => v2.seen(`/mirror?request-id=${id}`).length === 1, { message: 'the copy at v2' });

    const id2 = randomUUID();
    await viaProxy(out, `http://web/multi-mirror?request-id=${id2}`, { headers: { 'X-Header-Set': 'original' } });
    for (const server of [v2, v3]) {
      const copy = await waitFor(() => server.seen(`/multi-mirror?request-id=${id2}`)[0], { message: 'a copy' });
      assert.equal(copy.headers['x-header-set'], 'set-overwrites-values');
      assert.equal(copy.headers.host, 'web');
    }
    assert.equal(web.seen(`/multi-mirror?request-id=${id2}`)[0]!.headers['x-header-set'], 'set-overwrites-values');
  });

  it('mirrors a small body along with the request', async () => {
    const id = randomUUID();
    const res = await viaProxy(out, `http://web/mirror?request-id=${id}`, { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.status, 200);
    const copy = await waitFor(() => v2.seen(`/mirror?request-id=${id}`)[0], { message: 'the copy' });
    assert.equal(copy.method, 'POST');
    assert.equal(copy.body, 'payload');
    assert.equal(web.seen(`/mirror?request-id=${id}`)[0]!.body, 'payload');
  });

  it('mirrors the configured share of requests', async () => {
    const n = 400;
    const id = randomUUID();
    for (let i = 0; i < n; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => viaProxy(out, `http://web/percent-mirror?batch=${id}`)));
      await Promise.all(Array.from({ length: 20 }, () => viaProxy(out, `http://web/fraction-mirror?batch=${id}`)));
    }
    const settle = async (server: RecordingServer, prefix: string) => {
      let last = -1;
      await waitFor(
        () => {
          const now = server.seen(prefix).length;
          const stable = now === last;
          last = now;
          return stable;
        },
        { intervalMs: 200, message: 'mirrored copies to settle' },
      );
      return last;
    };
    // ±3 standard deviations of a binomial, as the conformance case judges it.
    const within = (count: number, p: number) => Math.abs(count - n * p) <= 3 * Math.sqrt(n * p * (1 - p));
    const twenty = await settle(v2, `/percent-mirror?batch=${id}`);
    assert.ok(within(twenty, 0.2), `${twenty} of ${n} mirrored at 20 %`);
    const half = await settle(v3, `/fraction-mirror?batch=${id}`);
    assert.ok(within(half, 0.5), `${half} of ${n} mirrored at 25/50`);
  });

  it('a mirror that hangs or refuses never slows or fails the request', async () => {
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const res = await viaProxy(out, `http://web/bad-mirrors?i=${i}`, { timeoutMs: 3000 });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'web');
    }
    const took = performance.now() - started;
    assert.ok(took < 1000, `5 requests took ${took.toFixed(0)} ms`);
    await waitFor(() => hanging.seen('/bad-mirrors').length === 5, { message: 'the hanging mirror got its copies' });
  });

  it('applies a backendRef\'s own mirror', async () => {
    const id = randomUUID();
    assert.equal((await viaProxy(out, `http://web/backend-mirror?request-id=${id}`)).body, 'web');
    await waitFor(() => v3.seen(`/backend-mirror?request-id=${id}`).length === 1, { message: 'the copy at v3' });
  });
});
