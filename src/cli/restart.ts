// Once a proxy's modules are loaded: a start that had to strip TypeScript (compile-cache miss) starts again from the cache.
import { flushCompileCache } from 'node:module';

const RESTARTED = 'WEFT_PROXY_RESTARTED';

/**
 * Node strips types with a WebAssembly compiler that it loads on the first
 * `.ts` file missing from the compile cache (bin/weft.js enables it) and never
 * unloads: ~30 MiB of resident memory for the life of a proxy. The sources
 * stripped at install (bin/stripped-sources.js) keep it out, so this matters
 * for files edited since, the first time each is run. A proxy that loaded it
 * writes the cache now and replaces itself (same pid, stdio and arguments)
 * with a process that finds every module there. Call it before opening any
 * socket or file. Once only: a cache that cannot be written must not loop.
 */
export function restartIfTypeScriptWasStripped(): void {
  if (process.env[RESTARTED] === '1' || typeof process.execve !== 'function') return;
  const loaded = (process as { moduleLoadList?: readonly string[] }).moduleLoadList ?? [];
  if (!loaded.some((name) => name.includes('internal/deps/amaro'))) return;
  flushCompileCache();
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, [RESTARTED]: '1' });
  } catch {
    // Not replaced: this proxy keeps the stripper; the next start finds the cache written above.
  }
}
