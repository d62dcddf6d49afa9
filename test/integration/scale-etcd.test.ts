// Scale check on etcd (issue #8): 2,000 Workload instances in a real etcd, 200 simulated proxies over two control-plane replicas, route changes timed until every proxy has ACKed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureScaleEtcd } from '../../bench/cp/scale-etcd.ts';

// The goal is p99 < 1 s. On the shared 2-core machine the suite runs on (etcd, two replicas and the 200 simulated
// proxies all in one box) the figure moves with the load, so the test holds what must not regress (every change reaches
// every proxy, the median well inside a bound) and records median and p99; `npm run bench -- --suite scale-etcd` measures it properly.
const MEDIAN_BOUND_MS = 5000;

test('a route change reaches 200 proxies on two replicas with 2,000 workloads in etcd (median and p99 recorded)', { timeout: 120_000 }, async (t) => {
  const result = await measureScaleEtcd({ workloads: 2000, proxies: 200, replicas: 2, changes: 8, changeTimeoutMs: 10_000, log: (m) => t.diagnostic(m) });
  assert.equal(result.workloadsListed, 2000, 'every Workload instance is stored and listed');
  assert.deepEqual(result.perReplica, [100, 100], 'the proxies are spread over both replicas');
  for (const change of result.changes) {
    assert.equal(change.acked, 200, `change ${change.index}: ${change.acked} of 200 proxies acked within 10 s`);
    assert.ok(Number.isFinite(change.allAckedMs), `change ${change.index} reached every proxy`);
  }
  const summary = `apply acknowledged → all 200 proxies acked: median ${result.medianMs.toFixed(0)} ms, p99 ${result.p99Ms.toFixed(0)} ms over ${result.changes.length} changes (snapshot ${Math.round(result.snapshotBytes / 1024)} KiB per proxy)`;
  t.diagnostic(summary);
  console.log(`# ${summary}`);
  assert.ok(result.medianMs < MEDIAN_BOUND_MS, `median ${result.medianMs} ms`);
});
