// Request metrics with Istio's labels: edges cached per (rule, backend, endpoint), idle series expiry, deltas pushed to the control plane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotBackend, SnapshotEndpoint } from '../../src/api/snapshot.ts';
import type { HttpExchange } from '../../src/proxy/exchange.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { TelemetryPusher } from '../../src/proxy/telemetry.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

const endpoint: SnapshotEndpoint = { id: 'shop/catalog-v1-abc', address: '127.0.0.1', port: 8080, tunnelPort: 15008, identity: 'spiffe://cluster.local/ns/shop/sa/catalog', labels: { 'weft.dev/workload': 'catalog-v1' } };
const backend = { key: 'shop/catalog-v1:80', namespace: 'shop', service: 'catalog-v1', port: 80, protocol: 'http', endpoints: [endpoint] } as unknown as SnapshotBackend;

function exchange(fields: Partial<Record<string, unknown>> = {}): HttpExchange {
  const headers: Record<string, string> = (fields.headers as Record<string, string> | undefined) ?? {};
  return {
    direction: 'outbound',
    grpc: false,
    routeId: 'shop/catalog/0/0',
    backend,
    endpoint,
    service: 'shop/catalog:80',
    peerIdentity: undefined,
    proxyReason: undefined,
    answeredGrpcStatus: undefined,
    bufferedBody: undefined,
    req: { headers, httpVersionMajor: 2, socket: null },
    res: { getHeader: (name: string) => (name === 'content-length' ? '12' : undefined) },
    ...fields,
  } as unknown as HttpExchange;
}

test('outbound requests count under Istio labels, one series per response kind', () => {
  const registry = new MetricsRegistry();
  const metrics = createProxyMetrics(registry);
  metrics.setLocal({ namespace: 'shop', workload: 'frontend', principal: 'spiffe://cluster.local/ns/shop/sa/frontend' });
  for (let i = 0; i < 3; i++) metrics.recordRequest(exchange(), 200, 0.003);
  metrics.recordRequest(exchange(), 503, 0.2);
  metrics.recordRequest(exchange({ backend: undefined, endpoint: undefined, routeId: undefined, service: 'unknown', proxyReason: 'WEFT_ERR_NO_ROUTE' }), 502, 0.0001);
  const text = registry.render();
  const base =
    'reporter="source",source_workload="frontend",source_workload_namespace="shop",source_principal="spiffe://cluster.local/ns/shop/sa/frontend",' +
    'destination_workload="catalog-v1",destination_workload_namespace="shop",destination_principal="spiffe://cluster.local/ns/shop/sa/catalog",' +
    'destination_service="shop/catalog-v1",destination_service_name="catalog-v1",destination_service_namespace="shop",request_protocol="http",connection_security_policy="mutual_tls",route="shop/catalog/0/0"';
  assert.ok(text.includes(`weft_requests_total{${base},response_code="200",grpc_response_status="",weft_reason=""} 3\n`), text);
  assert.ok(text.includes(`weft_requests_total{${base},response_code="503",grpc_response_status="",weft_reason=""} 1\n`));
  assert.match(text, /weft_requests_total\{reporter="source",[^}]*destination_service="unknown",[^}]*route="unknown",response_code="502",grpc_response_status="",weft_reason="WEFT_ERR_NO_ROUTE"\} 1\n/);
  assert.ok(text.includes(`weft_request_duration_seconds_bucket{${base},response_code="200",grpc_response_status="",weft_reason="",le="0.005"} 3\n`));
  assert.ok(text.includes(`weft_request_duration_seconds_bucket{${base},response_code="200",grpc_response_status="",weft_reason="",le="0.0025"} 0\n`));
  assert.ok(text.includes(`weft_response_bytes_bucket{${base},response_code="200",grpc_response_status="",weft_reason="",le="100"} 3\n`));
  assert.equal([...metrics.edges()].length, 2, 'one edge per (rule, backend, endpoint)');
});

