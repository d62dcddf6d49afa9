// BackendTrafficPolicy through a real sidecar and real backends: balancing, hashing, breaker, outlier ejection, health checks, locality, retry budget, connections.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendTraffic, LoadBalancer, SnapshotEndpoint, SnapshotLocality } from '../../src/api/snapshot.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { adminGet, startTestProxy, viaProxy } from './proxy-helpers.ts';
import { policySnapshot, requestMany, startControlled, tally, type ControlledBackend } from './backend-policy-helpers.ts';
import { prefixRule } from './routing-helpers.ts';

async function backends(t: TestContext, ...names: string[]): Promise<ControlledBackend[]> {
  const started = await Promise.all(names.map((name) => startControlled(name)));
  t.after(() => Promise.all(started.map((b) => b.close())));
  return started;
}

async function proxyWith(
  t: TestContext,
  endpoints: SnapshotEndpoint[],
  lb: LoadBalancer,
  traffic: Omit<BackendTraffic, 'policy'> | undefined,
  options: Parameters<typeof policySnapshot>[3] = {},
): Promise<{ out: number; admin: number }> {
  const proxy = await startTestProxy({ snapshot: policySnapshot(endpoints, lb, traffic, options) });
  t.after(() => proxy.close());
  return { out: proxy.proxy.ports.outbound, admin: proxy.proxy.ports.admin };
}

