// The BackendTrafficPolicy machinery on a manual clock: slow start, hashing, outlier ejection growth and limits, health state, retry budget windows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendTraffic, LoadBalancer, SnapshotBackend, SnapshotEndpoint } from '../../src/api/snapshot.ts';
import { BalancerRegistry } from '../../src/proxy/layers/balancer/balancers.ts';
import { hash32, maglevTable, ringTable } from '../../src/proxy/layers/balancer/hashing.ts';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { HttpExchange } from '../../src/proxy/exchange.ts';
import { answeredStatus, recordOutcome } from '../../src/proxy/layers/outlier/index.ts';
import { RetryBudget } from '../../src/proxy/layers/retry-budget/budget.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';

function ep(id: string): SnapshotEndpoint {
  return { id, address: '127.0.0.1', port: 1000, labels: {} };
}

function backend(ids: string[], lb: LoadBalancer, traffic?: Omit<BackendTraffic, 'policy'>): SnapshotBackend {
  const b: SnapshotBackend = { key: 'default/s:80', namespace: 'default', service: 's', port: 80, protocol: 'http', lb, endpoints: ids.map(ep) };
  if (traffic) b.traffic = { policy: 'default/p', ...traffic };
  return b;
}

/** A seeded generator, so that shares are reproducible. */
function seeded(seed = 42): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function shares(pick: () => string | undefined, n: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const id = pick() ?? 'none';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

test('slow start: a new endpoint starts near 10 % of its share and reaches a full share at the end of the window', () => {
  const clock = new ManualClock();
  const registry = new BalancerRegistry({ clock, random: seeded() });
  const traffic = { slowStartMs: 10_000 };
  registry.balancerFor(backend(['a', 'b'], 'round-robin', traffic));
  const grown = registry.balancerFor(backend(['a', 'b', 'c'], 'round-robin', traffic));
  const early = shares(() => grown.pick()?.endpoint.id, 3000);
  assert.ok((early.c ?? 0) < 3000 * 0.1, `right after it appeared, c got ${early.c} of 3000`);
  clock.advance(10_000);
  const later = shares(() => grown.pick()?.endpoint.id, 3000);
  assert.ok(Math.abs((later.c ?? 0) - 1000) < 100, `after the window, c got ${later.c} of 3000`);
  const fresh = new BalancerRegistry({ clock, random: seeded() }).balancerFor(backend(['a', 'b', 'c'], 'round-robin', traffic));
  assert.equal(shares(() => fresh.pick()?.endpoint.id, 300).c, 100, 'endpoints of the first snapshot are not new');
});

test('random spreads evenly; least-request counts latency', () => {
  const clock = new ManualClock();
  const registry = new BalancerRegistry({ clock, random: seeded() });
  const random = registry.balancerFor(backend(['a', 'b', 'c'], 'random', {}));
  for (const count of Object.values(shares(() => random.pick()?.endpoint.id, 3000))) assert.ok(Math.abs(count - 1000) < 120);
  const lr = registry.balancerFor(backend(['fast', 'slow'], 'least-request'));
  const slow = lr.find('slow')!;
  registry.observeLatency(slow.load, 200);
  registry.observeLatency(lr.find('fast')!.load, 5);
  assert.deepEqual(shares(() => lr.pick()?.endpoint.id, 100), { fast: 100 }, 'with nothing in flight, the lower latency wins every pair');
});

test('maglev and ring hash: even shares, and a new endpoint takes about 1/N of the keys, from the others', () => {
  for (const build of [maglevTable, ringTable]) {
    const three = build(['a', 'b', 'c']);
    const four = build(['a', 'b', 'c', 'd']);
    const keys = Array.from({ length: 4000 }, (_, i) => hash32(`user-${i}`));
    const counts = [0, 0, 0];
    let moved = 0;
    let movedElsewhere = 0;
    for (const key of keys) {
      const before = three.lookup(key);
      const after = four.lookup(key);
      counts[before]!++;
      if (before !== after) {
        moved++;
        if (after !== 3) movedElsewhere++;
      }
    }
    for (const count of counts) assert.ok(Math.abs(count - 4000 / 3) < 4000 * 0.08, `${build.name} shares ${counts}`);
    assert.ok(moved / keys.length > 0.18 && moved / keys.length < 0.32, `${build.name} moved ${moved}`);
    assert.ok(movedElsewhere / keys.length < 0.03, `${build.name} moved ${movedElsewhere} keys between old endpoints`);
  }
});

test('outlier detection: ejection time grows with each ejection, at most maxEjectionPercent are out, and the endpoint returns', () => {
  const clock = new ManualClock();
  const registry = new BalancerRegistry({ clock, random: seeded() });
  const config = { consecutive5xx: 2, baseEjectionMs: 1000, maxEjectionMs: 2500, maxEjectionPercent: 50 };
  const b = backend(['a', 'b', 'c', 'd'], 'round-robin', { outlierDetection: config });
  const balancer = registry.balancerFor(b);
  const state = registry.stateOf(b.key);
  const fail = (id: string) => recordOutcome(registry, state, id, { status: 500 }, config);

  fail('a');
  assert.equal(registry.unavailable(b.key, 'a'), false, 'one 5xx is below the threshold');
  recordOutcome(registry, state, 'a', { status: 200 }, config);
  fail('a');
  assert.equal(registry.unavailable(b.key, 'a'), false, 'a success resets the count');
  fail('a');
  assert.equal(registry.unavailable(b.key, 'a'), true);
  assert.ok(!Object.keys(shares(() => balancer.pick()?.endpoint.id, 100)).includes('a'), 'an ejected endpoint gets nothing');
  fail('b');
  fail('b');
  fail('c');
  fail('c');
  assert.equal(registry.unavailable(b.key, 'c'), false, '50 % of 4: two may be out at once');
  clock.advance(1000);
  assert.equal(registry.unavailable(b.key, 'a'), false, 'back after the base ejection time');
  assert.ok(Object.keys(shares(() => balancer.pick()?.endpoint.id, 100)).includes('a'));
  fail('a');
  fail('a');
  clock.advance(1500);
  assert.equal(registry.unavailable(b.key, 'a'), true, 'the second ejection lasts twice as long');
  clock.advance(500);
  assert.equal(registry.unavailable(b.key, 'a'), false);
  fail('a');
  fail('a');
  clock.advance(2400);
  assert.equal(registry.unavailable(b.key, 'a'), true, 'the third would last 3 s, capped at 2.5 s');
  clock.advance(100);
  assert.equal(registry.unavailable(b.key, 'a'), false);
});

test('every endpoint ejected or unhealthy: the balancer falls back to all of them (panic) rather than answering nothing', () => {
  const clock = new ManualClock();
  const registry = new BalancerRegistry({ clock, random: seeded() });
  const config = { consecutiveConnectFailures: 1, baseEjectionMs: 1000, maxEjectionMs: 1000, maxEjectionPercent: 100 };
  const b = backend(['a', 'b'], 'round-robin', { outlierDetection: config });
  const balancer = registry.balancerFor(b);
  const state = registry.stateOf(b.key);
  recordOutcome(registry, state, 'a', { failure: 'connect' }, config);
  assert.deepEqual(shares(() => balancer.pick()?.endpoint.id, 10), { b: 10 });
  recordOutcome(registry, state, 'b', { failure: 'connect' }, config);
  assert.deepEqual(shares(() => balancer.pick()?.endpoint.id, 10), { a: 5, b: 5 });
});

test('retry budget: a share of the requests plus a floor per second, over a sliding window', () => {
  const clock = new ManualClock();
  const budget = new RetryBudget({ percent: 10, minRetriesPerSecond: 1, windowMs: 10_000 }, clock);
  for (let i = 0; i < 100; i++) budget.deposit();
  let granted = 0;
  while (budget.tryWithdraw() && granted < 1000) granted++;
  assert.equal(granted, 20, '10 % of 100 requests plus 1/s over 10 s');
  clock.advance(11_000);
  granted = 0;
  while (budget.tryWithdraw() && granted < 1000) granted++;
  assert.equal(granted, 10, 'old requests and retries leave the window: only the floor is left');
});

test('connection pools: a backend that goes away leaves an endpoint the settings another backend (a route variant) still gives it', () => {
  const calls: string[] = [];
  const registry = new BalancerRegistry({
    clock: new ManualClock(),
    configurePeer: (endpoint, settings) => calls.push(`${endpoint.id}=${settings ? JSON.stringify(settings) : 'defaults'}`),
  });
  const pooled = { connection: { idleTimeoutMs: 5000 }, circuitBreaker: { maxConnections: 4 } };
  const base = backend(['a'], 'round-robin', pooled);
  const variant: SnapshotBackend = { ...backend(['a'], 'random', pooled), key: 'default/s:80~HTTPRoute/default/r', variant: 'HTTPRoute/default/r' };
  registry.balancerFor(base);
  registry.balancerFor(variant);
  calls.length = 0;
  registry.retain(new Set([base.key]));
  assert.deepEqual(calls, ['a={"connections":4,"keepAliveTimeoutMs":5000}'], 'the Service backend still configures the pool');
  registry.retain(new Set());
  assert.deepEqual(calls.slice(1), ['a=defaults']);
});

test('outlier detection reads a gRPC answer by its grpc-status: UNAVAILABLE, DEADLINE_EXCEEDED and INTERNAL count as failures, the others do not', () => {
  const exchange = (grpcStatus: string | undefined) => {
    const req = new IncomingMessage(new Socket());
    req.headers['content-type'] = 'application/grpc';
    const res = new ServerResponse(req);
    res.statusCode = 200;
    const ex = new HttpExchange('outbound', req, res, '/svc/Method', {}, 0);
    ex.answeredGrpcStatus = grpcStatus;
    return ex;
  };
  assert.equal(answeredStatus(exchange(undefined)), 200);
  assert.equal(answeredStatus(exchange('0')), 200);
  assert.equal(answeredStatus(exchange('14')), 503, 'UNAVAILABLE is a gateway error');
  assert.equal(answeredStatus(exchange('4')), 504, 'DEADLINE_EXCEEDED is a gateway error');
  assert.equal(answeredStatus(exchange('13')), 500, 'INTERNAL is a 5xx');
  assert.equal(answeredStatus(exchange('5')), 200, 'NOT_FOUND is the app speaking, not a sick endpoint');
  assert.equal(answeredStatus(exchange('8')), 200, 'RESOURCE_EXHAUSTED maps to 429: not a 5xx');
});
