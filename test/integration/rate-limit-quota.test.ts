// The global rate limit quota between QuotaClients and a real control plane: registration, shares by demand, the 1/N fallback, bad reports refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { RATE_LIMIT_QUOTA_PATH } from '../../src/api/rate-limit-quota.ts';
import type { SnapshotRateLimit } from '../../src/api/snapshot.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { QuotaClient } from '../../src/proxy/layers/rate-limit/quota-client.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { startTestControlPlane } from './control-helpers.ts';

const LIMIT: SnapshotRateLimit = {
  id: 'edge/shared/all@Gateway/edge/gw',
  policy: 'edge/shared/all',
  requests: 100,
  intervalMs: 1000,
  burst: 100,
  descriptors: [{ type: 'ClientIP' }],
  scope: 'Global',
  maxKeys: 100,
};

let cp: RunningControlPlane;
const clients: QuotaClient[] = [];

before(async () => {
  cp = await startTestControlPlane();
});

after(async () => {
  for (const client of clients) client.stop();
  await cp?.close();
});

function client(proxy: string): QuotaClient {
  const c = new QuotaClient({ urls: [cp.streamUrl], proxy, namespace: 'edge', clock: systemClock, logger: silentLogger() });
  clients.push(c);
  return c;
}

test('two proxies: registered before traffic, then each leases its part of a key’s demand; unseen keys get 1/N', async () => {
  const a = client('edge/gw-a');
  const b = client('edge/gw-b');
  a.register(LIMIT);
  b.register(LIMIT);
  await a.report();
  await b.report();
  await a.report();
  const now = () => systemClock.monotonic();
  assert.equal(a.lease(LIMIT.id, '10.0.0.1', now())?.share, 0.5, 'a key without its own lease: half, two proxies enforce the limit');
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 30; i++) a.demand(LIMIT, '10.0.0.1');
    for (let i = 0; i < 10; i++) b.demand(LIMIT, '10.0.0.1');
    await a.report();
    await b.report();
  }
  const shareA = a.lease(LIMIT.id, '10.0.0.1', now())!.share;
  const shareB = b.lease(LIMIT.id, '10.0.0.1', now())!.share;
  assert.ok(shareA > 0.65 && shareA < 0.8, `a: ${shareA}`);
  assert.ok(shareB > 0.2 && shareB < 0.35, `b: ${shareB}`);
  assert.ok(Math.abs(shareA + shareB - 1) < 0.05, `together ${shareA + shareB}`);
  assert.ok(a.answered >= 6 && b.answered >= 5);
});

test('a malformed report is refused with 400', async () => {
  const session = http2.connect(cp.streamUrl);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': RATE_LIMIT_QUOTA_PATH, 'content-type': 'application/json' });
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', reject);
      stream.resume();
      stream.end(JSON.stringify({ proxy: 'x', namespace: 'edge', limits: [{ id: 'l', keys: [{ key: 'k', demand: 'lots' }] }] }));
    });
    assert.equal(status, 400);
  } finally {
    session.close();
  }
});
