// The framing micro-benchmark DESIGN.md asks for: between two Node 24 hops, pooled keep-alive HTTP/1.1 (undici Pool) vs HTTP/2 streams (node:http2).
//
// Both hops are bench/framing/hop.ts processes, alike except for the framing
// between them; each variant runs in plaintext and with mutual TLS between
// the hops. The figures put HTTP/2 in the "weft" column and pooled HTTP/1.1
// in the "peer" column: a ratio above 1 favours HTTP/2 for throughput, below
// 1 for CPU and latency.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from '../../src/testing/process.ts';
import { makeCerts, type BenchCerts } from '../lib/certs.ts';
import { figure, figuresMarkdown, type Figure, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { hasCommand, pinned, type Pinning } from '../lib/machine.ts';
import { measureTopologies, type MeasureSettings, type TopologyResult } from '../lib/measure.ts';
import { startBenchProcess, type BenchProcess } from '../lib/proc.ts';
import { round, sum } from '../lib/stats.ts';
import type { Topology } from '../lib/topology.ts';

const hopScript = fileURLToPath(new URL('../framing/hop.ts', import.meta.url));
const upstreamScript = fileURLToPath(new URL('../upstream.ts', import.meta.url));

const FULL: MeasureSettings = {
  throughputRounds: 3,
  throughputS: 4,
  warmupS: 2,
  latencyRounds: 1,
  latencyS: 5,
  latencyWarmupS: 1,
  // Not the data plane's 1,000 rps: a pair of these hops plus the upstream on one shared core is near saturation
  // there, and latency under overload says little about the framing.
  fixedRate: 500,
  fixedConnections: 16,
  halfSaturation: false,
  halfS: 0,
  idleSettleMs: 1000,
  wrkConnections: 32,
};

const QUICK: MeasureSettings = { ...FULL, throughputRounds: 1, throughputS: 1, warmupS: 0, latencyS: 0.5, latencyWarmupS: 0.1, fixedRate: 200, idleSettleMs: 100 };

type Framing = 'h1' | 'h2';

async function startHop(pinning: Pinning, name: string, args: string[]): Promise<BenchProcess> {
  const argv = pinned(pinning, pinning.systemCpus, nodeBinary(), [hopScript, ...args]);
  return startBenchProcess(name, argv.command, argv.args, { readyLine: true });
}

async function startPair(pinning: Pinning, certs: BenchCerts, upstreamPort: number, framing: Framing, tls: boolean): Promise<Topology> {
  const id = `${framing === 'h1' ? 'h1-pool' : 'h2-streams'}${tls ? '-mtls' : ''}`;
  const tlsArgs = (who: 'server' | 'client') => (tls ? ['--tls', '--ca-cert', certs.caCert, '--cert', certs[who].cert, '--key', certs[who].key] : []);
  const server = await startHop(pinning, `${id}-server`, ['--role', 'server', '--framing', framing, '--next', String(upstreamPort), ...tlsArgs('server')]);
  let client: BenchProcess;
  try {
    client = await startHop(pinning, `${id}-client`, ['--role', 'client', '--framing', framing, '--next', String(server.ready!.port), ...tlsArgs('client')]);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return {
    id,
    system: framing,
    hops: 2,
    mtls: tls,
    port: Number(client.ready!.port),
    path: '/',
    proxies: [client, server],
    description:
      framing === 'h1'
        ? `HTTP/1.1 between the hops over an undici Pool of up to 32 keep-alive connections${tls ? ', mutual TLS' : ''}`
        : `HTTP/2 streams between the hops on one node:http2 session${tls ? ', mutual TLS' : ''}`,
  };
}

export async function runFraming(ctx: SuiteContext): Promise<SuiteOutcome> {
  const settings = ctx.quick ? QUICK : FULL;
  const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-framing-'));
  const started: BenchProcess[] = [];
  try {
    const certs = makeCerts(scratch);
    const up = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [upstreamScript]);
    const upstream = await startBenchProcess('upstream', up.command, up.args, { readyLine: true });
    started.push(upstream);
    const upstreamPort = Number(upstream.ready!.port);
    const topologies: Topology[] = [
      { id: 'baseline', system: 'baseline', hops: 0, mtls: false, port: upstreamPort, path: '/', proxies: [], description: 'no proxy' },
    ];
    for (const tls of [false, true]) {
      for (const framing of ['h1', 'h2'] as const) {
        const pair = await startPair(ctx.pinning, certs, upstreamPort, framing, tls);
        started.push(...pair.proxies);
        topologies.push(pair);
      }
    }
    ctx.log(`framing: ${topologies.length - 1} pairs up`);
    const results = await measureTopologies(ctx, topologies, settings, { scratchDir: scratch, wrk: hasCommand('wrk'), label: 'framing' });
    const figures = framingFigures(results);
    return {
      report: { suite: 'framing', machine: ctx.machine, figures },
      details: { settings, node: process.version, topologies: results },
      markdown: framingMarkdown(results, figures),
    };
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function framingFigures(results: readonly TopologyResult[]): Figure[] {
  const byId = (id: string) => results.find((r) => r.id === id);
  const base = byId('baseline');
  const rate = base?.fixedRate.rate ?? FULL.fixedRate;
  const figures: Figure[] = [];
  for (const tls of [false, true]) {
    const suffix = tls ? '-mtls' : '';
    const h1 = byId(`h1-pool${suffix}`);
    const h2 = byId(`h2-streams${suffix}`);
    const peer = `HTTP/1.1 pool${tls ? ', mTLS' : ''}`;
    const pairCpu = (r: TopologyResult | undefined, pick: 'cpuPer1000AtMax' | 'cpuPer1000AtFixedRate') => (r ? sum(r.proxies.map((p) => p[pick])) : undefined);
    const addedP = (r: TopologyResult | undefined, key: 'p50' | 'p99') => (r && base ? r.fixedRate.latencyMs[key] - base.fixedRate.latencyMs[key] : undefined);
    figures.push(
      figure({ name: `framing${suffix}-throughput`, unit: 'req/s', weft: h2?.throughputRps, peer, peerValue: h1?.throughputRps, goal: { kind: 'none' }, note: 'weft column: HTTP/2 streams; peer column: pooled HTTP/1.1' }),
      figure({ name: `framing${suffix}-cpu-per-1000-requests-at-max`, unit: 'CPU s', weft: pairCpu(h2, 'cpuPer1000AtMax'), peer, peerValue: pairCpu(h1, 'cpuPer1000AtMax'), goal: { kind: 'none' }, note: 'both hops together, at saturation' }),
      figure({ name: `framing${suffix}-cpu-per-1000-requests-at-fixed-rate`, unit: 'CPU s', weft: pairCpu(h2, 'cpuPer1000AtFixedRate'), peer, peerValue: pairCpu(h1, 'cpuPer1000AtFixedRate'), goal: { kind: 'none' }, note: `both hops together, at ${rate} rps` }),
      figure({ name: `framing${suffix}-added-p50`, unit: 'ms', weft: addedP(h2, 'p50'), peer, peerValue: addedP(h1, 'p50'), goal: { kind: 'none' }, note: `at ${rate} rps, open loop` }),
      figure({ name: `framing${suffix}-added-p99`, unit: 'ms', weft: addedP(h2, 'p99'), peer, peerValue: addedP(h1, 'p99'), goal: { kind: 'none' }, note: `at ${rate} rps, open loop` }),
    );
  }
  return figures;
}

function fmt(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : String(round(value, 3));
}

function framingMarkdown(results: readonly TopologyResult[], figures: readonly Figure[]): string {
  const lines = [
    figuresMarkdown(figures),
    '',
    `| variant | req/s | p50 ms at ${results[0]?.fixedRate.rate ?? ''} rps | p99 ms | CPU s / 1k req at max (client + server hop) | CPU s / 1k req at ${results[0]?.fixedRate.rate ?? ''} rps (client + server hop) | peak RSS MiB (client / server) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const l = r.fixedRate.latencyMs;
    const cpu = (pick: 'cpuPer1000AtMax' | 'cpuPer1000AtFixedRate') => (r.proxies.length ? r.proxies.map((p) => fmt(p[pick])).join(' + ') : '—');
    lines.push(`| ${r.id} | ${fmt(r.throughputRps)} | ${fmt(l.p50)} | ${fmt(l.p99)} | ${cpu('cpuPer1000AtMax')} | ${cpu('cpuPer1000AtFixedRate')} | ${r.proxies.map((p) => fmt(p.peakRssMiB)).join(' / ') || '—'} |`);
  }
  return lines.join('\n');
}
