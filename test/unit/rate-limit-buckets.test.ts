// Unit tests of the rate limit buckets (rate, burst, bounded keys) and of the control plane's quota shares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotRateLimit } from '../../src/api/snapshot.ts';
import { GlobalRateLimitLedger } from '../../src/control/ratelimit.ts';
import { LimitBuckets, type Lease, type QuotaSource } from '../../src/proxy/layers/rate-limit/buckets.ts';
import type { Clock } from '../../src/telemetry/clock.ts';

function limit(overrides: Partial<SnapshotRateLimit> = {}): SnapshotRateLimit {
  return { id: 'ns/p/0@HTTPRoute/ns/r', policy: 'ns/p/0', requests: 10, intervalMs: 1000, burst: 10, descriptors: [], scope: 'Local', maxKeys: 100, ...overrides };
}

/** Requests at `perSecond` for `seconds` of simulated time; how many passed. */
function drive(buckets: LimitBuckets, perSecond: number, seconds: number, key = '', start = 0): number {
  let passed = 0;
  const step = 1000 / perSecond;
  for (let t = start; t < start + seconds * 1000; t += step) if (buckets.take(key, t).allowed) passed++;
  return passed;
}

test('a bucket admits its burst at once, then its rate; a denial says when the next token comes', () => {
  const buckets = new LimitBuckets(limit({ requests: 10, burst: 5 }), undefined);
  const first = [0, 1, 2, 3, 4, 5].map(() => buckets.take('', 0));
  assert.deepEqual(first.map((d) => d.allowed), [true, true, true, true, true, false]);
  assert.equal(first[4]!.remaining, 0);
  assert.equal(first[5]!.retryAfterMs, 100);
  // 100 requests/s for 60 s against 10/s: 10/s pass, plus the burst.
  const passed = drive(buckets, 100, 60, '', 1);
  assert.ok(Math.abs(passed - 600) <= 6, `passed ${passed}`);
});

test('hostile keys cannot grow the buckets past maxKeys; the least recently used goes first', () => {
  const buckets = new LimitBuckets(limit({ maxKeys: 100, requests: 1, burst: 1 }), undefined);
  assert.equal(buckets.take('steady', 0).allowed, true);
  for (let i = 0; i < 100_000; i++) {
    buckets.take(`attacker-${i}`, 1);
    if (i % 50 === 0) buckets.take('steady', 1); // keeps being used, so it is never the oldest
  }
  assert.equal(buckets.size, 100);
  // The steady client's bucket survived (still empty): it was not handed a fresh one.
  assert.equal(buckets.take('steady', 2).allowed, false);
});

test('a Global limit uses its leased share of the rate, and the whole limit when it has no lease', () => {
  let lease: Lease | undefined = { share: 0.25, until: 10_000 };
  const demanded: string[] = [];
  const quota: QuotaSource = { lease: () => lease, demand: (_limit, key) => demanded.push(key), register: () => undefined };
  const buckets = new LimitBuckets(limit({ requests: 100, burst: 100, scope: 'Global' }), quota);
  const withLease = drive(buckets, 1000, 5);
  assert.ok(Math.abs(withLease - 25 * 5 - 25) <= 3, `passed ${withLease}`);
  lease = undefined; // the control plane is gone: fail open to the local limit
  const without = drive(buckets, 1000, 5, '', 5000);
  assert.ok(Math.abs(without - 100 * 5) <= 102, `passed ${without}`);
  assert.equal(demanded.length, 10_000);
});

function manualClock(): Clock & { ms: number } {
  const clock = {
    ms: 0,
    now: () => clock.ms,
    monotonic: () => clock.ms,
    setTimeout: () => ({ cancel() {}, unref() { return this; } }),
    setInterval: () => ({ cancel() {}, unref() { return this; } }),
  };
  return clock;
}

test('the ledger splits a key between proxies by demand, the shares add up to one, and silent proxies stop counting', () => {
  const clock = manualClock();
  const ledger = new GlobalRateLimitLedger(clock, 3000);
  const report = (proxy: string, demand: number) =>
    ledger.report({ proxy, namespace: 'ns', limits: [{ id: 'L', keys: [{ key: 'k', demand }] }] }).limits[0]!;
  // Registration without demand: two proxies enforce the limit, so each key starts at a half.
  assert.equal(ledger.report({ proxy: 'a', namespace: 'ns', limits: [{ id: 'L', keys: [] }] }).limits[0]!.proxies, 1);
  assert.equal(ledger.report({ proxy: 'b', namespace: 'ns', limits: [{ id: 'L', keys: [] }] }).limits[0]!.proxies, 2);
  let shareA = 0;
  let shareB = 0;
  for (let i = 0; i < 10; i++) {
    clock.ms += 1000;
    shareA = report('a', 300).keys[0]!.share;
    shareB = report('b', 100).keys[0]!.share;
  }
  assert.ok(Math.abs(shareA + shareB - 1) < 0.01, `${shareA} + ${shareB}`);
  assert.ok(shareA > 0.7 && shareA < 0.76, `a: ${shareA}`);
  // b goes silent: after the TTL a alone holds the key.
  clock.ms += 4000;
  const alone = report('a', 300);
  assert.equal(alone.proxies, 1);
  assert.equal(alone.keys[0]!.share, 1);
});

test('the ledger refuses malformed or oversized reports', () => {
  assert.match(GlobalRateLimitLedger.check({ proxy: 'a' }) ?? '', /a quota report is/);
  assert.match(GlobalRateLimitLedger.check({ proxy: 'a', namespace: 'n', limits: [{ id: 'x', keys: [{ key: 'k', demand: -1 }] }] }) ?? '', /demand >= 0/);
  assert.match(GlobalRateLimitLedger.check({ proxy: 'a', namespace: 'n', limits: [{ id: 'x', keys: [{ key: 'k'.repeat(600), demand: 1 }] }] }) ?? '', /at most 512/);
  assert.equal(GlobalRateLimitLedger.check({ proxy: 'a', namespace: 'n', limits: [{ id: 'x', keys: [{ key: 'k', demand: 1 }] }] }), undefined);
});
