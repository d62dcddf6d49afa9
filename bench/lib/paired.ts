// A/B comparison of two topologies that are up at once: ABBA-ordered short saturation rounds (throughput), and fixed-rate rounds loading both at once (CPU time per request).
//
// Why this shape: on a shared machine the throughput of one configuration
// drifts by ±10–20 % between rounds, far more than the effects we judge (a few
// %). Two short runs back to back see nearly the same machine, so the ratio
// within a pair cancels much of that drift; ordering the pairs A B, B A, A B
// ... (ABBA) cancels what a linear drift inside a pair would add to the side
// that always runs second; and the median of many such ratios ignores the
// rounds that a neighbour's burst spoiled.
//
// CPU time per request at saturation is no steadier than throughput: a proxy
// that the machine's other tenants preempt more runs on colder caches and
// spends more per request, so the two move together (measured: per-pair CPU
// ratios spread as widely as throughput ratios). At a fixed rate below
// saturation, with both topologies loaded at the same moment, each serves the
// same requests on the same machine at the same time, and the ratio of their
// CPU time (from /proc, per thread in nanoseconds) settles to about ±5 % in a
// dozen rounds on the 2-core bench machine.
import { readdirSync, readFileSync } from 'node:fs';
import type { SuiteContext } from './figures.ts';
import { runOpenLoop } from './openloop.ts';
import { cpuSeconds, processTree } from './proc.ts';
import { median } from './stats.ts';
import type { Topology } from './topology.ts';
import { runWrk } from './wrk.ts';

/** Order statistics of a sample: the median, quartiles and a distribution-free confidence interval for the median. */
export interface SampleSummary {
  n: number;
  median: number;
  /** First and third quartiles (linear interpolation between order statistics). */
  q1: number;
  q3: number;
  min: number;
  max: number;
  /** Order-statistic interval that covers the true median with probability `ciLevel` (binomial, no assumption on the distribution). */
  ciLow: number;
  ciHigh: number;
  /** The interval's exact coverage, ≥ 0.95 when n ≥ 6; below that, [min, max] and its (lower) coverage. */
  ciLevel: number;
}

/** The q-quantile of sorted values (R's type 7). */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (at - low);
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2). */
function binomialHalfCdf(n: number, k: number): number {
  let term = Math.pow(0.5, n);
  let total = 0;
  for (let i = 0; i <= k; i++) {
    total += term;
    term = (term * (n - i)) / (i + 1);
  }
  return total;
}

/**
 * The median and its spread. The confidence interval is [x(k), x(n+1-k)] with the largest k whose
 * coverage 1 − 2·P(B ≤ k−1), B ~ Binomial(n, ½), is still ≥ `level`: each value falls either side of the
 * true median with probability ½, whatever the distribution.
 */
export function summarize(values: readonly number[], level = 0.95): SampleSummary | undefined {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return undefined;
  let k = 1;
  while (k + 1 <= Math.floor(n / 2) && 1 - 2 * binomialHalfCdf(n, k) >= level) k++;
  const coverage = 1 - 2 * binomialHalfCdf(n, k - 1);
  return {
    n,
    median: quantile(sorted, 0.5),
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    min: sorted[0]!,
    max: sorted[n - 1]!,
    ciLow: sorted[k - 1]!,
    ciHigh: sorted[n - k]!,
    ciLevel: coverage,
  };
}

let schedstatReadable: boolean | undefined;

/**
 * CPU seconds (user + system) a set of processes has run so far, from every thread's
 * /proc/PID/task/TID/schedstat (nanoseconds), or from /proc/PID/stat's clock ticks (10 ms) when the kernel
 * keeps no schedstat. Threads that exit between two readings would be lost; Node's threads live as long as
 * the process.
 */
export function preciseCpuSeconds(pids: readonly number[]): number {
  if (schedstatReadable === undefined) {
    try {
      readFileSync('/proc/self/schedstat', 'utf8');
      schedstatReadable = true;
    } catch {
      schedstatReadable = false;
    }
  }
  if (!schedstatReadable) return cpuSeconds(pids);
  let ns = 0;
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  }
  return ns / 1e9;
}

/** Two topologies to compare; `a` is the one judged ("metrics on"), `b` the reference. */
export interface PairedComparison {
  id: string;
  a: Topology;
  b: Topology;
  /** How many A/B pairs to run at most (fewer when the time budget runs out; always whole ABBA blocks). */
  pairs: number;
}

export interface PairedSettings {
  /** One wrk run, seconds. */
  roundS: number;
  wrkConnections: number;
  /** No new ABBA block starts after this time (ms since the epoch). */
  stopAt: number;
  scratchDir: string;
  label: string;
}

export interface PairedRun {
  rps: number;
  requests: number;
  seconds: number;
  errors: number;
  /** CPU seconds the topology's proxy processes used during the run. */
  cpuSeconds: number;
}

