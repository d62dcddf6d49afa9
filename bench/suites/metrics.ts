// The metrics-overhead suite: the same weft mesh with request metrics on and off (--no-request-metrics), and the hot path's ns per request.
//
// Two stacks (control plane + client and server sidecars each) run side by
// side in one run, so load on the machine hits both alike; the figures are
// the "on" stack's throughput over the "off" stack's (issue #6: at least 0.95)
// and bench/metrics-micro.ts's nanoseconds per recorded request.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';
import { makeCerts } from '../lib/certs.ts';
import { figure, figuresMarkdown, type Figure, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { hasCommand, pinned } from '../lib/machine.ts';
import { measureTopologies, type MeasureSettings, type TopologyResult } from '../lib/measure.ts';
import { startBenchProcess, type BenchProcess } from '../lib/proc.ts';
import { round } from '../lib/stats.ts';
import { startWeftTopologies } from '../lib/weft.ts';

const upstreamScript = fileURLToPath(new URL('../upstream.ts', import.meta.url));
const microScript = fileURLToPath(new URL('../metrics-micro.ts', import.meta.url));

// Nine short rounds, not three long ones: rounds of one configuration vary by ±10 % on a shared machine, and the
// figure is the median of paired on/off ratios, which needs many pairs to settle within the 5 % it judges.
const FULL: MeasureSettings = {
  throughputRounds: 9,
  throughputS: 3,
  warmupS: 2,
  latencyRounds: 1,
  latencyS: 3,
  latencyWarmupS: 1,
  fixedRate: 500,
  fixedConnections: 16,
  halfSaturation: false,
  halfS: 0,
  idleSettleMs: 1000,
  wrkConnections: 32,
};

const QUICK: MeasureSettings = { ...FULL, throughputRounds: 1, throughputS: 1, warmupS: 0, latencyS: 0.5, latencyWarmupS: 0.1, fixedRate: 200, idleSettleMs: 100 };

export async function runMetrics(ctx: SuiteContext): Promise<SuiteOutcome> {
  const settings = ctx.quick ? QUICK : FULL;
  const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-metrics-'));
  const started: BenchProcess[] = [];
  try {
    const up = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [upstreamScript]);
    const upstream = await startBenchProcess('upstream', up.command, up.args, { readyLine: true });
    started.push(upstream);
    const topologyCtx = { pinning: ctx.pinning, scratchDir: scratch, upstreamPort: Number(upstream.ready!.port), certs: makeCerts(scratch), log: ctx.log };
    const on = await startWeftTopologies(topologyCtx, { variant: 'on' });
    started.push(...on.processes);
    const off = await startWeftTopologies(topologyCtx, { variant: 'off', proxyArgs: ['--no-request-metrics'] });
    started.push(...off.processes);
    const wanted = (id: string) => /-(1hop|2hop-mtls)$/.test(id);
    const topologies = [...on.topologies, ...off.topologies].filter((t) => wanted(t.id));
    const results = await measureTopologies(ctx, topologies, settings, { scratchDir: scratch, wrk: hasCommand('wrk'), label: 'metrics' });

    const micro = await runProcess(nodeBinary(), [microScript, '--iterations', ctx.quick ? '200000' : '2000000'], { timeoutMs: 120_000 });
    const ns = micro.code === 0 ? (JSON.parse(micro.stdout) as { nsPerRequest: Record<string, number> }).nsPerRequest : undefined;

    const figures = metricsFigures(results, ns);
    return {
      report: { suite: 'metrics', machine: ctx.machine, figures },
      details: { settings, node: process.version, topologies: results, nsPerRequest: ns ?? null },
      markdown: figuresMarkdown(figures),
    };
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function metricsFigures(results: readonly TopologyResult[], ns: Record<string, number> | undefined): Figure[] {
  const byId = (id: string) => results.find((r) => r.id === id);
  const pair = (hops: string) => [byId(`weft-on-${hops}`), byId(`weft-off-${hops}`)] as const;
  const [on2, off2] = pair('2hop-mtls');
  const [on1, off1] = pair('1hop');
  const p99 = (r: TopologyResult | undefined) => r?.fixedRate.latencyMs.p99;
  // Rounds run on, off, on, off...: a round's pair saw the same machine, so the median of per-round ratios
  // resists the drift of a shared machine that the ratio of medians does not.
  const paired = (on: TopologyResult | undefined, off: TopologyResult | undefined) => {
    if (!on || !off) return undefined;
    const ratios = on.throughputRuns.map((rps, i) => rps / (off.throughputRuns[i] ?? NaN)).filter((r) => Number.isFinite(r) && r > 0);
    if (ratios.length === 0) return undefined;
    ratios.sort((a, b) => a - b);
    const mid = Math.floor(ratios.length / 2);
    return ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
  };
  return [
    figure({ name: 'metrics-overhead-two-hop-paired-ratio', unit: 'on/off', weft: paired(on2, off2), peer: '1 (metrics off)', peerValue: 1, goal: { kind: 'at-least', value: 0.95 }, note: 'median over rounds of (on req/s ÷ off req/s) measured back to back' }),
    figure({ name: 'metrics-overhead-one-hop-paired-ratio', unit: 'on/off', weft: paired(on1, off1), peer: '1 (metrics off)', peerValue: 1, goal: { kind: 'at-least', value: 0.95 } }),
    figure({ name: 'metrics-overhead-two-hop-throughput', unit: 'req/s', weft: on2?.throughputRps, peer: 'weft --no-request-metrics', peerValue: off2?.throughputRps, goal: { kind: 'ratio-at-least', value: 0.95 }, note: 'two sidecars with mTLS, request metrics on vs off' }),
    figure({ name: 'metrics-overhead-one-hop-throughput', unit: 'req/s', weft: on1?.throughputRps, peer: 'weft --no-request-metrics', peerValue: off1?.throughputRps, goal: { kind: 'ratio-at-least', value: 0.95 } }),
    figure({ name: 'metrics-overhead-two-hop-p99', unit: 'ms', weft: p99(on2), peer: 'weft --no-request-metrics', peerValue: p99(off2), goal: { kind: 'none' }, note: `at ${on2?.fixedRate.rate ?? ''} rps, open loop` }),
    figure({
      name: 'metrics-ns-per-request',
      unit: 'ns',
      weft: ns ? round(Math.max(ns.outboundOneEdge ?? 0, ns.outbound50Edges3Codes ?? 0, ns.inboundOneEdge ?? 0), 1) : undefined,
      peer: 'metrics off (same loop)',
      peerValue: ns?.metricsOff,
      goal: { kind: 'at-most', value: 300 },
      note: 'bench/metrics-micro.ts: worst of one edge, 50 edges x 3 codes, inbound',
    }),
  ];
}
