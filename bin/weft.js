#!/usr/bin/env node
// The weft command: checks that this Node can run TypeScript, then hands over to the CLI in src/cli/.
import { readFileSync } from 'node:fs';
// A default import: an older Node without availableParallelism must still reach the version message below.
import os from 'node:os';
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `weft needs Node.js 24 or newer (this is ${process.version} at ${process.execPath}): it runs its TypeScript with Node's type stripping.\n` +
      'Run it through npm (npm start, npx weft ...), which uses the Node pinned in package.json, ' +
      'or put node_modules/.bin first on your PATH.\n',
  );
  process.exit(1);
}
// A proxy is a long-lived sidecar: it starts again with V8 heap flags sized for that.
const PROXY_NODE_FLAGS = ['--max-semi-space-size=1', '--heap-growing-percent=20'];
/** For a proxy held to less than two cores: see proxyGcFlags. */
const ONE_CORE_GC_FLAGS = ['--single-threaded-gc'];
reexecProxyWithHeapFlags();
// Caches compiled code (in the OS temp directory): halves the start-up of every weft command.
const { enableCompileCache, registerHooks } = await import('node:module');
enableCompileCache?.();
// Sources stripped of their types at install (bin/stripped-sources.js): Node's own stripper stays resident, ~30 MiB.
// WEFT_STRIPPED_SOURCES=off runs every source through Node's stripper, as a checkout without `npm ci` does.
if (typeof registerHooks === 'function' && process.env.WEFT_STRIPPED_SOURCES !== 'off') {
  (await import('./stripped-sources.js')).registerStrippedSources(registerHooks);
}
await import('../src/cli/main.ts');

/**
 * `weft proxy` replaces this process (same pid, same stdio, same arguments) with one that runs with heap flags for
 * a sidecar; V8 reads them only at start-up. 1 MiB semi-spaces: by default new space grows to ~50 MiB, most of a
 * proxy's heap, resident for good once touched, and a proxy's young objects are per-request and short-lived.
 * The old generation may grow 20 % past the live size before the next full collection (V8 otherwise lets it reach
 * up to 4x): under load, garbage promoted out of the small young generation piles up to twice the live heap. Neither
 * caps the heap; both cost no CPU measurable here (docs/performance.md, "Memory"). A semi-space flag already given
 * (command line or NODE_OPTIONS) means the operator chose: nothing is re-executed; nor without process.execve.
 */
function reexecProxyWithHeapFlags() {
  if (commandName(process.argv.slice(2)) !== 'proxy') return;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (given.some((flag) => /^--(max|min)-semi-space-size/.test(flag))) return;
  if (typeof process.execve !== 'function' || process.platform === 'win32') return;
  try {
    process.execve(process.execPath, [process.execPath, ...PROXY_NODE_FLAGS, ...proxyGcFlags(), ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch {
    // Refused before replacing anything (the permission model): the proxy runs as it is, with default heap sizes.
  }
}

/**
 * V8 marks and scavenges on background threads, which pays only where they have a core of their own. A proxy held
 * to one core (taskset, a cpuset, a CPU limit of a core or less) collects on its own thread instead: otherwise its
 * event loop waits, mid-collection, for a helper thread the scheduler runs after the other processes on that core.
 * Measured with both sidecars on one core at 1,000 rps: scavenges 2.1 → 0.6 ms (median pause) and the requests'
 * p99 about 40 % lower, for ~12 MiB more RSS (docs/performance.md, "Garbage collection on one core"). Flags given
 * on the node command line come after these and win (`--no-single-threaded-gc`).
 */
function proxyGcFlags() {
  return availableCores() < 2 ? ONE_CORE_GC_FLAGS : [];
}

/** The cores this process may run on: its CPU affinity, capped by a CFS quota (cgroup v2 cpu.max, or v1). */
function availableCores() {
  let cores = os.availableParallelism();
  const quota = cgroupCpuQuota();
  if (quota !== undefined) cores = Math.min(cores, quota);
  return cores;
}

function cgroupCpuQuota() {
  try {
    const [max, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (max !== 'max' && Number(period) > 0) return Number(max) / Number(period);
    return undefined;
  } catch {
    // Not cgroup v2 (or not Linux): try v1.
  }
  try {
    const quota = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', 'utf8'));
    const period = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us', 'utf8'));
    return quota > 0 && period > 0 ? quota / period : undefined;
  } catch {
    return undefined;
  }
}

/** The weft command in argv: the first word that is neither an option nor the value of --server. */
function commandName(args) {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--server') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}
