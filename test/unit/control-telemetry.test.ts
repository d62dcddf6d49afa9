// The control plane's traffic aggregation: rates over the time reports cover, success rates, merged-histogram percentiles, windows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TelemetryEdgeDelta } from '../../src/api/topology.ts';
import { parseWindow, quantileMs, TelemetryAggregator } from '../../src/control/telemetry/aggregator.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';

function edge(fields: Partial<TelemetryEdgeDelta> & { requests: number; failures: number }): TelemetryEdgeDelta {
  return {
    reporter: 'source',
    source: { namespace: 'shop', workload: 'frontend' },
    destination: { namespace: 'shop', service: 'catalog', workload: 'catalog-v1' },
    route: 'shop/catalog/0/0',
    protocol: 'http',
    mtls: true,
    latency: [5, fields.requests],
    ...fields,
  };
}

test('edge rate sums its reporters over the time each covered; success rate and percentiles merge', () => {
  const clock = new ManualClock();
  const agg = new TelemetryAggregator(clock);
  // Two replicas of frontend: 10 rps and 30 rps, reporting every second for 10 s; one in ten of the second's fails.
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    agg.record('shop/frontend-a', { intervalMs: 1000, edges: [edge({ requests: 10, failures: 0 })] });
    agg.record('shop/frontend-b', { intervalMs: 1000, edges: [edge({ requests: 30, failures: 3, source: { namespace: 'shop', workload: 'frontend' } })] });
    // The callee's own view is kept out of edges (it cannot name the Service).
    agg.record('shop/catalog-v1-x', { intervalMs: 1000, edges: [edge({ reporter: 'destination', requests: 40, failures: 3, destination: { namespace: 'shop', service: 'unknown', workload: 'catalog-v1' } })] });
  }
  const topology = agg.topology('1m');
  assert.equal(topology.available, true);
  assert.equal(topology.edges.length, 1);
  const e = topology.edges[0]!;
  assert.deepEqual([e.source, e.destination, e.mtls], [{ namespace: 'shop', workload: 'frontend' }, { namespace: 'shop', service: 'catalog' }, true]);
  assert.equal(e.requestsPerSecond, 40, 'not diluted by the part of the minute nobody reported');
  assert.equal(e.successRate, 1 - 30 / 400);
  // Every request in bucket 5 (10 ms .. 25 ms]: the median interpolates to its middle.
  assert.equal(e.p50Ms, 17.5);
  assert.equal(topology.services.length, 1);
  assert.equal(topology.services[0]!.requestsPerSecond, 40);
  assert.equal(topology.routes?.[0]?.route, 'shop/catalog/0/0');

  const service = agg.service('shop', 'catalog', '1m');
  assert.equal(service.service.requestsPerSecond, 40);
  assert.equal(service.inbound.length, 1);
  assert.equal(service.outbound.length, 0);

  // Ten seconds of silence later, a 5 s window holds only empty reports: rate 0, no success rate.
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    agg.record('shop/frontend-a', { intervalMs: 1000, edges: [] });
  }
  const idle = agg.topology('5s');
  assert.deepEqual([idle.available, idle.reason, idle.edges], [false, 'no requests in the last 5s', []]);
});

test('windows: durations up to an hour; nonsense says why; nothing reported yet says so', () => {
  assert.equal(parseWindow('1m'), 60_000);
  assert.equal(parseWindow('30s'), 30_000);
  assert.equal(parseWindow('1h'), 3_600_000);
  assert.equal(parseWindow('2h'), undefined);
  assert.equal(parseWindow('soon'), undefined);
  const agg = new TelemetryAggregator(new ManualClock());
  assert.match(agg.topology('1m').reason ?? '', /no proxy has reported/);
  assert.match(agg.topology('soon').reason ?? '', /not a duration/);
});

test('quantiles interpolate within buckets like histogram_quantile', () => {
  // 0.5 ms bound first: 100 requests in (0, 0.5 ms], 100 in (0.5, 1 ms].
  assert.equal(quantileMs([100, 100], 0.5), 0.5);
  assert.equal(quantileMs([100, 100], 0.75), 0.75);
  assert.equal(quantileMs([], 0.5), undefined);
});

test('a split leg carries the Service the caller addressed (via) and counts for it and for the backend', () => {
  const clock = new ManualClock();
  const agg = new TelemetryAggregator(clock);
  clock.advance(1000);
  agg.record('shop/frontend-a', {
    intervalMs: 1000,
    edges: [
      edge({ requests: 9, failures: 0, destination: { namespace: 'shop', service: 'catalog-v1', workload: 'catalog-v1' }, via: { namespace: 'shop', service: 'catalog' } }),
      edge({ requests: 1, failures: 0, destination: { namespace: 'shop', service: 'catalog-v2', workload: 'catalog-v2' }, via: { namespace: 'shop', service: 'catalog' } }),
    ],
  });
  const topology = agg.topology('1m');
  assert.deepEqual(
    topology.edges.map((e) => [e.destination.service, e.via?.service, e.requestsPerSecond]),
    [
      ['catalog-v1', 'catalog', 9],
      ['catalog-v2', 'catalog', 1],
    ],
  );
  assert.deepEqual(
    topology.services.map((s) => [s.service, s.requestsPerSecond]),
    [
      ['catalog', 10],
      ['catalog-v1', 9],
      ['catalog-v2', 1],
    ],
  );
  assert.equal(agg.service('shop', 'catalog', '1m').inbound.length, 2);
});
