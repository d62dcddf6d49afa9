// The metrics-overhead suite: the same weft mesh with request metrics on and off (--no-request-metrics), compared in many short ABBA-paired rounds, plus the hot path's ns per request.
//
// Two stacks (control plane, client and server sidecars each, the same
// bench/peers/weft/mesh.yaml, the same binary) run side by side for the whole
// suite; they differ only in `--no-request-metrics` on the "off" sidecars,
// which stops request/TCP series and their push to the control plane and
// nothing else. The judged figure (issue #6: throughput with metrics on ≥ 95 %
// of metrics off) is the median of per-pair on ÷ off throughput ratios over
// many short saturation pairs ordered ABBA, only one stack loaded at a time,
// with its interquartile range and a binomial confidence interval. Beside it,
// CPU time per request of the proxy processes, on ÷ off, from rounds that load
// both stacks at the same fixed rate at the same moment: the steadier figure
// on a shared machine (bench/lib/paired.ts says why).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';
import { makeCerts } from '../lib/certs.ts';
import { figure, figuresMarkdown, type Figure, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { hasCommand, pinned } from '../lib/machine.ts';
import { runFixedRateRounds, runPairedRounds, summarizeFixedRate, summarizePaired, warmUp, type FixedRateResult, type PairedResult, type SampleSummary } from '../lib/paired.ts';
import { startBenchProcess, type BenchProcess } from '../lib/proc.ts';
import { round } from '../lib/stats.ts';
import type { TopologyContext } from '../lib/topology.ts';
import { startWeftTopologies, type WeftStack } from '../lib/weft.ts';

const upstreamScript = fileURLToPath(new URL('../upstream.ts', import.meta.url));
const microScript = fileURLToPath(new URL('../metrics-micro.ts', import.meta.url));

/** The issue's threshold: metrics on keeps at least this share of the throughput with metrics off. */
const TARGET = 0.95;

export interface MetricsSettings {
  /**
   * The two stacks are started afresh this many times, one pair of instances after another, and the pairs and
   * rounds below are shared among them: two Node processes running the same code can differ by several % for
   * the life of the process (what the JIT made of it, where its memory landed), which no interleaving cancels.
   */
  instances: number;
  /** One wrk run of a saturation pair, whole seconds (wrk takes no fractions). */
  roundS: number;
  /** A wrk run per topology before anything counts; 0 for none (then the fixed rate is `defaultRate`). */
  warmupS: number;
  /** On/off saturation pairs per path, over all instances (each gets an equal, even share: whole ABBA blocks). */
  twoHopPairs: number;
  oneHopPairs: number;
  /** No new ABBA block starts this long after the suite began (instance i of n stops at (i+1)/n of it). */
  pairsBudgetMs: number;
  wrkConnections: number;
  /** Fixed-rate rounds (both stacks loaded at once): the rate is this share of the slower side's warm-up req/s. */
  fixedRateShare: number;
  defaultRate: number;
  fixedRateS: number;
  /** Fixed-rate rounds per path, over all instances. */
  twoHopFixedRounds: number;
  oneHopFixedRounds: number;
  microIterations: number;
}

// Budget ~6 minutes. Per instance: the stacks start in ~12 s, warm up in ~9 s, the fixed-rate rounds take ~16 s
// and the saturation pairs ~70 s (2.15 s a run); then the micro-benchmark ~5 s. 2 s runs: long enough that wrk's
// start and its new connections are a small part of a run, short enough that the two runs of a pair see nearly
// the same machine. Two hops with mTLS (the mesh's data path) get most of the pairs.
const FULL: MetricsSettings = {
  instances: 3,
  roundS: 2,
  warmupS: 2,
  twoHopPairs: 36,
  oneHopPairs: 12,
  pairsBudgetMs: 330_000,
  wrkConnections: 32,
  // A quarter of one side's saturation each, half in all: below saturation even when the machine's other
  // tenants take a share, so both sides serve exactly the rate and their CPU time compares like for like.
  fixedRateShare: 0.25,
  defaultRate: 200,
  fixedRateS: 2,
  twoHopFixedRounds: 12,
  oneHopFixedRounds: 6,
  microIterations: 2_000_000,
};

/** Smoke durations (npm test): one instance, one ABBA block on two hops, one pair on one hop; the figures mean nothing. */
const QUICK: MetricsSettings = {
  ...FULL,
  instances: 1,
  roundS: 1,
  warmupS: 0,
  twoHopPairs: 2,
  oneHopPairs: 1,
  pairsBudgetMs: 60_000,
  fixedRateS: 0.5,
  twoHopFixedRounds: 1,
  oneHopFixedRounds: 1,
  microIterations: 200_000,
};

export function runMetrics(ctx: SuiteContext): Promise<SuiteOutcome> {
  return runMetricsWith(ctx, ctx.quick ? QUICK : FULL);
}

interface Measured {
  /** All instances' rounds together: what the figures report. */
  paired: PairedResult[];
  fixed: FixedRateResult[];
  /** Each instance's own summaries: how far apart instances of the same stacks land. */
  perInstance: { paired: PairedResult[]; fixed: FixedRateResult[] }[];
}

/** An instance's share of `total`, rounded up to `multiple`; at least `multiple` when total > 0. */
function share(total: number, instances: number, multiple: number): number {
  if (total <= 0) return 0;
  return Math.max(multiple, Math.ceil(total / instances / multiple) * multiple);
}

/**
 * Starts one stack, retrying twice: startWeftTopologies picks its ports before the processes bind them, and
 * another process of a busy machine may take one in between (EADDRINUSE); the suite starts six stacks, so
 * that small chance adds up.
 */
async function startStack(ctx: SuiteContext, topologyCtx: TopologyContext, variant: 'on' | 'off'): Promise<WeftStack> {
  for (let attempt = 1; ; attempt++) {
    const dir = join(topologyCtx.scratchDir, `attempt-${attempt}`);
    mkdirSync(dir, { recursive: true });
    try {
      return await startWeftTopologies({ ...topologyCtx, scratchDir: dir }, { variant, ...(variant === 'off' ? { proxyArgs: ['--no-request-metrics'] } : {}) });
    } catch (error) {
      if (attempt >= 3) throw error;
      ctx.log(`metrics: the metrics-${variant} stack failed to start (attempt ${attempt}), retrying: ${(error as Error).message.split('\n')[0]}`);
    }
  }
}

export async function runMetricsWith(ctx: SuiteContext, settings: MetricsSettings): Promise<SuiteOutcome> {
  const startedAt = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-metrics-'));
  const started: BenchProcess[] = [];
  try {
    const up = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [upstreamScript]);
    const upstream = await startBenchProcess('upstream', up.command, up.args, { readyLine: true });
    started.push(upstream);
    const certs = makeCerts(scratch);
    const wrk = hasCommand('wrk');
    if (!wrk) ctx.log('metrics: wrk is not installed; no throughput figures, fixed-rate rounds at the default rate');
    const measured: Measured = { paired: [], fixed: [], perInstance: [] };
    const instances = Math.max(1, settings.instances);
    // Each instance runs whole ABBA blocks (an even number of pairs), except the smoke run's single one-hop pair.
    const pairsEach = { '2hop-mtls': share(settings.twoHopPairs, instances, 2), '1hop': share(settings.oneHopPairs, instances, settings.oneHopPairs === 1 ? 1 : 2) };
    const fixedEach = { '2hop-mtls': share(settings.twoHopFixedRounds, instances, 1), '1hop': share(settings.oneHopFixedRounds, instances, 1) };

    for (let instance = 0; instance < instances; instance++) {
      if (instance > 0 && Date.now() >= Math.min(startedAt + settings.pairsBudgetMs, ctx.deadline - 120_000)) {
        ctx.log(`metrics: time budget reached after ${instance} instance(s) of the stacks`);
        break;
      }
      const dir = join(scratch, `instance-${instance}`);
      mkdirSync(dir);
      const topologyCtx = { pinning: ctx.pinning, scratchDir: dir, upstreamPort: Number(upstream.ready!.port), certs, log: ctx.log };
      // Which stack starts first alternates, in case starting first (ports, memory, page cache) matters.
      const stacks: Record<'on' | 'off', WeftStack | undefined> = { on: undefined, off: undefined };
      const live: BenchProcess[] = [];
      for (const variant of instance % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        ctx.log(`metrics: instance ${instance + 1}/${instances}: metrics ${variant}`);
        const stack = await startStack(ctx, { ...topologyCtx, scratchDir: join(dir, variant) }, variant);
        stacks[variant] = stack;
        started.push(...stack.processes);
        live.push(...stack.processes);
      }
      const find = (variant: 'on' | 'off', path: string) => {
        const t = stacks[variant]!.topologies.find((x) => x.id === `weft-${variant}-${path}`);
        if (!t) throw new Error(`weft stack has no topology weft-${variant}-${path}`);
        return t;
      };
      const comparisons = (['2hop-mtls', '1hop'] as const).map((id) => ({ id, a: find('on', id), b: find('off', id), pairs: pairsEach[id], fixedRounds: fixedEach[id] }));

      const warm = wrk && settings.warmupS > 0 ? await warmUp(ctx, comparisons.flatMap((c) => [c.a, c.b]), { durationS: settings.warmupS, wrkConnections: settings.wrkConnections, scratchDir: dir, label: 'metrics' }) : undefined;
      const fixed: FixedRateResult[] = [];
      for (const c of comparisons) {
        const slower = warm ? Math.min(warm.get(c.a) ?? NaN, warm.get(c.b) ?? NaN) : NaN;
        const rate = Number.isFinite(slower) ? Math.max(100, Math.round((slower * settings.fixedRateShare) / 50) * 50) : settings.defaultRate;
        fixed.push(await runFixedRateRounds(ctx, c, { rate, roundS: settings.fixedRateS, rounds: c.fixedRounds, connections: 16, label: 'metrics' }));
      }
      const paired = wrk
        ? await runPairedRounds(ctx, comparisons, {
            roundS: settings.roundS,
            wrkConnections: settings.wrkConnections,
            stopAt: Math.min(startedAt + (settings.pairsBudgetMs * (instance + 1)) / instances, ctx.deadline - 90_000),
            scratchDir: dir,
            label: 'metrics',
          })
        : [];
      measured.perInstance.push({ paired, fixed });
      await Promise.all(live.map((p) => p.stop()));
    }

    const ids = ['2hop-mtls', '1hop'];
    for (const id of ids) {
      const pairedHere = measured.perInstance.flatMap((m) => m.paired.filter((p) => p.id === id));
      if (pairedHere.length > 0) measured.paired.push(summarizePaired(id, 'weft-on-' + id, 'weft-off-' + id, pairedHere.flatMap((p) => p.rounds)));
      const fixedHere = measured.perInstance.flatMap((m) => m.fixed.filter((f) => f.id === id));
      if (fixedHere.length > 0) measured.fixed.push(summarizeFixedRate(id, 'weft-on-' + id, 'weft-off-' + id, fixedHere.flatMap((f) => f.rounds)));
    }

    const micro = await runProcess(nodeBinary(), [microScript, '--iterations', String(settings.microIterations)], { timeoutMs: 120_000 });
    const ns = micro.code === 0 ? (JSON.parse(micro.stdout) as { nsPerRequest: Record<string, number> }).nsPerRequest : undefined;

    const figures = metricsFigures(measured, ns, settings);
    return {
      report: { suite: 'metrics', machine: ctx.machine, figures },
      details: { settings, node: process.version, ...measured, nsPerRequest: ns ?? null },
      markdown: figuresMarkdown(figures),
    };
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(scratch, { recursive: true, force: true });
  }
}

