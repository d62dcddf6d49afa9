// `--update-docs`: writes each suite's latest tables between its markers in docs/performance.md, and the chart beside it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SuiteOutcome } from './figures.ts';
import type { MachineInfo } from './machine.ts';

const docsDir = fileURLToPath(new URL('../../docs/', import.meta.url));
export const PERFORMANCE_DOC = `${docsDir}performance.md`;
export const CHART_FILE = `${docsDir}performance.svg`;

function markers(suite: string): [string, string] {
  return [`<!-- bench:${suite}:start -->`, `<!-- bench:${suite}:end -->`];
}

/** Returns the files written. A suite without markers in the doc is left out (the doc decides what it shows). */
export function updateDocs(outcomes: readonly SuiteOutcome[], machine: MachineInfo, startedAt: Date, chart: string | undefined): string[] {
  const written: string[] = [];
  if (!existsSync(PERFORMANCE_DOC)) return written;
  let doc = readFileSync(PERFORMANCE_DOC, 'utf8');
  const stamp = `${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB · Node ${machine.node} · wrk ${machine.tools.wrk}, HAProxy ${machine.tools.haproxy}, nginx ${machine.tools.nginx} · ${machine.pinning}`;
  for (const outcome of outcomes) {
    const [start, end] = markers(outcome.report.suite);
    const from = doc.indexOf(start);
    const to = doc.indexOf(end);
    if (from === -1 || to === -1 || to < from) continue;
    const load = outcome.loadAverage ? ` · load average ${outcome.loadAverage.map((l) => l.toFixed(1)).join(' → ')} (other tenants of the machine)` : '';
    doc = `${doc.slice(0, from + start.length)}\n_Measured ${stamp}${load}._\n\n${outcome.markdown}\n${doc.slice(to)}`;
  }
  writeFileSync(PERFORMANCE_DOC, doc);
  written.push(PERFORMANCE_DOC);
  if (chart) {
    writeFileSync(CHART_FILE, chart);
    written.push(CHART_FILE);
  }
  return written;
}
