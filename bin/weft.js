#!/usr/bin/env node
// The weft command: checks that this Node can run TypeScript, then hands over to the CLI in src/cli/.
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
reexecProxyWithHeapFlags();
// Caches compiled code (in the OS temp directory): halves the start-up of every weft command.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
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
    process.execve(process.execPath, [process.execPath, ...PROXY_NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch {
    // Refused before replacing anything (the permission model): the proxy runs as it is, with default heap sizes.
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
