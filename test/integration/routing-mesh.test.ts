// Route retries, redirects and mirrors across the mesh tunnel: a client sidecar, a server sidecar, and the apps behind it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { waitFor } from '../../src/testing/wait.ts';
import { buildSnapshot, endpoint, startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { prefixRule, startCapturedEcho, startRecorder, type CapturedEcho, type RecordingServer } from './routing-helpers.ts';

describe('routing filters across the tunnel', () => {
  let echo: CapturedEcho;
  let copies: RecordingServer;
  let server: TestProxy;
  let client: TestProxy;
  let out: number;

  before(async () => {
    echo = await startCapturedEcho('web-v1-abc-def');
    copies = await startRecorder('copies');
    server = await startTestProxy({
      workload: 'web',
      instance: 'web-0',
      appPorts: [
        { declared: 8080, actual: echo.port },
        { declared: 9090, actual: copies.port },
      ],
      snapshot: buildSnapshot({ workload: 'web', inboundPorts: [8080, 9090] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    const rules = [
      prefixRule('resets', '/retry/resets', { retry: { codes: [], attempts: 3, backoffMs: 10 } }),
      prefixRule('codes', '/retry/codes', { retry: { codes: [500], attempts: 2, backoffMs: 10 } }),
      prefixRule('plain', '/retry/plain'),
      prefixRule('mirrored', '/mirrored', { filters: [{ type: 'RequestMirror', mirror: { backend: 'default/copies:80', percent: 100 } }] }),
      prefixRule('redirect', '/moved', { filters: [{ type: 'RequestRedirect', redirect: { statusCode: 301, path: { type: 'ReplacePrefixMatch', value: '/new' } } }], backends: [] }),
    ];
    client = await startTestProxy({
      workload: 'client',
      snapshot: buildSnapshot({
        workload: 'client',
        services: [
          { name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/web-0', 8080, tunnel)], rules }] },
          { name: 'copies', ports: [{ port: 80, endpoints: [endpoint('default/web-0', 9090, tunnel)] }] },
        ],
      }),
    });
    out = client.proxy.ports.outbound;
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await echo?.close();
    await copies?.close();
  });

  const attempt = async (path: string, query: string) => {
    const uuid = randomUUID();
    const res = await viaProxy(out, `http://web${path}?${query}&uuid=${uuid}`, { timeoutMs: 8000 });
    return { res, attempts: echo.lines.filter((line) => line.includes(`uuid=${uuid}`)).length };
  };

  it('retries when the app behind the peer proxy resets, and answers 503 once every attempt was reset', async () => {
    const healed = await attempt('/retry/resets', 'succeedAfter=2');
    assert.equal(healed.res.status, 200, healed.res.body);
    assert.equal(healed.attempts, 3);
    const exhausted = await attempt('/retry/resets', 'succeedAfter=9');
    assert.equal(exhausted.res.status, 503);
    assert.equal(exhausted.res.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_RESET');
    assert.equal(exhausted.attempts, 4);
    // Without a policy the peer proxy's own answer comes through as it is.
    const plain = await attempt('/retry/plain', 'succeedAfter=1');
    assert.equal(plain.res.status, 502);
    assert.equal(plain.attempts, 1);
  });

  it('retries listed status codes from the app behind the peer', async () => {
    const healed = await attempt('/retry/codes', 'responseCode=500&succeedAfter=2');
    assert.equal(healed.res.status, 200);
    assert.equal(healed.attempts, 3);
  });

  it('mirrors through the tunnel; the copy arrives without mesh headers', async () => {
    const id = randomUUID();
    assert.equal((await viaProxy(out, `http://web/mirrored?id=${id}`)).status, 200);
    const copy = await waitFor(() => copies.seen(`/mirrored?id=${id}`)[0], { message: 'the copy behind the peer' });
    assert.deepEqual(Object.keys(copy.headers).filter((h) => h.startsWith('weft-')), []);
    assert.equal(copy.headers.host, 'web');
  });

  it('redirects in the client sidecar, before the tunnel', async () => {
    const before = echo.lines.length;
    const res = await viaProxy(out, 'http://web/moved/here');
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, 'http://web/new/here');
    assert.equal(echo.lines.length, before);
  });
});
