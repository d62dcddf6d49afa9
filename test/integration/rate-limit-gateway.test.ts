// A RateLimitPolicy on a real gateway: the limit holds at its rate within 5 % over 10 s; 429s carry RateLimit headers and weft-reason; per-header buckets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/api/errors.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { fixedRateLoad, get, NS, proxyResponses, rateLimitPolicy, startEdge, type Edge } from './rate-limit-helpers.ts';

const RATE = 40;

let edge: Edge;

before(async () => {
  edge = await startEdge([rateLimitPolicy('edge-limit', [{ name: 'all', requests: RATE, interval: '1s' }])], 1);
});

after(async () => {
  await edge?.close();
});

test("a gateway limit of 40 requests/s holds within 5 % over 10 s under 100 requests/s; every 429 is the proxy’s and is counted", async (t) => {
  const gateway = edge.gateways[0]!;
  const before = await proxyResponses(gateway.admin, ErrorCodes.RATE_LIMITED);
  const result = await fixedRateLoad([gateway.port], 100, 2000, 10_000);
  const ok = result.byStatus.get(200) ?? 0;
  const limited = result.byStatus.get(429) ?? 0;
  t.diagnostic(`one gateway, ${RATE}/s: ${ok} passed and ${limited} limited in 10 s (${result.skipped} not sent on time)`);
  assert.deepEqual([...result.byStatus.keys()].sort(), [200, 429], `statuses: ${JSON.stringify([...result.byStatus])}`);
  // A stalled machine may keep some requests from going out on time; the load must still be well above the limit.
  assert.ok(result.skipped < 100, `${result.skipped} of 1,000 requests could not be sent on time`);
  const expected = RATE * 10;
  assert.ok(Math.abs(ok - expected) <= expected * 0.05, `${ok} requests passed in 10 s, expected ${expected} ± 5 %`);
  assert.ok(limited > 500, `${limited} limited`);
  const answer = result.limited!;
  assert.equal(answer.headers['weft-reason'], ErrorCodes.RATE_LIMITED);
  assert.match(String(answer.headers['ratelimit-policy']), /^"edge\/edge-limit\/all";q=40;w=1$/);
  assert.match(String(answer.headers.ratelimit), /^"edge\/edge-limit\/all";r=0;t=1$/);
  assert.equal(answer.headers['ratelimit-limit'], '40');
  assert.equal(answer.headers['ratelimit-remaining'], '0');
  assert.equal(answer.headers['retry-after'], '1');
  // Every 429 of the run (warm-up included) was counted by reason.
  assert.ok((await proxyResponses(gateway.admin, ErrorCodes.RATE_LIMITED)) - before >= limited);
});

test('a per-header limit on a route gives each header value its own bucket; bad input is reported and the rest keeps working', async () => {
  await edge.apply([
    // The gateway-wide limit of the test before is lifted, so that only the per-user buckets decide here.
    rateLimitPolicy('edge-limit', [{ name: 'all', requests: 100_000, interval: '1s' }]),
    rateLimitPolicy('per-user', [{ requests: 3, interval: '1m', descriptors: [{ type: 'Header', header: 'X-User' }] }], { kind: 'HTTPRoute', name: 'api' }),
  ]);
  const gateway = edge.gateways[0]!;
  // The policy is in force once a fourth request from one user is refused.
  await waitFor(async () => (await get(gateway.port, '/u', false, { 'x-user': 'probe' })).status === 429, { timeoutMs: 10_000, message: 'the per-user limit' });
  const alice = [];
  for (let i = 0; i < 5; i++) alice.push((await get(gateway.port, '/u', false, { 'x-user': 'alice' })).status);
  assert.deepEqual(alice, [200, 200, 200, 429, 429]);
  assert.equal((await get(gateway.port, '/u', false, { 'x-user': 'bob' })).status, 200);

  // A conflicting newer policy on the same route is reported and changes nothing.
  await edge.apply([rateLimitPolicy('too-late', [{ requests: 1000 }], { kind: 'HTTPRoute', name: 'api' })]);
  const status = await waitFor(
    async () => {
      const res = await fetch(`${edge.api}/apis/weft.dev/v1alpha1/namespaces/${NS}/ratelimitpolicies/too-late`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { status?: { ancestors?: { conditions: { type: string; status: string; reason: string }[] }[] } };
      return body.status?.ancestors?.[0]?.conditions.find((c) => c.type === 'Accepted');
    },
    { timeoutMs: 10_000, message: 'the conflicting policy’s status' },
  );
  assert.deepEqual([status.status, status.reason], ['False', 'Conflicted']);
  assert.equal((await get(gateway.port, '/u', false, { 'x-user': 'alice' })).status, 429);
  // Bad input is refused with the field named.
  const bad = await fetch(`${edge.api}/weft/v1/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      items: [{ apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name: 'bad', namespace: NS }, spec: { targetRefs: [{ kind: 'Gateway', name: 'gw' }], limits: [{ requests: -5 }] } }],
    }),
    signal: AbortSignal.timeout(5000),
  });
  assert.notEqual(bad.status, 200);
  assert.match(await bad.text(), /spec\.limits\[0\]\.requests/);
  assert.equal((await get(gateway.port, '/u', false, { 'x-user': 'carol' })).status, 200);
});
