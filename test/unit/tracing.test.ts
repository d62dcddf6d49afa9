// Trace context parsing and writing (W3C, B3 single and multi), the tracer's sampling and span structure, OTLP encoding, the exporter's bounded queue.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SnapshotMesh } from '../../src/api/snapshot.ts';
import { HttpExchange, type Headers } from '../../src/proxy/exchange.ts';
import { OtlpExporter, tracesUrl } from '../../src/proxy/tracing/exporter.ts';
import { encodeExport, unixNanos } from '../../src/proxy/tracing/otlp.ts';
import { extract, inject, parseB3Single, parseTraceparent } from '../../src/proxy/tracing/propagation.ts';
import { Span, SPAN_KIND_CLIENT, SPAN_KIND_SERVER } from '../../src/proxy/tracing/span.ts';
import { Tracer } from '../../src/proxy/tracing/tracer.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  it('reads version 00 and the sampled flag', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, sampled: true });
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.sampled, true);
  });
  it('refuses malformed, all-zero and version ff contexts; reads a later version by its first fields', () => {
    for (const bad of [
      `00-${TRACE}-${SPAN}-1`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      'garbage',
    ]) {
      assert.equal(parseTraceparent(bad), undefined, bad);
    }
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`)?.traceId, TRACE);
  });
});

describe('B3', () => {
  it('single header: ids, sampling state, parent; a lone decision', () => {
    assert.deepEqual(parseB3Single(`${TRACE}-${SPAN}-1-05e3ac9a4f6e3b90`), { traceId: TRACE, spanId: SPAN, sampled: true, b3: 'single', b3ShortId: false });
    assert.equal(parseB3Single(`${TRACE}-${SPAN}`)?.sampled, undefined);
    assert.equal(parseB3Single(`${TRACE}-${SPAN}-d`)?.sampled, true);
    assert.deepEqual(parseB3Single('0'), { traceId: undefined, sampled: false, b3: 'single' });
    const short = parseB3Single(`a3ce929d0e0e4736-${SPAN}-0`);
    assert.equal(short?.traceId, '0000000000000000a3ce929d0e0e4736');
    assert.equal(short?.b3ShortId, true);
    assert.equal(parseB3Single(`${TRACE}-${SPAN}-x`), undefined);
  });
  it('multi headers, with x-b3-flags debug as sampled', () => {
    assert.deepEqual(extract({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' }), { traceId: TRACE, spanId: SPAN, sampled: false, b3: 'multi', b3ShortId: false });
    assert.equal(extract({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' })?.sampled, true);
    assert.deepEqual(extract({ 'x-b3-sampled': '0' }), { traceId: undefined, sampled: false, b3: 'multi' });
  });
  it('traceparent wins over B3 and marks the B3 form present for rewriting', () => {
    const found = extract({ traceparent: `00-${TRACE}-${SPAN}-01`, 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': '05e3ac9a4f6e3b90' });
    assert.equal(found?.traceId, TRACE);
    assert.equal(found?.b3, 'multi');
    // An invalid traceparent falls back to B3.
    assert.equal(extract({ traceparent: 'nope', b3: `${TRACE}-${SPAN}-1` })?.b3, 'single');
    assert.equal(extract({}), undefined);
  });
  it('writes traceparent and the B3 form it was asked for', () => {
    const headers: Headers = { 'x-b3-flags': '1' };
    inject(headers, { traceId: TRACE, spanId: SPAN, parentSpanId: '05e3ac9a4f6e3b90', sampled: true, b3: 'multi', b3ShortId: false });
    assert.deepEqual(headers, {
      traceparent: `00-${TRACE}-${SPAN}-01`,
      'x-b3-traceid': TRACE,
      'x-b3-spanid': SPAN,
      'x-b3-parentspanid': '05e3ac9a4f6e3b90',
      'x-b3-sampled': '1',
    });
    const single: Headers = {};
    inject(single, { traceId: `0000000000000000a3ce929d0e0e4736`, spanId: SPAN, parentSpanId: undefined, sampled: false, b3: 'single', b3ShortId: true });
    assert.deepEqual(single, { traceparent: `00-0000000000000000a3ce929d0e0e4736-${SPAN}-00`, b3: `a3ce929d0e0e4736-${SPAN}-0` });
  });
});

function fakeExchange(direction: 'outbound' | 'inbound', headers: Headers, clock: ManualClock): HttpExchange {
  const req = { method: 'GET', url: '/items?x=1', headers: { ...headers }, httpVersionMajor: 1, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const res = { getHeader: () => undefined } as unknown as ServerResponse;
  const ex = new HttpExchange(direction, req, res, '/items?x=1', { ...headers, host: 'catalog.shop' }, clock.monotonic());
  ex.service = 'shop/catalog:80';
  return ex;
}

function tracerWith(percent: number | undefined, random = () => 0.5) {
  const clock = new ManualClock();
  const registry = new MetricsRegistry();
  const exporter = new OtlpExporter({ resource: [], registry, clock, logger: silentLogger(), version: 'test' });
  const queued: Span[] = [];
  exporter.add = (span) => void queued.push(span);
  const mesh: SnapshotMesh = { trustDomain: 'cluster.local', clusterDomain: 'cluster.local' };
  if (percent !== undefined) mesh.tracing = { samplingPercent: percent, collector: { endpoint: 'http://127.0.0.1:1' } };
  const tracer = new Tracer({ mesh: () => mesh, clock, exporter, random });
  return { tracer, clock, queued };
}

describe('Tracer', () => {
  it('without MeshConfig tracing touches nothing', () => {
    const { tracer, clock, queued } = tracerWith(undefined);
    const ex = fakeExchange('outbound', {}, clock);
    tracer.start(ex, 'client');
    assert.equal(ex.headers.traceparent, undefined);
    tracer.finish(ex, 200);
    assert.equal(queued.length, 0);
  });

  it('starts a sampled trace: a root client span whose id travels in traceparent', () => {
    const { tracer, clock, queued } = tracerWith(100);
    const ex = fakeExchange('outbound', {}, clock);
    tracer.start(ex, 'client');
    const [, traceId, spanId, flags] = String(ex.headers.traceparent).split('-');
    assert.equal(flags, '01');
    clock.advance(12);
    tracer.finish(ex, 503);
    assert.equal(queued.length, 1);
    const span = queued[0]!;
    assert.equal(span.traceId, traceId);
    assert.equal(span.spanId, spanId);
    assert.equal(span.parentSpanId, undefined);
    assert.equal(span.kind, SPAN_KIND_CLIENT);
    assert.equal(span.endMs - span.startMs, 12);
    assert.equal(span.status, 2);
    assert.equal(span.name, 'GET shop/catalog:80');
  });

  it('samples new traces by samplingPercent, and passes the decision on', () => {
    const { tracer, clock, queued } = tracerWith(10, () => 0.2);
    const ex = fakeExchange('outbound', {}, clock);
    tracer.start(ex, 'client');
    assert.match(String(ex.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.equal(ex.span, undefined);
    tracer.finish(ex, 200);
    assert.equal(queued.length, 0);
    const lucky = tracerWith(10, () => 0.05);
    const ex2 = fakeExchange('outbound', {}, lucky.clock);
    lucky.tracer.start(ex2, 'client');
    assert.ok(ex2.span);
  });

  it("the caller's decision wins over samplingPercent both ways", () => {
    const never = tracerWith(0);
    const ex = fakeExchange('inbound', { traceparent: `00-${TRACE}-${SPAN}-01` }, never.clock);
    never.tracer.start(ex, 'server');
    assert.equal(ex.span?.parentSpanId, SPAN);
    assert.equal(ex.span?.kind, SPAN_KIND_SERVER);
    const always = tracerWith(100);
    const ex2 = fakeExchange('inbound', { traceparent: `00-${TRACE}-${SPAN}-00` }, always.clock);
    always.tracer.start(ex2, 'server');
    assert.equal(ex2.span, undefined);
    assert.equal(ex2.headers.traceparent, `00-${TRACE}-${SPAN}-00`, 'travels on untouched');
    assert.equal(ex2.traceId, TRACE);
  });

  it('a gateway makes a server span and, under it, the client span it sends on', () => {
    const { tracer, clock, queued } = tracerWith(100);
    const ex = fakeExchange('outbound', { traceparent: `00-${TRACE}-${SPAN}-01` }, clock);
    tracer.start(ex, 'gateway');
    tracer.finish(ex, 200);
    const server = queued.find((s) => s.kind === SPAN_KIND_SERVER)!;
    const client = queued.find((s) => s.kind === SPAN_KIND_CLIENT)!;
    assert.equal(server.parentSpanId, SPAN);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(String(ex.headers.traceparent).split('-')[2], client.spanId);
  });
});

describe('OTLP/JSON', () => {
  it('encodes times as nanosecond strings and ids as hex', () => {
    assert.equal(unixNanos(1_700_000_000_123.456), '1700000000123456000');
    assert.equal(unixNanos(5), '5000000');
    const span = new Span(TRACE, SPAN, undefined, SPAN_KIND_SERVER, 1000.5);
    span.endMs = 1002;
    span.set('http.response.status_code', 200);
    span.set('url.path', '/x');
    span.set('ratio', 0.5);
    const body = JSON.parse(encodeExport([{ key: 'service.name', value: { stringValue: 'a' } }], [span], '1')) as any;
    const encoded = body.resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(encoded.traceId, TRACE);
    assert.equal(encoded.startTimeUnixNano, '1000500000');
    assert.equal(encoded.parentSpanId, undefined);
    assert.deepEqual(encoded.attributes, [
      { key: 'http.response.status_code', value: { intValue: '200' } },
      { key: 'url.path', value: { stringValue: '/x' } },
      { key: 'ratio', value: { doubleValue: 0.5 } },
    ]);
  });
  it('collector URLs: a base gets /v1/traces', () => {
    assert.equal(tracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://collector:4318/custom/traces'), 'http://collector:4318/custom/traces');
  });
});

describe('OtlpExporter', () => {
  it('queues up to maxQueue, counts what overflows, sends in batches and counts failed batches as dropped', async (t) => {
    let requests = 0;
    let fail = false;
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => {
        res.writeHead(fail ? 503 : 200);
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const clock = new ManualClock();
    const registry = new MetricsRegistry();
    const exporter = new OtlpExporter({ resource: [], registry, clock, logger: silentLogger(), version: 'test' });
    t.after(() => exporter.close());
    exporter.configure({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, batchSize: 2, maxQueue: 5, intervalMs: 1000, timeoutMs: 2000 });
    const span = () => {
      const s = new Span(TRACE, SPAN, undefined, SPAN_KIND_CLIENT, 1);
      s.endMs = 2;
      return s;
    };
    for (let i = 0; i < 7; i++) exporter.add(span());
    assert.equal(exporter.queued, 5);
    assert.match(registry.render(), /weft_tracing_spans_dropped_total\{reason="queue_full"\} 2/);
    await exporter.flush();
    assert.equal(requests, 2, 'batches of two, chained while a full batch waits');
    assert.equal(exporter.queued, 1, 'a part batch waits for the next tick');
    await exporter.flush();
    assert.equal(requests, 3);
    assert.match(registry.render(), /weft_tracing_spans_exported_total 5/);
    fail = true;
    exporter.add(span());
    await exporter.flush();
    assert.match(registry.render(), /weft_tracing_spans_dropped_total\{reason="export_failed"\} 1/);
  });
});
