// The multi-host bed (issue #8): real etcd, control-plane replicas and sidecars on separate network namespaces, with faults injected under steady traffic.
import { describe, it, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { bedUnavailable } from '../../src/testing/netns.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { MeshBed, markedRoute, LEASE_TTL_MS, STREAM_PORT } from './mesh-bed.ts';

/** Extra rule fields: a 1 s per-attempt timeout and two more attempts, which an attempt to a vanished host needs. */
const retryOnTimeout = `
    timeouts: {backendRequest: 1s}
    retry: {attempts: 2, backoff: 50ms}`;

const unavailable = bedUnavailable();

if (unavailable) {
  // No skipped tests on main: where the bed cannot be built the test passes and says why (CI runs as root, so it runs there).
  test('multi-host bed', (t) => {
    t.diagnostic(`the multi-host bed could not run here: ${unavailable}`);
  });
} else {
  describe('a mesh across network namespaces: 3 etcd members, 2 control-plane replicas, sidecars on 3 other hosts', { timeout: 180_000 }, () => {
    let mesh: MeshBed;

    before(async () => {
      mesh = await MeshBed.start();
    });

    after(async () => {
      await mesh?.close();
    });

    it('either replica lists every proxy on every host, each with the replica holding its stream', async () => {
      const views = await waitFor(
        async () => {
          const lists = await Promise.all(['e1', 'e2'].map((name) => mesh.proxiesSeenBy(name)));
          return lists.every((list) => list.filter((p) => p.connected).length === 3) ? lists : undefined;
        },
        { timeoutMs: 10_000, message: 'all three proxies listed by both replicas' },
      );
      const holders = views.map((list) => Object.fromEntries(list.map((p) => [p.id, p.replica])));
      assert.deepEqual(holders[0], holders[1], 'both replicas agree on who holds which stream');
      assert.ok(Object.values(holders[0]!).every((r) => r === 'e1' || r === 'e2'), JSON.stringify(holders[0]));
      // Each found the other at its bridge address (--stream-host 0.0.0.0, no --advertise-address).
      const status = (await (await fetch(`${mesh.replica('e1').api}/weft/v1/status`)).json()) as { replicas: { name: string; stream: string; reachable: boolean }[] };
      assert.deepEqual(
        status.replicas.map((r) => [r.name, r.stream, r.reachable]),
        ['e1', 'e2'].map((name) => [name, `https://${mesh.replica(name).host.address}:${STREAM_PORT}`, true]),
      );
    });

    it('a killed control-plane replica: proxies move to the other within seconds, no request fails, applies keep working', async (t) => {
      const load = mesh.load();
      t.after(() => load.stop());
      await waitFor(() => load.snapshot().ok >= 20, { timeoutMs: 10_000, message: 'traffic flowing before the fault' });
      const killedAt = performance.now();
      await mesh.replica('e1').process.stop({ signal: 'SIGKILL' });
      const moved = await waitFor(
        async () => {
          const proxies = (await mesh.proxiesOn('e2')).filter((p) => p.connected && p.sentVersion && p.ackedVersion === p.sentVersion);
          return proxies.length === 3 ? proxies : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 50, message: 'all three proxies connected to the e2 replica and acked' },
      );
      const failoverMs = performance.now() - killedAt;

      const applied = await mesh.weftApply(markedRoute('after-cp-kill'), 'e2');
      assert.equal(applied.code, 0, applied.output);
      const appliedAt = performance.now();
      await waitFor(async () => (await mesh.routeMark()) === 'after-cp-kill', { timeoutMs: 5000, message: 'the route applied through e2 reaching the client sidecar' });
      const propagationMs = performance.now() - appliedAt;
      const result = await load.stop();
      t.diagnostic(
        `replica killed: all ${moved.length} proxies on the other replica after ${failoverMs.toFixed(0)} ms; ` +
          `${result.failed} of ${result.ok + result.failed} requests failed; an apply through the survivor reached the client in ${propagationMs.toFixed(0)} ms`,
      );
      assert.equal(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
      assert.ok(failoverMs < 10_000, `failover took ${failoverMs.toFixed(0)} ms`);
      assert.ok((result.pods['echo-a'] ?? 0) > 0 && (result.pods['echo-b'] ?? 0) > 0, JSON.stringify(result.pods));
      // Back to two replicas for the next faults.
      await mesh.startReplica('e1');
    });

    it('a workload host powered off: its endpoint leaves every rotation within the lease TTL plus the push delay, retries cover requests in flight', async (t) => {
      // Retries on a timed-out or unreachable attempt, as an operator would set them for idempotent GETs.
      await mesh.apply(markedRoute('b', retryOnTimeout));
      await waitFor(async () => (await mesh.routeMark()) === 'b', { timeoutMs: 5000, message: 'the retrying route reaching the client' });
      const load = mesh.load();
      t.after(() => load.stop());
      await waitFor(() => load.snapshot().ok >= 20, { timeoutMs: 10_000, message: 'traffic flowing before the fault' });
      const offAt = performance.now();
      await mesh.bed.powerOff(mesh.bed.host('wb'));
      await mesh.waitForRotation(['default/echo-a'], LEASE_TTL_MS + 8000);
      const goneMs = performance.now() - offAt;
      await waitFor(async () => JSON.stringify(await mesh.rotationOf('echo-a')) === '["default/echo-a"]', {
        timeoutMs: 3000,
        message: "echo-b leaving echo-a's sidecar's rotation too",
      });
      const goneEverywhereMs = performance.now() - offAt;
      const atRemoval = load.snapshot();
      const since = atRemoval.ok;
      await waitFor(() => load.snapshot().ok >= since + 50, { timeoutMs: 10_000, message: 'traffic after the removal' });
      const result = await load.stop();
      t.diagnostic(
        `host powered off: its endpoint left the client's rotation after ${goneMs.toFixed(0)} ms and every rotation after ${goneEverywhereMs.toFixed(0)} ms (lease TTL ${LEASE_TTL_MS} ms); ` +
          `${result.failed} of ${result.ok + result.failed} requests failed (${atRemoval.failed} before the removal)`,
      );
      assert.ok(goneEverywhereMs < LEASE_TTL_MS + 3000, `the endpoint stayed in rotation for ${goneEverywhereMs.toFixed(0)} ms`);
      assert.equal(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
      const afterRemoval = (await mesh.proxiesOn('e2')).concat(await mesh.proxiesOn('e1')).filter((p) => p.connected);
      assert.ok(!afterRemoval.some((p) => p.instance === 'echo-b'), 'no replica lists the powered-off proxy as connected');
    });

    it('a host cut off from both control planes serves on its last config, then converges after the partition heals', async (t) => {
      const client = mesh.bed.host('client');
      const planes = [mesh.bed.host('e1'), mesh.bed.host('e2')];
      const before = await mesh.routeMark();
      const load = mesh.load();
      t.after(() => load.stop());
      await waitFor(() => load.snapshot().ok >= 20, { timeoutMs: 10_000, message: 'traffic flowing before the fault' });
      mesh.bed.partition(client, planes, true);
      t.after(() => mesh.bed.partition(client, planes, false));
      await mesh.apply(markedRoute('c', retryOnTimeout));
      // The replicas give the client up when its lease runs out; all the while it serves on the route it had.
      const cutAt = performance.now();
      await waitFor(
        async () => {
          assert.equal(await mesh.routeMark(), before, 'the partitioned client serves its last config');
          return !(await mesh.registered('e1')).includes('client-0');
        },
        { timeoutMs: LEASE_TTL_MS + 8000, intervalMs: 100, message: "the client's registration expiring while it is cut off" },
      );
      const expiredMs = performance.now() - cutAt;
      assert.equal(await mesh.routeMark(), before, 'the partitioned client serves its last config');
      const healedAt = performance.now();
      mesh.bed.partition(client, planes, false);
      await waitFor(async () => (await mesh.routeMark()) === 'c', { timeoutMs: 30_000, intervalMs: 50, message: 'the healed client converging to the route applied during the partition' });
      const convergedMs = performance.now() - healedAt;
      const acked = await waitFor(
        async () => {
          const all = [...(await mesh.proxiesOn('e1')), ...(await mesh.proxiesOn('e2'))];
          const own = all.find((p) => p.instance === 'client-0' && p.connected);
          return own?.sentVersion && own.ackedVersion === own.sentVersion ? own : undefined;
        },
        { timeoutMs: 10_000, message: 'a replica seeing the client acknowledge the current version' },
      );
      await waitFor(async () => (await mesh.registered('e2')).includes('client-0'), { timeoutMs: 10_000, message: 'the client registered again' });
      const result = await load.stop();
      t.diagnostic(
        `partition: the replicas let the client's registration expire after ${expiredMs.toFixed(0)} ms; the cut-off client kept serving (${result.failed} of ${result.ok + result.failed} requests failed); ` +
          `after the heal it served the new route in ${convergedMs.toFixed(0)} ms and acked version ${acked.ackedVersion?.slice(0, 12)}`,
      );
      assert.equal(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
    });

    it('the etcd leader killed: writes pause and resume, no acknowledged write is lost, watches resume', async (t) => {
      const leader = await mesh.etcdLeader();
      const written: string[] = [];
      let writeErrors = 0;
      let longestGapMs = 0;
      let lastAck = performance.now();
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const name = `probe-${i}`;
          try {
            await mesh.apply(`apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec:\n  selector: {app: nothing}\n  ports: [{name: http, port: 8080}]\n`, i % 2 ? 'e1' : 'e2');
            written.push(name);
            longestGapMs = Math.max(longestGapMs, performance.now() - lastAck);
            lastAck = performance.now();
          } catch {
            writeErrors++;
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      t.after(async () => {
        writing = false;
        await writer;
      });
      await waitFor(() => written.length >= 5, { timeoutMs: 10_000, message: 'writes flowing before the fault' });
      const killedAt = performance.now();
      await mesh.etcd.get(leader)!.stop({ signal: 'SIGKILL' });
      const ackedBefore = written.length;
      await waitFor(() => written.length >= ackedBefore + 10, { timeoutMs: 20_000, message: 'writes resuming after the election' });
      const resumedMs = performance.now() - killedAt;
      writing = false;
      await writer;
      // Both replicas read every acknowledged write back, whichever replica took it.
      const lost: string[] = [];
      for (const replica of ['e1', 'e2']) {
        const stored = new Set(await mesh.serviceNames(replica));
        lost.push(...written.filter((name) => !stored.has(name)).map((name) => `${name} (read on ${replica})`));
      }
      // The replica serving the client watched every one of those writes through the election: each Service is in the client's snapshot.
      await waitFor(
        async () => {
          const services = new Set((await mesh.clientSnapshot())?.services.map((service) => service.name));
          return written.every((name) => services.has(name));
        },
        { timeoutMs: 10_000, message: "every acknowledged Service in the client sidecar's snapshot" },
      );
      await mesh.apply(markedRoute('d', retryOnTimeout), 'e2');
      const appliedAt = performance.now();
      await waitFor(async () => (await mesh.routeMark()) === 'd', { timeoutMs: 10_000, message: 'a route applied after the election reaching the client' });
      const propagationMs = performance.now() - appliedAt;
      t.diagnostic(
        `etcd leader ${leader} killed: ${written.length} writes acknowledged, ${lost.length} lost, ${writeErrors} refused; ` +
          `longest pause between acknowledged writes ${longestGapMs.toFixed(0)} ms; a route applied after the election reached the client in ${propagationMs.toFixed(0)} ms`,
      );
      assert.deepEqual(lost, [], 'acknowledged writes missing after the election');
      assert.ok(resumedMs < 20_000);
    });

    it('a rolling restart of both control-plane replicas under load fails no request', async (t) => {
      const load = mesh.load();
      t.after(() => load.stop());
      await waitFor(() => load.snapshot().ok >= 20, { timeoutMs: 10_000, message: 'traffic flowing before the restarts' });
      const started = performance.now();
      const phases: string[] = [];
      for (const name of ['e1', 'e2']) {
        const stopAt = performance.now();
        const exit = await mesh.replica(name).process.stop();
        const startAt = performance.now();
        // SIGTERM must be enough, even with a stream still open to the host powered off earlier.
        assert.deepEqual(exit, { code: 0, signal: null }, `${name} did not exit on SIGTERM`);
        assert.ok(startAt - stopAt < 5000, `${name} took ${(startAt - stopAt).toFixed(0)} ms to stop`);
        await mesh.startReplica(name);
        phases.push(`${name} stopped in ${(startAt - stopAt).toFixed(0)} ms and started in ${(performance.now() - startAt).toFixed(0)} ms`);
        await waitFor(
          async () => {
            const all = [...(await mesh.proxiesOn('e1')), ...(await mesh.proxiesOn('e2'))].filter((p) => p.connected && p.sentVersion && p.ackedVersion === p.sentVersion);
            return all.length === 2;
          },
          { timeoutMs: 15_000, message: `both live proxies connected and acked after restarting ${name}` },
        );
      }
      const tookMs = performance.now() - started;
      const result = await load.stop();
      t.diagnostic(`rolling restart of 2 replicas took ${tookMs.toFixed(0)} ms (${phases.join('; ')}); ${result.failed} of ${result.ok + result.failed} requests failed`);
      assert.equal(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
    });

    it('a host cut off from its replica only moves to the other one within about the lease TTL, serving throughout', async (t) => {
      const client = mesh.bed.host('client');
      const connectedOn = async (name: string) => (await mesh.proxiesOn(name)).some((p) => p.instance === 'client-0' && p.connected);
      const current = (await connectedOn('e1')) ? 'e1' : 'e2';
      const other = current === 'e1' ? 'e2' : 'e1';
      const load = mesh.load();
      t.after(() => load.stop());
      await waitFor(() => load.snapshot().ok >= 20, { timeoutMs: 10_000, message: 'traffic flowing before the fault' });
      // Packets to and from that replica vanish; the stream does not close, so only the proxy's pings can tell.
      const cutAt = performance.now();
      mesh.bed.partition(client, [mesh.bed.host(current)], true);
      t.after(() => mesh.bed.partition(client, [mesh.bed.host(current)], false));
      await waitFor(
        async () => {
          const own = (await mesh.proxiesOn(other)).find((p) => p.instance === 'client-0' && p.connected);
          return own?.sentVersion && own.ackedVersion === own.sentVersion;
        },
        { timeoutMs: LEASE_TTL_MS + 8000, intervalMs: 50, message: `the client's sidecar moving from ${current} to ${other}` },
      );
      const movedMs = performance.now() - cutAt;
      await mesh.apply(markedRoute('f', retryOnTimeout), other);
      await waitFor(async () => (await mesh.routeMark()) === 'f', { timeoutMs: 5000, message: 'a route applied on the other replica reaching the moved client' });
      mesh.bed.partition(client, [mesh.bed.host(current)], false);
      const result = await load.stop();
      t.diagnostic(
        `one-sided partition: the client's sidecar left the unreachable replica ${current} for ${other} after ${movedMs.toFixed(0)} ms (lease TTL ${LEASE_TTL_MS} ms); ` +
          `${result.failed} of ${result.ok + result.failed} requests failed`,
      );
      assert.equal(result.failed, 0, `failed requests: ${result.failures.join(' | ')}`);
      assert.ok(movedMs < LEASE_TTL_MS + 4000, `moving took ${movedMs.toFixed(0)} ms`);
    });
  });
}
