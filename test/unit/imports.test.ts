// Enforces DESIGN.md's import directions by reading every import in src/**/*.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));

interface Rule {
  /** src areas this area may import (itself always allowed). */
  areas: string[];
  /** npm packages it may import; undefined = any. */
  packages?: string[];
  /** Whether node: built-ins are allowed. */
  node: boolean;
}

const RULES: Record<string, Rule> = {
  api: { areas: [], packages: ['zod', 'yaml'], node: false },
  compiler: { areas: ['api'], node: false },
  control: { areas: ['api', 'compiler', 'telemetry'], node: true },
  proxy: { areas: ['api', 'telemetry'], node: true },
  telemetry: { areas: ['api'], node: true },
  testing: { areas: ['api', 'telemetry'], node: true },
  // The dashboard reads the API only: it may use src/api's types (checked below: type-only), never its code.
  dashboard: { areas: ['api'], packages: ['preact', 'cytoscape', 'uplot', 'yaml'], node: false },
  // The CLI drives everything; the rule that matters is that nothing imports it.
  cli: { areas: ['api', 'compiler', 'control', 'proxy', 'telemetry', 'testing'], node: true },
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(path);
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every module specifier: static imports and re-exports (type-only too) and dynamic import() of a literal. */
export function specifiers(code: string): string[] {
  const withoutComments = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of withoutComments.matchAll(pattern)) found.push(m[1]!);
  return found;
}

function areaOf(file: string): string {
  return relative(srcDir, file).split(sep)[0]!;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

test('the import scanner sees every form of import', () => {
  const code = [
    "import { a } from './a.ts';",
    "import type { B } from '../api/b.ts';",
    "import * as c from 'zod';",
    "import 'node:fs';",
    "export { d } from './d.ts';",
    "export type { E } from './e.ts';",
    'import {',
    '  f,',
    '  g,',
    "} from './fg.ts';",
    "const h = await import('../control/h.ts');",
    "// import { no } from './comment.ts';",
    "const url = 'http://example.com/x'; // import nothing",
  ].join('\n');
  assert.deepEqual(specifiers(code).sort(), ['../api/b.ts', '../control/h.ts', './a.ts', './d.ts', './e.ts', './fg.ts', 'node:fs', 'zod'].sort());
});

test('src/ imports run the directions DESIGN.md sets', () => {
  const violations: string[] = [];
  const files = sourceFiles(srcDir);
  assert.ok(files.length > 10, 'found the sources');
  for (const file of files) {
    const from = areaOf(file);
    const rule = RULES[from];
    const where = relative(join(srcDir, '..'), file);
    if (!rule) {
      violations.push(`${where}: src/${from}/ is not in DESIGN.md's layout; add it to this test's rules`);
      continue;
    }
    for (const specifier of specifiers(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier);
        if (!target.startsWith(srcDir)) {
          if (!target.endsWith('package.json')) violations.push(`${where}: imports ${specifier}, outside src/`);
          continue;
        }
        const to = areaOf(target);
        if (to === 'cli' && from !== 'cli') violations.push(`${where}: imports ${specifier}; nothing may import cli`);
        else if (to !== from && !rule.areas.includes(to)) violations.push(`${where}: imports ${specifier}; ${from} may import only ${[from, ...rule.areas].join(', ')}`);
      } else if (specifier.startsWith('node:')) {
        if (!rule.node) violations.push(`${where}: imports ${specifier}; ${from} may not use node: modules`);
      } else if (rule.packages && !rule.packages.includes(packageName(specifier))) {
        violations.push(`${where}: imports the package ${specifier}; ${from} may import only ${rule.packages.join(', ') || 'no packages'}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('relative imports name their .ts file', () => {
  const missing: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    for (const specifier of specifiers(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.') && !/\.(ts|tsx|json)$/.test(specifier)) missing.push(`${relative(srcDir, file)}: ${specifier}`);
    }
  }
  assert.deepEqual(missing, []);
});

test('the dashboard takes only types from src/api', () => {
  const dashboardDir = join(srcDir, 'dashboard');
  const offending: string[] = [];
  for (const file of sourceFiles(dashboardDir)) {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    for (const m of code.matchAll(/^\s*(import|export)\s+(type\s+)?([\s\S]*?)\s+from\s+['"]([^'"]+)['"]/gm)) {
      const [, , typeOnly, clause, specifier] = m;
      if (!specifier!.startsWith('.') || areaOf(resolve(dirname(file), specifier!)) !== 'api') continue;
      // `import { type A, type B }` erases as completely as `import type { A, B }`.
      const names = /^\{([\s\S]*)\}$/.exec(clause!.trim())?.[1]?.split(',').map((n) => n.trim()).filter(Boolean);
      if (!typeOnly && !(names && names.every((n) => n.startsWith('type ')))) offending.push(`${relative(srcDir, file)}: ${specifier}`);
    }
    for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      if (m[1]!.startsWith('.') && areaOf(resolve(dirname(file), m[1]!)) === 'api') offending.push(`${relative(srcDir, file)}: import(${m[1]})`);
    }
  }
  assert.deepEqual(offending, [], 'the dashboard bundle must not pull in zod and the schemas: use `import type`');
});

/** Value imports only (static and dynamic): what loading `file` makes Node load; `import type` and all-`type` braces are erased. */
function runtimeSpecifiers(code: string): string[] {
  const withoutComments = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  for (const m of withoutComments.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:([\w*{}\s,$]+?)\s+from\s+)?['"]([^'"]+)['"]/gm)) {
    const [, typeOnly, clause, specifier] = m;
    const names = clause && /^\{([\s\S]*)\}$/.exec(clause.trim())?.[1]?.split(',').map((n) => n.trim()).filter(Boolean);
    if (typeOnly || (names && names.length > 0 && names.every((n) => n.startsWith('type ')))) continue;
    found.push(specifier!);
  }
  for (const m of withoutComments.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found;
}

test('a proxy loads no zod: `weft proxy` reaches it through no import, static or dynamic', () => {
  // zod costs a process ~12 MiB resident; a proxy checks its snapshot's shape with src/proxy/config/shape.ts instead.
  const start = join(srcDir, 'cli', 'proxy.ts');
  const via = new Map<string, string>([[start, '']]);
  const queue = [start];
  const reached: string[] = [];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const specifier of runtimeSpecifiers(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier);
        if (!target.endsWith('.ts') || via.has(target)) continue;
        via.set(target, file);
        queue.push(target);
      } else if (packageName(specifier) === 'zod') {
        const chain = [file];
        while (via.get(chain[0]!)) chain.unshift(via.get(chain[0]!)!);
        reached.push(chain.map((f) => relative(srcDir, f)).join(' → '));
      }
    }
  }
  assert.ok(via.size > 50, `followed the proxy's imports (${via.size} files)`);
  assert.deepEqual(reached, []);
});