const r3 = (value: number) => round(value, 3);

function spread(s: SampleSummary): string {
  return `IQR ${r3(s.q1)}–${r3(s.q3)}, ${Math.floor(s.ciLevel * 1000) / 10} % CI of the median ${r3(s.ciLow)}–${r3(s.ciHigh)}`;
}

/** What the fixed-rate CPU rounds say, in words, and what the micro-benchmark predicted. */
function cpuSentence(f: FixedRateResult, hops: number, nsPerRecord: number | undefined): string {
  const c = f.cpuPerRequestRatio!;
  const overhead = (c.median - 1) * 100;
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${round(x, 2)} %`;
  let text = `CPU time per request of the proxies at ${f.rates.join(' / ')} rps each, both stacks loaded at once, on ÷ off: median ${r3(c.median)} over ${c.n} rounds (${spread(c)})`;
  // Fewer than 6 rounds give no 95 % interval: say nothing about significance then.
  if (c.n >= 6) {
    if (c.ciLow > 1) text += `: metrics cost measurably more CPU per request (${signed(overhead)})`;
    else if (c.ciHigh < 1) text += `: on used less CPU than off (${signed(overhead)}), i.e. no cost above the noise`;
    else text += `: no CPU cost distinguishable from noise (${signed(overhead)})`;
    // A CPU-bound proxy's throughput is 1 / CPU per request: 5 % less throughput is 1/0.95 = 1.053 × the CPU.
    text += c.ciHigh <= 1 / TARGET ? `; even the interval's top (${r3(c.ciHigh)}) is below the ${r3(1 / TARGET)} that 5 % less throughput would take` : `; the interval's top (${r3(c.ciHigh)}) reaches past ${r3(1 / TARGET)}, the cost 5 % less throughput would take`;
  }
  if (nsPerRecord !== undefined && Number.isFinite(f.cpuUsPerRequest.b)) {
    // Each proxy on the path records the request once: the client sidecar as source, the server sidecar as destination.
    const predicted = ((hops * nsPerRecord) / 1000 / f.cpuUsPerRequest.b) * 100;
    text += `; the micro-benchmark predicts +${round(predicted, 2)} % (${hops} × ${round(nsPerRecord, 3)} ns over ${round(f.cpuUsPerRequest.b, 3)} µs)`;
  }
  if (f.roundsBehind > 0) text += `; in ${f.roundsBehind} round(s) a side fell behind the rate`;
  return text;
}

/** The judged figure's note: how it was measured, how sure it is, and what CPU time per request says. */
function pairedNote(p: PairedResult, f: FixedRateResult | undefined, perInstance: readonly number[], hops: number, nsPerRecord: number | undefined, roundS: number): string {
  const t = p.throughputRatio!;
  const parts = [`median of ${t.n} ABBA-ordered pairs of ${roundS} s wrk runs (one stack loaded at a time), on ÷ off req/s (${spread(t)})`];
  if (perInstance.length > 1) parts.push(`medians of the ${perInstance.length} instances of the stacks: ${perInstance.map(r3).join(', ')}`);
  if (t.n >= 6) {
    if (t.ciLow >= TARGET) parts.push(`the whole interval is ≥ ${TARGET}: met with confidence`);
    else if (t.ciHigh < TARGET) parts.push(`the whole interval is < ${TARGET}: not met with confidence`);
    else parts.push(`the interval straddles ${TARGET}: the throughput noise is too large to be sure from throughput alone`);
  }
  if (f?.cpuPerRequestRatio) parts.push(cpuSentence(f, hops, nsPerRecord));
  if (p.errors.a + p.errors.b > 0) parts.push(`wrk errors: on ${p.errors.a}, off ${p.errors.b}`);
  return parts.join('; ');
}

export function metricsFigures(measured: Measured, ns: Record<string, number> | undefined, settings: Pick<MetricsSettings, 'roundS'>): Figure[] {
  const paired = (id: string) => measured.paired.find((p) => p.id === id);
  const fixed = (id: string) => measured.fixed.find((f) => f.id === id);
  const perInstanceMedians = (id: string) => measured.perInstance.map((m) => m.paired.find((p) => p.id === id)?.throughputRatio?.median ?? NaN).filter((x) => Number.isFinite(x));
  const nsPerRecord = ns ? Math.max(ns.outboundOneEdge ?? 0, ns.outbound50Edges3Codes ?? 0, ns.inboundOneEdge ?? 0) : undefined;
  const ratioFigure = (name: string, id: string, hops: number) => {
    const p = paired(id);
    const f = fixed(id);
    return figure({
      name,
      unit: 'on/off',
      weft: p?.throughputRatio?.median,
      peer: '1 (metrics off)',
      peerValue: 1,
      goal: { kind: 'at-least', value: TARGET },
      note: p?.throughputRatio ? pairedNote(p, f, perInstanceMedians(id), hops, nsPerRecord, settings.roundS) : `throughput not measured (wrk missing)${f?.cpuPerRequestRatio ? `; ${cpuSentence(f, hops, nsPerRecord)}` : ''}`,
    });
  };
  const cpuFigure = (name: string, id: string, who: string) => {
    const f = fixed(id);
    return figure({
      name,
      unit: 'µs',
      weft: f?.cpuUsPerRequest.a,
      peer: 'weft --no-request-metrics',
      peerValue: f?.cpuUsPerRequest.b,
      goal: { kind: 'none' },
      note: `CPU time (user + system, /proc per thread) of ${who} per request, at ${f?.rates.join(' / ') ?? '?'} rps each with both stacks loaded at once, all rounds pooled${f?.cpuPerRequestRatio ? `; per-round on ÷ off median ${r3(f.cpuPerRequestRatio.median)}` : ''}${measured.perInstance.length > 1 ? ` (instances: ${measured.perInstance.map((m) => r3(m.fixed.find((x) => x.id === id)?.cpuPerRequestRatio?.median ?? NaN)).join(', ')})` : ''}`,
    });
  };
  const two = paired('2hop-mtls');
  const one = paired('1hop');
  const twoFixed = fixed('2hop-mtls');
  return [
    ratioFigure('metrics-overhead-two-hop-paired-ratio', '2hop-mtls', 2),
    ratioFigure('metrics-overhead-one-hop-paired-ratio', '1hop', 1),
    figure({ name: 'metrics-overhead-two-hop-throughput', unit: 'req/s', weft: two?.medianRps.a, peer: 'weft --no-request-metrics', peerValue: two?.medianRps.b, goal: { kind: 'none' }, note: 'two sidecars with mTLS, medians of the paired runs; the paired ratio above is the judged figure' }),
    figure({ name: 'metrics-overhead-one-hop-throughput', unit: 'req/s', weft: one?.medianRps.a, peer: 'weft --no-request-metrics', peerValue: one?.medianRps.b, goal: { kind: 'none' } }),
    cpuFigure('metrics-overhead-two-hop-cpu-per-request', '2hop-mtls', 'both sidecars'),
    cpuFigure('metrics-overhead-one-hop-cpu-per-request', '1hop', 'the client sidecar'),
    figure({ name: 'metrics-overhead-two-hop-p99', unit: 'ms', weft: twoFixed?.p99Ms.a, peer: 'weft --no-request-metrics', peerValue: twoFixed?.p99Ms.b, goal: { kind: 'none' }, note: `open loop at ${twoFixed?.rates.join(' / ') ?? '?'} rps each, both stacks loaded at once; median of the rounds' p99` }),
    figure({
      name: 'metrics-ns-per-request',
      unit: 'ns',
      weft: nsPerRecord === undefined ? undefined : round(nsPerRecord, 3),
      peer: 'metrics off (same loop)',
      peerValue: ns?.metricsOff,
      goal: { kind: 'at-most', value: 300 },
      note: 'bench/metrics-micro.ts: worst of one edge, 50 edges x 3 codes, inbound',
    }),
  ];
}
