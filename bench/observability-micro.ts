// Micro-benchmark of the tracing and access-log hot path: ns per request for start + finish, by case; and a hand-built access line against pino.
//
//   node bench/observability-micro.ts [--iterations N]
//
// Prints one JSON line: {"nsPerRequest": {...}}. Cases: tracing off (no
// MeshConfig tracing), unsampled (a new trace at 0 %: two ids and a
// traceparent), caller unsampled (traceparent with 00: parsed, passed on),
// sampled (a span with its attributes, queued; the exporter's queue is
// emptied between rounds so nothing is dropped), and the access log line
// (sampled, written to a null stream) against pino writing the same fields.
import { Writable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { SnapshotMesh } from '../src/api/snapshot.ts';
import { AccessLog } from '../src/proxy/access-log.ts';
import { HttpExchange } from '../src/proxy/exchange.ts';
import { OtlpExporter } from '../src/proxy/tracing/exporter.ts';
import { Tracer } from '../src/proxy/tracing/tracer.ts';
import { systemClock } from '../src/telemetry/clock.ts';
import { silentLogger } from '../src/telemetry/logger.ts';
import { MetricsRegistry } from '../src/telemetry/metrics.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '300000' } } });
const iterations = Number(values.iterations);

const endpoint = { id: 'shop/catalog-0', address: '127.0.0.1', port: 8080, tunnelPort: 15008, identity: 'spiffe://cluster.local/ns/shop/sa/catalog' };
const backend = { key: 'shop/catalog:80' };

function exchange(headers: Record<string, string>): HttpExchange {
  const req = { method: 'GET', url: '/products?id=3', headers, httpVersionMajor: 1, socket: { bytesWritten: 0, remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const res = { getHeader: () => undefined } as unknown as ServerResponse;
  const ex = new HttpExchange('outbound', req, res, '/products?id=3', { ...headers, host: 'catalog.shop' }, systemClock.monotonic());
  ex.service = 'shop/catalog:80';
  ex.routeId = 'shop/catalog/0/0';
  ex.backend = backend as never;
  ex.endpoint = endpoint as never;
  return ex;
}

const nullStream = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });

function measure(name: string, mesh: SnapshotMesh, headers: Record<string, string>, results: Record<string, number>): void {
  const registry = new MetricsRegistry();
  const exporter = new OtlpExporter({ resource: [], registry, clock: systemClock, logger: silentLogger(), version: 'bench' });
  // No timer export: the queue is drained by hand so the loop measures only the request path.
  exporter.configure(undefined);
  let queued = 0;
  exporter.add = () => void queued++;
  const tracer = new Tracer({ mesh: () => mesh, clock: systemClock, exporter });
  const log = new AccessLog({ mesh: () => mesh, clock: systemClock, registry, logger: silentLogger(), local: 'shop/frontend', stdout: nullStream() });
  const exchanges = Array.from({ length: 1000 }, () => exchange(headers));
  const round = (n: number) => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const ex = exchanges[i % exchanges.length]!;
      ex.headers = { ...headers, host: 'catalog.shop' };
      ex.span = undefined;
      ex.responseEdits = undefined;
      tracer.start(ex, 'client');
      log.startHttp(ex);
      log.finishHttp(ex, 'outbound', 200);
      tracer.finish(ex, 200);
      if ((i & 1023) === 0) log.flush();
    }
    return Number(process.hrtime.bigint() - started) / n;
  };
  round(Math.min(50_000, iterations));
  results[name] = Math.round(round(iterations));
  log.close();
  void queued;
}

const base: SnapshotMesh = { trustDomain: 'cluster.local', clusterDomain: 'cluster.local' };
const collector = { endpoint: 'http://127.0.0.1:4318' };
const results: Record<string, number> = {};
measure('baseline (header copy only)', base, {}, results);
measure('tracing off', base, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, results);
measure('unsampled, new trace', { ...base, tracing: { samplingPercent: 0, collector } }, {}, results);
measure('caller unsampled', { ...base, tracing: { samplingPercent: 100, collector } }, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }, results);
measure('sampled span', { ...base, tracing: { samplingPercent: 100, collector } }, {}, results);
measure('access log line (all fields)', { ...base, accessLog: { enabled: true, samplingPercent: 100, path: 'stdout' } }, {}, results);

// The same line through pino (a JSON logger with no level, to a null destination).
const logger = pino({ base: undefined, timestamp: false }, nullStream());
const ex = exchange({ 'user-agent': 'curl/8' });
const started = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) {
  logger.info({
    time: new Date().toISOString(),
    duration_ms: 1.234,
    direction: 'outbound',
    protocol: 'HTTP/1.1',
    method: ex.method,
    authority: ex.headers.host,
    path: ex.path,
    status: 200,
    bytes_received: 0,
    bytes_sent: 312,
    route: ex.routeId,
    upstream_service: 'shop/catalog:80',
    upstream_endpoint: 'shop/catalog-0',
    upstream_host: '127.0.0.1:15008',
    retries: 0,
    caller: 'shop/frontend',
    user_agent: 'curl/8',
  });
}
results['pino line (same fields)'] = Math.round(Number(process.hrtime.bigint() - started) / iterations);
process.stdout.write(`${JSON.stringify({ nsPerRequest: results })}\n`);
