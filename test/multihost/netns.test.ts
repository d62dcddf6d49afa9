// The bed library itself (src/testing/netns.ts): hosts reach each other and the test, links cut and partitions hold, teardown and sweeps leave nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { bedUnavailable, startBed, sweepStaleBeds } from '../../src/testing/netns.ts';
import { nodeBinary } from '../../src/testing/process.ts';

const unavailable = bedUnavailable();

const server = `require('node:http').createServer((q, s) => s.end('hello from ' + process.argv[1])).listen(8080, () => console.log(JSON.stringify({ event: 'ready' })))`;
const fetchScript = `fetch(process.argv[1], { signal: AbortSignal.timeout(1000) }).then(async (r) => console.log(await r.text()), (e) => { console.log('failed: ' + (e.cause?.code ?? e.message)); })`;

async function get(url: string): Promise<string> {
  try {
    return await (await fetch(url, { signal: AbortSignal.timeout(1000) })).text();
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  }
}

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

if (unavailable) {
  test('the network-namespace bed', (t) => {
    t.diagnostic(`the multi-host bed could not run here: ${unavailable}`);
  });
} else {
  test('hosts on one bridge reach each other and the test; link cuts, partitions and power-off hold; teardown leaves nothing', { timeout: 60_000 }, async (t) => {
    const bed = await startBed(['a', 'b']);
    t.after(() => bed.close());
    const [a, b] = [bed.host('a'), bed.host('b')];
    assert.notEqual(a.address, b.address);
    const serverA = await bed.start(a, nodeBinary(), ['-e', server, 'a']);
    await bed.start(b, nodeBinary(), ['-e', server, 'b']);
    const fromB = async (url: string) => (await bed.run(b, nodeBinary(), ['-e', fetchScript, url], { timeoutMs: 10_000 })).stdout.trim();

    // Both hosts use port 8080: each namespace has its own ports.
    assert.equal(await get(`http://${a.address}:8080/`), 'hello from a');
    assert.equal(await fromB(`http://${a.address}:8080/`), 'hello from a');
    assert.equal(await fromB('http://127.0.0.1:8080/'), 'hello from b', "b's loopback is b's own");

    bed.partition(b, [a], true);
    assert.match(await fromB(`http://${a.address}:8080/`), /^failed/, 'b cannot reach a across the partition');
    assert.equal(await get(`http://${a.address}:8080/`), 'hello from a', 'the rest of the bed still reaches a');
    bed.partition(b, [a], false);
    assert.equal(await fromB(`http://${a.address}:8080/`), 'hello from a');

    bed.setLink(a, false);
    assert.match(await get(`http://${a.address}:8080/`), /^failed/, 'a is unreachable with its link down');
    bed.setLink(a, true);
    assert.equal(await get(`http://${a.address}:8080/`), 'hello from a');

    await bed.powerOff(a);
    const status = await serverA.exited;
    assert.equal(status.signal, 'SIGKILL', 'powering a host off kills its processes');

    await bed.close();
    assert.ok(!ip('netns', 'list').includes(bed.prefix), 'no namespace of the bed is left');
    assert.ok(!ip('-o', 'link', 'show').includes(bed.prefix), 'no link of the bed is left');
  });

  test('a bed left behind by a dead run is swept', () => {
    // A pid that is no longer running names the leftovers of a run that died without teardown.
    const dead = spawnSync(nodeBinary(), ['-e', '0']).pid;
    assert.ok(dead);
    const prefix = `wtb${dead}`;
    ip('netns', 'add', `${prefix}-x`);
    ip('link', 'add', `${prefix}br`, 'type', 'bridge');
    try {
      sweepStaleBeds();
      assert.ok(!ip('netns', 'list').includes(prefix));
      assert.ok(!ip('-o', 'link', 'show').includes(prefix));
    } finally {
      spawnSync('ip', ['netns', 'del', `${prefix}-x`]);
      spawnSync('ip', ['link', 'del', `${prefix}br`]);
    }
  });
}
