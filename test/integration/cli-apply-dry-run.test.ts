// `weft apply --dry-run` against a real control plane: says what would change, field by field, and writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runWeft, startWeft } from '../../src/testing/process.ts';

const service = (port: number) => `apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec: {ports: [{name: http, port: ${port}}]}\n`;

test('apply --dry-run reports created, configured (with the changed fields) and unchanged, and writes nothing', async () => {
  const cp = await startWeft(['control-plane', '--api-port', '0', '--stream-port', '0']);
  try {
    const env = { WEFT_SERVER: String(cp.ready.api) };
    const created = await runWeft(['apply', '--dry-run', '-f', '-'], { env, input: service(8080) });
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, 'service/shop created (dry run)\n');
    const missing = await runWeft(['get', 'services'], { env });
    assert.doesNotMatch(missing.stdout, /shop/, 'a dry run wrote nothing');

    assert.equal((await runWeft(['apply', '-f', '-'], { env, input: service(8080) })).code, 0);
    const unchanged = await runWeft(['apply', '--dry-run', '-f', '-'], { env, input: service(8080) });
    assert.equal(unchanged.stdout, 'service/shop unchanged (dry run)\n');

    const changed = await runWeft(['apply', '--dry-run', '-f', '-'], { env, input: service(9090) });
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout, /^service\/shop configured \(dry run\)\n {2}spec\.ports\[0\]\.port: 8080 → 9090\n$/);
    const stored = await runWeft(['get', 'service', 'shop', '-o', 'json'], { env });
    assert.equal((JSON.parse(stored.stdout) as { spec: { ports: { port: number }[] } }).spec.ports[0]?.port, 8080, 'the stored object is untouched');
  } finally {
    await cp.stop();
  }
});
