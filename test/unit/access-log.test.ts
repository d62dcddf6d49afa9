// The access log writer: lines of the chosen fields, sampling, the bounded queue, MeshConfig validation and compilation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { MeshConfigSpec } from '../../src/api/resources.ts';
import type { SnapshotMesh } from '../../src/api/snapshot.ts';
import { observability } from '../../src/compiler/observability.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import { AccessLog, MAX_PENDING_LINES } from '../../src/proxy/access-log.ts';
import { HttpExchange, TcpExchange } from '../../src/proxy/exchange.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

function setup(accessLog: SnapshotMesh['accessLog'], random = () => 0.5) {
  const clock = new ManualClock();
  const registry = new MetricsRegistry();
  const out = sink();
  const mesh: SnapshotMesh = { trustDomain: 'cluster.local', clusterDomain: 'cluster.local', ...(accessLog ? { accessLog } : {}) };
  const log = new AccessLog({ mesh: () => mesh, clock, registry, logger: silentLogger(), local: 'shop/frontend', stdout: out.stream, random });
  const lines = () =>
    out
      .text()
      .split('\n')
      .filter((l) => l)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { clock, registry, log, lines };
}

function exchange(clock: ManualClock, status = 200): HttpExchange {
  const req = { method: 'POST', url: '/orders', headers: { 'content-length': '12', 'weft-source': 'shop/client' }, httpVersionMajor: 2 } as unknown as IncomingMessage;
  const res = { getHeader: (name: string) => (name === 'content-length' ? '34' : name === 'weft-reason' && status === 503 ? 'WEFT_ERR_UPSTREAM_CONNECT' : undefined) } as unknown as ServerResponse;
  const ex = new HttpExchange('inbound', req, res, '/orders', { host: 'orders.shop' }, clock.monotonic());
  ex.service = 'shop/orders:8080';
  ex.peerIdentity = 'spiffe://cluster.local/ns/shop/sa/client';
  ex.appPort = 41000;
  return ex;
}

describe('AccessLog', () => {
  it('writes a sampled exchange as one JSON line; upstream time from the response head', () => {
    const { clock, log, lines } = setup({ enabled: true, samplingPercent: 100, path: 'stdout' });
    const ex = exchange(clock);
    log.startHttp(ex);
    ex.attempts = 2;
    clock.advance(5);
    for (const edit of ex.responseEdits ?? []) edit({});
    clock.advance(2);
    log.finishHttp(ex, 'inbound', 200);
    log.flush();
    const [line] = lines();
    assert.deepEqual(line, {
      time: new Date(clock.now() - 7).toISOString(),
      duration_ms: 7,
      direction: 'inbound',
      protocol: 'HTTP/2',
      method: 'POST',
      authority: 'orders.shop',
      path: '/orders',
      status: 200,
      bytes_received: 12,
      bytes_sent: 34,
      upstream_host: '127.0.0.1:41000',
      upstream_service_time_ms: 5,
      retries: 1,
      caller: 'spiffe://cluster.local/ns/shop/sa/client',
      source: 'shop/client',
    });
  });

  it('fields choose and order the keys; a proxy answer carries its reason', () => {
    const { clock, log, lines } = setup({ enabled: true, samplingPercent: 100, path: 'stdout', fields: ['weft_reason', 'status'] });
    const ex = exchange(clock, 503);
    log.startHttp(ex);
    log.finishHttp(ex, 'inbound', 503);
    log.flush();
    assert.deepEqual(lines(), [{ weft_reason: 'WEFT_ERR_UPSTREAM_CONNECT', status: 503 }]);
  });

  it('samples by samplingPercent, and is off without MeshConfig accessLog', () => {
    const half = setup({ enabled: true, samplingPercent: 50, path: 'stdout' }, () => 0.7);
    const ex = exchange(half.clock);
    half.log.startHttp(ex);
    half.log.finishHttp(ex, 'inbound', 200);
    half.log.flush();
    assert.equal(half.lines().length, 0);
    const off = setup(undefined);
    const ex2 = exchange(off.clock);
    off.log.startHttp(ex2);
    off.log.finishHttp(ex2, 'inbound', 200);
    off.log.flush();
    assert.equal(off.lines().length, 0);
    assert.equal(ex2.accessLogMark, undefined);
  });

  it('logs TCP connections', () => {
    const { clock, log, lines } = setup({ enabled: true, samplingPercent: 100, path: 'stdout', fields: ['protocol', 'authority', 'bytes_received', 'bytes_sent', 'caller', 'duration_ms'] });
    const ex = new TcpExchange('outbound', new Writable() as never, () => {});
    ex.service = 'shop/db:5432';
    const opened = clock.monotonic();
    clock.advance(100);
    log.tcp(ex, 'outbound', opened, 10, 20);
    log.flush();
    assert.deepEqual(lines(), [{ protocol: 'tcp', authority: 'shop/db:5432', bytes_received: 10, bytes_sent: 20, caller: 'shop/frontend', duration_ms: 100 }]);
  });

  it('bounds its queue: lines past the limit are dropped and counted', () => {
    const { clock, registry, log } = setup({ enabled: true, samplingPercent: 100, path: 'stdout', fields: ['status'] });
    for (let i = 0; i < MAX_PENDING_LINES + 3; i++) {
      const ex = exchange(clock);
      log.startHttp(ex);
      log.finishHttp(ex, 'inbound', 200);
    }
    assert.match(registry.render(), /weft_access_log_lines_dropped_total 3/);
    log.close();
  });
});

describe('MeshConfig tracing and accessLog', () => {
  it('validates with the field named', () => {
    const bad = MeshConfigSpec.safeParse({ tracing: { samplingPercent: 150 } });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['tracing', 'samplingPercent']);
    const badField = MeshConfigSpec.safeParse({ accessLog: { fields: ['status', 'nope'] } });
    assert.equal(badField.success, false);
    assert.deepEqual(badField.error?.issues[0]?.path, ['accessLog', 'fields', 1]);
    const badPath = MeshConfigSpec.safeParse({ accessLog: { path: 'relative.log' } });
    assert.deepEqual(badPath.error?.issues.map((i) => [i.path.join('.'), i.message]), [['accessLog.path', 'must be "stdout" or an absolute file path']]);
    const badUrl = MeshConfigSpec.safeParse({ tracing: { collector: { endpoint: 'ftp://x' } } });
    assert.equal(badUrl.success, false);
  });

  it('compiles to the snapshot with defaults filled in', () => {
    const spec = MeshConfigSpec.parse({ tracing: { collector: { endpoint: 'http://c:4318', timeout: '2s' }, exportInterval: '500ms' }, accessLog: {} });
    const compiled = observability({ meshConfig: { spec } } as unknown as CompilerInput);
    assert.deepEqual(compiled, {
      tracing: { samplingPercent: 1, collector: { endpoint: 'http://c:4318', timeoutMs: 2000 }, exportIntervalMs: 500 },
      accessLog: { enabled: true, samplingPercent: 100, path: 'stdout' },
    });
    const off = observability({ meshConfig: { spec: MeshConfigSpec.parse({ accessLog: { enabled: false } }) } } as unknown as CompilerInput);
    assert.deepEqual(off, {});
  });
});
