// The measurement phases shared by the data-plane and framing suites, run over topologies that are all up at once.
//
// Each phase visits the topologies in turn, round after round (every other
// round in reverse), so that noise from the shared machine lands on all of
// them alike. Phases:
//   1. idle RSS, after a settle, then a warm-up wrk run per topology;
//   2. latency at a fixed rate (open loop, 16 connections), with CPU and RSS sampled per proxy;
//   3. maximum throughput (wrk, 32 connections), CPU per request at saturation;
//   4. latency at 50 % of each topology's own saturation (open loop, 32 connections);
//   5. peak RSS (the kernel's high-water mark) after all of it.
import type { SuiteContext } from './figures.ts';
import { runOpenLoop, type LatencyMs, type OpenLoopResult } from './openloop.ts';
import { cpuSeconds, peakRssMiB, privateRssMiB, processTree, rssMiB, sampleRss } from './proc.ts';
import { median } from './stats.ts';
import type { Topology } from './topology.ts';
import { runWrk } from './wrk.ts';

export interface MeasureSettings {
  throughputRounds: number;
  throughputS: number;
  /**
   * A wrk run per topology after the idle figures and before anything is counted; 0 for none. A sidecar runs for
   * days: its figures are those of compiled code and filled pools, so V8's optimising compiler (which otherwise runs
   * on background threads, its CPU counted, through a sidecar's first ~10,000–30,000 requests) and the connection
   * pools are given this time to settle. Every topology gets it alike.
   */
  warmupS: number;
  latencyRounds: number;
  latencyS: number;
  latencyWarmupS: number;
  fixedRate: number;
  fixedConnections: number;
  halfSaturation: boolean;
  halfS: number;
  idleSettleMs: number;
  wrkConnections: number;
}

export interface ProxyResources {
  name: string;
  idleRssMiB: number;
  /** During the fixed-rate runs: the highest and the median RSS sample. */
  fixedRatePeakRssMiB: number;
  fixedRateSteadyRssMiB: number;
  /** The same, private memory only (RssAnon: without the shared, file-backed pages of the executable). */
  idlePrivateRssMiB: number;
  fixedRatePeakPrivateRssMiB: number;
  /** CPU seconds per 1,000 requests (= vCPU at 1,000 rps), at the fixed rate and at saturation. */
  cpuPer1000AtFixedRate: number;
  cpuPer1000AtMax: number;
  /** The kernel's high-water mark at the end (after saturation). */
  peakRssMiB: number;
}

export interface TopologyResult {
  id: string;
  system: string;
  hops: number;
  mtls: boolean;
  description: string;
  throughputRps: number;
  throughputRuns: number[];
  throughputErrors: number;
  fixedRate: { rate: number; latencyMs: LatencyMs; achievedRps: number; errors: number; runs: number };
  halfSaturation?: { rate: number; latencyMs: LatencyMs; achievedRps: number; errors: number };
  proxies: ProxyResources[];
}

interface Work {
  topology: Topology;
  /** Each proxy's pid plus its children (nginx's worker), resolved once everything is up. */
  trees: number[][];
  idleRss: number[];
  idlePrivateRss: number[];
  fixedRuns: OpenLoopResult[];
  fixedCpu: number[];
  fixedRequests: number;
  fixedRssSamples: number[][];
  fixedPrivateRssSamples: number[][];
  wrkRuns: { rps: number; errors: number }[];
  maxCpu: number[];
  maxRequests: number;
  half?: OpenLoopResult;
}

/**
 * Every other round runs the topologies in reverse. The systems come in blocks (the peers', then weft's), and
 * this machine's slow spells last tens of seconds: in a fixed order one spell can land on one system's whole
 * block in every round.
 */
function inRoundOrder<T>(items: readonly T[], round: number): readonly T[] {
  return round % 2 === 0 ? items : [...items].reverse();
}

function medianLatency(runs: readonly OpenLoopResult[]): LatencyMs {
  const pick = (key: keyof LatencyMs) => median(runs.map((r) => r.latencyMs[key]));
  return { p50: pick('p50'), p90: pick('p90'), p99: pick('p99'), p999: pick('p999'), max: pick('max'), mean: pick('mean') };
}