describe('BackendTrafficPolicy', () => {
  it('least request sends fewer requests to a slow endpoint', async (t) => {
    const [fast, slow] = await backends(t, 'fast', 'slow');
    slow!.delayMs = 40;
    const { out } = await proxyWith(t, [fast!.endpoint(), slow!.endpoint()], 'least-request', {});
    const results = await requestMany(out, 200, 4, () => 'http://web/');
    assert.ok(results.every((r) => r.status === 200));
    const counts = tally(results);
    assert.ok((counts.slow ?? 0) < 40, `the slow endpoint got ${counts.slow} of 200 (fast: ${counts.fast})`);
  });

  it('consistent hashing keeps a key on one endpoint over 1,000 requests and moves about 1/N of keys when an endpoint is added', async (t) => {
    const all = await backends(t, 'h0', 'h1', 'h2', 'h3');
    const hash: BackendTraffic['hash'] = { source: 'header', name: 'x-user', algorithm: 'maglev' };
    const three = await proxyWith(t, all.slice(0, 3).map((b) => b.endpoint()), 'consistent-hash', { hash });
    const four = await proxyWith(t, all.map((b) => b.endpoint()), 'consistent-hash', { hash });

    const sticky = await requestMany(three.out, 1000, 8, () => 'http://web/', () => ({ 'x-user': 'alice' }));
    assert.equal(Object.keys(tally(sticky)).length, 1, `alice went to ${JSON.stringify(tally(sticky))}`);

    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const before = await requestMany(three.out, keys.length, 8, () => 'http://web/', (i) => ({ 'x-user': keys[i]! }));
    const afterAdd = await requestMany(four.out, keys.length, 8, () => 'http://web/', (i) => ({ 'x-user': keys[i]! }));
    const spread = tally(before);
    for (const name of ['h0', 'h1', 'h2']) assert.ok((spread[name] ?? 0) > 60, `keys spread over the endpoints: ${JSON.stringify(spread)}`);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) if (before[i]!.headers['x-backend'] !== afterAdd[i]!.headers['x-backend']) moved++;
    const share = moved / keys.length;
    assert.ok(share > 0.15 && share < 0.35, `a fourth endpoint moved ${(share * 100).toFixed(1)} % of the keys (ideal 25 %)`);
  });

  it('the circuit breaker answers 503 at once over its limit, counts it, and recovers', async (t) => {
    const [slow] = await backends(t, 'slow');
    slow!.delayMs = 300;
    const { out, admin } = await proxyWith(t, [slow!.endpoint()], 'round-robin', { circuitBreaker: { maxRequests: 2 } });
    const started = performance.now();
    const burst = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const res = await viaProxy(out, 'http://web/');
        return { status: res.status, reason: res.headers['weft-reason'], ms: performance.now() - started };
      }),
    );
    const ok = burst.filter((r) => r.status === 200);
    const refused = burst.filter((r) => r.status === 503);
    assert.equal(ok.length, 2, JSON.stringify(burst));
    assert.equal(refused.length, 3);
    const firstAccepted = Math.min(...ok.map((r) => r.ms));
    for (const r of refused) {
      assert.equal(r.reason, 'WEFT_ERR_CIRCUIT_OPEN');
      assert.ok(r.ms < firstAccepted, `a refused request is answered at once (${r.ms.toFixed(0)} ms), before the backend answers the others (${firstAccepted.toFixed(0)} ms)`);
    }
    assert.equal(slow!.requests, 2, 'refused requests never reach the backend');
    // The limit frees up as requests finish.
    const again = await Promise.all([viaProxy(out, 'http://web/'), viaProxy(out, 'http://web/')]);
    assert.deepEqual(again.map((r) => r.status), [200, 200]);
    const metrics = (await adminGet(admin, '/metrics')).body;
    assert.match(metrics, /weft_proxy_responses_total\{reason="WEFT_ERR_CIRCUIT_OPEN"\} 3\b/);
  });

  it('max pending requests: beyond maxConnections per endpoint, only that many wait', async (t) => {
    const [slow] = await backends(t, 'slow');
    slow!.delayMs = 300;
    const { out } = await proxyWith(t, [slow!.endpoint()], 'round-robin', { circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 } });
    const burst = await Promise.all(Array.from({ length: 4 }, () => viaProxy(out, 'http://web/')));
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 200, 503, 503]);
    assert.equal(slow!.connections, 1, 'the pool keeps to maxConnections');
  });

  it('outlier detection ejects an endpoint that starts failing within its threshold, and takes it back after the ejection time', async (t) => {
    const [good, bad] = await backends(t, 'good', 'bad');
    const { out } = await proxyWith(t, [good!.endpoint(), bad!.endpoint()], 'round-robin', {
      outlierDetection: { consecutive5xx: 3, baseEjectionMs: 1000, maxEjectionMs: 10_000, maxEjectionPercent: 50 },
    });
    bad!.status = 500;
    const failing = await requestMany(out, 20, 1, () => 'http://web/');
    assert.equal(bad!.requests, 3, 'the failing endpoint got exactly its 3 consecutive 5xx, then nothing');
    assert.equal(failing.filter((r) => r.status === 500).length, 3);
    const ejectedAt = bad!.lastRequestAt;
    bad!.status = 200;
    // Back after the ejection time (1 s), not before.
    await waitFor(
      async () => {
        await viaProxy(out, 'http://web/');
        return bad!.requests > 3;
      },
      { timeoutMs: 4000, intervalMs: 50, message: 'the ejected endpoint to get traffic again' },
    );
    const back = bad!.lastRequestAt - ejectedAt;
    assert.ok(back >= 1000, `it came back ${back.toFixed(0)} ms after its third failure`);
  });

  it('a health-checked endpoint that goes unhealthy receives nothing until it recovers', async (t) => {
    const [steady, flaky] = await backends(t, 'steady', 'flaky');
    const { out } = await proxyWith(t, [steady!.endpoint(), flaky!.endpoint()], 'round-robin', {
      healthCheck: { type: 'http', path: '/healthz', expectedStatuses: [200], intervalMs: 50, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2 },
    });
    await waitFor(() => flaky!.healthChecks >= 2, { message: 'health checks to start' });
    flaky!.healthStatus = 503;
    const checksAtFailure = flaky!.healthChecks;
    await waitFor(() => flaky!.healthChecks >= checksAtFailure + 3, { message: 'the failing checks' });
    const servedBefore = flaky!.requests;
    const whileDown = await requestMany(out, 30, 2, () => 'http://web/');
    assert.equal(flaky!.requests, servedBefore, 'an unhealthy endpoint gets no requests');
    assert.deepEqual(tally(whileDown), { steady: 30 });
    flaky!.healthStatus = 200;
    await waitFor(
      async () => {
        await viaProxy(out, 'http://web/');
        return flaky!.requests > servedBefore;
      },
      { timeoutMs: 3000, message: 'the recovered endpoint to get traffic' },
    );
  });

  it('locality: prefers the caller\'s zone, fails over to its region, then elsewhere', async (t) => {
    const [local, region, far] = await backends(t, 'local', 'region', 'far');
    const caller: SnapshotLocality = { region: 'eu', zone: 'a' };
    const { out } = await proxyWith(
      t,
      [far!.endpoint({ region: 'us', zone: 'a' }), region!.endpoint({ region: 'eu', zone: 'b' }), local!.endpoint({ region: 'eu', zone: 'a' })],
      'round-robin',
      { localityFailover: true, outlierDetection: { consecutiveGatewayErrors: 1, baseEjectionMs: 30_000, maxEjectionMs: 30_000, maxEjectionPercent: 100 } },
      { locality: caller },
    );
    assert.deepEqual(tally(await requestMany(out, 20, 2, () => 'http://web/')), { local: 20 });
    await local!.close();
    const failover = await requestMany(out, 20, 1, () => 'http://web/');
    assert.ok(failover.every((r) => r.status === 200), 'the refused connection is retried elsewhere');
    assert.deepEqual(tally(failover.slice(1)), { region: 19 });
    await region!.close();
    const farAway = await requestMany(out, 20, 1, () => 'http://web/');
    assert.deepEqual(tally(farAway.slice(1)), { far: 19 });
  });

  it('retries heal a flaky backend within the budget, and stop when the budget is spent', async (t) => {
    const [flaky] = await backends(t, 'flaky');
    const rules = [prefixRule('retry', '/', { retry: { codes: [503], attempts: 3, backoffMs: 1 } })];
    const { out } = await proxyWith(t, [flaky!.endpoint()], 'round-robin', { retryBudget: { percent: 20, minRetriesPerSecond: 0, windowMs: 10_000 } }, { rules });
    // One answer in eight fails: its retry fits in a 20 % budget.
    flaky!.failWhen = (count) => count % 8 === 7;
    const healed = await requestMany(out, 40, 1, () => 'http://web/');
    assert.deepEqual(tally(healed), { flaky: 40 });
    assert.ok(healed.every((r) => r.status === 200), 'every flaky answer was retried');
    // Now it always fails: retries stop once they add 20 % to the requests in the window.
    flaky!.failWhen = () => true;
    const before = flaky!.requests;
    const failing = await requestMany(out, 60, 1, () => 'http://web/');
    assert.ok(failing.every((r) => r.status === 503));
    const retries = flaky!.requests - before - 60;
    // 100 requests in the window allow 20 retries; 5 went to the flaky phase.
    assert.ok(retries >= 10 && retries <= 16, `${retries} retries for 60 failing requests`);
  });

  it('max parallel retries: over the limit, a failing answer is passed on instead of retried', async (t) => {
    const [failing] = await backends(t, 'failing');
    failing!.status = 503;
    failing!.delayMs = 150;
    const rules = [prefixRule('retry', '/', { retry: { codes: [503], attempts: 2, backoffMs: 1 } })];
    const { out } = await proxyWith(t, [failing!.endpoint()], 'round-robin', { circuitBreaker: { maxRetries: 1 } }, { rules });
    const answers = await Promise.all([viaProxy(out, 'http://web/a'), viaProxy(out, 'http://web/b')]);
    assert.deepEqual(answers.map((r) => r.status), [503, 503]);
    assert.equal(failing!.requests, 4, 'one request retried twice, the other not at all (2 + 2 attempts, not 6)');
  });

  it('max requests per connection and idle timeout shape the pool to the endpoint', async (t) => {
    const [echo, idle] = await backends(t, 'echo', 'idle');
    const perConnection = await proxyWith(t, [echo!.endpoint()], 'round-robin', { connection: { maxRequestsPerConnection: 2, connectTimeoutMs: 1000 } });
    await requestMany(perConnection.out, 10, 1, () => 'http://web/');
    assert.ok(echo!.connections >= 5, `10 requests at 2 per connection took ${echo!.connections} connections`);

    const shortIdle = await proxyWith(t, [idle!.endpoint()], 'round-robin', { connection: { idleTimeoutMs: 100 } });
    await requestMany(shortIdle.out, 3, 1, () => 'http://web/');
    assert.equal(idle!.connections, 1, 'requests in a row share a connection');
    await waitFor(() => idle!.openConnections() === 0, { timeoutMs: 3000, message: 'the idle connection to close' });
    await viaProxy(shortIdle.out, 'http://web/');
    assert.equal(idle!.connections, 2, 'a connection idle past idleTimeout is not reused');
  });
});