test('gRPC statuses and inbound callers (mTLS identity, weft-source) are labels; made-up sources are capped', () => {
  const registry = new MetricsRegistry();
  const metrics = createProxyMetrics(registry, { maxSourcesPerPeer: 2 });
  metrics.setLocal({ namespace: 'shop', workload: 'catalog-v1', principal: 'spiffe://cluster.local/ns/shop/sa/catalog' });
  const inbound = (source: string, fields: Record<string, unknown> = {}) =>
    exchange({ direction: 'inbound', service: 'shop/catalog-v1:8080', peerIdentity: 'spiffe://cluster.local/ns/shop/sa/frontend', headers: { 'weft-source': source }, ...fields });
  metrics.recordRequest(inbound('shop/frontend', { grpc: true, answeredGrpcStatus: '14' }), 200, 0.01);
  metrics.recordRequest(inbound('shop/frontend'), 200, 0.01);
  for (const made of ['x/a', 'x/b', 'x/c', 'x/d']) metrics.recordRequest(inbound(made), 200, 0.01);
  const text = registry.render();
  assert.match(
    text,
    /weft_requests_total\{reporter="destination",source_workload="frontend",source_workload_namespace="shop",source_principal="spiffe:\/\/cluster.local\/ns\/shop\/sa\/frontend",destination_workload="catalog-v1",[^}]*request_protocol="grpc",connection_security_policy="mutual_tls",route="inbound:8080",response_code="200",grpc_response_status="14",weft_reason=""\} 1\n/,
  );
  const sources = new Set([...text.matchAll(/weft_requests_total\{reporter="destination",source_workload="([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...sources].sort(), ['a', 'frontend', 'unknown'], 'past two sources per caller identity, weft-source values count as unknown');
  const grpcEdge = [...metrics.edges()].find((e) => e.protocol === 'grpc')!;
  assert.equal([...grpcEdge.series.values()][0]!.failed, true, 'a non-OK grpc-status is a failure');
});

test('series of an edge unused for the idle limit are dropped; a new request makes them again', () => {
  const registry = new MetricsRegistry();
  const metrics = createProxyMetrics(registry, { idleSeriesMs: 60_000 });
  metrics.recordRequest(exchange(), 200, 0.001);
  assert.equal(metrics.sweep(), 0, 'used since the last sweep: kept');
  assert.equal(metrics.sweep(), 1, 'a whole sweep period unused: dropped');
  assert.doesNotMatch(registry.render(), /weft_requests_total\{/);
  metrics.recordRequest(exchange(), 200, 0.001);
  assert.match(registry.render(), /weft_requests_total\{reporter="source",[^}]*\} 1\n/);
});

test('request metrics off: nothing is recorded', () => {
  const registry = new MetricsRegistry();
  const metrics = createProxyMetrics(registry, { requestMetrics: false });
  metrics.recordRequest(exchange(), 200, 0.001);
  assert.doesNotMatch(registry.render(), /weft_requests_total\{/);
});

test('the pusher sends per-edge deltas since the last successful push, and keeps them when the stream is down', () => {
  const clock = new ManualClock(0);
  const metrics = createProxyMetrics(new MetricsRegistry());
  metrics.setLocal({ namespace: 'shop', workload: 'frontend' });
  let up = true;
  const pusher = new TelemetryPusher({ metrics, clock, send: () => up });
  for (let i = 0; i < 9; i++) metrics.recordRequest(exchange(), 200, 0.003);
  metrics.recordRequest(exchange(), 500, 0.003);
  clock.advance(1000);
  const first = pusher.push()!;
  assert.equal(first.intervalMs, 1000);
  assert.equal(first.edges.length, 1);
  assert.deepEqual(
    { requests: first.edges[0]!.requests, failures: first.edges[0]!.failures, latency: first.edges[0]!.latency, service: first.edges[0]!.destination.service, route: first.edges[0]!.route },
    { requests: 10, failures: 1, latency: [3, 10], service: 'catalog-v1', route: 'shop/catalog/0/0' },
  );
  assert.deepEqual(first.edges[0]!.via, { namespace: 'shop', service: 'catalog' }, 'the caller addressed catalog; the route sent it to catalog-v1');
  up = false;
  metrics.recordRequest(exchange(), 200, 0.003);
  clock.advance(1000);
  assert.equal(pusher.push(), undefined);
  up = true;
  clock.advance(1000);
  const third = pusher.push()!;
  assert.equal(third.intervalMs, 2000, 'the interval runs from the last push that went out');
  assert.equal(third.edges[0]!.requests, 1);
  clock.advance(1000);
  assert.deepEqual(pusher.push()!.edges, [], 'nothing new: no edges');
});
