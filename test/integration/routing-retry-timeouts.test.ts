// Route retries and timeouts through a real sidecar, modelled on HTTPRouteRetry, HTTPRouteRetryConnectionError, HTTPRouteRetryWithTimeouts and the timeout cases.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { HttpRouteRule } from '../../src/api/snapshot.ts';
import { buildSnapshot, endpoint, startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { prefixRule, startCapturedEcho, type CapturedEcho } from './routing-helpers.ts';

describe('retries and timeouts', () => {
  let echo: CapturedEcho;
  let proxy: TestProxy;
  let out: number;

  before(async () => {
    echo = await startCapturedEcho('retry-v3-abc-def');
    const rule = (id: string, prefix: string, extra: Partial<HttpRouteRule>) => prefixRule(id, prefix, extra);
    const rules = [
      rule('code-500-attempts-3', '/retry/code-500-attempts-3', { retry: { codes: [500], attempts: 3, backoffMs: 10 } }),
      rule('code-all-attempts-2', '/retry/code-all-attempts-2', { retry: { codes: [500, 502, 503, 504], attempts: 2, backoffMs: 10 } }),
      rule('no-status-code-attempts-3', '/retry/no-status-code-attempts-3', { retry: { codes: [], attempts: 3, backoffMs: 10 } }),
      rule('backend-timeout-retry', '/retry/backend-request-timeout-200ms', { retry: { codes: [], attempts: 2, backoffMs: 25 }, timeouts: { backendRequestMs: 200 } }),
      rule('request-timeout-retry', '/retry/request-timeout-200ms', { retry: { codes: [500], attempts: 5, backoffMs: 25 }, timeouts: { backendRequestMs: 200, requestMs: 400 } }),
      rule('no-retry', '/retry/none', {}),
      rule('zero-attempts', '/retry/zero', { retry: { codes: [500], attempts: 0, backoffMs: 10 } }),
      rule('request-timeout', '/request-timeout', { timeouts: { requestMs: 500 } }),
      rule('backend-timeout', '/backend-timeout', { timeouts: { backendRequestMs: 500 } }),
      rule('no-timeout', '/disable-request-timeout', {}),
    ];
    proxy = await startTestProxy({
      snapshot: buildSnapshot({ services: [{ name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/web-0', echo.port)], rules }] }] }),
    });
    out = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    await echo?.close();
  });

  const attemptsOf = (uuid: string) => echo.lines.filter((line) => line.includes(`uuid=${uuid}`)).length;

  /** GET (or another method) of a retry-simulator path with a fresh uuid; the status and how many attempts the echo saw. */
  const retry = async (path: string, query: string, options: { method?: string; body?: string } = {}) => {
    const uuid = randomUUID();
    const requestOptions: { method?: string; body?: string; headers?: Record<string, string>; timeoutMs: number } = { timeoutMs: 8000 };
    if (options.method) requestOptions.method = options.method;
    if (options.body !== undefined) {
      requestOptions.body = options.body;
      requestOptions.headers = { 'content-type': 'text/plain' };
    }
    const res = await viaProxy(out, `http://web${path}?${query}&uuid=${uuid}`, requestOptions);
    return { status: res.status, attempts: attemptsOf(uuid), res };
  };

  it('retries the listed status codes up to `attempts` times, and passes the last answer on', async () => {
    assert.deepEqual(await pick(retry('/retry/code-500-attempts-3', 'responseCode=500&succeedAfter=2')), { status: 200, attempts: 3 });
    assert.deepEqual(await pick(retry('/retry/code-500-attempts-3', 'responseCode=500&succeedAfter=4')), { status: 500, attempts: 4 });
    assert.deepEqual(await pick(retry('/retry/code-500-attempts-3', 'responseCode=503&succeedAfter=2')), { status: 503, attempts: 1 }, '503 is not listed');
    for (const code of [500, 502, 503, 504]) {
      assert.deepEqual(await pick(retry('/retry/code-all-attempts-2', `responseCode=${code}&succeedAfter=1`)), { status: 200, attempts: 2 }, String(code));
      assert.deepEqual(await pick(retry('/retry/code-all-attempts-2', `responseCode=${code}&succeedAfter=3`)), { status: code, attempts: 3 }, String(code));
    }
  });

  it('retries connection resets, and answers 503 when every attempt was reset', async () => {
    assert.deepEqual(await pick(retry('/retry/no-status-code-attempts-3', 'succeedAfter=2')), { status: 200, attempts: 3 });
    const { status, attempts, res } = await retry('/retry/no-status-code-attempts-3', 'succeedAfter=4');
    assert.equal(status, 503);
    assert.equal(attempts, 4);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_RESET');
    // Without a policy a reset is not retried and stays a 502.
    assert.deepEqual(await pick(retry('/retry/none', 'succeedAfter=1')), { status: 502, attempts: 1 });
  });

  it('retries timed-out attempts; the request timeout ends every attempt and backoff with 504', async () => {
    assert.deepEqual(await pick(retry('/retry/backend-request-timeout-200ms', 'delayRetry=300ms&responseCode=500&succeedAfter=2')), { status: 200, attempts: 3 });
    const exhausted = await retry('/retry/backend-request-timeout-200ms', 'delayRetry=300ms&responseCode=500&succeedAfter=3');
    assert.equal(exhausted.status, 504);
    assert.equal(exhausted.res.headers['weft-reason'], 'WEFT_ERR_TIMEOUT');
    assert.equal((await retry('/retry/request-timeout-200ms', 'responseCode=500&succeedAfter=1')).status, 200);
    const started = performance.now();
    const cut = await retry('/retry/request-timeout-200ms', 'delayRetry=100ms&responseCode=500&succeedAfter=4');
    const took = performance.now() - started;
    assert.equal(cut.status, 504);
    assert.ok(took >= 390 && took < 1500, `answered after ${took.toFixed(0)} ms, at the 400 ms request timeout`);
    assert.ok(cut.attempts >= 2 && cut.attempts <= 4, `${cut.attempts} attempts`);
  });

  it('retries a request with a small body, sending the body again; never a reset POST or a streamed large body', async () => {
    const posted = await retry('/retry/code-500-attempts-3', 'responseCode=500&succeedAfter=2', { method: 'POST', body: 'hello body' });
    assert.equal(posted.status, 200);
    assert.equal(posted.attempts, 3);
    const seen = posted.res.json<{ method: string; headers: Record<string, string[]> }>();
    assert.equal(seen.method, 'POST');
    assert.deepEqual(seen.headers['Content-Length'], ['10']);
    // A reset may come after the backend acted on a POST: it is not retried.
    assert.deepEqual(await pick(retry('/retry/no-status-code-attempts-3', 'succeedAfter=1', { method: 'POST', body: 'x' })), { status: 503, attempts: 1 });
    // Over the buffering limit the body is streamed, so there is nothing to send again.
    assert.deepEqual(
      await pick(retry('/retry/code-500-attempts-3', 'responseCode=500&succeedAfter=1', { method: 'POST', body: 'z'.repeat(100 * 1024) })),
      { status: 500, attempts: 1 },
    );
  });

  it('makes no retry at all with attempts: 0', async () => {
    assert.deepEqual(await pick(retry('/retry/zero', 'responseCode=500&succeedAfter=1')), { status: 500, attempts: 1 });
  });

  it('times out the request or one backend request with 504; a rule without timeouts waits', async () => {
    assert.equal((await viaProxy(out, 'http://web/request-timeout')).status, 200);
    const timedOut = await viaProxy(out, 'http://web/request-timeout?delay=1s');
    assert.equal(timedOut.status, 504);
    assert.equal(timedOut.headers['weft-reason'], 'WEFT_ERR_TIMEOUT');
    assert.equal((await viaProxy(out, 'http://web/backend-timeout?delay=1s')).status, 504);
    assert.equal((await viaProxy(out, 'http://web/disable-request-timeout?delay=1s', { timeoutMs: 5000 })).status, 200);
  });
});

async function pick(result: Promise<{ status: number; attempts: number }>): Promise<{ status: number; attempts: number }> {
  const { status, attempts } = await result;
  return { status, attempts };
}
