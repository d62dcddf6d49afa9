// The control-plane suite: N simulated proxies on one `weft control-plane`, the time from an apply until all have the change, memory per proxy, and compile time for a large mesh.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';
import { figure, figuresMarkdown, type Figure, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { pinned } from '../lib/machine.ts';
import { startBenchProcess } from '../lib/proc.ts';
import { median, round } from '../lib/stats.ts';

const weftBin = fileURLToPath(new URL('../../bin/weft.js', import.meta.url));
const simScript = fileURLToPath(new URL('../cp/sim-proxies.ts', import.meta.url));
const compileScript = fileURLToPath(new URL('../cp/compile-large.ts', import.meta.url));

interface Settings {
  /** Proxy counts to try, in order, while the time budget lasts. */
  steps: number[];
  changes: number;
  compile: { services: number; runs: number };
  /** Services (with endpoints) in the mesh every simulated proxy receives. */
  meshServices: number;
}

const FULL: Settings = { steps: [1000, 2000, 5000, 10_000], changes: 7, compile: { services: 1000, runs: 7 }, meshServices: 20 };
const QUICK: Settings = { steps: [20], changes: 2, compile: { services: 20, runs: 2 }, meshServices: 3 };

export interface CompileResult {
  services: number;
  rules: number;
  endpoints: number;
  firstMs: number;
  coldMedianMs: number;
  coldMinMs: number;
  coldCpuMedianMs: number;
  anotherProxyMedianMs: number;
  checkMs: number;
  problems: number;
  snapshotBytes: number;
}

export interface ChangeResult {
  index: number;
  proxies: number;
  acked: number;
  /** Streams that closed during the change (a real proxy would reconnect; these count as not acknowledged). */
  dropped: number;
  all: boolean;
  applyMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  error?: string;
}

export interface StepResult {
  requested: number;
  connected: number;
  failed: number;
  firstError?: string;
  connectMs: number;
  /** One snapshot line as pushed to one proxy. */
  snapshotBytes: number;
  cpRssBeforeKiB: number;
  cpRssConnectedKiB: number;
  kibPerProxy: number;
  changes: ChangeResult[];
  /** Medians over the changes. */
  ackP50Ms: number;
  ackP99Ms: number;
  ackMaxMs: number;
  allAcked: boolean;
  /** Streams the control plane closed for silence (no message for a lease TTL), counted from its log. */
  silenceClosures: number;
  seconds: number;
}

/** The mesh every simulated proxy gets: a few services with endpoints, and the endpoint the changes move. */
function meshYaml(services: number): string {
  const docs: string[] = [
    'apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: sim, labels: {app: sim}}\nspec:\n  ports: [{name: http, port: 8080}]',
    'apiVersion: v1\nkind: Service\nmetadata: {name: moving}\nspec:\n  selector: {app: moving}\n  ports: [{name: http, port: 8080}]',
    'apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: moving-endpoint, labels: {app: moving}}\nspec:\n  address: 10.77.0.250\n  ports: [{port: 8080}]',
  ];
  for (let s = 0; s < services; s++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${s}}\nspec:\n  selector: {app: svc-${s}}\n  ports: [{name: http, port: 8080}]`);
    for (let e = 0; e < 3; e++) {
      docs.push(`apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: svc-${s}-${e}, labels: {app: svc-${s}}}\nspec:\n  address: 10.66.${s}.${e + 1}\n  tunnelPort: 15008\n  ports: [{port: 8080}]`);
    }
  }
  return docs.join('\n---\n') + '\n';
}

async function runCompile(ctx: SuiteContext, settings: Settings): Promise<CompileResult> {
  const argv = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [compileScript, '--services', String(settings.compile.services), '--runs', String(settings.compile.runs)]);
  const result = await runProcess(argv.command, argv.args, { timeoutMs: 180_000 });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !line.startsWith('{')) throw new Error(`compile-large failed (${result.code}): ${result.stderr}`);
  return JSON.parse(line) as CompileResult;
}

async function runStep(ctx: SuiteContext, settings: Settings, count: number, scratch: string): Promise<StepResult> {
  const started = Date.now();
  const dir = mkdtempSync(join(scratch, `cp-${count}-`));
  const cpArgv = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [weftBin, 'control-plane', '--api-port', '0', '--stream-port', '0', '--data-dir', dir]);
  const cp = await startBenchProcess('weft-control-plane', cpArgv.command, cpArgv.args, { readyLine: true, timeoutMs: 30_000 });
  try {
    const api = String(cp.ready!.api);
    const res = await fetch(`${api}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: meshYaml(settings.meshServices) });
    if (!res.ok) throw new Error(`applying the control-plane mesh: ${res.status} ${await res.text()}`);
    // Let the first compile and the status writes finish before the baseline RSS is read.
    await new Promise((resolve) => setTimeout(resolve, ctx.quick ? 300 : 2000));
    const simArgv = pinned(ctx.pinning, ctx.pinning.loadCpus, nodeBinary(), [
      simScript,
      '--stream', String(cp.ready!.stream),
      '--api', api,
      '--count', String(count),
      '--changes', String(settings.changes),
      '--cp-pid', String(cp.pid),
      '--settle', ctx.quick ? '0.2' : '2',
    ]);
    const budgetS = Math.max(60, Math.floor((ctx.deadline - Date.now()) / 1000));
    const sim = await runProcess(simArgv.command, simArgv.args, { timeoutMs: budgetS * 1000 });
    const events = sim.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const connected = events.find((e) => e.event === 'connected') as
      | Omit<StepResult, 'kibPerProxy' | 'changes' | 'ackP50Ms' | 'ackP99Ms' | 'ackMaxMs' | 'allAcked' | 'silenceClosures' | 'seconds'>
      | undefined;
    if (sim.code !== 0 || !connected) throw new Error(`simulated proxies failed (${sim.code}): ${sim.stderr.slice(-2000)}`);
    const changes = events.filter((e) => e.event === 'change') as unknown as ChangeResult[];
    const measured = changes.filter((c) => c.error === undefined);
    for (const c of changes as unknown as Record<string, unknown>[]) delete c.event;
    const { event: _event, ...connectedFacts } = connected as typeof connected & { event?: string };
    return {
      ...connectedFacts,
      kibPerProxy: connected.connected > 0 ? (connected.cpRssConnectedKiB - connected.cpRssBeforeKiB) / connected.connected : NaN,
      changes,
      ackP50Ms: median(measured.map((c) => c.p50Ms)),
      ackP99Ms: median(measured.map((c) => (c.all ? c.p99Ms : Infinity))),
      ackMaxMs: median(measured.map((c) => (c.all ? c.maxMs : Infinity))),
      allAcked: measured.length === changes.length && measured.every((c) => c.all),
      silenceClosures: cp.output().split('no message from the proxy for a lease TTL').length - 1,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await cp.stop();
  }
}

