// The discovery client's timing under a manual clock: capped exponential reconnect backoff, heartbeats, reset on welcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { DiscoveryClient } from '../../src/proxy/discovery.ts';
import { createProxyMetrics } from '../../src/proxy/metrics.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { FakeControlPlane } from '../integration/proxy-helpers.ts';

const node: NodeInfo = { id: 'default/x-0', mode: 'sidecar', namespace: 'default', instance: 'x-0', address: '127.0.0.1', tunnelPort: 1, appPorts: [] };

function client(url: string, clock: ManualClock): DiscoveryClient {
  return new DiscoveryClient({
    url,
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
