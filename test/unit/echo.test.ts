// The echo backend against the conformance echo-basic contract: JSON fields, header names, set-header, delay, status, retry, logs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startEcho, canonicalHeaderName, parseGoDuration, type EchoResponse } from '../../src/testing/echo.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: string;
}

/** Sends raw header lines (names as written) so that casing and repeats reach the echo untouched. */
function send(port: number, path: string, headers: [string, string][] = [], method = 'GET'): Promise<Reply> {
  if (!headers.some(([name]) => name.toLowerCase() === 'host')) headers = [['Host', `127.0.0.1:${port}`], ...headers];
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: headers.flat(), agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n')) if (line) logLines.push((JSON.parse(line) as { msg: string }).msg);
    done();
  },
});
const echo = await startEcho({ port: 0, namespace: 'gateway-conformance-infra', pod: 'infra-backend-v1-abc-def', logger: pino({ level: 'info' }, logSink) });
after(() => echo.close());

test('answers any path with the request it saw', async () => {
  const reply = await send(echo.port, '/v2/example?x=1&y=%20', [
    ['Host', 'example.com:8080'],
    ['x-header-add', 'a'],
    ['X-HEADER-ADD', 'b'],
    ['version', 'one'],
  ]);
  assert.equal(reply.status, 200);
  assert.match(String(reply.headers['content-type']), /^application\/json/);
  const body = JSON.parse(reply.body) as EchoResponse;
  assert.equal(body.path, '/v2/example?x=1&y=%20');
  assert.equal(body.host, 'example.com:8080');
  assert.equal(body.method, 'GET');
  assert.equal(body.proto, 'HTTP/1.1');
  assert.deepEqual(body.headers['X-Header-Add'], ['a', 'b']);
  assert.deepEqual(body.headers['Version'], ['one']);
  assert.equal(body.headers['Host'], undefined, 'Host is reported as host, not as a header');
  assert.equal(body.namespace, 'gateway-conformance-infra');
  assert.equal(body.pod, 'infra-backend-v1-abc-def');
  assert.equal(body.httpPort, String(echo.port));
});

test('echoes other methods and drains their bodies', async () => {
  const reply = await send(echo.port, '/post', [['Content-Length', '0']], 'POST');
  assert.equal((JSON.parse(reply.body) as EchoResponse).method, 'POST');
});

test('header names are canonicalised the way Go does', () => {
  assert.equal(canonicalHeaderName('x-forwarded-for'), 'X-Forwarded-For');
  assert.equal(canonicalHeaderName('CONTENT-TYPE'), 'Content-Type');
  assert.equal(canonicalHeaderName('x_underscore'), 'X_underscore');
  assert.equal(canonicalHeaderName('bad header'), 'bad header');
});

test('X-Echo-Set-Header sets response headers, keeping name casing and joining repeats', async () => {
  const reply = await send(echo.port, '/', [['X-Echo-Set-Header', 'X-Header-Set: one, Another:2,x-header-set:three']]);
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['x-header-set'], 'one,three');
  assert.equal(reply.headers['another'], '2');
  assert.ok(reply.rawHeaders.includes('X-Header-Set'), `raw headers: ${reply.rawHeaders.join(' ')}`);
});

test('?delay waits before answering', async () => {
  const started = performance.now();
  const reply = await send(echo.port, '/slow?delay=200ms');
  assert.equal(reply.status, 200);
  assert.ok(performance.now() - started >= 190, 'answered too early');
  assert.equal((await send(echo.port, '/?delay=forever')).status, 400);
});

test('Go durations', () => {
  assert.equal(parseGoDuration('1s'), 1000);
  assert.equal(parseGoDuration('1.5s'), 1500);
  assert.equal(parseGoDuration('1m30s'), 90_000);
  assert.equal(parseGoDuration('250ms'), 250);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('10'), undefined);
  assert.equal(parseGoDuration('s'), undefined);
});

test('/status/NNN and /health', async () => {
  assert.equal((await send(echo.port, '/status/503')).status, 503);
  assert.equal((await send(echo.port, '/status/404')).status, 404);
  const health = await send(echo.port, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.body, 'OK');
});

test('/retry fails the first N attempts per uuid with the given code, then echoes', async () => {
  const path = '/retry/x?uuid=u1&succeedAfter=2&responseCode=503';
  assert.equal((await send(echo.port, path)).status, 503);
  assert.equal((await send(echo.port, path)).status, 503);
  const third = await send(echo.port, path);
  assert.equal(third.status, 200);
  assert.equal((JSON.parse(third.body) as EchoResponse).path, path);
  // Another uuid has its own counter.
  assert.equal((await send(echo.port, '/retry/x?uuid=u2&succeedAfter=1&responseCode=500')).status, 500);
});

test('/retry without responseCode resets the connection', async () => {
  await assert.rejects(send(echo.port, '/retry?uuid=u3&succeedAfter=1'), /ECONNRESET|socket hang up/);
  assert.equal((await send(echo.port, '/retry?uuid=u3&succeedAfter=1')).status, 200);
});

test('/retry honours delayRetry on failing attempts', async () => {
  const started = performance.now();
  assert.equal((await send(echo.port, '/retry?uuid=u4&succeedAfter=1&responseCode=502&delayRetry=150ms')).status, 502);
  assert.ok(performance.now() - started >= 140);
});

test('logs one line per request, as the mirror tests grep for', async () => {
  await send(echo.port, '/mirror-me?q=1');
  const line = logLines.find((l) => l.startsWith('Echoing back request made to /mirror-me?q=1 to client ('));
  assert.ok(line, `log lines: ${logLines.join('\n')}`);
  assert.match(line, /\(127\.0\.0\.1:[0-9]+\)$/);
});

test('h2c mode: HTTP/2 with prior knowledge, the :authority reported as host', async (t) => {
  const { connect } = await import('node:http2');
  const echo = await startEcho({ port: 0, namespace: 'infra', pod: 'infra-backend-v1-abc-def', h2c: true });
  t.after(() => echo.close());
  const session = connect(`http://127.0.0.1:${echo.port}`);
  t.after(() => session.destroy());
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': '/h2c?x=1', ':authority': 'example.com', 'x-test': 'yes' });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
  assert.equal(status, 200);
  const echoed = JSON.parse(body) as EchoResponse;
  assert.equal(echoed.path, '/h2c?x=1');
  assert.equal(echoed.host, 'example.com');
  assert.equal(echoed.proto, 'HTTP/2.0');
  assert.deepEqual(echoed.headers['X-Test'], ['yes']);
  assert.equal(echoed.pod, 'infra-backend-v1-abc-def');
});
