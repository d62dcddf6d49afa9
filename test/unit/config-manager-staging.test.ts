// A snapshot rejected after it was compiled (its upstream port is taken) leaves the proxy's registries as the last good snapshot had them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { BackendTraffic, ProxySnapshot, SnapshotJwtRule, SnapshotRateLimit } from '../../src/api/snapshot.ts';
import { ConfigManager } from '../../src/proxy/config/manager.ts';
import { BalancerRegistry } from '../../src/proxy/layers/balancer/balancers.ts';
import type { HealthCheckConfig } from '../../src/proxy/layers/health-check/checker.ts';
import { RateLimiterRegistry, type QuotaSource } from '../../src/proxy/layers/rate-limit/buckets.ts';
import { JwksCache } from '../../src/proxy/layers/request-authn/jwks.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { UpstreamListeners } from '../../src/proxy/outbound/upstreams.ts';
import { Pools } from '../../src/proxy/transport/pools.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { buildSnapshot, endpoint, reversion, testJwtRule } from '../integration/proxy-helpers.ts';

function limit(requests: number): SnapshotRateLimit {
  return { id: 'default/per-client/0@HTTPRoute/default/web', policy: 'default/per-client/0', requests, intervalMs: 60_000, burst: requests, descriptors: [], scope: 'Global', maxKeys: 100 };
}

function jwtRule(jwksUri: string): SnapshotJwtRule {
  return testJwtRule({ jwksUri });
}

/** Service "web" with a health-checked, connection-tuned backend, a rate limit on its rule, a JWT rule inbound, and optionally an upstream port. */
function snapshot(options: { endpoints: string[]; healthPath: string; healthIntervalMs: number; maxConnections: number; requests: number; jwksUri: string; extraService?: boolean; upstreamPort?: number }): ProxySnapshot {
  const services = [{ name: 'web', ports: [{ port: 80, endpoints: options.endpoints.map((id, i) => endpoint(id, 9000 + i)) }] }];
  if (options.extraService) services.push({ name: 'extra', ports: [{ port: 80, endpoints: [endpoint('x1', 9100)] }] });
  const built = buildSnapshot({
    services,
    upstreams: options.upstreamPort !== undefined ? [{ localPort: options.upstreamPort, routeKey: 'default/web:80', host: 'web' }] : [],
  });
  const traffic: BackendTraffic = {
    policy: 'default/web-traffic',
    healthCheck: { type: 'http', path: options.healthPath, expectedStatuses: [200], intervalMs: options.healthIntervalMs, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 1 },
    circuitBreaker: { maxConnections: options.maxConnections },
  };
  built.backends['default/web:80']!.traffic = traffic;
  built.routes['default/web:80']!.rules[0]!.rateLimits = [limit(options.requests)];
  built.inbound.requestAuthentication = [jwtRule(options.jwksUri)];
  return reversion(built);
}

function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}

