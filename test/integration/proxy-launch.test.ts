// How `weft proxy` starts: in place (same pid) with a small V8 young generation, from sources stripped at install, else once more after stripping TypeScript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/testing/ports.ts';
import { fileURLToPath } from 'node:url';
import { nodeBinary, runProcess, startProcess, startWeft, weftArgv, weftBin, type RunningProcess } from '../../src/testing/process.ts';

const strippedSourcesScript = fileURLToPath(new URL('../../bin/stripped-sources.js', import.meta.url));

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
  // An empty compile cache and no stripped sources: this proxy's modules must be stripped, as after an edit.
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-launch-cache-'));
  t.after(() => rmSync(cacheDir, { recursive: true, force: true }));
  const env = { NODE_COMPILE_CACHE: cacheDir, NODE_OPTIONS: undefined, WEFT_PROXY_RESTARTED: undefined, WEFT_STRIPPED_SOURCES: 'off' };

  const first = await startLoneProxy(env);
  t.after(() => first.stop());
  assert.equal(first.ready.event, 'ready');
  const argv = commandLine(first.pid);
  assert.ok(argv.includes('--max-semi-space-size=1') && argv.includes('--heap-growing-percent=20'), `the proxy's command line: ${argv.join(' ')}`);
  assert.ok(argv.includes('proxy') && argv.includes('launch'), 'the re-executed proxy keeps its arguments');
  assert.equal(environment(first.pid).get('WEFT_PROXY_RESTARTED'), '1', 'a proxy that had to strip TypeScript restarted from the cache it wrote');
  await first.stop();

  // The cache the first one wrote serves the second: no second start.
  const second = await startLoneProxy(env);
  t.after(() => second.stop());
  assert.ok(commandLine(second.pid).includes('--max-semi-space-size=1'));
  assert.equal(environment(second.pid).has('WEFT_PROXY_RESTARTED'), false, 'every module came from the compile cache');
});

test('with the sources stripped at install, a proxy starts without Node\'s TypeScript stripper, even with no compile cache', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  // What `npm ci` runs (the prepare script); it writes the same entries again.
  const build = await runProcess(nodeBinary(), ['--no-warnings', strippedSourcesScript], { timeoutMs: 60_000 });
  assert.equal(build.code, 0, build.stderr);
  assert.match(build.stdout, /^stripped \d+ sources into /);

  const proxy = await startLoneProxy({ NODE_DISABLE_COMPILE_CACHE: '1', NODE_OPTIONS: undefined, WEFT_PROXY_RESTARTED: undefined, WEFT_STRIPPED_SOURCES: undefined });
  t.after(() => proxy.stop());
  assert.equal(proxy.ready.event, 'ready');
  // A proxy that found the stripper loaded would have restarted itself (src/cli/restart.ts), marking its environment.
  assert.equal(environment(proxy.pid).has('WEFT_PROXY_RESTARTED'), false, 'no module of the proxy went through the stripper');

  // Every command's modules, reported by the process itself.
  const loaded = await runProcess(nodeBinary(), [weftBin, '--version'], {
    env: { NODE_DISABLE_COMPILE_CACHE: '1', NODE_OPTIONS: `--import=${reportStripperScript(t)}`, WEFT_STRIPPED_SOURCES: undefined },
  });
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.match(loaded.stderr, /^typescript stripper loaded: false$/m);
  const stripped = await runProcess(nodeBinary(), [weftBin, '--version'], {
    env: { NODE_DISABLE_COMPILE_CACHE: '1', NODE_OPTIONS: `--import=${reportStripperScript(t)}`, WEFT_STRIPPED_SOURCES: 'off' },
  });
  assert.match(stripped.stderr, /^typescript stripper loaded: true$/m, 'the check sees the stripper when it is loaded');
});

/** A module for --import that prints, at exit, whether Node loaded its TypeScript stripper. */
function reportStripperScript(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-launch-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'report.mjs');
  writeFileSync(file, "process.on('exit', () => process.stderr.write(`typescript stripper loaded: ${process.moduleLoadList.some((m) => m.includes('internal/deps/amaro'))}\\n`));\n");
  return file;
}

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