export interface PairedRound {
  /** Which side ran first in this pair: A B, then B A, alternately. */
  first: 'a' | 'b';
  a: PairedRun;
  b: PairedRun;
}

export interface PairedResult {
  id: string;
  a: string;
  b: string;
  rounds: PairedRound[];
  /** Per pair: A's requests per second over B's. */
  throughputRatio: SampleSummary | undefined;
  /** Per pair: A's CPU seconds per request over B's. */
  cpuPerRequestRatio: SampleSummary | undefined;
  /** All rounds pooled: CPU microseconds per request of each side (proxy processes, summed over them). */
  cpuUsPerRequest: { a: number; b: number };
  /** Median requests per second of each side. */
  medianRps: { a: number; b: number };
  errors: { a: number; b: number };
}

async function measureRun(ctx: SuiteContext, topology: Topology, trees: number[], settings: PairedSettings, durationS: number): Promise<PairedRun> {
  const before = preciseCpuSeconds(trees);
  const result = await runWrk({ port: topology.port, path: topology.path }, { connections: settings.wrkConnections, durationS, pinning: ctx.pinning, scratchDir: settings.scratchDir });
  const cpu = preciseCpuSeconds(trees) - before;
  return { rps: result.rps, requests: result.requests, seconds: result.seconds, errors: result.errors, cpuSeconds: cpu };
}

/** One wrk run per topology, before anything counts (JIT, pools, TLS sessions); returns each one's req/s. */
export async function warmUp(ctx: SuiteContext, topologies: readonly Topology[], settings: { durationS: number; wrkConnections: number; scratchDir: string; label: string }): Promise<Map<Topology, number>> {
  const rps = new Map<Topology, number>();
  for (const t of topologies) {
    ctx.log(`${settings.label}: warm-up ${settings.durationS} s: ${t.id}`);
    const result = await runWrk({ port: t.port, path: t.path }, { connections: settings.wrkConnections, durationS: settings.durationS, pinning: ctx.pinning, scratchDir: settings.scratchDir });
    rps.set(t, result.rps);
  }
  return rps;
}

/** Runs the comparisons' pairs interleaved (pair i of every comparison, then pair i+1 ...) and summarises each. */
export async function runPairedRounds(ctx: SuiteContext, comparisons: readonly PairedComparison[], settings: PairedSettings): Promise<PairedResult[]> {
  // Resolved once everything is up: a proxy's pid plus any children it has.
  const trees = new Map<Topology, number[]>();
  for (const c of comparisons) for (const t of [c.a, c.b]) trees.set(t, t.proxies.flatMap((p) => processTree(p.pid)));
  const rounds = comparisons.map(() => [] as PairedRound[]);

  const most = Math.max(0, ...comparisons.map((c) => c.pairs));
  for (let i = 0; i < most; i++) {
    // Stop only between ABBA blocks, so both orders stay equally represented.
    if (i % 2 === 0 && Date.now() >= settings.stopAt) {
      ctx.log(`${settings.label}: time budget reached after ${i} pairs`);
      break;
    }
    for (const [index, c] of comparisons.entries()) {
      if (i >= c.pairs) continue;
      const first: 'a' | 'b' = i % 2 === 0 ? 'a' : 'b';
      const order = first === 'a' ? ([c.a, c.b] as const) : ([c.b, c.a] as const);
      const runs: PairedRun[] = [];
      for (const t of order) runs.push(await measureRun(ctx, t, trees.get(t)!, settings, settings.roundS));
      const [a, b] = first === 'a' ? [runs[0]!, runs[1]!] : [runs[1]!, runs[0]!];
      rounds[index]!.push({ first, a, b });
      ctx.log(`${settings.label}: ${c.id} pair ${i + 1}/${c.pairs} (${first === 'a' ? 'A B' : 'B A'}): ${Math.round(a.rps)} / ${Math.round(b.rps)} req/s = ${(a.rps / b.rps).toFixed(3)}`);
    }
  }

  return comparisons.map((c, index) => summarizePaired(c.id, c.a.id, c.b.id, rounds[index]!));
}

/** The summary of paired rounds (of one run, or several merged: e.g. rounds on successive instances of the stacks). */
export function summarizePaired(id: string, a: string, b: string, list: readonly PairedRound[]): PairedResult {
  const perRequest = (run: PairedRun) => (run.requests > 0 ? run.cpuSeconds / run.requests : NaN);
  const pooled = (side: 'a' | 'b') => {
    const requests = list.reduce((s, r) => s + r[side].requests, 0);
    return requests > 0 ? (list.reduce((s, r) => s + r[side].cpuSeconds, 0) / requests) * 1e6 : NaN;
  };
  return {
    id,
    a,
    b,
    rounds: [...list],
    throughputRatio: summarize(list.map((r) => r.a.rps / r.b.rps)),
    cpuPerRequestRatio: summarize(list.map((r) => perRequest(r.a) / perRequest(r.b))),
    cpuUsPerRequest: { a: pooled('a'), b: pooled('b') },
    medianRps: { a: median(list.map((r) => r.a.rps)), b: median(list.map((r) => r.b.rps)) },
    errors: { a: list.reduce((s, r) => s + r.a.errors, 0), b: list.reduce((s, r) => s + r.b.errors, 0) },
  };
}

