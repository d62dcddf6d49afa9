// A proxy with FaultInjection filters: aborts and delays at their percentages over 2,000 requests, header-conditional faults, gRPC aborts, weft-reason and metrics.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { ErrorCodes } from '../../src/api/errors.ts';
import type { FaultInjection, HttpFilter, HttpRouteRule } from '../../src/api/snapshot.ts';
import { adminGet, buildSnapshot, endpoint, startTestProxy, viaProxy, type HttpResult, type TestProxy } from './proxy-helpers.ts';
import { prefixRule, startRecorder, type RecordingServer } from './routing-helpers.ts';

const REQUESTS = 2000;
const DELAY_MS = 1000;

let backend: RecordingServer;
let proxy: TestProxy;

function fault(spec: Omit<FaultInjection, 'name'>): HttpFilter {
  return { type: 'FaultInjection', fault: { name: 'default/chaos', ...spec } };
}

before(async () => {
  backend = await startRecorder('web');
  const web = 'default/web:80';
  const rules: HttpRouteRule[] = [
    prefixRule('default/r/abort/0', '/abort', { filters: [fault({ abort: { httpStatus: 503, percent: 12.5 } })] }, web),
    prefixRule('default/r/delay/0', '/delay', { filters: [fault({ delay: { ms: DELAY_MS, percent: 20 } })] }, web),
    prefixRule('default/r/chaos/0', '/chaos', { filters: [fault({ abort: { httpStatus: 418, percent: 100 }, headers: [{ name: 'x-chaos', type: 'Exact', value: 'on' }] })] }, web),
    prefixRule('default/r/grpc/0', '/pkg.Svc', { filters: [fault({ abort: { httpStatus: 503, grpcStatus: 14, percent: 100 } })] }, web),
    {
      id: 'default/r/ref/0',
      match: { path: { type: 'PathPrefix', value: '/ref' } },
      filters: [],
      backends: [{ backend: web, weight: 1, filters: [fault({ abort: { httpStatus: 500, percent: 100 } })] }],
    },
  ];
  const snapshot = buildSnapshot({ services: [{ name: 'web', ports: [{ port: 80, endpoints: [endpoint('default/web-0', backend.port)], rules }] }] });
  proxy = await startTestProxy({ snapshot });
});

after(async () => {
  await proxy?.close();
  await backend?.close();
});

/** `count` GETs of `path`, `concurrency` at a time on kept-alive connections; each result with its latency. */
async function load(path: string, count: number, concurrency: number, headers: Record<string, string> = {}): Promise<{ result: HttpResult; ms: number }[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const results: { result: HttpResult; ms: number }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const started = performance.now();
      const result = await viaProxy(proxy.proxy.ports.outbound, `http://web${path}`, { agent, headers, timeoutMs: 10_000 });
      results.push({ result, ms: performance.now() - started });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return results;
}

async function faultsCounted(): Promise<number> {
  const metrics = (await adminGet(proxy.proxy.ports.admin, '/metrics')).body;
  const line = metrics.split('\n').find((l) => l.startsWith(`weft_proxy_responses_total{reason="${ErrorCodes.FAULT_INJECTED}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('an abort at 12.5 % answers 12.5 % ± 3 points of 2,000 requests with its status and weft-reason, counted by reason', async () => {
  const before = await faultsCounted();
  const results = await load('/abort', REQUESTS, 32);
  const aborted = results.filter((r) => r.result.status === 503);
  assert.equal(aborted.length + results.filter((r) => r.result.status === 200).length, REQUESTS, 'only 200s and the fault’s 503s');
  const percent = (aborted.length / REQUESTS) * 100;
  assert.ok(Math.abs(percent - 12.5) <= 3, `aborted ${percent.toFixed(2)} %`);
  for (const { result } of aborted) assert.equal(result.headers['weft-reason'], ErrorCodes.FAULT_INJECTED);
  // Aborted requests never reach the backend.
  assert.equal(backend.seen('/abort').length, REQUESTS - aborted.length);
  assert.equal((await faultsCounted()) - before, aborted.length);
});

test('a delay at 20 % holds 20 % ± 3 points of 2,000 requests for its time; the others are not held', async () => {
  const results = await load('/delay', REQUESTS, 100);
  assert.ok(results.every((r) => r.result.status === 200));
  // Delayed requests take at least the delay; the threshold sits below it, far above an undelayed request here.
  const delayed = results.filter((r) => r.ms >= DELAY_MS - 50);
  const percent = (delayed.length / REQUESTS) * 100;
  assert.ok(Math.abs(percent - 20) <= 3, `delayed ${percent.toFixed(2)} %`);
});

test('a fault with a header match applies only to requests carrying the header', async () => {
  const plain = await load('/chaos', 50, 8);
  assert.ok(plain.every((r) => r.result.status === 200));
  const marked = await load('/chaos', 50, 8, { 'x-chaos': 'on' });
  assert.ok(marked.every((r) => r.result.status === 418 && r.result.headers['weft-reason'] === ErrorCodes.FAULT_INJECTED));
  const other = await load('/chaos', 20, 4, { 'x-chaos': 'off' });
  assert.ok(other.every((r) => r.result.status === 200));
});

test('a gRPC caller gets its abort as grpc-status in a trailers-only 200; an HTTP caller of the same fault gets the HTTP status', async () => {
  const before = await faultsCounted();
  const grpc = await viaProxy(proxy.proxy.ports.outbound, 'http://web/pkg.Svc/Method', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: '' });
  assert.equal(grpc.status, 200);
  assert.equal(grpc.headers['content-type'], 'application/grpc');
  assert.equal(grpc.headers['grpc-status'], '14');
  assert.equal(grpc.headers['weft-reason'], ErrorCodes.FAULT_INJECTED);
  assert.equal(grpc.body, '');
  const http = await viaProxy(proxy.proxy.ports.outbound, 'http://web/pkg.Svc/Method');
  assert.equal(http.status, 503);
  assert.equal((await faultsCounted()) - before, 2);
});

test('a FaultInjection on a backendRef aborts the requests sent to that backend', async () => {
  const result = await viaProxy(proxy.proxy.ports.outbound, 'http://web/ref');
  assert.equal(result.status, 500);
  assert.equal(result.headers['weft-reason'], ErrorCodes.FAULT_INJECTED);
  assert.equal(backend.seen('/ref').length, 0);
});

test('a real gRPC client (h2c) sees the abort as its status code, with weft-reason in the trailers', async () => {
  const grpc = await import('@grpc/grpc-js');
  const client = new grpc.Client(`127.0.0.1:${proxy.proxy.ports.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'web' });
  try {
    const status = await new Promise<import('@grpc/grpc-js').StatusObject>((resolve) => {
      const call = client.makeUnaryRequest(
        '/pkg.Svc/Method',
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.alloc(0),
        { deadline: Date.now() + 5000 },
        () => undefined,
      );
      call.on('status', resolve);
    });
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.match(status.details, /aborted by FaultInjection default\/chaos/);
    assert.deepEqual(status.metadata.get('weft-reason'), [ErrorCodes.FAULT_INJECTED]);
  } finally {
    client.close();
  }
});
