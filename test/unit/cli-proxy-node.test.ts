// `weft proxy --mode node` flags: the --workload values, the token lines, and what node mode refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from '../../src/cli/options.ts';
import { parseHostedWorkload, parseNodeTokens } from '../../src/cli/proxy-node.ts';
import { runWeft } from '../../src/testing/process.ts';

test('--workload names a hosted instance and its app ports', () => {
  assert.deepEqual(parseHostedWorkload('shop/catalog@catalog-0=8080:41234,9090', 'default'), {
    namespace: 'shop',
    workload: 'catalog',
    instance: 'catalog-0',
    appPorts: [
      { declared: 8080, actual: 41234 },
      { declared: 9090, actual: 9090 },
    ],
  });
  assert.deepEqual(parseHostedWorkload('client', 'dev'), { namespace: 'dev', workload: 'client', appPorts: [] });
  for (const bad of ['', 'a/b/c', 'Catalog', 'catalog=0', 'catalog=8080:70000', 'catalog@Bad', 'catalog=8080=1']) {
    assert.throws(() => parseHostedWorkload(bad, 'default'), (error: unknown) => error instanceof CliError && /--workload/.test(error.message), bad);
  }
});

test('node tokens: one line per workload, and one bare token for the rest', () => {
  const tokens = parseNodeTokens('# tokens\ndefault/catalog weft_a\n\nshop/cart   weft_b\nweft_host\n');
  assert.deepEqual([...tokens.byWorkload], [
    ['default/catalog', 'weft_a'],
    ['shop/cart', 'weft_b'],
  ]);
  assert.equal(tokens.fallback, 'weft_host');
  assert.throws(() => parseNodeTokens('weft_a\nweft_b'), /second token/);
  assert.throws(() => parseNodeTokens('catalog weft_a'), /NAMESPACE\/WORKLOAD TOKEN/);
});

test('weft proxy --mode node refuses one-workload flags and an empty node', async () => {
  const empty = await runWeft(['proxy', '--mode', 'node', '--admin-port', '0']);
  assert.notEqual(empty.code, 0);
  assert.match(empty.stderr, /--mode node needs a --workload/);
  const appPort = await runWeft(['proxy', '--mode', 'node', '--workload', 'a', '--app-port', '8080=1234']);
  assert.notEqual(appPort.code, 0);
  assert.match(appPort.stderr, /--app-port is for one workload/);
  const twice = await runWeft(['proxy', '--workload', 'a', '--workload', 'b']);
  assert.notEqual(twice.code, 0);
  assert.match(twice.stderr, /--workload is given 2 times/);
});
