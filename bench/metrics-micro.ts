// Micro-benchmark of the request-metrics hot path: ns per recordRequest (edge lookup, series lookup, counter and three histograms).
//
//   node bench/metrics-micro.ts [--iterations N]
//
// Prints one JSON line: {"nsPerRequest": {...}} for an outbound request on a
// cached edge, an inbound one (caller identity + weft-source), and a mix over
// 50 edges and 3 response codes; plus the same loop with metrics off. Each is
// the median of five timed chunks.
import { parseArgs } from 'node:util';
import type { SnapshotBackend, SnapshotEndpoint } from '../src/api/snapshot.ts';
import type { HttpExchange } from '../src/proxy/exchange.ts';
import { createProxyMetrics } from '../src/proxy/metrics.ts';
import { MetricsRegistry } from '../src/telemetry/metrics.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000000' } } });
const iterations = Number(values.iterations);
const CHUNKS = 5;

function endpoint(i: number): SnapshotEndpoint {
  return { id: `shop/catalog-${i}`, address: '127.0.0.1', port: 8080, tunnelPort: 15008, identity: 'spiffe://cluster.local/ns/shop/sa/catalog', labels: { 'weft.dev/workload': 'catalog' } };
}
function backend(i: number, endpoints: SnapshotEndpoint[]): SnapshotBackend {
  return { key: `shop/catalog-${i % 5}:80`, namespace: 'shop', service: `catalog-${i % 5}`, port: 80, protocol: 'http', lb: { type: 'RoundRobin' }, endpoints } as unknown as SnapshotBackend;
}

function exchange(direction: 'outbound' | 'inbound', i: number): HttpExchange {
  const ep = endpoint(i);
  return {
    direction,
    grpc: false,
    routeId: `shop/catalog/${i % 3}/0`,
    backend: backend(i, [ep]),
    endpoint: ep,
    service: direction === 'outbound' ? 'shop/catalog:80' : 'shop/catalog:8080',
    peerIdentity: direction === 'inbound' ? 'spiffe://cluster.local/ns/shop/sa/frontend' : undefined,
    proxyReason: undefined,
    upstreamGrpcStatus: undefined,
    bufferedBody: undefined,
    req: { headers: { 'weft-source': 'shop/frontend', 'content-length': '120' }, httpVersionMajor: 1, socket: { bytesWritten: 0 } },
    res: { getHeader: () => undefined },
  } as unknown as HttpExchange;
}

function run(name: string, enabled: boolean, exchanges: HttpExchange[], codes: number[]): number {
  const metrics = createProxyMetrics(new MetricsRegistry(), { requestMetrics: enabled });
  metrics.setLocal({ namespace: 'shop', workload: 'frontend', principal: 'spiffe://cluster.local/ns/shop/sa/frontend' });
  const n = exchanges.length;
  const c = codes.length;
  // Warm-up: edges and series exist, the JIT has seen the loop.
  for (let i = 0; i < 200_000; i++) metrics.recordRequest(exchanges[i % n]!, codes[i % c]!, 0.0042);
  // Timed in chunks, reported as the median chunk: a neighbour's burst on a shared machine spoils one chunk, not the figure.
  const chunk = Math.max(1, Math.floor(iterations / CHUNKS));
  const perChunk: number[] = [];
  for (let k = 0; k < CHUNKS; k++) {
    const started = process.hrtime.bigint();
    for (let i = k * chunk; i < (k + 1) * chunk; i++) {
      const ex = exchanges[i % n]!;
      // Each "response" writes some bytes, as a socket would.
      (ex.req.socket as unknown as { bytesWritten: number }).bytesWritten += 300;
      metrics.recordRequest(ex, codes[i % c]!, 0.0042);
    }
    perChunk.push(Number(process.hrtime.bigint() - started) / chunk);
  }
  perChunk.sort((a, b) => a - b);
  const ns = perChunk[Math.floor(CHUNKS / 2)]!;
  process.stderr.write(`${name}: ${ns.toFixed(1)} ns/request (median of ${CHUNKS} chunks; ${perChunk[0]!.toFixed(1)}–${perChunk[CHUNKS - 1]!.toFixed(1)})\n`);
  return Math.round(ns * 10) / 10;
}

const one = [exchange('outbound', 0)];
const inbound = [exchange('inbound', 0)];
const many = Array.from({ length: 50 }, (_, i) => exchange('outbound', i));
const result = {
  iterations,
  nsPerRequest: {
    outboundOneEdge: run('outbound, one edge', true, one, [200]),
    inboundOneEdge: run('inbound, one caller', true, inbound, [200]),
    outbound50Edges3Codes: run('outbound, 50 edges x 3 codes', true, many, [200, 200, 200, 503, 404]),
    metricsOff: run('metrics off', false, many, [200]),
  },
};
process.stdout.write(`${JSON.stringify(result)}\n`);
