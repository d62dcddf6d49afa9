// weft's TypeScript with its types already stripped: written at install, served to Node instead of stripping on the fly.
//
// Node strips types with a WebAssembly compiler that it loads on the first .ts module it has to strip, and that
// compiler stays resident: measured on an idle sidecar started without a compile cache, 106-110 MiB against 74-75.
// The compile cache (bin/weft.js) avoids it only once written, and a proxy restarts once to use it
// (src/cli/restart.ts); a read-only file system gets neither. `npm ci` (the prepare script) runs this file, which
// writes each source's stripped text under dist/stripped/, named by a hash of the source, and bin/weft.js registers
// a load hook that serves a module from there when its source's hash has an entry. The key is the content, so an
// edited file never gets a stale entry: it misses, and Node strips it as before. The stripping is Node's own
// (module.stripTypeScriptTypes, which blanks the types out in place), so line and column numbers, import.meta.url and
// every stack trace stay those of the .ts file.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const STRIPPED_DIR = join(REPO_ROOT, 'dist', 'stripped');
/** The sources a weft process runs. src/dashboard is browser code, bundled by vite. */
const SOURCE_DIR = join(REPO_ROOT, 'src');
const BROWSER_DIR = join(SOURCE_DIR, 'dashboard');
const SOURCE_URL_PREFIX = pathToFileURL(SOURCE_DIR).href + '/';

function entryName(source) {
  return createHash('sha256').update(source).digest('hex').slice(0, 32) + '.js';
}

/** Serves stripped sources to this process's module loader. A source without an entry loads as usual. */
export function registerStrippedSources(registerHooks) {
  registerHooks({
    load(url, context, nextLoad) {
      if (!url.startsWith(SOURCE_URL_PREFIX) || !url.endsWith('.ts')) return nextLoad(url, context);
      try {
        const source = readFileSync(new URL(url));
        return { format: 'module', source: readFileSync(join(STRIPPED_DIR, entryName(source))), shortCircuit: true };
      } catch {
        // No such source (the default loader says so properly) or no entry for this text (an edited file).
        return nextLoad(url, context);
      }
    },
  });
}

/** Writes an entry for every source under src/ (but the dashboard's), replacing what was there. */
export async function writeStrippedSources() {
  const { stripTypeScriptTypes } = await import('node:module');
  rmSync(STRIPPED_DIR, { recursive: true, force: true });
  mkdirSync(STRIPPED_DIR, { recursive: true });
  let count = 0;
  for (const file of readdirSync(SOURCE_DIR, { recursive: true, encoding: 'utf8' })) {
    const path = join(SOURCE_DIR, file);
    if (!path.endsWith('.ts') || path.endsWith('.d.ts') || !relative(BROWSER_DIR, path).startsWith('..')) continue;
    const source = readFileSync(path);
    writeFileSync(join(STRIPPED_DIR, entryName(source)), stripTypeScriptTypes(source.toString('utf8'), { mode: 'strip' }));
    count++;
  }
  return count;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const count = await writeStrippedSources();
  process.stdout.write(`stripped ${count} sources into ${relative(process.cwd(), STRIPPED_DIR) || STRIPPED_DIR}\n`);
}
