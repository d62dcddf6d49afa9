// A Service's RateLimitPolicy at its workload's sidecar: one bucket per calling identity (the peer's verified SPIFFE ID), 429 before the app sees the request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/api/errors.ts';
import { buildSnapshot, reversion, startTestProxy, tunnelClientCredentials, viaTunnel, type TestProxy } from './proxy-helpers.ts';
import { startRecorder, type RecordingServer } from './routing-helpers.ts';

let app: RecordingServer;
let server: TestProxy;

before(async () => {
  app = await startRecorder('reviews');
  const snapshot = buildSnapshot({ workload: 'reviews', inboundPorts: [8080] });
  snapshot.inbound.rateLimits = [
    {
      id: 'default/per-caller/0@Service/default/reviews',
      policy: 'default/per-caller/0',
      requests: 2,
      intervalMs: 60_000,
      burst: 2,
      descriptors: [{ type: 'SourceIdentity' }],
      scope: 'Local',
      maxKeys: 100,
    },
  ];
  server = await startTestProxy({ snapshot: reversion(snapshot), workload: 'reviews', appPorts: [{ declared: 8080, actual: app.port }] });
});

after(async () => {
  await server?.close();
  await app?.close();
});

test('each calling identity gets its own bucket; a refused call never reaches the app', async () => {
  const call = async (sa: string) =>
    viaTunnel(server.proxy.ports.tunnel, `/from-${sa}`, {
      headers: { host: 'reviews:8080', 'weft-target-port': '8080' },
      credentials: await tunnelClientCredentials(`spiffe://cluster.local/ns/default/sa/${sa}`),
    });
  const a = [];
  for (let i = 0; i < 3; i++) a.push(await call('a'));
  assert.deepEqual(a.map((r) => r.status), [200, 200, 429]);
  assert.equal(a[2]!.headers['weft-reason'], ErrorCodes.RATE_LIMITED);
  assert.equal(a[2]!.headers['ratelimit-limit'], '2');
  assert.ok(Number(a[2]!.headers['retry-after']) > 0);
  assert.equal((await call('b')).status, 200, 'another caller has its own bucket');
  assert.equal(app.seen('/from-a').length, 2);
});
