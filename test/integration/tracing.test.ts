// Tracing through real sidecars: one request client → frontend → catalog → pricing is one trace of six spans, exported over OTLP/HTTP; B3 in, B3 out; sampled=0 respected; a dead collector costs requests nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as connectH2 } from 'node:http2';
import { createServer, type AddressInfo } from 'node:net';
import { waitFor } from './control-helpers.ts';
import { startObservedMesh, startOtlpReceiver, type HopAnswer, type ObservedMesh, type OtlpReceiver, type ReceivedSpan } from './observability-helpers.ts';
import { adminGet, viaProxy } from './proxy-helpers.ts';

const SERVER = 2;
const CLIENT = 3;

function tracingSpec(endpoint: string, percent = 100): string {
  return `tracing:
  samplingPercent: ${percent}
  exportInterval: 100ms
  collector: {endpoint: "${endpoint}"}`;
}

/** The headers each hop's app received, frontend first. */
function hops(answer: HopAnswer): HopAnswer[] {
  const all: HopAnswer[] = [];
  for (let a: HopAnswer | undefined = answer; a; a = a.next) all.push(a);
  return all;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('tracing through the mesh', { timeout: 60_000 }, () => {
  let receiver: OtlpReceiver;
  let mesh: ObservedMesh;

  before(async () => {
    receiver = await startOtlpReceiver();
    mesh = await startObservedMesh(tracingSpec(receiver.url), { gateway: true });
  });

  after(async () => {
    await mesh?.close();
    await receiver?.close();
  });

  const spansOf = (traceId: string, count: number) =>
    waitFor(() => {
      const spans = receiver.spans.filter((s) => s.traceId === traceId);
      return spans.length >= count ? spans : undefined;
    }, `${count} spans of trace ${traceId}`, 10_000);

  it('one request through frontend → catalog → pricing is one trace, each proxy hop a client span parenting the next server span', async () => {
    const res = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/products');
    assert.equal(res.status, 200, res.body);
    const seen = hops(res.json<HopAnswer>());
    assert.deepEqual(seen.map((h) => h.hop), ['frontend', 'catalog', 'pricing']);
    const traceparent = String(seen[2]!.headers.traceparent);
    const [, traceId, pricingParent, flags] = traceparent.split('-');
    assert.equal(flags, '01');
    // Every app saw the same trace.
    for (const hop of seen) assert.equal(String(hop.headers.traceparent).split('-')[1], traceId);

    const spans = await spansOf(traceId!, 6);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 6, 'no extra spans');
    const find = (service: string, kind: number): ReceivedSpan => {
      const span = spans.find((s) => s.service === service && s.kind === kind);
      assert.ok(span, `no ${kind === CLIENT ? 'client' : 'server'} span from ${service}: ${JSON.stringify(spans.map((s) => [s.service, s.kind]))}`);
      return span;
    };
    const root = find('client', CLIENT);
    const frontendIn = find('frontend', SERVER);
    const frontendOut = find('frontend', CLIENT);
    const catalogIn = find('catalog', SERVER);
    const catalogOut = find('catalog', CLIENT);
    const pricingIn = find('pricing', SERVER);
    assert.equal(root.parentSpanId, undefined, 'the client sidecar started the trace');
    assert.equal(frontendIn.parentSpanId, root.spanId);
    assert.equal(frontendOut.parentSpanId, frontendIn.spanId);
    assert.equal(catalogIn.parentSpanId, frontendOut.spanId);
    assert.equal(catalogOut.parentSpanId, catalogIn.spanId);
    assert.equal(pricingIn.parentSpanId, catalogOut.spanId);
    // The app behind a server span sees that span as its parent.
    assert.equal(pricingParent, pricingIn.spanId);

    // Standard HTTP attributes and weft's own.
    assert.equal(root.attributes['http.request.method'], 'GET');
    assert.equal(root.attributes['http.response.status_code'], 200);
    assert.equal(root.attributes['server.address'], 'frontend.shop');
    assert.equal(root.attributes['url.full'], 'http://frontend.shop/products');
    assert.equal(root.attributes['network.protocol.version'], '1.1');
    assert.equal(root.attributes['weft.backend'], 'shop/frontend:80');
    assert.equal(root.attributes['weft.endpoint'], 'shop/frontend-0');
    assert.ok(typeof root.attributes['weft.route'] === 'string');
    assert.equal(pricingIn.attributes['url.path'], '/products');
    assert.equal(pricingIn.attributes['weft.peer.identity'], 'spiffe://cluster.local/ns/shop/sa/catalog');
    assert.equal(pricingIn.attributes['http.response.status_code'], 200);
    // Children lie within their parents.
    assert.ok(BigInt(frontendIn.startTimeUnixNano) >= BigInt(root.startTimeUnixNano) - 1_000_000n);
    assert.ok(BigInt(root.endTimeUnixNano) >= BigInt(frontendIn.endTimeUnixNano) - 1_000_000n);
    for (const span of spans) assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
  });

  it('a gateway is a server span for the client and a client span, its child, for the request it sends on', async () => {
    const res = await viaProxy(mesh.gatewayPort, '/from-the-edge', { headers: { host: 'shop.example' } });
    assert.equal(res.status, 200, res.body);
    const seen = hops(res.json<HopAnswer>());
    const traceId = String(seen[0]!.headers.traceparent).split('-')[1]!;
    const spans = await spansOf(traceId, 7);
    const edge = spans.filter((s) => s.service === 'edge.gateway');
    const server = edge.find((s) => s.kind === SERVER);
    const client = edge.find((s) => s.kind === CLIENT);
    assert.ok(server && client, JSON.stringify(spans.map((s) => [s.service, s.kind])));
    assert.equal(server.parentSpanId, undefined);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(server.attributes['url.path'], '/from-the-edge');
    assert.equal(server.attributes['server.address'], 'shop.example');
    assert.equal(spans.find((s) => s.service === 'frontend' && s.kind === SERVER)?.parentSpanId, client.spanId);
  });

  it('an HTTP/2 request is traced the same way; its spans say protocol version 2', async () => {
    const session = connectH2(`http://127.0.0.1:${mesh.client.ports.outbound}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': '/h2', ':authority': 'frontend.shop' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () => resolve(text));
        stream.on('error', reject);
        stream.end();
      });
      const seen = hops(JSON.parse(body) as HopAnswer);
      const traceId = String(seen[0]!.headers.traceparent).split('-')[1]!;
      const spans = await spansOf(traceId, 6);
      const root = spans.find((s) => s.service === 'client' && s.kind === CLIENT);
      assert.equal(root?.attributes['network.protocol.version'], '2');
      assert.equal(spans.find((s) => s.service === 'frontend' && s.kind === SERVER)?.parentSpanId, root?.spanId);
    } finally {
      session.close();
    }
  });

  it("a proxy-made answer's span carries its weft-reason and text, as status ERROR", async () => {
    const traceId = 'b7ad6b7169203331b7ad6b7169203331';
    const res = await viaProxy(mesh.client.ports.outbound, 'http://nowhere.shop/x', { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    assert.equal(res.status, 502);
    const [span] = await spansOf(traceId, 1);
    assert.equal(span!.attributes['weft.reason'], 'WEFT_ERR_NO_ROUTE');
    assert.equal(span!.attributes['error.type'], 'WEFT_ERR_NO_ROUTE');
    assert.equal(span!.attributes['http.response.status_code'], 502);
    assert.equal(span!.status.code, 2);
    assert.match(String(span!.status.message), /^WEFT_ERR_NO_ROUTE: .*nowhere/);
  });

  it("joins the caller's W3C trace and passes tracestate on", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/w3c', {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=abc' },
    });
    assert.equal(res.status, 200);
    const seen = hops(res.json<HopAnswer>());
    for (const hop of seen) assert.equal(hop.headers.tracestate, 'vendor=abc');
    const spans = await spansOf(traceId, 6);
    const root = spans.find((s) => s.service === 'client' && s.kind === CLIENT);
    assert.equal(root?.parentSpanId, '00f067aa0ba902b7');
  });

  it('B3 in, B3 out: multi-header and single-header contexts are joined and written on in the same form, with traceparent', async () => {
    const multiTrace = '80f198ee56343ba864fe8b2a57d3eff7';
    const multi = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/b3', {
      headers: { 'x-b3-traceid': multiTrace, 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': '1' },
    });
    assert.equal(multi.status, 200);
    for (const hop of hops(multi.json<HopAnswer>())) {
      assert.equal(hop.headers['x-b3-traceid'], multiTrace);
      assert.equal(hop.headers['x-b3-sampled'], '1');
      assert.match(String(hop.headers['x-b3-spanid']), /^[0-9a-f]{16}$/);
      assert.equal(String(hop.headers.traceparent).split('-')[1], multiTrace);
      assert.equal(String(hop.headers.traceparent).split('-')[2], hop.headers['x-b3-spanid']);
    }
    const spans = await spansOf(multiTrace, 6);
    assert.equal(spans.find((s) => s.service === 'client' && s.kind === CLIENT)?.parentSpanId, 'e457b5a2e4d86bd1');

    // B3 single with a 64-bit trace id: the short form travels on.
    const single = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/b3-single', {
      headers: { b3: 'a3ce929d0e0e4736-00f067aa0ba902b7-1' },
    });
    assert.equal(single.status, 200);
    const pricing = hops(single.json<HopAnswer>())[2]!;
    const [traceId, spanId, sampled, parent] = String(pricing.headers.b3).split('-');
    assert.equal(traceId, 'a3ce929d0e0e4736');
    assert.equal(sampled, '1');
    assert.match(String(parent), /^[0-9a-f]{16}$/);
    assert.equal(String(pricing.headers.traceparent), `00-0000000000000000a3ce929d0e0e4736-${spanId}-01`);
    await spansOf('0000000000000000a3ce929d0e0e4736', 6);
  });

  it("respects the caller's sampled=0: headers travel on, no span is recorded", async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const res = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/unsampled', {
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-00` },
    });
    assert.equal(res.status, 200);
    for (const hop of hops(res.json<HopAnswer>())) assert.equal(hop.headers.traceparent, `00-${traceId}-b7ad6b7169203331-00`);
    // A sampled request sent after it is exported (every proxy flushes every 100 ms): by then the unsampled one would be too.
    const later = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/after');
    const laterTrace = String(hops(later.json<HopAnswer>())[0]!.headers.traceparent).split('-')[1]!;
    await spansOf(laterTrace, 6);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
  });

  it('samplingPercent 0: traces the mesh starts are not recorded, but the decision travels so that no hop records one', async () => {
    await mesh.setMeshConfig(tracingSpec(receiver.url, 0));
    const res = await viaProxy(mesh.client.ports.outbound, 'http://frontend.shop/zero');
    assert.equal(res.status, 200);
    const seen = hops(res.json<HopAnswer>());
    const traceId = String(seen[0]!.headers.traceparent).split('-')[1]!;
    for (const hop of seen) {
      const [, id, , flags] = String(hop.headers.traceparent).split('-');
      assert.equal(id, traceId);
      assert.equal(flags, '00');
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
  });

  it('a collector that is down: requests are answered as before, the dropped spans are counted', async () => {
    const dead = await freePort();
    await mesh.setMeshConfig(tracingSpec(`http://127.0.0.1:${dead}`));
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      const res = await viaProxy(mesh.client.ports.outbound, `http://frontend.shop/down-${i}`);
      assert.equal(res.status, 200);
    }
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 5000, `20 requests took ${elapsed.toFixed(0)} ms`);
    const dropped = await waitFor(async () => {
      const metrics = await adminGet(mesh.client.ports.admin, '/metrics');
      const match = /^weft_tracing_spans_dropped_total\{reason="export_failed"\} (\d+)/m.exec(metrics.body);
      return match && Number(match[1]) >= 20 ? Number(match[1]) : undefined;
    }, 'dropped spans counted at the client sidecar', 10_000);
    assert.ok(dropped >= 20);
  });
});
