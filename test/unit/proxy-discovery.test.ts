// The discovery client: capped exponential reconnect backoff and heartbeats under a manual clock; failover across several control planes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo } from 'node:net';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { DiscoveryClient, parseControlPlanes } from '../../src/proxy/discovery.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { ManualClock, systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { FakeControlPlane } from '../integration/proxy-helpers.ts';

const node: NodeInfo = { id: 'default/x-0', mode: 'sidecar', namespace: 'default', instance: 'x-0', address: '127.0.0.1', tunnelPort: 1, appPorts: [] };

function client(url: string, clock: ManualClock): DiscoveryClient {
  return new DiscoveryClient({
    urls: [url],
    node,
    runningVersion: () => undefined,
    apply: async () => {},
    clock,
    logger: silentLogger(),
    metrics: createProxyMetrics(new MetricsRegistry()),
    backoff: { initialMs: 100, maxMs: 2000 },
    random: () => 1,
  });
}

test('reconnects with capped exponential backoff, driven by the clock', async (t) => {
  // Accepts TCP and hangs up at once: every attempt fails.
  let attempts = 0;
  const refuser = createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => refuser.close(resolve)));
  const clock = new ManualClock();
  const discovery = client(`http://127.0.0.1:${(refuser.address() as AddressInfo).port}`, clock);
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => attempts === 1, { message: 'the first attempt' });
  // With random() = 1 the delays are the full steps: 100, 200, 400, 800, 1600, then 2000 for ever.
  for (const [n, delay] of [100, 200, 400, 800, 1600, 2000, 2000].entries()) {
    // Let the failure be noticed (it schedules the timer) before moving the clock.
    await new Promise((resolve) => setTimeout(resolve, 30));
    clock.advance(delay - 1);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(attempts, n + 1, `no attempt before ${delay} ms`);
    clock.advance(1);
    await waitFor(() => attempts === n + 2, { message: `attempt ${n + 2} after ${delay} ms` });
  }
});

test('heartbeats at the rate the control plane asks for, and sends readiness once per change', async (t) => {
  const cp = await FakeControlPlane.start();
  cp.heartbeatMs = 500;
  t.after(() => cp.close());
  const clock = new ManualClock();
  const discovery = client(cp.url, clock);
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => discovery.connected, { message: 'welcomed' });
  const heartbeats = () => cp.received.filter((m) => m.type === 'heartbeat').length;
  clock.advance(499);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(heartbeats(), 0);
  clock.advance(1);
  await waitFor(() => heartbeats() === 1, { message: 'one heartbeat at 500 ms' });
  clock.advance(1000);
  await waitFor(() => heartbeats() === 3, { message: 'two more by 1500 ms' });
  discovery.setReady(true);
  discovery.setReady(true);
  await waitFor(() => cp.received.filter((m) => m.type === 'ready').length === 2, { message: 'ready sent once per change' });
  assert.deepEqual(
    cp.received.filter((m) => m.type === 'ready'),
    [
      { type: 'ready', ready: false },
      { type: 'ready', ready: true },
    ],
  );
});

test('parses --control-plane lists: http(s) URLs or host:port, comma-separated; names a bad item', () => {
  assert.deepEqual(parseControlPlanes('http://a:15010, b:15011,,[::1]:15012'), ['http://a:15010', 'http://b:15011', 'http://[::1]:15012']);
  assert.throws(() => parseControlPlanes(''), /no control plane address/);
  assert.throws(() => parseControlPlanes('a:15010,b'), /"b" is not a control plane address/);
  // https:// is TLS on the stream port (verified with --ca-bundle); with the bundle given, a bare host:port means https.
  assert.deepEqual(parseControlPlanes('https://a:15010,b:15011', 'https'), ['https://a:15010', 'https://b:15011']);
  assert.throws(() => parseControlPlanes('ftp://a:15010'), /"ftp:\/\/a:15010" is not a control plane address/);
});

function failoverClient(urls: string[], welcomeTimeoutMs = 5000): DiscoveryClient {
  return new DiscoveryClient({
    urls,
    node,
    runningVersion: () => 'v-running',
    apply: async () => {},
    clock: systemClock,
    logger: silentLogger(),
    metrics: createProxyMetrics(new MetricsRegistry()),
    backoff: { initialMs: 20, maxMs: 200 },
    welcomeTimeoutMs,
  });
}

test('skips a dead control plane, and moves to another when its own goes away, saying which version it runs', async (t) => {
  const dead = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => dead.close(resolve)));
  const a = await FakeControlPlane.start();
  const b = await FakeControlPlane.start();
  t.after(() => b.close());
  const discovery = failoverClient([`http://127.0.0.1:${(dead.address() as AddressInfo).port}`, a.url, b.url]);
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => discovery.connected, { message: 'welcomed by a', timeoutMs: 5000 });
  assert.equal(discovery.url, a.url);
  const hello = a.received.find((m) => m.type === 'hello');
  assert.equal(hello?.type === 'hello' ? hello.runningVersion : undefined, 'v-running', 'the hello carries the running version, so nothing is pushed again');
  await a.close();
  await waitFor(() => discovery.connected && discovery.url === b.url, { message: 'failed over to b', timeoutMs: 5000 });
  assert.ok(b.received.some((m) => m.type === 'hello'));
});

test('leaves a control plane that accepts the stream but never welcomes it', async (t) => {
  const wedged = await FakeControlPlane.start();
  wedged.welcomes = false;
  t.after(() => wedged.close());
  const healthy = await FakeControlPlane.start();
  t.after(() => healthy.close());
  const discovery = failoverClient([wedged.url, healthy.url], 300);
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => wedged.received.some((m) => m.type === 'hello'), { message: 'tried the wedged one first' });
  await waitFor(() => discovery.connected && discovery.url === healthy.url, { message: 'moved on after the welcome timeout', timeoutMs: 5000 });
});

test('leaves a control plane whose stream goes silent without closing (a partition), by unanswered pings', async (t) => {
  const silent = await FakeControlPlane.start();
  silent.heartbeatMs = 100;
  t.after(() => silent.close());
  const healthy = await FakeControlPlane.start();
  t.after(() => healthy.close());
  // A relay in front of the first control plane that can start dropping every byte both ways, as a partition does.
  let dropping = false;
  const relay = createServer((downstream) => {
    const upstream = connect(Number(new URL(silent.url).port), '127.0.0.1');
    downstream.on('data', (chunk) => dropping || upstream.write(chunk));
    upstream.on('data', (chunk) => dropping || downstream.write(chunk));
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => relay.close(resolve)));
  // After a loss the proxy first tries the one that served it, which (silent) then fails to welcome it in 300 ms.
  const discovery = failoverClient([`http://127.0.0.1:${(relay.address() as AddressInfo).port}`, healthy.url], 300);
  t.after(() => discovery.close());
  discovery.start();
  await waitFor(() => discovery.connected, { message: 'welcomed through the relay' });
  assert.notEqual(discovery.url, healthy.url);
  dropping = true;
  // Lease TTL 300 ms (3 heartbeats of 100 ms): the proxy gives the silent one up within a few heartbeats.
  await waitFor(() => discovery.connected && discovery.url === healthy.url, { message: 'moved to the healthy control plane', timeoutMs: 3000 });
});
