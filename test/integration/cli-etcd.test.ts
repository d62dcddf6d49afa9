// `weft control-plane --store etcd://...` as a real process against a real etcd: config applied through it lands in etcd and survives a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd } from '../../src/testing/etcd.ts';
import { runWeft, startWeft } from '../../src/testing/process.ts';

const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: kept-in-etcd}\nspec: {ports: [{port: 80}]}\n';

test('a control plane on etcd keeps applied config across its own restart', async () => {
  const etcd = await startEtcd({});
  try {
    const store = `etcd://${etcd.endpoint.replace(/^http:\/\//, '')}`;
    const args = ['control-plane', '--store', store, '--etcd-prefix', '/weft-cli-test', '--api-port', '0', '--stream-port', '0'];
    const first = await startWeft(args);
    try {
      const applied = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: String(first.ready.api) }, input: service });
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /service\/kept-in-etcd created/);
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
    const second = await startWeft(args);
    try {
      const listed = await runWeft(['get', 'services'], { env: { WEFT_SERVER: String(second.ready.api) } });
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /kept-in-etcd/);
    } finally {
      await second.stop();
    }
  } finally {
    await etcd.stop();
  }
});

test('--store refuses what is not an etcd URL, and refuses --data-dir beside it', async () => {
  const bad = await runWeft(['control-plane', '--store', 'postgres://x', '--api-port', '0', '--stream-port', '0']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /etcd:\/\/host:port/);
  const both = await runWeft(['control-plane', '--store', 'etcd://127.0.0.1:1', '--data-dir', '/tmp/x', '--api-port', '0', '--stream-port', '0']);
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /exclusive/);
});
