// Session persistence through a real sidecar: a cookie or header token brings a client back to the same backend and endpoint, until it times out.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SessionPersistence } from '../../src/api/snapshot.ts';
import { decodeSessionToken, encodeSessionToken } from '../../src/proxy/layers/session/index.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { buildSnapshot, endpoint, startBackend, startTestProxy, viaProxy, type Backend, type HttpResult, type TestProxy } from './proxy-helpers.ts';
import { prefixRule } from './routing-helpers.ts';

describe('session persistence', () => {
  const clock = new ManualClock();
  const backends: Backend[] = [];
  let proxy: TestProxy;
  let out: number;

  before(async () => {
    for (const name of ['a-0', 'a-1', 'a-2', 'b-0', 'b-1']) backends.push(await startBackend(name));
    const port = (name: string) => backends.find((b) => b.name === name)!.port;
    const session = (s: Partial<SessionPersistence>) => ({ sessionPersistence: { type: 'Cookie' as const, name: 'weft-session', ...s } });
    const split = [
      { backend: 'default/a:80', weight: 1, filters: [] },
      { backend: 'default/b:80', weight: 1, filters: [] },
    ];
    const rules = [
      prefixRule('cookie', '/cookie', { ...session({}), backends: split }),
      prefixRule('header', '/header', { ...session({ type: 'Header', name: 'X-Session' }), backends: split }),
      prefixRule('absolute', '/absolute', { ...session({ absoluteTimeoutMs: 10_000, cookieLifetime: 'Permanent' }), backends: split }),
      prefixRule('idle', '/idle', { ...session({ idleTimeoutMs: 2_000 }), backends: split }),
      prefixRule('plain', '/plain', { backends: split }),
    ];
    proxy = await startTestProxy({
      clock,
      snapshot: buildSnapshot({
        services: [
          { name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/a-0', port('a-0'))], rules }] },
          { name: 'a', ports: [{ port: 80, lb: 'round-robin', endpoints: ['a-0', 'a-1', 'a-2'].map((n) => endpoint(`default/${n}`, port(n))) }] },
          { name: 'b', ports: [{ port: 80, lb: 'round-robin', endpoints: ['b-0', 'b-1'].map((n) => endpoint(`default/${n}`, port(n))) }] },
        ],
      }),
    });
    out = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    for (const b of backends) await b.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) => viaProxy(out, `http://web${path}`, { headers });
  const cookieOf = (res: HttpResult, name = 'weft-session'): string | undefined => {
    const line = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`));
    return line?.slice(name.length + 1).split(';')[0];
  };

  it('without a session, requests spread over the backends and endpoints', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await get('/plain')).json().name);
    assert.ok(seen.size >= 4, `only ${[...seen].join(', ')}`);
  });

  it('a cookie brings every later request to the same backend and endpoint', async () => {
    const first = await get('/cookie');
    const token = cookieOf(first);
    assert.ok(token, 'the first answer sets the session cookie');
    const line = first.headers['set-cookie']!.find((c) => c.startsWith('weft-session='))!;
    assert.match(line, /; Path=\/cookie; HttpOnly$/, 'a session cookie: no Max-Age');
    const session = decodeSessionToken(token)!;
    assert.equal(`default/${first.json().name}`, session.endpoint);
    for (let i = 0; i < 20; i++) {
      const res = await get('/cookie', { cookie: `other=1; weft-session=${token}` });
      assert.equal(res.json().name, first.json().name);
      assert.equal(cookieOf(res), undefined, 'an unchanged session sets no new cookie');
    }
  });

  it('a header token works the same way, and comes back on every answer', async () => {
    const first = await get('/header');
    const token = first.headers['x-session'];
    assert.equal(typeof token, 'string');
    for (let i = 0; i < 10; i++) {
      const res = await get('/header', { 'X-Session': String(token) });
      assert.equal(res.json().name, first.json().name);
      assert.ok(res.headers['x-session']);
    }
  });

  it('a token naming an endpoint that is gone, or garbage, starts a new session', async () => {
    const stale = encodeSessionToken({ backend: 'default/a:80', endpoint: 'default/a-9', startedAt: clock.now(), lastSeen: clock.now() });
    const res = await get('/cookie', { cookie: `weft-session=${stale}` });
    assert.equal(res.status, 200);
    assert.equal(res.json().name.startsWith('a-'), true, 'the backend is kept while it is still one of the rule\'s');
    assert.equal(decodeSessionToken(cookieOf(res)!)!.endpoint, `default/${res.json().name}`);
    const garbage = await get('/cookie', { cookie: 'weft-session=not-a-token' });
    assert.equal(garbage.status, 200);
    assert.ok(cookieOf(garbage));
  });

  it('ends a session at its absolute timeout; a Permanent cookie says how long it has left', async () => {
    const first = await get('/absolute');
    const line = first.headers['set-cookie']!.find((c) => c.startsWith('weft-session='))!;
    assert.match(line, /Max-Age=10$/);
    const token = cookieOf(first)!;
    clock.advance(9_000);
    assert.equal(cookieOf(await get('/absolute', { cookie: `weft-session=${token}` })), undefined, 'still the same session');
    clock.advance(2_000);
    const renewed = cookieOf(await get('/absolute', { cookie: `weft-session=${token}` }));
    assert.ok(renewed, 'a new session after 10 s');
    assert.equal(decodeSessionToken(renewed)!.startedAt, clock.now());
  });

  it('keeps a session alive while it is used within its idle timeout, and ends it after', async () => {
    let token = cookieOf(await get('/idle'))!;
    const startedAt = decodeSessionToken(token)!.startedAt;
    for (let i = 0; i < 4; i++) {
      clock.advance(1_500);
      const res = await get('/idle', { cookie: `weft-session=${token}` });
      token = cookieOf(res)!;
      assert.equal(decodeSessionToken(token)!.startedAt, startedAt, 'the same session, its idle clock moved on');
    }
    clock.advance(2_500);
    const after = cookieOf(await get('/idle', { cookie: `weft-session=${token}` }))!;
    assert.equal(decodeSessionToken(after)!.startedAt, clock.now(), 'idle too long: a new session');
  });
});
