// The whole-mesh view of one replica: proxy lists merged with the other replicas' (connected entries win, each marked with its replica), asked at most once a second; questions meant for another replica refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { MeshView } from '../../src/control/mesh-view.ts';
import type { PeerClient } from '../../src/control/peers.ts';
import { REPLICA_HEADER } from '../../src/control/peers.ts';
import type { Replica } from '../../src/control/replicas.ts';
import { TelemetryAggregator } from '../../src/control/telemetry/aggregator.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

function proxy(id: string, connected: boolean, lastSeen = '2026-11-26T10:00:00.000Z'): ProxyStatus {
  return { id, mode: 'sidecar', namespace: 'default', address: '10.0.0.1', tunnelPort: 15008, connected, ready: connected, lastSeen };
}

/** Stands in for the TLS client: what each peer answers, and how often it was asked (the real client is exercised by test/e2e/mesh-replicas.test.ts). */
function answering(lists: Record<string, ProxyStatus[] | Error>): { client: PeerClient; asked: string[] } {
  const asked: string[] = [];
  const client = {
    async getJson(peer: Replica, path: string) {
      asked.push(`${peer.name} ${path}`);
      const answer = lists[peer.name];
      if (answer instanceof Error) throw answer;
      return answer;
    },
  } as unknown as PeerClient;
  return { client, asked };
}

test('merges the other replicas\' proxies: a proxy that moved shows where it is connected; an unreachable replica is named, its proxies left out', async () => {
  const clock = new ManualClock();
  const peers: Replica[] = [{ name: 'b', stream: 'https://10.0.0.2:15010' }, { name: 'c', stream: 'https://10.0.0.3:15010' }];
  const { client, asked } = answering({
    b: [proxy('default/moved', true), proxy('default/only-b', true)],
    c: new Error('control-plane replica c (https://10.0.0.3:15010) no answer within 3000 ms'),
  });
  const view = new MeshView({
    self: { name: 'a', stream: 'https://10.0.0.1:15010' },
    peers: () => peers,
    client,
    localProxies: () => [proxy('default/moved', false, '2026-11-26T10:00:05.000Z'), proxy('default/only-a', true)],
    telemetry: new TelemetryAggregator(clock),
    clock,
    logger: createLogger('test', 'silent'),
  });
  assert.deepEqual(view.proxies().map((p) => [p.id, p.replica]), [['default/moved', 'a'], ['default/only-a', 'a']], 'before any peer was asked: this replica\'s own');
  await view.refresh();
  assert.deepEqual(
    view.proxies().map((p) => [p.id, p.replica, p.connected]),
    [['default/moved', 'b', true], ['default/only-a', 'a', true], ['default/only-b', 'b', true]],
  );
  assert.deepEqual(
    view.replicas().map((r) => [r.name, r.self, r.reachable, r.proxies, r.error]),
    [['a', true, true, 1, undefined], ['b', false, true, 2, undefined], ['c', false, false, 0, 'control-plane replica c (https://10.0.0.3:15010) no answer within 3000 ms']],
  );
  // Asked again within the second: the lists it has serve; a second later it asks again.
  await view.refresh();
  assert.equal(asked.length, 2);
  clock.advance(1001);
  await view.refresh();
  assert.equal(asked.length, 4);
  // A replica whose record is gone drops out, with its proxies.
  peers.splice(0, 1);
  await view.refresh();
  assert.deepEqual(view.proxies().map((p) => [p.id, p.replica]), [['default/moved', 'a'], ['default/only-a', 'a']]);
});

test('answers only questions meant for it: another name gets 421 and no proxies', async () => {
  const clock = new ManualClock();
  const view = new MeshView({
    self: { name: 'a', stream: 'https://127.0.0.1:1' },
    localProxies: () => [proxy('default/only-a', true)],
    telemetry: new TelemetryAggregator(clock),
    clock,
    logger: createLogger('test', 'silent'),
  });
  const server = http2.createServer();
  server.on('stream', (stream, headers) => view.answerPeer(stream, String(headers[':path']).slice(1), headers));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const ask = (path: string, replica: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': `/${path}`, [REPLICA_HEADER]: replica });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (headers) => (status = Number(headers[':status'])));
      req.on('data', (text: string) => (body += text));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
    });
  try {
    const wrong = await ask('proxies', 'b');
    assert.equal(wrong.status, 421);
    assert.match(wrong.body, /this is control-plane replica a, not b: check its --advertise-address/);
    const right = await ask('proxies', 'a');
    assert.equal(right.status, 200);
    assert.deepEqual((JSON.parse(right.body) as ProxyStatus[]).map((p) => p.id), ['default/only-a']);
    assert.equal((await ask('traffic?window=forever', 'a')).status, 400);
    assert.equal((await ask('nothing', 'a')).status, 404);
  } finally {
    session.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('traffic questions to the other replicas are shared for a second: open dashboards do not multiply them', async () => {
  const clock = new ManualClock();
  const asked: string[] = [];
  const client = {
    async getJson(peer: Replica, path: string) {
      asked.push(`${peer.name} ${path}`);
      return { proxies: {}, workloadServices: {} };
    },
  } as unknown as PeerClient;
  const view = new MeshView({
    self: { name: 'a', stream: 'https://10.0.0.1:15010' },
    peers: () => [{ name: 'b', stream: 'https://10.0.0.2:15010' }],
    client,
    localProxies: () => [],
    telemetry: new TelemetryAggregator(clock),
    clock,
    logger: createLogger('test', 'silent'),
  });
  await Promise.all([view.topology('5m'), view.topology('5m'), view.topology('1m')]);
  assert.deepEqual(asked, ['b traffic?window=5m', 'b traffic?window=1m']);
  clock.advance(500);
  await view.topology('5m');
  assert.equal(asked.length, 2, 'within the second: the same answer');
  clock.advance(600);
  await view.topology('5m');
  assert.deepEqual(asked.slice(2), ['b traffic?window=5m']);
});
