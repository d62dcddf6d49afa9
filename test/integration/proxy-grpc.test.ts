// HTTP/2 and gRPC through two sidecars (client app → outbound → mTLS tunnel → inbound → app), with real grpc-js clients and servers, curl and raw frames.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect as http2Connect, constants as h2, createServer as createH2Server, type Http2Server } from 'node:http2';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { Agent, request as httpRequest } from 'node:http';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../src/testing/ports.ts';
import { adminGet, buildSnapshot, endpoint, startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';
import { echoClient, serverStats, startGrpcEcho, unary, type EchoReply, type EchoRequest, type GrpcEchoServer } from '../fixtures/grpc-echo.ts';

const run = promisify(execFile);

function metric(text: string, pattern: RegExp): number {
  return Number(pattern.exec(text)?.[1] ?? 0);
}

/** Tunnel connections the server proxy accepted so far (mTLS handshakes that passed). */
async function tunnelConnections(server: TestProxy): Promise<number> {
  return metric((await adminGet(server.proxy.ports.admin, '/metrics')).body, /^weft_tunnel_handshakes_total\{side="server",result="ok"\} (\d+)$/m);
}

/** One raw HTTP/2 request (node:http2 client): the response headers (with flags), body and trailers, or how the stream ended. */
function h2Request(
  port: number,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ headers: Record<string, unknown>; endedWithHeaders: boolean; body: Buffer; trailers: Record<string, unknown> | undefined; rstCode: number }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => session.destroy(new Error('no answer within 5 s')), 5000);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: body === undefined });
    if (body) stream.end(body);
    let responseHeaders: Record<string, unknown> = {};
    let endedWithHeaders = false;
    let trailers: Record<string, unknown> | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h, flags) => {
      responseHeaders = h;
      endedWithHeaders = (flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => {});
    stream.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve({ headers: responseHeaders, endedWithHeaders, body: Buffer.concat(chunks), trailers, rstCode: stream.rstCode ?? 0 });
    });
  });
}

