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

test('a workload reached under two Service names is drawn as the one most of its requests were addressed to, whatever came last', () => {
  const clock = new ManualClock();
  const agg = new TelemetryAggregator(clock);
  const pricing = { namespace: 'shop', service: 'pricing', workload: 'pricing' };
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    // The frontend reaches catalog-v1's pods as Service catalog-v1 (a split leg), a gateway as Service catalog, less often and last.
    agg.record('shop/frontend-a', { intervalMs: 1000, edges: [edge({ requests: 9, failures: 0, destination: { namespace: 'shop', service: 'catalog-v1', workload: 'catalog-v1' } })] });
    agg.record('shop/edge-gw', { intervalMs: 1000, edges: [edge({ requests: 1, failures: 0, source: { namespace: 'shop', workload: 'edge.gateway' } })] });
    agg.record('shop/catalog-v1-a', { intervalMs: 1000, edges: [edge({ requests: 10, failures: 0, source: { namespace: 'shop', workload: 'catalog-v1' }, destination: pricing })] });
  }
  const toPricing = agg.topology('1m').edges.find((e) => e.destination.service === 'pricing')!;
  assert.deepEqual(toPricing.source, { namespace: 'shop', workload: 'catalog-v1', service: 'catalog-v1' });
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

test('replicas merge their windows: a proxy that moved between replicas counts once, a split histogram merges, series add up', () => {
  const clock = new ManualClock();
  // Two replicas' aggregators on one clock; frontend-a talks to replica A for 5 s, then to B for 5 s; frontend-b only to B.
  const a = new TelemetryAggregator(clock);
  const b = new TelemetryAggregator(clock);
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    (i < 5 ? a : b).record('shop/frontend-a', { intervalMs: 1000, edges: [edge({ requests: 10, failures: 1, latency: [2, 10] })] });
    b.record('shop/frontend-b', { intervalMs: 1000, edges: [edge({ requests: 30, failures: 0, latency: [8, 30] })] });
  }
  const fromB = b.window(60_000);
  const merged = a.topology('1m', [fromB]);
  assert.equal(merged.available, true);
  const e = merged.edges[0]!;
  // Each replica alone would say 10 rps for frontend-a over the half it saw; merged, it is 10 rps once, not 20.
  assert.equal(e.requestsPerSecond, 40);
  assert.equal(e.successRate, 1 - 10 / 400);
  // A quarter of the requests in bucket 2, three quarters in bucket 8: the median comes from bucket 8.
  assert.ok(e.p50Ms! > 100, `p50 ${e.p50Ms} from the merged histogram`);
  // The same view asked of B with A's window.
  assert.deepEqual(b.topology('1m', [a.window(60_000)]).edges, merged.edges);

  // A replica without reports of its own still shows what the others hold.
  const c = new TelemetryAggregator(clock);
  assert.equal(c.topology('1m').available, false);
  assert.equal(c.topology('1m', [a.window(60_000), fromB]).edges[0]!.requestsPerSecond, 40);

  // Series: each replica counts its steps for the same end; the sums are the whole service's.
  const end = b.seriesEnd();
  const service = a.service('shop', 'catalog', '1m', { windows: [fromB], series: [b.seriesCounts('shop', 'catalog', 60_000, a.seriesEnd())] });
  assert.equal(end, a.seriesEnd() + 5000, 'B saw the newest report; A asks B for its own end');
  const counted = service.series!.reduce((sum, s) => sum + s.requestsPerSecond * (service.seriesStepMs! / 1000), 0);
  // A's end is 5 s before the last reports: B's last 5 s of both proxies (5 × 40) fall after it.
  assert.equal(Math.round(counted), 400 - 5 * 40);
  // Malformed peer data is left out, not thrown on.
  const junk = { proxies: { 'x/y': { coveredMs: 'soon', edges: [] }, 'x/z': { coveredMs: 1000, edges: [{ reporter: 'nobody' }] } }, workloadServices: {} } as never;
  assert.equal(a.topology('1m', [junk]).edges[0]!.requestsPerSecond, 10);
});
