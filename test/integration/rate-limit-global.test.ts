// A Global RateLimitPolicy shared by two gateway replicas through a real control plane: together they hold the rate within 5 % over 10 s; without the control plane each fails open to the local limit.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fixedRateLoad, rateLimitPolicy, startEdge, type Edge } from './rate-limit-helpers.ts';

const RATE = 40;

let edge: Edge;

before(async () => {
  edge = await startEdge([rateLimitPolicy('shared', [{ name: 'all', requests: RATE, interval: '1s', scope: 'Global' }])], 2);
});

after(async () => {
  await edge?.close();
});

test('two gateway replicas sharing a global limit of 40 requests/s admit 40/s together, within 5 % over 10 s, under 100 requests/s spread over both', async (t) => {
  const ports = edge.gateways.map((g) => g.port);
  const result = await fixedRateLoad(ports, 100, 3000, 10_000);
  const ok = result.byStatus.get(200) ?? 0;
  t.diagnostic(`two replicas, global ${RATE}/s: ${ok} passed and ${result.byStatus.get(429) ?? 0} limited in 10 s`);
  assert.deepEqual([...result.byStatus.keys()].sort(), [200, 429], `statuses: ${JSON.stringify([...result.byStatus])}`);
  // A stalled machine may keep some requests from going out on time; the load must still be well above the limit.
  assert.ok(result.skipped < 100, `${result.skipped} of 1,000 requests could not be sent on time`);
  const expected = RATE * 10;
  assert.ok(Math.abs(ok - expected) <= expected * 0.05, `${ok} requests passed in 10 s, expected ${expected} ± 5 %`);
});

test('with the control plane gone, each replica fails open to the whole limit locally once its lease ends: traffic keeps flowing', async (t) => {
  await edge.controlPlane.stop({ timeoutMs: 5000 });
  const ports = edge.gateways.map((g) => g.port);
  // Leases last 3 s; after that each replica enforces 40/s on its own.
  const result = await fixedRateLoad(ports, 100, 3500, 2000);
  const ok = result.byStatus.get(200) ?? 0;
  t.diagnostic(`control plane down: ${ok} passed in 2 s`);
  assert.deepEqual([...result.byStatus.keys()].sort(), [200, 429], `statuses: ${JSON.stringify([...result.byStatus])}`);
  const expected = 2 * RATE * 2;
  assert.ok(Math.abs(ok - expected) <= expected * 0.1, `${ok} requests passed in 2 s, expected ${expected} ± 10 % (each replica alone at ${RATE}/s)`);
});
