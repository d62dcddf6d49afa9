// The outbound listener end to end: forward-proxy forms, CONNECT, host names, routing, filters, balancing, timeouts and failures.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import type { HttpRouteRule } from '../../src/api/snapshot.ts';
import { freePort } from '../../src/testing/ports.ts';
import { buildSnapshot, endpoint, startBackend, startTestProxy, throughConnectTunnel, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';

const execFileAsync = promisify(execFile);

const rule = (id: string, match: HttpRouteRule['match'], backend: string, extra: Partial<HttpRouteRule> = {}): HttpRouteRule => ({
  id,
  match,
  filters: [],
  backends: [{ backend, weight: 1, filters: [] }],
  ...extra,
});

describe('outbound proxy', () => {
  let a: Backend;
  let b: Backend;
  let proxy: TestProxy;
  let port: number;
  let refusedPort: number;
  let resetServer: Server;
  let tcpEcho: Server;
  let upstreamHttp: number;
  let upstreamTcp: number;

  before(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    refusedPort = await freePort();
    // Accepts and closes at once: a reset before any response.
    resetServer = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => resetServer.listen(0, '127.0.0.1', resolve));
    tcpEcho = createServer((socket) => {
      // A client that resets its end reaches the app as a reset (the mesh passes resets on).
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => tcpEcho.listen(0, '127.0.0.1', resolve));
    [upstreamHttp, upstreamTcp] = [await freePort(), await freePort()];

    const A = 'default/a:8080';
    const B = 'default/b:8080';
    const routed: HttpRouteRule[] = [
      rule('exact', { path: { type: 'Exact', value: '/exact' } }, B),
      rule('regex', { path: { type: 'RegularExpression', value: '/re/[0-9]+' } }, B),
      rule('header', { headers: [{ name: 'x-version', type: 'Exact', value: 'b' }] }, B),
      rule('query', { queryParams: [{ name: 'v', type: 'RegularExpression', value: 'b.*' }] }, B),
      rule('method', { method: 'DELETE' }, B),
      rule('filters', { path: { type: 'PathPrefix', value: '/filters' } }, A, {
        filters: [
          { type: 'RequestHeaderModifier', modifier: { set: [{ name: 'X-Set', value: 'set' }], add: [{ name: 'x-add', value: 'two' }], remove: ['x-drop'] } },
          { type: 'ResponseHeaderModifier', modifier: { set: [{ name: 'x-resp', value: 'r' }], remove: ['x-remove-me'] } },
        ],
      }),
      { id: 'split', match: { path: { type: 'PathPrefix', value: '/split' } }, filters: [], backends: [{ backend: A, weight: 3, filters: [] }, { backend: B, weight: 1, filters: [] }, { backend: B, weight: 0, filters: [] }] },
      { id: 'nobackends', match: { path: { type: 'PathPrefix', value: '/nobackends' } }, filters: [], backends: [] },
      { id: 'unresolved', match: { path: { type: 'PathPrefix', value: '/unresolved' } }, filters: [], backends: [{ weight: 1, filters: [] }] },
      rule('slow', { path: { type: 'PathPrefix', value: '/slow' } }, A, { timeouts: { requestMs: 150 } }),
      rule('prefix', { path: { type: 'PathPrefix', value: '/foo/' } }, B),
      rule('rest', { path: { type: 'PathPrefix', value: '/' } }, A),
    ];
    const snapshot = buildSnapshot({
      workload: 'client',
      services: [
        { name: 'a', ports: [{ port: 8080, endpoints: [endpoint('default/a-0', a.port)] }] },
        { name: 'b', ports: [{ port: 8080, endpoints: [endpoint('default/b-0', b.port)] }] },
        { name: 'routed', ports: [{ port: 80, endpoints: [], rules: routed }] },
        { name: 'multi', ports: [{ port: 8080, endpoints: [endpoint('default/a-0', a.port)] }, { port: 9090, endpoints: [endpoint('default/b-0', b.port)] }] },
        { name: 'empty', ports: [{ port: 8080, endpoints: [] }] },
        { name: 'refused', ports: [{ port: 8080, endpoints: [endpoint('default/refused-0', refusedPort)] }] },
        { name: 'flaky', ports: [{ port: 8080, endpoints: [endpoint('default/refused-0', refusedPort), endpoint('default/a-0', a.port)] }] },
        { name: 'reset', ports: [{ port: 8080, endpoints: [endpoint('default/reset-0', (resetServer.address() as AddressInfo).port)] }] },
        { name: 'tcp', ports: [{ port: 7000, protocol: 'tcp', endpoints: [endpoint('default/tcp-0', (tcpEcho.address() as AddressInfo).port)] }] },
        { name: 'other', namespace: 'other', ports: [{ port: 8080, endpoints: [endpoint('other/b-0', b.port)] }] },
      ],
      upstreams: [
        { localPort: upstreamHttp, routeKey: 'default/a:8080', host: 'a.default:8080' },
        { localPort: upstreamTcp, routeKey: 'default/tcp:7000', host: 'tcp.default:7000' },
      ],
    });
    proxy = await startTestProxy({ workload: 'client', snapshot });
    port = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    await Promise.all([a?.close(), b?.close()]);
    await new Promise((resolve) => resetServer?.close(resolve));
    await new Promise((resolve) => tcpEcho?.close(resolve));
  });

  it('forwards absolute-form requests, keeping Host and adding x-forwarded-proto and x-request-id', async () => {
    const res = await viaProxy(port, 'http://a:8080/hello?x=1', { headers: { 'proxy-authorization': 'Basic eA==', connection: 'close, x-hop', 'x-hop': '1' } });
    assert.equal(res.status, 200);
    const echoed = res.json();
    assert.equal(echoed.name, 'a');
    assert.equal(echoed.url, '/hello?x=1');
    assert.equal(echoed.headers.host, 'a:8080');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
    assert.match(String(echoed.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(echoed.headers['proxy-authorization'], undefined, 'credentials for the proxy stay with it');
    assert.equal(echoed.headers['x-hop'], undefined, 'headers listed in Connection are hop-by-hop');
    const kept = await viaProxy(port, 'http://a:8080/', { headers: { 'x-request-id': 'given' } });
    assert.equal(kept.json().headers['x-request-id'], 'given');
  });

  it('forwards origin-form requests by their Host header', async () => {
    const res = await viaProxy(port, '/origin', { headers: { host: 'b.default:8080' } });
    assert.equal(res.status, 200);
    assert.equal(res.json().name, 'b');
    assert.equal(res.json().headers.host, 'b.default:8080');
  });

  it('resolves every host name form, with and without a port', async () => {
    for (const host of ['a:8080', 'a.default:8080', 'a.default.svc:8080', 'a.default.svc.cluster.local:8080', 'A.Default:8080', 'a', 'a.default.svc.cluster.local.:8080']) {
      const res = await viaProxy(port, `http://${host}/`);
      assert.equal(res.status, 200, host);
      assert.equal(res.json().name, 'a', host);
    }
    assert.equal((await viaProxy(port, 'http://other.other:8080/')).json().name, 'b');
    assert.equal((await viaProxy(port, 'http://other:8080/')).status, 502, 'short names reach only the own namespace');
    assert.equal((await viaProxy(port, 'http://multi:9090/')).json().name, 'b');
    const ambiguous = await viaProxy(port, 'http://multi/');
    assert.equal(ambiguous.status, 502, 'no port, no port 80 and two ports: no route');
    assert.equal(ambiguous.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
  });

  it('answers unknown hosts and ports with 502 WEFT_ERR_NO_ROUTE at once', async () => {
    for (const target of ['http://nope:8080/', 'http://a:9999/', 'http://example.com/']) {
      const res = await viaProxy(port, target, { timeoutMs: 2000 });
      assert.equal(res.status, 502, target);
      assert.equal(res.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE', target);
    }
    const https = await viaProxy(port, 'https://a:8080/', { headers: { host: 'a:8080' } });
    assert.equal(https.status, 400);
    assert.equal(https.headers['weft-reason'], 'WEFT_ERR_BAD_REQUEST');
  });

  it('routes plain http:// through a CONNECT tunnel, as Node fetch does with a proxy', async () => {
    // Node's own fetch (NODE_USE_ENV_PROXY=1) tunnels http:// with CONNECT; undici's ProxyAgent does so when told.
    const dispatcher = new ProxyAgent({ uri: `http://127.0.0.1:${port}`, proxyTunnel: true });
    try {
      for (const host of ['b:8080', 'b.default:8080', 'b.default.svc:8080', 'b.default.svc.cluster.local:8080']) {
        const res = await undiciFetch(`http://${host}/tunnelled`, { dispatcher });
        assert.equal(res.status, 200, host);
        const echoed = (await res.json()) as { name: string; headers: Record<string, string> };
        assert.equal(echoed.name, 'b');
        assert.equal(echoed.headers.host, host);
      }
      const routed = await undiciFetch('http://routed/exact', { dispatcher });
      assert.equal(((await routed.json()) as { name: string }).name, 'b', 'requests in a tunnel are routed one by one');
      const posted = await undiciFetch('http://a:8080/post', { dispatcher, method: 'POST', body: 'x'.repeat(100_000) });
      assert.equal(((await posted.json()) as { body: string }).body.length, 100_000);
      await assert.rejects(undiciFetch('http://nope:8080/', { dispatcher }), 'CONNECT to an unknown host is refused');
    } finally {
      await dispatcher.close();
    }
  });

  it("serves Node's own fetch with NODE_USE_ENV_PROXY=1 and HTTP_PROXY", async () => {
    const script = "const r = await fetch('http://b.default:8080/from-node-fetch'); console.log(JSON.stringify({ status: r.status, body: await r.json() }));";
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${port}`, NO_PROXY: 'localhost,127.0.0.1' },
      timeout: 10_000,
    });
    const result = JSON.parse(stdout) as { status: number; body: { name: string; url: string } };
    assert.equal(result.status, 200);
    assert.equal(result.body.name, 'b');
    assert.equal(result.body.url, '/from-node-fetch');
  });

  it('refuses CONNECT to an unknown host with 502 and a reason', async () => {
    const answer = await rawConnect(port, 'nope:443');
    assert.match(answer, /^HTTP\/1\.1 502 /);
    assert.match(answer, /weft-reason: WEFT_ERR_NO_ROUTE/);
  });

  it('carries opaque TCP over CONNECT to a tcp service', async () => {
    const { head, data } = await throughConnectTunnel(port, 'tcp:7000', 'ping', (d) => d === 'ping');
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.equal(data, 'ping');
  });

  it('carries non-HTTP bytes over CONNECT to an HTTP port as opaque TCP', async () => {
    // Starts like a TLS record (0x16): not HTTP/1, so it is spliced to the endpoint, whose HTTP server answers 400.
    const garbage = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x0d, 0x0a, 0x0d, 0x0a]);
    const { head, data } = await throughConnectTunnel(port, 'a:8080', garbage, (d) => d.includes('400'));
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(data, /^HTTP\/1\.1 400/);
  });

  it('matches rules by exact path, segment-wise prefix, regex, header, query and method, first match winning', async () => {
    const nameOf = async (target: string, options: Parameters<typeof viaProxy>[2] = {}) => (await viaProxy(port, target, options)).json().name;
    assert.equal(await nameOf('http://routed/exact'), 'b');
    assert.equal(await nameOf('http://routed/exact/more'), 'a', 'Exact does not match a longer path');
    assert.equal(await nameOf('http://routed/re/123'), 'b');
    assert.equal(await nameOf('http://routed/re/123x'), 'a', 'regexes match the whole path');
    assert.equal(await nameOf('http://routed/any', { headers: { 'x-version': 'b' } }), 'b');
    assert.equal(await nameOf('http://routed/any?v=beta'), 'b');
    assert.equal(await nameOf('http://routed/any?v=alpha'), 'a');
    assert.equal(await nameOf('http://routed/any', { method: 'DELETE' }), 'b');
    assert.equal(await nameOf('http://routed/foo'), 'b', 'prefix /foo/ matches /foo');
    assert.equal(await nameOf('http://routed/foo/bar'), 'b');
    assert.equal(await nameOf('http://routed/foobar'), 'a', 'prefixes match whole segments');
  });

  it('answers 404 WEFT_ERR_NO_ROUTE when no rule matches', async (t) => {
    const snapshot = buildSnapshot({
      services: [{ name: 'only', ports: [{ port: 80, endpoints: [endpoint('default/a-0', a.port)], rules: [rule('x', { path: { type: 'Exact', value: '/x' } }, 'default/only:80')] }] }],
    });
    const other = await startTestProxy({ snapshot });
    t.after(() => other.close());
    assert.equal((await viaProxy(other.proxy.ports.outbound, 'http://only/x')).status, 200);
    const res = await viaProxy(other.proxy.ports.outbound, 'http://only/y');
    assert.equal(res.status, 404);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
  });

  it('applies request and response header modifiers', async () => {
    const res = await viaProxy(port, 'http://routed/filters', { headers: { 'x-add': 'one', 'x-drop': 'gone', 'x-set': 'old' } });
    assert.equal(res.status, 200);
    const seen = res.json().headers;
    assert.equal(seen['x-set'], 'set');
    assert.equal(seen['x-add'], 'one,two');
    assert.equal(seen['x-drop'], undefined);
    assert.equal(res.headers['x-resp'], 'r');
    assert.equal(res.headers['x-remove-me'], undefined);
    assert.equal(res.headers['x-backend'], 'a');
  });

  it('splits by weight and never picks a weight-0 backend', async () => {
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 400; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => viaProxy(port, 'http://routed/split')));
      for (const res of batch) counts[res.json().name as 'a' | 'b']++;
    }
    const shareA = counts.a / 400;
    assert.ok(shareA > 0.65 && shareA < 0.85, `a got ${counts.a} of 400 (expected about 75%)`);
  });

  it('answers 500 for a rule without backends or with an unresolved backend', async () => {
    for (const path of ['/nobackends', '/unresolved']) {
      const res = await viaProxy(port, `http://routed${path}`);
      assert.equal(res.status, 500, path);
      assert.equal(res.headers['weft-reason'], 'WEFT_ERR_BACKEND_NOT_FOUND', path);
    }
  });

  it('answers 503 without endpoints, 503 when the endpoint refuses, 502 when it resets', async () => {
    const empty = await viaProxy(port, 'http://empty:8080/');
    assert.equal(empty.status, 503);
    assert.equal(empty.headers['weft-reason'], 'WEFT_ERR_NO_HEALTHY_UPSTREAM');
    const refused = await viaProxy(port, 'http://refused:8080/');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_CONNECT');
    const refusedPost = await viaProxy(port, 'http://refused:8080/', { method: 'POST', body: 'some body' });
    assert.equal(refusedPost.status, 503);
    const reset = await viaProxy(port, 'http://reset:8080/');
    assert.equal(reset.status, 502);
    assert.equal(reset.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_RESET');
  });

  it('retries a request without a body, or with a small whole one, on another endpoint when one refuses the connection; never a streamed body', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await viaProxy(port, 'http://flaky:8080/');
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.json().name, 'a');
    }
    // A small body that came whole with its head is kept (as Envoy buffers one for retries): it goes to the next endpoint too.
    for (let i = 0; i < 6; i++) assert.equal((await viaProxy(port, 'http://flaky:8080/', { method: 'POST', body: 'small and whole' })).status, 200, `small body ${i}`);
    const statuses = new Set<number>();
    const large = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 6; i++) statuses.add((await viaProxy(port, 'http://flaky:8080/', { method: 'POST', body: large })).status);
    assert.deepEqual([...statuses].sort(), [200, 503], 'a streamed body is never sent twice');
  });

  it('answers 504 WEFT_ERR_TIMEOUT when the request timeout passes', async () => {
    const started = performance.now();
    const res = await viaProxy(port, 'http://routed/slow?delay=2000');
    assert.equal(res.status, 504);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_TIMEOUT');
    assert.ok(performance.now() - started < 1500);
    assert.equal((await viaProxy(port, 'http://routed/slow?delay=10')).status, 200);
  });

  it('serves an HTTP upstream port as requests to its service, Host kept or defaulted', async () => {
    const res = await viaProxy(upstreamHttp, '/via-upstream', { headers: { host: 'localhost:1234' } });
    assert.equal(res.status, 200);
    assert.equal(res.json().name, 'a');
    assert.equal(res.json().headers.host, 'localhost:1234');
    const noHost = await rawHttp10(upstreamHttp, '/no-host');
    assert.match(noHost, /"host":"a\.default:8080"/);
  });

  it('pipes a tcp upstream port to its service', async () => {
    assert.equal(await overTcp(upstreamTcp, 'hello tcp', (d) => d === 'hello tcp'), 'hello tcp');
  });
});

function rawConnect(port: number, authority: string): Promise<string> {
  return rawExchange(port, `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`, `no answer to CONNECT ${authority}`);
}

function rawHttp10(port: number, path: string): Promise<string> {
  return rawExchange(port, `GET ${path} HTTP/1.0\r\n\r\n`, 'no answer');
}

/** Writes `request` on a plain TCP connection; resolves with all that came back once the other side ends. */
function rawExchange(port: number, request: string, failure: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`${failure}; got ${JSON.stringify(text)}`));
    });
    socket.write(request);
  });
}

/** Writes `payload` on a plain TCP connection and reads until `done` holds. */
function overTcp(port: number, payload: string, done: (data: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; read ${JSON.stringify(text)}`));
    }, 3000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (done(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(payload);
  });
}
