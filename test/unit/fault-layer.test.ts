// Unit tests of the fault layer: an abort is a typed error that the ErrorResponder answers (HTTP status, or gRPC trailers-only with the fault's grpc-status) and counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, isWeftError, REASON_HEADER } from '../../src/api/errors.ts';
import type { FaultInjection, HttpFilter } from '../../src/api/snapshot.ts';
import { grpcStatusOf, statusOf } from '../../src/proxy/errors.ts';
import { HttpExchange } from '../../src/proxy/exchange.ts';
import { faultInjection } from '../../src/proxy/layers/fault/index.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { ErrorResponder, grpcMessage } from '../../src/proxy/respond.ts';
import type { Step } from '../../src/proxy/stack.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

function faultStep(fault: Omit<FaultInjection, 'name'>, reached: string[]): Step<HttpExchange> {
  const filters: HttpFilter[] = [{ type: 'FaultInjection', fault: { name: 'default/chaos', ...fault } }];
  return faultInjection({ clock: systemClock, random: () => 0 })({ filters }, async (ex) => {
    reached.push(ex.path);
    ex.res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
}

/** A listener as the proxy's are: the step, and thrown errors answered by the ErrorResponder. */
async function serve(t: { after(fn: () => void): void }, step: Step<HttpExchange>) {
  const registry = new MetricsRegistry();
  const responder = new ErrorResponder('outbound', createProxyMetrics(registry), silentLogger());
  const server = createServer((req, res) => {
    const ex = new HttpExchange('outbound', req, res, req.url ?? '/', { ...(req.headers as Record<string, string>) }, 0);
    step(ex).catch((error: unknown) => responder.http(ex, error));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const counted = () => {
    const line = registry.render().split('\n').find((l) => l.startsWith(`weft_proxy_responses_total{reason="${ErrorCodes.FAULT_INJECTED}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  return { get, counted };
}

test('an abort rejects with WEFT_ERR_FAULT_INJECTED carrying its HTTP status and, when it names one, its gRPC status', async () => {
  const reached: string[] = [];
  const cases: { abort: NonNullable<FaultInjection['abort']>; status: number; grpc: number }[] = [
    { abort: { percent: 100, httpStatus: 418 }, status: 418, grpc: 13 }, // no gRPC status named: by the HTTP status (INTERNAL for 418)
    { abort: { percent: 100, grpcStatus: 14 }, status: 503, grpc: 14 }, // HTTP callers get the status the gRPC code stands for
    { abort: { percent: 100, httpStatus: 500, grpcStatus: 8 }, status: 500, grpc: 8 },
  ];
  for (const { abort, status, grpc } of cases) {
    const step = faultStep({ abort }, reached);
    const ex = new HttpExchange('outbound', { method: 'GET', headers: {} } as never, {} as never, '/', {}, 0);
    const error = await step(ex).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    assert.ok(isWeftError(error), 'a typed error');
    assert.equal(error.code, ErrorCodes.FAULT_INJECTED);
    assert.equal(error.message, 'aborted by FaultInjection default/chaos');
    assert.equal(statusOf(error), status);
    assert.equal(grpcStatusOf(error), grpc);
  }
  assert.deepEqual(reached, [], 'an aborted request goes no further');
});

test('the ErrorResponder answers a gRPC caller of an abort with trailers-only grpc-status, an HTTP caller with the status; both counted by reason', async (t) => {
  const reached: string[] = [];
  const { get, counted } = await serve(t, faultStep({ abort: { percent: 100, httpStatus: 503, grpcStatus: 14 } }, reached));

  const grpc = await get('/pkg.Svc/Method', { 'content-type': 'application/grpc', te: 'trailers' });
  assert.equal(grpc.status, 200);
  assert.equal(grpc.headers['content-type'], 'application/grpc');
  assert.equal(grpc.headers['grpc-status'], '14');
  assert.equal(grpc.headers['grpc-message'], `${ErrorCodes.FAULT_INJECTED}: aborted by FaultInjection default/chaos`);
  assert.equal(grpc.headers[REASON_HEADER], ErrorCodes.FAULT_INJECTED);
  assert.equal(grpc.body, '');

  const http = await get('/pkg.Svc/Method');
  assert.equal(http.status, 503);
  assert.equal(http.headers[REASON_HEADER], ErrorCodes.FAULT_INJECTED);
  assert.match(http.body, /aborted by FaultInjection default\/chaos/);

  assert.equal(counted(), 2);
  assert.deepEqual(reached, []);
});

test('grpc-message keeps printable ASCII and percent-encodes "%" and non-ASCII', async (t) => {
  const { get } = await serve(t, faultStep({ abort: { percent: 100, grpcStatus: 7 } }, []));
  const grpc = await get('/', { 'content-type': 'application/grpc+proto' });
  assert.equal(grpc.headers['grpc-status'], '7');
  assert.equal(grpcMessage('50% ünïcode'), '50%25 %C3%BCn%C3%AFcode');
});
