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
// Caches compiled code (in the OS temp directory): halves the start-up of every weft command.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/cli/main.ts');
