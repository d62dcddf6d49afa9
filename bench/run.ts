// `npm run bench`: runs the benchmark suites, prints their figures, writes bench/results/<timestamp>.json and a chart.
//
//   npm run bench                                   every suite; results file, chart, summary table
//   npm run bench -- --suite dataplane --json       one suite; only its JSON on stdout
//   npm run bench -- --quick                        the smoke durations (what npm test runs)
//   npm run bench -- --update-docs                  also rewrite the figures in docs/performance.md
//
// Progress goes to stderr; stdout carries the table, or the JSON with --json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { figuresTable, type SuiteContext, type SuiteOutcome } from './lib/figures.ts';
import { choosePinning, loadAverage, machineInfo } from './lib/machine.ts';
import { stopAllBenchProcesses } from './lib/proc.ts';
import { renderChart } from './lib/svg.ts';
import { updateDocs } from './lib/docs.ts';
import { runDataplane } from './suites/dataplane.ts';
import { runControlplane } from './suites/controlplane.ts';
import { runFraming } from './suites/framing.ts';
import { runMetrics } from './suites/metrics.ts';
import { runScaleEtcd } from './suites/scale-etcd.ts';

const SUITES: Record<string, (ctx: SuiteContext) => Promise<SuiteOutcome>> = {
  dataplane: runDataplane,
  controlplane: runControlplane,
  framing: runFraming,
  metrics: runMetrics,
  'scale-etcd': runScaleEtcd,
};

/** The budget: each suite under 10 minutes on this machine. */
const SUITE_BUDGET_MS = 9 * 60_000;

const { values } = parseArgs({
  options: {
    suite: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'update-docs': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    [
      'usage: npm run bench -- [--suite NAME]... [--json] [--quick] [--update-docs]',
      `  --suite NAME    run only this suite (${Object.keys(SUITES).join(', ')}); repeatable`,
      '  --json          print only the JSON ({suite, machine, figures}; {suites: [...]} for several)',
      '  --quick         smoke durations: checks the suite works, the figures mean nothing',
      '  --update-docs   rewrite the latest figures and the chart in docs/performance.md',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

const names = values.suite ?? Object.keys(SUITES);
for (const name of names) {
  if (!SUITES[name]) {
    process.stderr.write(`unknown suite "${name}"; suites: ${Object.keys(SUITES).join(', ')}\n`);
    process.exit(2);
  }
}

// Peers and weft run in their own process groups, so an interrupt must stop them explicitly.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping the processes the suite started\n`);
    void stopAllBenchProcesses().finally(() => process.exit(130));
  });
}

const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
const pinning = choosePinning();
const machine = machineInfo(pinning);
log(`pinning: ${pinning.description}`);
if (pinning.warning) log(`WARNING: ${pinning.warning}; figures are less reliable`);

const startedAt = new Date();
const outcomes: SuiteOutcome[] = [];
let failed = false;
for (const name of names) {
  const started = Date.now();
  log(`suite ${name}${values.quick ? ' (quick)' : ''}`);
  try {
    const loadBefore = loadAverage();
    const outcome = await SUITES[name]!({ quick: values.quick, pinning, machine, log, deadline: started + SUITE_BUDGET_MS });
    outcome.loadAverage = [loadBefore, loadAverage()];
    outcomes.push(outcome);
    log(`suite ${name} done in ${Math.round((Date.now() - started) / 1000)} s (load average ${loadBefore.toFixed(1)} before, ${outcome.loadAverage[1].toFixed(1)} after)`);
  } catch (error) {
    failed = true;
    log(`suite ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
}

if (values.json) {
  const reports = outcomes.map((o) => o.report);
  const out = names.length === 1 && reports.length === 1 ? reports[0] : { suites: reports };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} else {
  process.stdout.write(`${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ${pinning.description}\n`);
  for (const o of outcomes) {
    const load = o.loadAverage ? ` (load average ${o.loadAverage.map((l) => l.toFixed(1)).join(' → ')} on ${machine.cores} cores)` : '';
    process.stdout.write(`\n== ${o.report.suite}${load} ==\n${figuresTable(o.report.figures)}\n`);
  }
}

if (!values.quick && outcomes.length > 0) {
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(resultsDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = `${resultsDir}${stamp}.json`;
  writeFileSync(
    file,
    JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, suites: outcomes.map((o) => ({ ...o.report, loadAverage: o.loadAverage, details: o.details })) }, null, 2) + '\n',
  );
  const chart = renderChart(outcomes);
  if (chart) writeFileSync(`${resultsDir}${stamp}.svg`, chart);
  log(`results: ${file}`);
  if (values['update-docs']) {
    const docs = updateDocs(outcomes, machine, startedAt, chart);
    log(`docs: ${docs.join(', ')}`);
  }
}
process.exitCode = failed ? 1 : 0;
