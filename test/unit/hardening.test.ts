// Listener limits: the --limit syntax, the defaults, and the request checks node's parsers leave to the proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import {
  DEFAULT_LISTENER_LIMITS,
  GATEWAY_H2_MAX_CONCURRENT_STREAMS,
  gatewayLimits,
  ListenerGuard,
  limitNames,
  liveLimits,
  parseLimit,
  resolveLimits,
  tunnelLimits,
} from '../../src/proxy/transport/hardening.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { compile } from '../../src/compiler/compile.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';

function request(init: { method?: string; url?: string; rawHeaders: string[]; major?: number; minor?: number }): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < init.rawHeaders.length; i += 2) headers[init.rawHeaders[i]!.toLowerCase()] ??= init.rawHeaders[i + 1]!;
  return { method: init.method ?? 'GET', url: init.url ?? '/', rawHeaders: init.rawHeaders, headers, httpVersionMajor: init.major ?? 1, httpVersionMinor: init.minor ?? 1 } as unknown as IncomingMessage;
}

const guard = (limits = DEFAULT_LISTENER_LIMITS) => new ListenerGuard('test', limits, new MetricsRegistry(), silentLogger());

test('--limit takes kebab-case names with non-negative integers, and names the valid ones when wrong', () => {
  assert.ok(limitNames().includes('max-header-count'));
  assert.ok(limitNames().includes('h2-max-premature-resets'));
  assert.deepEqual(parseLimit('max-header-count=50', parseLimit('headers-timeout-ms=1000')), { maxHeaderCount: 50, headersTimeoutMs: 1000 });
  assert.throws(() => parseLimit('max-headers=5'), /unknown limit "max-headers"; one of .*max-header-count/);
  assert.throws(() => parseLimit('max-header-count=-1'), /non-negative integer/);
  assert.throws(() => parseLimit('max-header-count'), /non-negative integer/);
});

test('defaults, the gateway’s stream concurrency, and the tunnel’s headroom', () => {
  assert.equal(resolveLimits(undefined).maxHeaderCount, 100);
  assert.equal(resolveLimits({ maxConnections: 5 }).maxConnections, 5);
  assert.equal(gatewayLimits(undefined).h2MaxConcurrentStreams, GATEWAY_H2_MAX_CONCURRENT_STREAMS);
  assert.equal(gatewayLimits({ h2MaxConcurrentStreams: 7 }).h2MaxConcurrentStreams, 7);
  const tunnel = tunnelLimits(DEFAULT_LISTENER_LIMITS);
  assert.ok(tunnel.maxHeaderCount > DEFAULT_LISTENER_LIMITS.maxHeaderCount);
  assert.ok(tunnel.maxHeaderBytes > DEFAULT_LISTENER_LIMITS.maxHeaderBytes);
});

test('check(): Transfer-Encoding other than exactly "chunked", or in HTTP/1.0, duplicate Host, counts and sizes', () => {
  const g = guard({ ...DEFAULT_LISTENER_LIMITS, maxHeaderCount: 4, maxUriBytes: 20, maxHeaderBytes: 200 });
  assert.equal(g.check(request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked'] })), undefined);
  for (const te of ['Chunked', 'gzip, chunked', 'chunked, identity']) {
    assert.equal(g.check(request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', te] }))?.reason, 'transfer_encoding', te);
  }
  assert.equal(g.check(request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked'], minor: 0 }))?.reason, 'transfer_encoding');
  assert.deepEqual(g.check(request({ rawHeaders: ['Host', 'a', 'host', 'b'] }))?.status, 400);
  assert.deepEqual(g.check(request({ rawHeaders: ['Host', 'a', 'A', '1', 'B', '2', 'C', '3', 'D', '4'] }))?.status, 431);
  assert.deepEqual(g.check(request({ rawHeaders: ['Host', 'a', 'A', 'x'.repeat(300)] }))?.status, 431);
  assert.deepEqual(g.check(request({ url: `/${'p'.repeat(30)}`, rawHeaders: ['Host', 'a'] }))?.status, 414);
});

test('check(): HTTP/2 pseudo-headers do not count; Host must name the :authority', () => {
  const g = guard({ ...DEFAULT_LISTENER_LIMITS, maxHeaderCount: 2 });
  const h2 = (raw: string[]) => request({ rawHeaders: [':method', 'GET', ':path', '/', ':scheme', 'http', ':authority', 'a.example', ...raw], major: 2, minor: 0 });
  assert.equal(g.check(h2(['x', '1', 'y', '2'])), undefined);
  assert.equal(g.check(h2(['host', 'A.example'])), undefined);
  assert.equal(g.check(h2(['host', 'b.example']))?.reason, 'host_mismatch');
  assert.equal(g.check(h2(['x', '1', 'y', '2', 'z', '3']))?.status, 431);
});

test('MeshConfig limits: validated, compiled into the snapshot in ms, merged under the proxy’s flags', () => {
  const meshConfig = (limits: unknown) => ({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { limits } });
  assert.ok(validateResource(meshConfig({ maxHeaderCount: 200, headersTimeout: '5s' })).ok);
  const bad = validateResource(meshConfig({ maxHeaderCount: 2, headersTimeout: 'soon' }));
  assert.equal(bad.ok, false);
  assert.match(JSON.stringify(bad), /maxHeaderCount/);
  assert.match(JSON.stringify(bad), /headersTimeout/);
  const node: NodeInfo = { id: 'default/c', mode: 'sidecar', namespace: 'default', address: '127.0.0.1', tunnelPort: 1, appPorts: [] };
  const input = (spec: unknown): CompilerInput => ({ services: [], workloads: [], httpRoutes: [], namespaces: [], meshConfig: { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default', generation: 1 }, spec } as never });
  const snapshot = compile(input({ trustDomain: 'cluster.local', limits: { maxHeaderCount: 200, headersTimeout: '5s', idleTimeout: '1m' } }), node);
  assert.deepEqual(snapshot.mesh.limits, { maxHeaderCount: 200, headersTimeoutMs: 5000, idleTimeoutMs: 60_000 });
  assert.equal('limits' in compile(input({ trustDomain: 'cluster.local' }), node).mesh, false);

  let mesh: Partial<typeof DEFAULT_LISTENER_LIMITS> | undefined;
  const live = liveLimits(DEFAULT_LISTENER_LIMITS, () => mesh, { headersTimeoutMs: 1234 });
  assert.equal(live().maxHeaderCount, 100);
  const first = live();
  assert.equal(live(), first, 'merged once per mesh value');
  mesh = { maxHeaderCount: 200, headersTimeoutMs: 5000 };
  assert.equal(live().maxHeaderCount, 200);
  assert.equal(live().headersTimeoutMs, 1234, 'the proxy’s flag wins');
  // A guard reading the live limits refuses by the new ones at once.
  const g = new ListenerGuard('test', live, new MetricsRegistry(), silentLogger());
  const headers = Array.from({ length: 150 }, (_, i) => [`x-${i}`, 'v']).flat();
  assert.equal(g.check(request({ rawHeaders: ['Host', 'a', ...headers] })), undefined);
  mesh = { maxHeaderCount: 120 };
  assert.equal(g.check(request({ rawHeaders: ['Host', 'a', ...headers] }))?.status, 431);
});