export async function measureTopologies(
  ctx: SuiteContext,
  topologies: readonly Topology[],
  settings: MeasureSettings,
  options: { scratchDir: string; wrk: boolean; label: string },
): Promise<TopologyResult[]> {
  const works: Work[] = topologies.map((topology) => ({
    topology,
    trees: topology.proxies.map((p) => processTree(p.pid)),
    idleRss: [],
    idlePrivateRss: [],
    fixedRuns: [],
    fixedCpu: topology.proxies.map(() => 0),
    fixedRequests: 0,
    fixedRssSamples: topology.proxies.map(() => []),
    fixedPrivateRssSamples: topology.proxies.map(() => []),
    wrkRuns: [],
    maxCpu: topology.proxies.map(() => 0),
    maxRequests: 0,
  }));

  await new Promise((resolve) => setTimeout(resolve, settings.idleSettleMs));
  for (const w of works) {
    w.idleRss = w.trees.map((tree) => rssMiB(tree));
    w.idlePrivateRss = w.trees.map((tree) => privateRssMiB(tree));
  }
  if (options.wrk && settings.warmupS > 0) {
    for (const w of works) {
      ctx.log(`${options.label}: warm-up ${settings.warmupS} s: ${w.topology.id}`);
      await runWrk({ port: w.topology.port, path: w.topology.path }, { connections: settings.wrkConnections, pinning: ctx.pinning, scratchDir: options.scratchDir, durationS: settings.warmupS });
    }
  }

  for (let round = 0; round < settings.latencyRounds; round++) {
    for (const w of inRoundOrder(works, round)) {
      ctx.log(`${options.label}: ${settings.fixedRate} rps, round ${round + 1}/${settings.latencyRounds}: ${w.topology.id}`);
      const cpuBefore = w.trees.map((tree) => cpuSeconds(tree));
      const samplers = w.trees.map((tree) => sampleRss(tree));
      const privateSamplers = w.trees.map((tree) => sampleRss(tree, 200, privateRssMiB));
      const result = await runOpenLoop({
        port: w.topology.port,
        path: w.topology.path,
        rate: settings.fixedRate,
        durationS: settings.latencyS,
        warmupS: settings.latencyWarmupS,
        connections: settings.fixedConnections,
        pinning: ctx.pinning,
      });
      samplers.forEach((s, i) => w.fixedRssSamples[i]!.push(...s.stop()));
      privateSamplers.forEach((s, i) => w.fixedPrivateRssSamples[i]!.push(...s.stop()));
      w.trees.forEach((tree, i) => (w.fixedCpu[i]! += cpuSeconds(tree) - cpuBefore[i]!));
      w.fixedRequests += result.completed;
      w.fixedRuns.push(result);
    }
  }

  if (options.wrk) {
    for (let round = 0; round < settings.throughputRounds; round++) {
      for (const w of inRoundOrder(works, round)) {
        const target = { port: w.topology.port, path: w.topology.path };
        const wrkOptions = { connections: settings.wrkConnections, pinning: ctx.pinning, scratchDir: options.scratchDir };
        const cpuBefore = w.trees.map((tree) => cpuSeconds(tree));
        const result = await runWrk(target, { ...wrkOptions, durationS: settings.throughputS });
        w.trees.forEach((tree, i) => (w.maxCpu[i]! += cpuSeconds(tree) - cpuBefore[i]!));
        w.maxRequests += result.requests;
        w.wrkRuns.push({ rps: result.rps, errors: result.errors });
        ctx.log(`${options.label}: throughput round ${round + 1}/${settings.throughputRounds}: ${w.topology.id} ${Math.round(result.rps)} req/s`);
      }
    }
  }

  if (settings.halfSaturation && options.wrk) {
    for (const w of works) {
      if (ctx.deadline - Date.now() < 60_000) {
        ctx.log(`${options.label}: time budget nearly spent, skipping the remaining half-saturation runs`);
        break;
      }
      const rate = Math.max(100, Math.round(median(w.wrkRuns.map((r) => r.rps)) / 2));
      ctx.log(`${options.label}: half saturation (${rate} rps): ${w.topology.id}`);
      w.half = await runOpenLoop({ port: w.topology.port, path: w.topology.path, rate, durationS: settings.halfS, warmupS: 1, connections: 32, pinning: ctx.pinning });
    }
  }

  return works.map((w) => {
    const r: TopologyResult = {
      id: w.topology.id,
      system: w.topology.system,
      hops: w.topology.hops,
      mtls: w.topology.mtls,
      description: w.topology.description,
      throughputRps: median(w.wrkRuns.map((x) => x.rps)),
      throughputRuns: w.wrkRuns.map((x) => Math.round(x.rps)),
      throughputErrors: w.wrkRuns.reduce((sum, x) => sum + x.errors, 0),
      fixedRate: {
        rate: settings.fixedRate,
        latencyMs: medianLatency(w.fixedRuns),
        achievedRps: median(w.fixedRuns.map((x) => x.achievedRps)),
        errors: w.fixedRuns.reduce((sum, x) => sum + x.errors, 0),
        runs: w.fixedRuns.length,
      },
      proxies: w.topology.proxies.map((p, i) => ({
        name: p.name,
        idleRssMiB: w.idleRss[i]!,
        fixedRatePeakRssMiB: Math.max(...w.fixedRssSamples[i]!),
        fixedRateSteadyRssMiB: median(w.fixedRssSamples[i]!),
        idlePrivateRssMiB: w.idlePrivateRss[i]!,
        fixedRatePeakPrivateRssMiB: Math.max(...w.fixedPrivateRssSamples[i]!),
        cpuPer1000AtFixedRate: w.fixedRequests > 0 ? (w.fixedCpu[i]! / w.fixedRequests) * 1000 : NaN,
        cpuPer1000AtMax: w.maxRequests > 0 ? (w.maxCpu[i]! / w.maxRequests) * 1000 : NaN,
        peakRssMiB: peakRssMiB(processTree(p.pid)),
      })),
    };
    if (w.half) r.halfSaturation = { rate: w.half.rate, latencyMs: w.half.latencyMs, achievedRps: w.half.achievedRps, errors: w.half.errors };
    return r;
  });
}
