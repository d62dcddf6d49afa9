// Two `weft control-plane` replicas on one real etcd: one leads and writes statuses; when it is killed (no goodbye), the other takes over within the lease TTL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd } from '../../src/testing/etcd.ts';
import { runWeft, startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

interface LeaderStatus {
  leader: { self: boolean; holder: string | null };
}

async function leaderOf(api: string): Promise<LeaderStatus['leader']> {
  const res = await fetch(`${api}/weft/v1/status`);
  return ((await res.json()) as LeaderStatus).leader;
}

function route(name: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}}
spec:
  parentRefs: [{group: "", kind: Service, name: ${name}, port: 80}]
  rules: [{backendRefs: [{name: ${name}, port: 80}]}]
`;
}

async function routeAccepted(api: string, name: string): Promise<boolean> {
  const res = await fetch(`${api}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/${name}`);
  if (res.status !== 200) return false;
  const body = (await res.json()) as { status?: { parents?: { conditions?: { type: string; status: string }[] }[] } };
  return body.status?.parents?.[0]?.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True') === true;
}

test('one replica leads; killed without a goodbye, the other takes over within the lease TTL and writes statuses', async (t) => {
  const etcd = await startEtcd({});
  t.after(() => etcd.stop());
  const store = `etcd://${etcd.endpoint.replace(/^http:\/\//, '')}`;
  const args = () => ['control-plane', '--store', store, '--etcd-prefix', '/weft-leader', '--api-port', '0', '--stream-port', '0', '--lease-ttl', '2s'];
  const replicas: RunningProcess[] = [];
  t.after(async () => {
    for (const replica of replicas) await replica.stop().catch(() => {});
  });
  for (let i = 0; i < 2; i++) replicas.push(await startWeft(args()));
  const apis = replicas.map((r) => String(r.ready.api));

  const leaders = await waitFor(async () => {
    const views = await Promise.all(apis.map(leaderOf));
    return views.filter((v) => v.self).length === 1 ? views : undefined;
  }, { message: 'exactly one leader', timeoutMs: 10_000 });
  const leaderIndex = leaders.findIndex((v) => v.self);
  const follower = 1 - leaderIndex;
  assert.equal(leaders[follower]!.holder, leaders[leaderIndex]!.holder, 'both see the same holder');

  // Applied through the follower, the status is written (by the leader).
  const first = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: apis[follower]! }, input: route('before') });
  assert.equal(first.code, 0, first.stderr);
  await waitFor(() => routeAccepted(apis[follower]!, 'before'), { message: 'status written by the leader', timeoutMs: 10_000 });

  // SIGKILL: the lease is not revoked, it must run out.
  const killedAt = Date.now();
  await replicas[leaderIndex]!.stop({ signal: 'SIGKILL' });
  await waitFor(async () => (await leaderOf(apis[follower]!)).self, { message: 'the follower takes over', timeoutMs: 10_000 });
  const takeoverMs = Date.now() - killedAt;
  assert.ok(takeoverMs < 2000 + 2000, `took over in ${takeoverMs} ms (TTL 2 s)`);
  t.diagnostic(`takeover after SIGKILL of the leader: ${takeoverMs} ms (lease TTL 2000 ms)`);

  const second = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: apis[follower]! }, input: route('after') });
  assert.equal(second.code, 0, second.stderr);
  await waitFor(() => routeAccepted(apis[follower]!, 'after'), { message: 'the new leader writes statuses', timeoutMs: 10_000 });
});