test('a snapshot rejected after compiling changes no balancer, health check, pool setting, rate limit bucket or JWKS; the next good one does', async (t) => {
  const logger = silentLogger();
  const probes: string[] = [];
  const peerSettings: string[] = [];
  const balancers = new BalancerRegistry({
    clock: systemClock,
    probe: async (ep, config: HealthCheckConfig) => {
      probes.push(`${ep.id}${config.path}`);
      return true;
    },
    configurePeer: (ep, settings) => peerSettings.push(`${ep.id}:${settings?.connections ?? 'default'}`),
  });
  const registered: string[] = [];
  const quota: QuotaSource = { lease: () => undefined, demand: () => {}, register: (l) => registered.push(`${l.id}=${l.requests}`) };
  const rateLimits = new RateLimiterRegistry(quota);
  const fetched: string[] = [];
  const jwks = new JwksCache({
    clock: systemClock,
    fetch: async (url) => {
      fetched.push(url);
      return new Response(JSON.stringify({ keys: [] }), { status: 200 });
    },
  });
  const pools = new Pools({ connections: 4, keepAliveTimeoutMs: 1000, connectTimeoutMs: 1000 }, logger);
  const upstreams = new UpstreamListeners('127.0.0.1', (_port, socket) => socket.destroy(), logger);
  const taken = createServer();
  const takenPort = await listenOn(taken);
  t.after(() => {
    balancers.close();
    jwks.close();
    upstreams.closeAll();
    taken.close();
  });
  const manager = new ConfigManager({
    compile: {
      outbound: { balancers, clock: systemClock, rateLimits, jwks, forward: { pools, source: 'default/client', connectTimeoutMs: 1000 } },
      app: { pools, connectTimeoutMs: 1000 },
      appPorts: new Map(),
      localName: 'default/client',
      declaredPorts: [],
    },
    upstreams,
    peerPools: pools,
    balancers,
    dataDir: undefined,
    metrics: createProxyMetrics(new MetricsRegistry()),
    logger,
    clock: systemClock,
  });

  const good = snapshot({ endpoints: ['a', 'b'], healthPath: '/healthz', healthIntervalMs: 600_000, maxConnections: 10, requests: 100, jwksUri: 'https://keys.example/one' });
  await manager.apply(good, 'control-plane');
  await waitFor(() => probes.length === 2 && jwks.describe()[0]?.fetchedAt !== undefined, { timeoutMs: 2000 });
  rateLimits.buckets(limit(100)).take('10.0.0.1', 0); // a client has spent a token under the good snapshot
  const readAt = systemClock.monotonic();
  const before = {
    backends: balancers.describe(),
    rateLimits: rateLimits.describe(readAt),
    jwks: jwks.describe(),
    probes: [...probes].sort(),
    peerSettings: [...peerSettings].sort(),
    registered: [...registered],
    fetched: [...fetched],
  };
  assert.deepEqual(before.probes, ['a/healthz', 'b/healthz']);
  assert.deepEqual(before.peerSettings, ['a:10', 'b:10']);
  assert.deepEqual(before.registered, ['default/per-client/0@HTTPRoute/default/web=100']);
  assert.equal(before.rateLimits[0]?.size, 1);

  // Everything changes, and the upstream port cannot be bound: rejected after compiling.
  const changes = { endpoints: ['b', 'c'], healthPath: '/ready', healthIntervalMs: 300_000, maxConnections: 3, requests: 5, jwksUri: 'https://keys.example/two', extraService: true };
  await assert.rejects(manager.apply(snapshot({ ...changes, upstreamPort: takenPort }), 'control-plane'), /upstream port/);
  assert.equal(manager.current.version, good.version);
  await new Promise((resolve) => setImmediate(resolve)); // a probe or fetch started by the rejected snapshot would have been called by now
  assert.deepEqual(
    {
      backends: balancers.describe(),
      rateLimits: rateLimits.describe(readAt),
      jwks: jwks.describe(),
      probes: [...probes].sort(),
      peerSettings: [...peerSettings].sort(),
      registered: [...registered],
      fetched: [...fetched],
    },
    before,
  );
  assert.equal(rateLimits.buckets(limit(100)).take('10.0.0.1', 0).remaining, 98, 'the good snapshot\'s bucket kept its spent token');

  // The same changes without the taken port are applied, registries included.
  await manager.apply(snapshot(changes), 'control-plane');
  await waitFor(() => probes.includes('c/ready') && fetched.includes('https://keys.example/two'), { timeoutMs: 2000 });
  assert.deepEqual(balancers.describe().map((b) => b.key).sort(), ['default/extra:80', 'default/web:80']);
  assert.deepEqual(balancers.describe().find((b) => b.key === 'default/web:80')?.endpoints.map((e) => e.id), ['b', 'c']);
  assert.ok(peerSettings.includes('c:3'));
  assert.deepEqual(registered, ['default/per-client/0@HTTPRoute/default/web=100', 'default/per-client/0@HTTPRoute/default/web=5']);
  assert.equal(rateLimits.describe(readAt)[0]?.size, 0, 'a changed limit starts with fresh buckets');
});
