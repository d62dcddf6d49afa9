// How `weft proxy` starts: in place (same pid) with a small V8 young generation, and once more after stripping TypeScript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/testing/ports.ts';
import { startProcess, startWeft, weftArgv, type RunningProcess } from '../../src/testing/process.ts';

/** A proxy with no reachable control plane: it still starts its listeners and prints its ready line. */
async function startLoneProxy(env: Record<string, string | undefined>, onCore?: number): Promise<RunningProcess> {
  const nobody = await freePort();
  const args = ['proxy', '--control-plane', `http://127.0.0.1:${nobody}`, '--workload', 'launch', '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0'];
  if (onCore === undefined) return startWeft(args, { env, readyTimeoutMs: 20_000 });
  // taskset replaces itself with the command: the pid is the proxy's.
  const argv = weftArgv(args);
  return startProcess('taskset', ['-c', String(onCore), argv.command, ...argv.args], { env, readyTimeoutMs: 20_000 });
}

function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

function environment(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return new Map(entries.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)] as const));
}

test('a proxy runs with sidecar heap flags under the pid it was started as, and restarts once to drop the TypeScript stripper', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  // An empty compile cache: this proxy's modules must be stripped, as after an upgrade or an edit.
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-launch-cache-'));
  t.after(() => rmSync(cacheDir, { recursive: true, force: true }));

  const first = await startLoneProxy({ NODE_COMPILE_CACHE: cacheDir, NODE_OPTIONS: undefined, WEFT_PROXY_RESTARTED: undefined });
  t.after(() => first.stop());
  assert.equal(first.ready.event, 'ready');
  const argv = commandLine(first.pid);
  assert.ok(argv.includes('--max-semi-space-size=1') && argv.includes('--heap-growing-percent=20'), `the proxy's command line: ${argv.join(' ')}`);
  assert.ok(argv.includes('proxy') && argv.includes('launch'), 'the re-executed proxy keeps its arguments');
  assert.equal(environment(first.pid).get('WEFT_PROXY_RESTARTED'), '1', 'a proxy that had to strip TypeScript restarted from the cache it wrote');
  await first.stop();

  // The cache the first one wrote serves the second: no second start.
  const second = await startLoneProxy({ NODE_COMPILE_CACHE: cacheDir, NODE_OPTIONS: undefined, WEFT_PROXY_RESTARTED: undefined });
  t.after(() => second.stop());
  assert.ok(commandLine(second.pid).includes('--max-semi-space-size=1'));
  assert.equal(environment(second.pid).has('WEFT_PROXY_RESTARTED'), false, 'every module came from the compile cache');
});

test('a semi-space size given in NODE_OPTIONS wins over the launcher', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const proxy = await startLoneProxy({ NODE_OPTIONS: '--max-semi-space-size=4' });
  t.after(() => proxy.stop());
  assert.equal(proxy.ready.event, 'ready');
  assert.equal(commandLine(proxy.pid).includes('--max-semi-space-size=1'), false);
});

test('a proxy held to one core collects garbage on its own thread; flags given to node still win', { skip: process.platform !== 'linux' && 'reads /proc, uses taskset' }, async (t) => {
  const pinned = await startLoneProxy({ NODE_OPTIONS: undefined }, 0);
  t.after(() => pinned.stop());
  assert.ok(commandLine(pinned.pid).includes('--single-threaded-gc'), `the proxy's command line: ${commandLine(pinned.pid).join(' ')}`);
  await pinned.stop();

  const nobody = await freePort();
  const argv = weftArgv(['proxy', '--control-plane', `http://127.0.0.1:${nobody}`, '--workload', 'launch', '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0']);
  // The operator's own flag comes after the launcher's (V8 takes the last): background collection stays on.
  const chosen = await startProcess('taskset', ['-c', '0', argv.command, '--no-single-threaded-gc', ...argv.args], { env: { NODE_OPTIONS: undefined }, readyTimeoutMs: 20_000 });
  t.after(() => chosen.stop());
  const line = commandLine(chosen.pid);
  assert.ok(line.lastIndexOf('--no-single-threaded-gc') > line.lastIndexOf('--single-threaded-gc'), `the proxy's command line: ${line.join(' ')}`);
});
