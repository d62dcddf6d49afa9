// The hand-written metrics registry: children per label set, histogram buckets, Prometheus text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

test('counters and gauges render one line per label set, labels escaped', () => {
  const registry = new MetricsRegistry();
  const requests = registry.counter('weft_requests_total', 'Requests.', ['direction', 'code']);
  const child = requests.labels('outbound', '200');
  child.inc();
  child.inc(2);
  assert.equal(requests.labels('outbound', '200'), child, 'the same label values give the same child');
  requests.labels('in"bound\\\n', '503').inc();
  const gauge = registry.gauge('weft_up', 'Up.');
  gauge.labels().set(1);
  gauge.labels().dec(0.5);
  assert.equal(
    registry.render(),
    [
      '# HELP weft_requests_total Requests.',
      '# TYPE weft_requests_total counter',
      'weft_requests_total{direction="outbound",code="200"} 3',
      'weft_requests_total{direction="in\\"bound\\\\\\n",code="503"} 1',
      '# HELP weft_up Up.',
      '# TYPE weft_up gauge',
      'weft_up 0.5',
      '',
    ].join('\n'),
  );
});

test('histograms render cumulative buckets, +Inf, sum and count', () => {
  const registry = new MetricsRegistry();
  const histogram = registry.histogram('weft_seconds', 'Durations.', ['service'], [0.1, 1]);
  const child = histogram.labels('a');
  for (const value of [0.05, 0.1, 0.5, 3]) child.observe(value);
  assert.equal(
    registry.render(),
    [
      '# HELP weft_seconds Durations.',
      '# TYPE weft_seconds histogram',
      'weft_seconds_bucket{service="a",le="0.1"} 2',
      'weft_seconds_bucket{service="a",le="1"} 3',
      'weft_seconds_bucket{service="a",le="+Inf"} 4',
      'weft_seconds_sum{service="a"} 3.65',
      'weft_seconds_count{service="a"} 4',
      '',
    ].join('\n'),
  );
});

test('registering a metric twice returns the first; a clash or a bad name throws', () => {
  const registry = new MetricsRegistry();
  const first = registry.counter('weft_x_total', 'X.', ['a']);
  assert.equal(registry.counter('weft_x_total', 'X.', ['a']), first);
  assert.throws(() => registry.gauge('weft_x_total', 'X.', ['a']), /already registered/);
  assert.throws(() => registry.counter('bad-name', 'X.'), /invalid metric name/);
  assert.throws(() => registry.counter('weft_y_total', 'Y.', ['le']), /invalid label name/);
  assert.throws(() => first.labels('a', 'b'), /takes 1 label values/);
});