export async function runControlplane(ctx: SuiteContext): Promise<SuiteOutcome> {
  const settings = ctx.quick ? QUICK : FULL;
  const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-cp-'));
  try {
    ctx.log(`control plane: compiling ${settings.compile.services} services (x5 rules, x10 endpoints)`);
    const compileResult = await runCompile(ctx, settings);
    const steps: StepResult[] = [];
    for (const count of settings.steps) {
      const previous = steps.at(-1);
      if (previous) {
        // Go on only if the last step went well and the next one (its time scaled by proxy count) fits in the budget.
        const estimateMs = previous.seconds * 1000 * (count / previous.requested) + 30_000;
        if (previous.connected < previous.requested || !previous.allAcked) {
          ctx.log(`control plane: stopping at ${previous.requested} proxies (${previous.connected} connected, all acked: ${previous.allAcked})`);
          break;
        }
        if (Date.now() + estimateMs > ctx.deadline) {
          ctx.log(`control plane: not enough time left for ${count} proxies (about ${Math.round(estimateMs / 1000)} s)`);
          break;
        }
      }
      ctx.log(`control plane: ${count} simulated proxies, ${settings.changes} changes`);
      const step = await runStep(ctx, settings, count, scratch);
      ctx.log(
        `control plane: ${step.connected}/${count} connected in ${Math.round(step.connectMs)} ms; ack p50 ${round(step.ackP50Ms)} ms, p99 ${round(step.ackP99Ms)} ms; ${round(step.kibPerProxy)} KiB per proxy`,
      );
      steps.push(step);
    }
    const figures = controlplaneFigures(steps, compileResult);
    return {
      report: { suite: 'controlplane', machine: ctx.machine, figures },
      details: { settings, compile: compileResult, steps },
      markdown: controlplaneMarkdown(steps, compileResult, figures, settings),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function controlplaneFigures(steps: readonly StepResult[], compileResult: CompileResult): Figure[] {
  const largest = [...steps].reverse().find((s) => s.connected > 0);
  const at10k = steps.find((s) => s.requested === 10_000);
  const figures: Figure[] = [
    figure({
      name: 'cp-ack-p99-10000-proxies',
      unit: 'ms',
      weft: at10k?.ackP99Ms,
      peer: 'Consul (published): 172,000 instances in < 1 s',
      peerValue: 1000,
      goal: { kind: 'at-most', value: 1000 },
      note: at10k ? `${at10k.connected} of 10,000 connected` : `not reached in this run; largest step: ${largest?.requested ?? 0} proxies`,
    }),
  ];
  for (const step of steps) {
    figures.push(
      figure({ name: `cp-ack-p50-${step.requested}-proxies`, unit: 'ms', weft: step.ackP50Ms, peer: 'Consul (published)', peerValue: 1000, goal: { kind: 'none' } }),
      figure({
        name: `cp-ack-p99-${step.requested}-proxies`,
        unit: 'ms',
        weft: step.ackP99Ms,
        peer: 'Consul (published)',
        peerValue: 1000,
        goal: { kind: 'at-most', value: 1000 },
        note: step.allAcked
          ? undefined
          : `not every proxy had every change within 20 s (streams dropped: ${Math.max(0, ...step.changes.map((c) => c.dropped ?? 0))}; closed by the control plane for silence: ${step.silenceClosures})`,
      }),
    );
  }
  figures.push(
    figure({
      name: 'cp-proxies-connected',
      unit: 'proxies',
      weft: largest?.connected,
      peer: 'istiod (published): 1,600-2,000 per core',
      peerValue: 2000,
      goal: { kind: 'at-least', value: 10_000 },
    }),
    figure({
      name: 'cp-bytes-per-proxy',
      unit: 'KiB',
      weft: largest?.kibPerProxy,
      peer: 'istiod (published): about 1.5 MB each',
      peerValue: 1536,
      goal: { kind: 'at-most', value: 50 },
      note: largest ? `control-plane RSS growth from 0 to ${largest.connected} connected proxies, divided by their number` : undefined,
    }),
    figure({
      name: 'cp-compile-large',
      unit: 'ms',
      weft: compileResult.coldCpuMedianMs,
      peer: 'target',
      peerValue: 500,
      goal: { kind: 'at-most', value: 500 },
      note: `${compileResult.services} services, ${compileResult.rules} route rules, ${compileResult.endpoints} endpoints; median main-thread CPU time of cold compiles for one proxy, which a shared machine disturbs less than wall time (wall: median ${round(compileResult.coldMedianMs)} ms, min ${round(compileResult.coldMinMs)} ms; the very first compile, with V8 warming up: ${round(compileResult.firstMs)} ms)`,
    }),
    figure({
      name: 'cp-compile-large-another-proxy',
      unit: 'ms',
      weft: compileResult.anotherProxyMedianMs,
      peer: 'none',
      peerValue: null,
      goal: { kind: 'none' },
      note: 'the same input for one more proxy: the node-independent half is reused',
    }),
  );
  return figures;
}

function controlplaneMarkdown(steps: readonly StepResult[], c: CompileResult, figures: readonly Figure[], settings: Settings): string {
  const lines = [
    figuresMarkdown(figures),
    '',
    `Each step: a fresh control plane (SQLite store) with ${settings.meshServices} services (3 endpoints each); the simulated proxies connect, then ${settings.changes} changes each move one endpoint; times are from the apply request until a proxy has the new snapshot (a change not everywhere within 20 s counts as infinite), medians over the changes.`,
    '',
    '| proxies | connected | connect s | snapshot KiB | ack p50 ms | ack p99 ms | ack max ms | CP RSS before MiB | CP RSS connected MiB | KiB / proxy |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of steps) {
    lines.push(
      `| ${s.requested} | ${s.connected} | ${round(s.connectMs / 1000)} | ${round(s.snapshotBytes / 1024)} | ${round(s.ackP50Ms)} | ${round(s.ackP99Ms)} | ${round(s.ackMaxMs)} | ${round(s.cpRssBeforeKiB / 1024)} | ${round(s.cpRssConnectedKiB / 1024)} | ${round(s.kibPerProxy)} |`,
    );
  }
  lines.push(
    '',
    `Compile (${c.services} services, ${c.rules} rules, ${c.endpoints} endpoints): cold median ${round(c.coldCpuMedianMs)} ms of CPU, ${round(c.coldMedianMs)} ms wall (min ${round(c.coldMinMs)}, very first ${round(c.firstMs)}); one more proxy ${round(c.anotherProxyMedianMs)} ms; consistency check ${round(c.checkMs)} ms; snapshot ${round(c.snapshotBytes / 2 ** 20)} MiB of JSON.`,
  );
  return lines.join('\n');
}