export interface FixedRateSettings {
  /** Requests per second sent to each side (both at once). */
  rate: number;
  /** One round, seconds. */
  roundS: number;
  rounds: number;
  connections: number;
  label: string;
}

export interface FixedRateRound {
  /** Requests per second sent to each side. */
  rate: number;
  a: FixedRateSide;
  b: FixedRateSide;
}

export interface FixedRateSide {
  completed: number;
  achievedRps: number;
  errors: number;
  cpuSeconds: number;
  p99Ms: number;
}

export interface FixedRateResult {
  id: string;
  a: string;
  b: string;
  /** The distinct rates used (merged results: each run of the stacks derives its own from its warm-up). */
  rates: number[];
  rounds: FixedRateRound[];
  /** Per round: A's CPU seconds per request over B's. */
  cpuPerRequestRatio: SampleSummary | undefined;
  /** All rounds pooled: CPU microseconds per request of each side. */
  cpuUsPerRequest: { a: number; b: number };
  /** Median over rounds of each side's p99 (ms), measured while the other side was loaded too. */
  p99Ms: { a: number; b: number };
  /** Rounds in which a side's generator fell more than 3 % short of the rate (the machine was saturated). */
  roundsBehind: number;
}

/**
 * Loads A and B at the same fixed rate at the same time (an open-loop generator each, on the load core) and
 * compares the CPU their proxy processes used. Whichever starts first alternates between rounds.
 */
export async function runFixedRateRounds(ctx: SuiteContext, comparison: Omit<PairedComparison, 'pairs'>, settings: FixedRateSettings): Promise<FixedRateResult> {
  const { a, b } = comparison;
  const treeA = a.proxies.flatMap((p) => processTree(p.pid));
  const treeB = b.proxies.flatMap((p) => processTree(p.pid));
  const rounds: FixedRateRound[] = [];
  const load = (t: Topology) => runOpenLoop({ port: t.port, path: t.path, rate: settings.rate, durationS: settings.roundS, warmupS: 0, connections: settings.connections, pinning: ctx.pinning });
  for (let i = 0; i < settings.rounds; i++) {
    const beforeA = preciseCpuSeconds(treeA);
    const beforeB = preciseCpuSeconds(treeB);
    const [resultA, resultB] = i % 2 === 0 ? await Promise.all([load(a), load(b)]) : (await Promise.all([load(b), load(a)])).reverse();
    const side = (r: typeof resultA, cpu: number): FixedRateSide => ({ completed: r!.completed, achievedRps: r!.achievedRps, errors: r!.errors, cpuSeconds: cpu, p99Ms: r!.latencyMs.p99 });
    const round = { rate: settings.rate, a: side(resultA, preciseCpuSeconds(treeA) - beforeA), b: side(resultB, preciseCpuSeconds(treeB) - beforeB) };
    rounds.push(round);
    const usA = (round.a.cpuSeconds / round.a.completed) * 1e6;
    const usB = (round.b.cpuSeconds / round.b.completed) * 1e6;
    ctx.log(`${settings.label}: ${comparison.id} at ${settings.rate} rps each, round ${i + 1}/${settings.rounds}: ${Math.round(usA)} / ${Math.round(usB)} µs CPU per request = ${(usA / usB).toFixed(3)}`);
  }
  return summarizeFixedRate(comparison.id, a.id, b.id, rounds);
}

/** The summary of fixed-rate rounds (of one run, or several merged). */
export function summarizeFixedRate(id: string, a: string, b: string, rounds: readonly FixedRateRound[]): FixedRateResult {
  const pooled = (s: 'a' | 'b') => {
    const completed = rounds.reduce((sum, r) => sum + r[s].completed, 0);
    return completed > 0 ? (rounds.reduce((sum, r) => sum + r[s].cpuSeconds, 0) / completed) * 1e6 : NaN;
  };
  const perRequest = (s: FixedRateSide) => (s.completed > 0 ? s.cpuSeconds / s.completed : NaN);
  return {
    id,
    a,
    b,
    rates: [...new Set(rounds.map((r) => r.rate))],
    rounds: [...rounds],
    cpuPerRequestRatio: summarize(rounds.map((r) => perRequest(r.a) / perRequest(r.b))),
    cpuUsPerRequest: { a: pooled('a'), b: pooled('b') },
    p99Ms: { a: median(rounds.map((r) => r.a.p99Ms)), b: median(rounds.map((r) => r.b.p99Ms)) },
    roundsBehind: rounds.filter((r) => r.a.achievedRps < r.rate * 0.97 || r.b.achievedRps < r.rate * 0.97).length,
  };
}
