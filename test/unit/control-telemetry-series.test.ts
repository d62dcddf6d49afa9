// A Service's traffic over time (`series` of GET /api/v1/services/...): steps over the window, reports spread over the steps they cover.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TelemetryEdgeDelta } from '../../src/api/topology.ts';
import { TelemetryAggregator } from '../../src/control/telemetry/aggregator.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';

function edge(requests: number, failures: number, service = 'catalog'): TelemetryEdgeDelta {
  return {
    reporter: 'source',
    source: { namespace: 'shop', workload: 'frontend' },
    destination: { namespace: 'shop', service, workload: service },
    route: 'default',
    protocol: 'http',
    mtls: true,
    latency: [5, requests],
    requests,
    failures,
  };
}

test('series: one sample per step, rates spread over the steps a report covers, the newest step complete', () => {
  const clock = new ManualClock();
  const agg = new TelemetryAggregator(clock);
  // 20 rps for 30 s, then 40 rps for 30 s, pushed every 5 s; 10 % failing in the second half; another service too.
  for (let i = 0; i < 12; i++) {
    clock.advance(5000);
    const rps = i < 6 ? 20 : 40;
    agg.record('shop/frontend-0', { intervalMs: 5000, edges: [edge(rps * 5, i < 6 ? 0 : rps / 2), edge(5, 0, 'pricing')] });
  }
  const service = agg.service('shop', 'catalog', '1m');
  assert.equal(service.seriesStepMs, 1000);
  const series = service.series ?? [];
  assert.equal(series.length, 60);
  assert.equal(series.at(-1)!.t, clock.now());
  assert.ok(series.every((s, i) => i === 0 || s.t - series[i - 1]!.t === 1000));
  assert.deepEqual(series.slice(0, 30).map((s) => s.requestsPerSecond), Array(30).fill(20));
  assert.deepEqual(series.slice(30).map((s) => s.requestsPerSecond), Array(30).fill(40));
  assert.equal(series[0]!.successRate, 1);
  assert.equal(series.at(-1)!.successRate, 0.9);
  assert.equal(series.at(-1)!.p50Ms, 17.5);
  assert.ok(series.at(-1)!.p99Ms! >= series.at(-1)!.p90Ms!);

  const five = agg.service('shop', 'catalog', '5m');
  assert.equal(five.seriesStepMs, 5000);
  assert.equal(five.series?.length, 60);
  // Before the first report nothing was counted: no success rate, zero rate.
  assert.equal(five.series![0]!.requestsPerSecond, 0);
  assert.equal(five.series![0]!.successRate, undefined);
});

test('series is absent while no proxy reports', () => {
  const agg = new TelemetryAggregator(new ManualClock());
  assert.equal(agg.service('shop', 'catalog', '1m').series, undefined);
});