describe('HTTP/2 and gRPC through two sidecars', () => {
  let grpcApp: GrpcEchoServer;
  let webApp: Backend;
  let h2App: Http2Server;
  let flakyCalls = 0;
  let server: TestProxy;
  let client: TestProxy;
  let out: number;
  let grpcUpstream: number;
  let webUpstream: number;
  const clients: grpc.Client[] = [];

  before(async () => {
    grpcApp = await startGrpcEcho();
    webApp = await startBackend('web-app');
    // An HTTP/2-only app: /reset sends part of a response and resets the stream; anything else echoes what it saw.
    h2App = createH2Server();
    h2App.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (headers[':path'] === '/weft.test.Flaky/Call') {
        // UNAVAILABLE (trailers-only) on every odd call, OK on the next.
        const unavailable = ++flakyCalls % 2 === 1;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': unavailable ? '14' : '0' }, { endStream: true });
        return;
      }
      if (headers[':path'] === '/trailers') {
        let size = 0;
        stream.on('data', (chunk: Buffer) => (size += chunk.length));
        stream.on('end', () => {
          const trailers = (stream as unknown as { trailers?: Record<string, string> }).trailers ?? received;
          stream.respond({ ':status': 200, 'content-type': 'application/json' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'x-answer-trailer': 'from-app' }));
          stream.end(JSON.stringify({ size, trailer: trailers['x-checksum'] ?? null }));
        });
        let received: Record<string, string> = {};
        stream.on('trailers', (t) => (received = t as Record<string, string>));
        return;
      }
      if (headers[':path'] === '/reset') {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.write('partial answer, then ');
        // destroy() with an error sends RST_STREAM; close(code) would end the stream cleanly first.
        setTimeout(() => stream.destroy(new Error('crash')), 50);
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ authority: headers[':authority'], path: headers[':path'], te: headers.te ?? null }));
    });
    await new Promise<void>((resolve) => h2App.listen(0, '127.0.0.1', resolve));
    const deadPort = await freePort();
    server = await startTestProxy({
      workload: 'echo',
      instance: 'echo-0',
      appPorts: [
        { declared: 9000, actual: grpcApp.port },
        { declared: 9001, actual: deadPort },
        { declared: 8080, actual: webApp.port },
        { declared: 9002, actual: (h2App.address() as AddressInfo).port },
      ],
      snapshot: buildSnapshot({ workload: 'echo', inboundPorts: [9000, 9001, 8080, 9002] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    [grpcUpstream, webUpstream] = [await freePort(), await freePort()];
    client = await startTestProxy({
      workload: 'caller',
      snapshot: buildSnapshot({
        workload: 'caller',
        services: [
          { name: 'echo', ports: [{ port: 9000, protocol: 'grpc', endpoints: [endpoint('default/echo-0', 9000, tunnel)] }] },
          // No declared protocol: a gRPC call still reaches its app as HTTP/2.
          { name: 'echo-undeclared', ports: [{ port: 9000, endpoints: [endpoint('default/echo-0', 9000, tunnel)] }] },
          {
            name: 'echo-slow-route',
            ports: [{ port: 9000, protocol: 'grpc', endpoints: [endpoint('default/echo-0', 9000, tunnel)], rules: [{ id: 'r', match: {}, filters: [], timeouts: { requestMs: 300 }, backends: [{ backend: 'default/echo-slow-route:9000', weight: 1, filters: [] }] }] }],
          },
          { name: 'dead', ports: [{ port: 9001, protocol: 'grpc', endpoints: [endpoint('default/echo-0', 9001, tunnel)] }] },
          // A gRPC call to an app that speaks only HTTP/1.1.
          { name: 'web-as-grpc', ports: [{ port: 8080, protocol: 'grpc', endpoints: [endpoint('default/echo-0', 8080, tunnel)] }] },
          { name: 'web', ports: [{ port: 8080, endpoints: [endpoint('default/echo-0', 8080, tunnel)] }] },
          { name: 'h2web', ports: [{ port: 9002, protocol: 'http2', endpoints: [endpoint('default/echo-0', 9002, tunnel)] }] },
          {
            name: 'flaky',
            ports: [{ port: 9002, protocol: 'grpc', endpoints: [endpoint('default/echo-0', 9002, tunnel)], rules: [{ id: 'r', match: {}, filters: [], retry: { codes: [503], attempts: 1, backoffMs: 0 }, backends: [{ backend: 'default/flaky:9002', weight: 1, filters: [] }] }] }],
          },
        ],
        upstreams: [
          { localPort: grpcUpstream, routeKey: 'default/echo:9000', host: 'echo.default:9000' },
          { localPort: webUpstream, routeKey: 'default/web:8080', host: 'web.default:8080' },
        ],
      }),
    });
    out = client.proxy.ports.outbound;
  });

  after(async () => {
    for (const c of clients) c.close();
    await client?.close();
    await server?.close();
    await grpcApp?.close();
    await webApp?.close();
    await new Promise((resolve) => h2App?.close(resolve));
  });

  const viaUpstream = () => {
    const c = echoClient(`127.0.0.1:${grpcUpstream}`);
    clients.push(c);
    return c;
  };
  const viaHttpProxy = (target: string) => {
    const c = echoClient(target, { proxy: `http://127.0.0.1:${out}` });
    clients.push(c);
    return c;
  };

  it('unary through an upstream port and through http_proxy (CONNECT): metadata both ways, headers and trailers kept', async () => {
    for (const c of [viaUpstream(), viaHttpProxy('echo:9000'), viaHttpProxy('echo-undeclared:9000')]) {
      const result = await unary(c, { message: 'hello' }, { metadata: { 'x-caller': 'test' } });
      assert.equal(result.error, undefined, result.error?.message);
      assert.equal(result.reply!.message, 'hello');
      assert.ok(result.reply!.metadata.includes('x-caller=test'), result.reply!.metadata.join(','));
      assert.ok(result.reply!.metadata.some((m) => m.startsWith('x-forwarded-client-cert=') && m.includes('URI=spiffe://')), 'the app sees the verified caller');
      assert.ok(!result.reply!.metadata.some((m) => m.startsWith('weft-')), 'no mesh headers reach the app');
      assert.deepEqual(result.headers!.get('x-header'), ['from-server']);
      assert.deepEqual(result.trailers!.get('x-trailer'), ['from-server']);
    }
  });

  it('passes the app’s status codes, messages and trailers through', async () => {
    const c = viaUpstream();
    for (const status of [grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE]) {
      const result = await unary(c, { status });
      assert.equal(result.error?.code, status);
      assert.equal(result.error?.details, `asked for status ${status}`);
      assert.deepEqual(result.trailers!.get('x-trailer'), ['from-server']);
      assert.deepEqual(result.trailers!.get('weft-reason'), [], 'the app’s own status is not the proxy’s');
    }
  });

  it('server, client and bidi streaming; 8 MiB messages both ways', async () => {
    const c = viaHttpProxy('echo:9000') as unknown as {
      serverStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply>;
      clientStream(cb: (e: grpc.ServiceError | null, r?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
      bidi(): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
    };
    const indexes: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = c.serverStream({ message: 's', count: 200, replyBytes: 1024 });
      stream.on('data', (r: EchoReply) => indexes.push(r.index));
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    assert.deepEqual(indexes, [...Array(200).keys()]);

    const big = Buffer.alloc(8 * 1024 * 1024, 0x62);
    const summary = await new Promise<EchoReply>((resolve, reject) => {
      const stream = c.clientStream((error, reply) => (error ? reject(error) : resolve(reply!)));
      stream.write({ payload: big });
      for (let i = 0; i < 99; i++) stream.write({ payload: Buffer.alloc(1000) });
      stream.end();
    });
    assert.equal(summary.index, 100);
    assert.equal(summary.receivedBytes, big.length + 99 * 1000);

    const bigReply = await new Promise<EchoReply[]>((resolve, reject) => {
      const replies: EchoReply[] = [];
      const stream = c.serverStream({ count: 2, replyBytes: 8 * 1024 * 1024 });
      stream.on('data', (r: EchoReply) => replies.push(r));
      stream.on('error', reject);
      stream.on('end', () => resolve(replies));
    });
    assert.deepEqual(bigReply.map((r) => r.payload.length), [8 * 1024 * 1024, 8 * 1024 * 1024]);

    const echoed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = c.bidi();
      let sent = 0;
      stream.on('data', (r: EchoReply) => {
        echoed.push(r.message);
        // Ping-pong: the next message goes only after the previous one came back through both proxies.
        if (++sent < 100) stream.write({ message: `m${sent}` });
        else stream.end();
      });
      stream.on('error', reject);
      stream.on('end', resolve);
      stream.write({ message: 'm0' });
    });
    assert.deepEqual(echoed, [...Array(100).keys()].map((i) => `m${i}`));
  });

  it('backpressure: a client that stops reading stops the app’s writes; the proxies add only their windows to what is in flight', async () => {
    type Streaming = { serverStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply> };
    const total = 256;
    const messageBytes = 256 * 1024;
    /** How many messages the app wrote while the client read one and then paused; the stream is left paused. */
    const inFlightWhenPaused = async (c: Streaming) => {
      const startCount = serverStats.streamMessagesWritten;
      const stream = c.serverStream({ count: total, replyBytes: messageBytes });
      stream.on('error', () => {});
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      stream.pause();
      // Give the app time to write as much as the windows and buffers along the way let through.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return { stream, written: serverStats.streamMessagesWritten - startCount };
    };
    // grpc-js itself keeps messages in flight (its writable buffers 16 of them): measured without proxies first.
    const direct = echoClient(`127.0.0.1:${grpcApp.port}`);
    clients.push(direct);
    const baseline = await inFlightWhenPaused(direct as unknown as Streaming);
    baseline.stream.cancel();
    const proxied = await inFlightWhenPaused(viaUpstream() as unknown as Streaming);
    const extraMiB = ((proxied.written - baseline.written) * messageBytes) / (1024 * 1024);
    // Two proxies, each with a 256 KiB stream window per hop and small write buffers: a few MiB at most, not the whole 64 MiB.
    assert.ok(proxied.written < total / 2, `${proxied.written} of ${total} messages written while the client read 1`);
    assert.ok(extraMiB <= 4, `the proxies held ${extraMiB} MiB more than grpc-js alone (${baseline.written} direct, ${proxied.written} proxied)`);
    let received = 1;
    const done = new Promise<void>((resolve, reject) => {
      proxied.stream.on('error', reject);
      proxied.stream.on('end', resolve);
    });
    proxied.stream.on('data', () => received++);
    proxied.stream.resume();
    await done;
    assert.equal(received, total);
  });

  it('1,000 concurrent streams share a few tunnel connections', async () => {
    const c = viaUpstream();
    const before = await tunnelConnections(server);
    const results = await Promise.all([...Array(1000).keys()].map((i) => unary(c, { message: `n${i}`, delayMs: 20 })));
    assert.deepEqual(results.filter((r) => r.error).map((r) => r.error!.message), []);
    assert.ok(results.every((r, i) => r.reply!.message === `n${i}`));
    const opened = (await tunnelConnections(server)) - before;
    assert.ok(opened <= 4, `${opened} new tunnel connections for 1,000 streams`);
  });

  it('100 concurrent HTTP/1.1 clients use a bounded, reused set of tunnel connections', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    try {
      const start = await tunnelConnections(server);
      const round = () => Promise.all([...Array(100).keys()].map((i) => viaProxy(out, `http://web:8080/c${i}?delay=20`, { agent })));
      const first = await round();
      assert.ok(first.every((r) => r.status === 200));
      const afterFirst = await tunnelConnections(server);
      const second = await round();
      assert.ok(second.every((r) => r.status === 200));
      const afterSecond = await tunnelConnections(server);
      // The pool caps connections per peer (64); a second round reuses them instead of dialling again.
      assert.ok(afterFirst - start <= 64, `${afterFirst - start} tunnel connections for 100 clients`);
      assert.ok(afterSecond - afterFirst <= 64 - (afterFirst - start) + 1, `${afterSecond - afterFirst} more in the second round`);
    } finally {
      agent.destroy();
    }
  });

  it('deadlines: the caller’s grpc-timeout and the route’s timeout end the call with DEADLINE_EXCEEDED', async () => {
    const c = viaUpstream();
    const clientSide = await unary(c, { delayMs: 2000 }, { deadlineMs: 200 });
    assert.equal(clientSide.error?.code, grpc.status.DEADLINE_EXCEEDED);

    // The proxy's own deadline: a caller that sends grpc-timeout but does not enforce it gets it from the proxy.
    const raw = await h2Request(
      out,
      { ':method': 'POST', ':path': '/weft.test.Echo/Unary', ':authority': 'echo:9000', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '150m' },
      grpcFrame(Buffer.from([0x18, 0xd0, 0x0f])), // delay_ms = 2000
    );
    assert.equal(raw.headers[':status'], 200);
    assert.equal(raw.headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(raw.headers['weft-reason'], 'WEFT_ERR_TIMEOUT');
    assert.ok(raw.endedWithHeaders, 'a trailers-only answer');

    const routed = viaHttpProxy('echo-slow-route:9000');
    const started = Date.now();
    const result = await unary(routed, { delayMs: 2000 }, { deadlineMs: 5000 });
    assert.equal(result.error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.deepEqual(result.trailers!.get('weft-reason'), ['WEFT_ERR_TIMEOUT']);
    assert.ok(Date.now() - started < 1500);
  });

  it('proxy-made answers to gRPC callers are gRPC errors: UNAVAILABLE when nothing listens, UNIMPLEMENTED for no route, an error (not a hang) from an HTTP/1.1-only app', async () => {
    const dead = await unary(viaHttpProxy('dead:9001'), { message: 'x' });
    assert.equal(dead.error?.code, grpc.status.UNAVAILABLE);
    assert.deepEqual(dead.trailers!.get('weft-reason'), ['WEFT_ERR_UPSTREAM_CONNECT']);

    const noRoute = await h2Request(out, { ':method': 'POST', ':path': '/weft.test.Echo/Unary', ':authority': 'nowhere:9000', 'content-type': 'application/grpc' }, grpcFrame(Buffer.alloc(0)));
    assert.equal(noRoute.headers[':status'], 200);
    assert.equal(noRoute.headers['grpc-status'], String(grpc.status.UNIMPLEMENTED));
    assert.equal(noRoute.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
    assert.ok(noRoute.endedWithHeaders);
    // The proxy's own gRPC answers are counted as what they are: HTTP 200 with a failing grpc-status, by reason.
    const metrics = (await adminGet(client.proxy.ports.admin, '/metrics')).body;
    assert.match(metrics, /^weft_requests_total\{(?=[^}]*response_code="200")(?=[^}]*grpc_response_status="12")(?=[^}]*weft_reason="WEFT_ERR_NO_ROUTE")[^}]*\} 1$/m);
    // The peer's UNAVAILABLE (its app refused) is relayed: a failing grpc-status, the reason the peer's.
    assert.match(metrics, /^weft_requests_total\{(?=[^}]*destination_service="default\/dead")(?=[^}]*grpc_response_status="14")[^}]*\} [1-9]/m);

    const started = Date.now();
    const h1Only = await unary(viaHttpProxy('web-as-grpc:8080'), { message: 'x' }, { deadlineMs: 5000 });
    assert.ok(h1Only.error, 'the call fails');
    assert.notEqual(h1Only.error.code, grpc.status.DEADLINE_EXCEEDED, h1Only.error.message);
    assert.ok(Date.now() - started < 3000);
  });

  it('a route retry with codes [503] retries a trailers-only UNAVAILABLE', async () => {
    const before = flakyCalls;
    // Only a body the body-buffer layer kept can be sent again (with or without a Content-Length; grpc-js calls: grpc-retry-body.test.ts).
    const answer = await h2Request(
      out,
      { ':method': 'POST', ':path': '/weft.test.Flaky/Call', ':authority': 'flaky:9002', 'content-type': 'application/grpc', te: 'trailers', 'content-length': '5' },
      grpcFrame(Buffer.alloc(0)),
    );
    assert.equal(answer.headers['grpc-status'], '0');
    assert.equal(flakyCalls - before, 2, 'one retry');
  });

  it('curl --http2-prior-knowledge and curl --http2 through the outbound port and an upstream port, to HTTP/1.1 and HTTP/2 apps', async () => {
    // h2c to the outbound port itself (the authority names the service), and inside a CONNECT tunnel (curl -p).
    for (const args of [['--connect-to', `web:8080:127.0.0.1:${out}`], ['-p', '-x', `http://127.0.0.1:${out}`]]) {
      const viaOutbound = await run('curl', ['-sS', '--http2-prior-knowledge', ...args, 'http://web:8080/curl?x=1', '-w', '\n%{http_version}'], { timeout: 10_000 });
      const [body, version] = viaOutbound.stdout.split('\n');
      assert.equal(version, '2', args.join(' '));
      const seen = JSON.parse(body!) as { url: string; headers: Record<string, string> };
      assert.equal(seen.url, '/curl?x=1');
      assert.equal(seen.headers.host, 'web:8080');
    }

    const viaPort = await run('curl', ['-sS', '--http2-prior-knowledge', `http://127.0.0.1:${webUpstream}/up`, '-w', '\n%{http_version}'], { timeout: 10_000 });
    assert.match(viaPort.stdout, /"url":"\/up"/);
    assert.match(viaPort.stdout, /\n2$/);

    // curl --http2 on http:// asks for an h2c upgrade; the sidecar answers over HTTP/1.1 (as Envoy does), through the
    // forward proxy and on an upstream port alike.
    for (const args of [['-x', `http://127.0.0.1:${out}`, 'http://web:8080/upgrade-asked'], [`http://127.0.0.1:${webUpstream}/upgrade-asked`]]) {
      const upgradeAsked = await run('curl', ['-sS', '--http2', ...args, '-w', '\n%{http_code} %{http_version}'], { timeout: 10_000 });
      assert.match(upgradeAsked.stdout, /"url":"\/upgrade-asked"/, args.join(' '));
      assert.match(upgradeAsked.stdout, /\n200 1\.1$/, args.join(' '));
    }

    // HTTP/1.1 in, HTTP/2 to the app (declared http2): :authority from Host.
    const toH2 = await viaProxy(out, 'http://h2web:9002/h1-in');
    assert.equal(toH2.status, 200, toH2.body);
    assert.deepEqual(JSON.parse(toH2.body), { authority: 'h2web:9002', path: '/h1-in', te: null });
  });

  it('h2load (h2c) through the sidecars: an upstream port and the outbound port, 0 errors', async () => {
    for (const [port, authority] of [[webUpstream, undefined], [out, 'h2web:9002']] as const) {
      const args = ['-n', '1000', '-c', '4', '-m', '10', `http://127.0.0.1:${port}/load`, ...(authority ? ['-H', `:authority: ${authority}`] : [])];
      const { stdout } = await run('h2load', args, { timeout: 30_000 });
      assert.match(stdout, /requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored, 0 timeout/, stdout);
      assert.match(stdout, /status codes: 1000 2xx/, stdout);
    }
  });

  it('trailers both ways between an HTTP/1.1 client (chunked, announced with Trailer) and an HTTP/2 app', async () => {
    const answer = await new Promise<{ body: string; trailers: Record<string, string> }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: out, method: 'POST', path: 'http://h2web:9002/trailers', headers: { host: 'h2web:9002', trailer: 'x-checksum', te: 'trailers' }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ body, trailers: res.trailers as Record<string, string> }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.write('0123456789');
      req.addTrailers({ 'x-checksum': 'abc123' });
      req.end();
    });
    assert.deepEqual(JSON.parse(answer.body), { size: 10, trailer: 'abc123' });
    assert.equal(answer.trailers['x-answer-trailer'], 'from-app');
  });

  it('an upstream reset mid-response resets the client’s stream (HTTP/2) or cuts its connection (HTTP/1.1), never a complete-looking answer', async () => {
    const viaH2 = await h2Request(out, { ':method': 'GET', ':path': '/reset', ':authority': 'h2web:9002' });
    assert.equal(viaH2.headers[':status'], 200);
    assert.notEqual(viaH2.rstCode, h2.NGHTTP2_NO_ERROR, 'the stream was reset');

    const viaH1 = await viaProxy(out, 'http://h2web:9002/reset').then(
      (res) => `complete: ${res.status} ${res.body}`,
      (error: Error) => `failed: ${error.message}`,
    );
    assert.match(viaH1, /^failed/);
  });

  it('malformed HTTP/2 is refused and never forwarded: connection-specific headers, content-length mismatch, a bad frame', async () => {
    const seenBefore = webApp.requests;
    // node:http2 will not send these itself, so they go as raw frames on a plaintext connection.
    const refusedStream = await rawH2(out, (write) => {
      // HEADERS on stream 1 with "connection: keep-alive" (forbidden in HTTP/2, RFC 9113 §8.2.2), END_STREAM|END_HEADERS.
      write(frame(0x1, 0x5, 1, hpackLiteral([[':method', 'GET'], [':path', '/bad'], [':scheme', 'http'], [':authority', 'web:8080'], ['connection', 'keep-alive']])));
    });
    assert.ok(refusedStream.rstStream || refusedStream.goaway, `refused: ${JSON.stringify(refusedStream)}`);
    assert.equal(webApp.requests, seenBefore, 'a request with a connection-specific header never reaches the app');

    const badFrame = await rawH2(out, (write) => {
      // A DATA frame on stream 0 is a connection error (PROTOCOL_ERROR).
      write(frame(0x0, 0x0, 0, Buffer.from('x')));
    });
    assert.ok(badFrame.goaway, `GOAWAY: ${JSON.stringify(badFrame)}`);
    assert.equal(webApp.requests, seenBefore, 'nothing reached the app');

    const mismatched = await rawH2(out, (write) => {
      // content-length 10 but 3 bytes of DATA, then END_STREAM.
      write(frame(0x1, 0x4, 1, hpackLiteral([[':method', 'POST'], [':path', '/cl'], [':scheme', 'http'], [':authority', 'web:8080'], ['content-length', '10']])));
      write(frame(0x0, 0x1, 1, Buffer.from('abc')));
    });
    assert.ok(mismatched.rstStream || mismatched.goaway, `refused: ${JSON.stringify(mismatched)}`);
    // Headers are forwarded as they come (bodies stream), but the app never gets a whole body: the upstream request is cut.
    assert.ok(!mismatched.headers200, 'no answer from the app');
  });
});

/** A gRPC length-prefixed message (uncompressed). */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name" for each pair (short names and values only). */
function hpackLiteral(pairs: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of pairs) {
    parts.push(Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

/** Opens a plaintext HTTP/2 connection with raw frames and reports what came back within a second. */
function rawH2(port: number, send: (write: (b: Buffer) => void) => void): Promise<{ rstStream: boolean; goaway: boolean; headers200: boolean }> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    const seen = { rstStream: false, goaway: false, headers200: false };
    let buffered = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(seen);
    };
    const timer = setTimeout(done, 1000);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const type = buffered[3];
        if (type === 0x3) seen.rstStream = true;
        if (type === 0x7) seen.goaway = true;
        if (type === 0x1) seen.headers200 = true;
        if (type === 0x4 && (buffered[4]! & 0x1) === 0) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
        buffered = buffered.subarray(9 + length);
      }
      if (seen.rstStream || seen.goaway) done();
    });
    socket.on('connect', () => {
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      socket.write(frame(0x4, 0x0, 0, Buffer.alloc(0)));
      send((b) => socket.write(b));
    });
  });
}
