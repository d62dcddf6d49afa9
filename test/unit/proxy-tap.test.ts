// The proxy's tap: nothing happens while no tap runs; with one, filters, redaction, the per-tap rate cap, the concurrency cap and the end of a tap whose stream is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyMessage } from '../../src/api/stream.ts';
import { TAP_LIMITS } from '../../src/api/tap.ts';
import type { HttpExchange } from '../../src/proxy/exchange.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { ProxyTap } from '../../src/proxy/tap.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

type TapMessage = Extract<ProxyMessage, { type: 'tap' }>;

function exchange(path: string, method = 'GET', headers: Record<string, string> = {}): HttpExchange {
  return {
    direction: 'outbound',
    grpc: false,
    routeId: 'shop/catalog/0/0',
    endpoint: { id: 'shop/catalog-0', labels: {} },
    service: 'shop/catalog:80',
    method,
    path,
    headers: {},
    proxyReason: undefined,
    bufferedBody: undefined,
    req: { url: path, headers: { host: 'catalog.shop', ...headers }, httpVersionMajor: 2, socket: null },
    res: { getHeader: (name: string) => (name === 'content-length' ? '12' : undefined) },
  } as unknown as HttpExchange;
}

function setup() {
  const clock = new ManualClock();
  const tap = new ProxyTap({ clock, proxy: 'shop/frontend-0', source: 'shop/frontend' });
  const metrics = createProxyMetrics(new MetricsRegistry(), { tap });
  const sent: TapMessage[] = [];
  const reply = (message: TapMessage) => {
    sent.push(message);
    return true;
  };
  return { clock, tap, metrics, sent, reply };
}

test('no tap: the hook is one boolean and nothing is recorded', () => {
  const { tap, metrics, clock, sent } = setup();
  assert.equal(tap.active, false);
  metrics.recordRequest(exchange('/a'), 200, 0.001);
  clock.advance(1000);
  assert.deepEqual(sent, []);
});

test('a tap sends matching requests in batches, header values redacted unless shown', () => {
  const { tap, metrics, clock, sent, reply } = setup();
  tap.handle({ type: 'tap-start', id: 't1', filter: { pathPrefix: '/items', method: 'get', status: '2xx', showHeaders: ['X-Request-Id', 'cookie'] } }, reply);
  assert.equal(tap.active, true);
  metrics.recordRequest(exchange('/items/1', 'GET', { 'x-request-id': 'abc', cookie: 'session=1', 'user-agent': 'curl' }), 200, 0.0042);
  metrics.recordRequest(exchange('/items/2', 'POST'), 200, 0.001);
  metrics.recordRequest(exchange('/other'), 200, 0.001);
  metrics.recordRequest(exchange('/items/3'), 503, 0.001);
  assert.equal(sent.length, 0, 'batched, not sent per request');
  clock.advance(TAP_LIMITS.flushMs);
  assert.equal(sent.length, 1);
  const [event] = sent[0]!.events;
  assert.equal(sent[0]!.events.length, 1);
  assert.equal(event?.path, '/items/1');
  assert.equal(event?.latencyMs, 4.2);
  assert.equal(event?.route, 'shop/catalog/0/0');
  assert.equal(event?.endpoint, 'shop/catalog-0');
  assert.equal(event?.responseBytes, 12);
  assert.equal(event?.source, 'shop/frontend');
  assert.deepEqual(event?.headers, { host: '<redacted>', 'x-request-id': 'abc', cookie: '<redacted>', 'user-agent': '<redacted>' });
  tap.handle({ type: 'tap-stop', id: 't1' }, reply);
  assert.equal(tap.active, false);
});

test('past the rate cap events are counted as dropped', () => {
  const { tap, metrics, clock, sent, reply } = setup();
  tap.handle({ type: 'tap-start', id: 't1', filter: {}, eventsPerSecond: 5 }, reply);
  for (let i = 0; i < 12; i++) metrics.recordRequest(exchange('/a'), 200, 0.001);
  clock.advance(TAP_LIMITS.flushMs);
  assert.equal(sent[0]?.events.length, 5);
  assert.equal(sent[0]?.dropped, 7);
  clock.advance(1000);
  metrics.recordRequest(exchange('/a'), 200, 0.001);
  clock.advance(TAP_LIMITS.flushMs);
  assert.equal(sent.at(-1)?.events.length, 1, 'a new second, a new allowance');
});

test('taps past the per-proxy limit are refused, bad filters too, and a tap whose stream is gone ends', () => {
  const { tap, metrics, clock, sent, reply } = setup();
  for (let i = 0; i < TAP_LIMITS.concurrentPerProxy; i++) tap.handle({ type: 'tap-start', id: `t${i}`, filter: {} }, reply);
  tap.handle({ type: 'tap-start', id: 'one-too-many', filter: {} }, reply);
  assert.match(sent.at(-1)?.ended ?? '', /already serves/);
  assert.equal(tap.running, TAP_LIMITS.concurrentPerProxy);
  tap.stopAll();
  tap.handle({ type: 'tap-start', id: 'bad', filter: { status: 'nope' } }, reply);
  assert.match(sent.at(-1)?.ended ?? '', /status "nope"/);
  assert.equal(tap.running, 0);
  tap.handle({ type: 'tap-start', id: 'gone', filter: {} }, () => false);
  metrics.recordRequest(exchange('/a'), 200, 0.001);
  clock.advance(TAP_LIMITS.flushMs);
  assert.equal(tap.running, 0);
  assert.equal(tap.active, false);
});
