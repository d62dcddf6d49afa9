// The data-plane suite: weft, HAProxy and nginx as one and two hops in front of one upstream, measured side by side in one run.
//
// Every topology is started first and stays up, idle, while the others are
// measured (bench/lib/measure.ts runs the phases).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeBinary } from '../../src/testing/process.ts';
import { makeCerts } from '../lib/certs.ts';
import { figure, figuresMarkdown, type Figure, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { hasCommand, pinned, systemCoreCount } from '../lib/machine.ts';
import { measureTopologies, type MeasureSettings, type ProxyResources, type TopologyResult } from '../lib/measure.ts';
import type { LatencyMs } from '../lib/openloop.ts';
import { startPeerTopologies } from '../lib/peers.ts';
import { startBenchProcess, type BenchProcess } from '../lib/proc.ts';
import { mean, round } from '../lib/stats.ts';
import type { Topology } from '../lib/topology.ts';
import { startWeftTopologies } from '../lib/weft.ts';

export type { TopologyResult } from '../lib/measure.ts';

const upstreamScript = new URL('../upstream.ts', import.meta.url).pathname;
/** `weft proxy --workers` for the gateway's scaling figure; it runs only with this many cores for what is measured. */
const GATEWAY_WORKERS = 2;

const FULL: MeasureSettings = {
  throughputRounds: 3,
  throughputS: 5,
  warmupS: 6,
  latencyRounds: 2,
  latencyS: 5,
  latencyWarmupS: 1,
  fixedRate: 1000,
  fixedConnections: 16,
  halfSaturation: true,
  halfS: 5,
  idleSettleMs: 2000,
  wrkConnections: 32,
};

const QUICK: MeasureSettings = {
  throughputRounds: 1,
  throughputS: 1,
  warmupS: 0,
  latencyRounds: 1,
  latencyS: 0.5,
  latencyWarmupS: 0.1,
  fixedRate: 200,
  fixedConnections: 16,
  halfSaturation: false,
  halfS: 1,
  idleSettleMs: 100,
  wrkConnections: 32,
};

export async function runDataplane(ctx: SuiteContext): Promise<SuiteOutcome> {
  const settings = ctx.quick ? QUICK : FULL;
  const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-dp-'));
  const started: BenchProcess[] = [];
  const skipped: string[] = [];
  ctx.log(`data plane: ${ctx.pinning.description}`);
  if (ctx.pinning.warning) ctx.log(`WARNING: ${ctx.pinning.warning}`);
  try {
    const certs = makeCerts(scratch);
    const up = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [upstreamScript]);
    const upstream = await startBenchProcess('upstream', up.command, up.args, { readyLine: true });
    started.push(upstream);
    const topologyCtx = { pinning: ctx.pinning, scratchDir: scratch, upstreamPort: Number(upstream.ready!.port), certs, log: ctx.log };

    const topologies: Topology[] = [
      { id: 'baseline', system: 'baseline', hops: 0, mtls: false, port: topologyCtx.upstreamPort, path: '/', proxies: [], description: 'no proxy: the load generator straight to the upstream' },
    ];
    // Start-up in parallel; whatever did start is stopped in `finally` even if the other side failed.
    // The workers' figure needs a core per worker besides the load generator's; on fewer it would measure only the sharing.
    const workers = systemCoreCount(ctx.pinning) >= GATEWAY_WORKERS ? GATEWAY_WORKERS : undefined;
    if (!workers) skipped.push(`weft --workers ${GATEWAY_WORKERS}: needs ${GATEWAY_WORKERS} cores for the gateway besides the load generator's; this machine has ${systemCoreCount(ctx.pinning)}`);
    const [peers, weft] = await Promise.allSettled([startPeerTopologies(topologyCtx, skipped, started), startWeftTopologies(topologyCtx, workers ? { gatewayWorkers: workers } : {})]);
    if (weft.status === 'fulfilled') started.push(...weft.value.processes);
    if (peers.status === 'rejected') throw peers.reason;
    if (weft.status === 'rejected') throw weft.reason;
    topologies.push(...peers.value, ...weft.value.topologies);
    const wrkAvailable = hasCommand('wrk');
    if (!wrkAvailable) skipped.push('wrk: not installed (apt-get install -y wrk); no throughput figures');

    const results = await measureTopologies(ctx, topologies, settings, { scratchDir: scratch, wrk: wrkAvailable, label: 'data plane' });

    const figures = dataplaneFigures(results, skipped);
    return {
      report: { suite: 'dataplane', machine: ctx.machine, figures },
      details: { settings, skipped, topologies: results },
      markdown: dataplaneMarkdown(results, figures, settings),
    };
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(scratch, { recursive: true, force: true });
  }
}

function byId(results: readonly TopologyResult[], id: string): TopologyResult | undefined {
  return results.find((r) => r.id === id);
}

function added(results: readonly TopologyResult[], id: string, key: keyof LatencyMs): number | undefined {
  const t = byId(results, id);
  const base = byId(results, 'baseline');
  if (!t || !base) return undefined;
  return t.fixedRate.latencyMs[key] - base.fixedRate.latencyMs[key];
}

function perProxy(t: TopologyResult | undefined, pick: (p: ProxyResources) => number, combine: (values: number[]) => number): number | undefined {
  if (!t || t.proxies.length === 0) return undefined;
  return combine(t.proxies.map(pick));
}

const max = (values: number[]) => Math.max(...values);

export function dataplaneFigures(results: readonly TopologyResult[], skipped: readonly string[] = []): Figure[] {
  // weft's proxies always speak mutual TLS to each other (STRICT by default): its pair is compared with HAProxy's mTLS pair.
  const pair = { weft: 'weft-2hop-mtls', haproxy: 'haproxy-2hop-mtls' };
  const missing = skipped.length > 0 ? `skipped: ${skipped.join('; ')}` : undefined;
  const rps = (id: string) => byId(results, id)?.throughputRps;
  const weftPair = byId(results, pair.weft);
  const haproxyPair = byId(results, pair.haproxy);
  // A topology that cannot keep up with the fixed rate queues: its "latency" is then the queue's.
  const overloaded = (...ids: string[]) =>
    ids
      .map((id) => byId(results, id))
      .filter((t): t is TopologyResult => t !== undefined && t.fixedRate.achievedRps < 0.97 * t.fixedRate.rate)
      .map((t) => `${t.id} could not sustain ${t.fixedRate.rate} rps here (${Math.round(t.fixedRate.achievedRps)} achieved): its latency is an overloaded proxy's`)
      .join('; ') || undefined;
  const notes = (...parts: (string | undefined)[]) => parts.filter(Boolean).join('. ') || undefined;

  return [
    figure({
      name: 'two-hop-mtls-throughput',
      unit: 'req/s',
      weft: rps(pair.weft),
      peer: 'HAProxy, 2 hops, mTLS',
      peerValue: rps(pair.haproxy),
      goal: { kind: 'ratio-at-least', value: 0.75 },
      note: missing,
    }),
    figure({
      name: 'two-hop-mtls-l4-throughput',
      unit: 'req/s',
      weft: rps('weft-2hop-mtls-l4'),
      peer: 'HAProxy, 2 hops, mTLS',
      peerValue: rps(pair.haproxy),
      goal: { kind: 'ratio-at-least', value: 0.75 },
      note: "weft's L4 path: the Service port declared appProtocol tcp, bytes over the mTLS tunnel with no HTTP handling (TCP metrics only, as Istio's ztunnel); HAProxy still parses HTTP",
    }),
    figure({
      name: 'two-hop-mtls-throughput-vs-nginx',
      unit: 'req/s',
      weft: rps(pair.weft),
      peer: 'nginx, 2 hops, mTLS',
      peerValue: rps('nginx-2hop-mtls'),
      goal: { kind: 'none' },
    }),
    figure({
      name: 'one-hop-throughput',
      unit: 'req/s',
      weft: rps('weft-gateway-1hop'),
      peer: 'nginx, 1 hop',
      peerValue: rps('nginx-1hop'),
      goal: { kind: 'ratio-at-least', value: 0.6 },
      note: "weft's gateway (weft proxy --mode gateway: one HTTP listener, one HTTPRoute), as nginx's gateway",
    }),
    figure({
      name: 'one-hop-upstream-port-throughput',
      unit: 'req/s',
      weft: rps('weft-1hop'),
      peer: 'nginx, 1 hop',
      peerValue: rps('nginx-1hop'),
      goal: { kind: 'none' },
      note: 'a sidecar upstream port (Workload.spec.upstreams: a listener for one service), what an app in the mesh calls',
    }),
    figure({
      name: 'one-hop-forward-proxy-throughput',
      unit: 'req/s',
      weft: rps('weft-1hop-forward'),
      peer: 'nginx, 1 hop',
      peerValue: rps('nginx-1hop'),
      goal: { kind: 'ratio-at-least', value: 0.6 },
      note: 'weft as an explicit forward proxy (absolute-form requests, what HTTP_PROXY clients send)',
    }),
    figure({
      name: 'one-hop-throughput-2-workers',
      unit: 'req/s',
      weft: rps('weft-gateway-1hop-workers'),
      peer: 'weft gateway, 1 worker',
      peerValue: rps('weft-gateway-1hop'),
      goal: { kind: 'ratio-at-least', value: 1.7 },
      note: byId(results, 'weft-gateway-1hop-workers')
        ? `the gateway with --workers ${GATEWAY_WORKERS} (SO_REUSEPORT) against itself with one`
        : `not run: --workers ${GATEWAY_WORKERS} needs ${GATEWAY_WORKERS} cores for the gateway besides the load generator's`,
    }),
    figure({
      name: 'added-p50-1000rps',
      unit: 'ms',
      weft: added(results, pair.weft, 'p50'),
      peer: 'HAProxy, 2 hops',
      peerValue: added(results, pair.haproxy, 'p50'),
      goal: { kind: 'at-most', value: 0.3 },
      note: notes('added = p50 through the proxies minus p50 straight to the upstream, same run', overloaded(pair.weft, pair.haproxy)),
    }),
    figure({
      name: 'added-p50-1000rps-l4',
      unit: 'ms',
      weft: added(results, 'weft-2hop-mtls-l4', 'p50'),
      peer: 'HAProxy, 2 hops',
      peerValue: added(results, pair.haproxy, 'p50'),
      goal: { kind: 'none' },
      note: notes("weft's L4 path (appProtocol tcp)", overloaded('weft-2hop-mtls-l4')),
    }),
    figure({
      name: 'added-p99-1000rps-l4',
      unit: 'ms',
      weft: added(results, 'weft-2hop-mtls-l4', 'p99'),
      peer: 'HAProxy, 2 hops',
      peerValue: added(results, pair.haproxy, 'p99'),
      goal: { kind: 'none' },
      note: notes("weft's L4 path (appProtocol tcp)", overloaded('weft-2hop-mtls-l4')),
    }),
    figure({
      name: 'added-p90-1000rps',
      unit: 'ms',
      weft: added(results, pair.weft, 'p90'),
      peer: 'HAProxy, 2 hops',
      peerValue: added(results, pair.haproxy, 'p90'),
      goal: { kind: 'none' },
      note: notes("Istio's published anchor: 0.23 ms for two sidecars", overloaded(pair.weft, pair.haproxy)),
    }),
    figure({
      name: 'added-p99-1000rps',
      unit: 'ms',
      weft: added(results, pair.weft, 'p99'),
      peer: 'HAProxy, 2 hops',
      peerValue: added(results, pair.haproxy, 'p99'),
      goal: { kind: 'ratio-at-most', value: 1 },
      note: overloaded(pair.weft, pair.haproxy),
    }),
    figure({
      name: 'one-hop-added-p99-1000rps',
      unit: 'ms',
      weft: added(results, 'weft-gateway-1hop', 'p99'),
      peer: 'nginx, 1 hop',
      peerValue: added(results, 'nginx-1hop', 'p99'),
      goal: { kind: 'none' },
      note: overloaded('weft-gateway-1hop', 'nginx-1hop'),
    }),
    figure({
      name: 'p99-half-saturation',
      unit: 'ms',
      weft: weftPair?.halfSaturation?.latencyMs.p99,
      peer: 'HAProxy, 2 hops',
      peerValue: haproxyPair?.halfSaturation?.latencyMs.p99,
      goal: { kind: 'none' },
      note: 'each at 50 % of its own maximum throughput, so at different rates',
    }),
    figure({
      name: 'cpu-per-1000rps',
      unit: 'vCPU',
      weft: perProxy(weftPair, (p) => p.cpuPer1000AtFixedRate, mean),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.cpuPer1000AtFixedRate, mean),
      goal: { kind: 'at-most', value: 0.12 },
      note: notes('CPU seconds per 1,000 requests per proxy process at the fixed rate (= vCPU at 1,000 rps), mean of the two hops', overloaded(pair.weft, pair.haproxy)),
    }),
    figure({
      name: 'cpu-per-1000rps-l4',
      unit: 'vCPU',
      weft: perProxy(byId(results, 'weft-2hop-mtls-l4'), (p) => p.cpuPer1000AtFixedRate, mean),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.cpuPer1000AtFixedRate, mean),
      goal: { kind: 'none' },
      note: "weft's L4 path (appProtocol tcp), mean of the two hops",
    }),
    figure({
      name: 'cpu-per-1000-requests-at-max',
      unit: 'CPU s',
      weft: perProxy(weftPair, (p) => p.cpuPer1000AtMax, mean),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.cpuPer1000AtMax, mean),
      goal: { kind: 'none' },
      note: 'at saturation (wrk), mean of the two hops',
    }),
    figure({
      name: 'rss-1000rps',
      unit: 'MiB',
      weft: perProxy(weftPair, (p) => p.fixedRatePeakRssMiB, max),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.fixedRatePeakRssMiB, max),
      goal: { kind: 'at-most', value: 60 },
      note: 'peak RSS sampled during the fixed-rate runs, the larger of the two proxies',
    }),
    figure({
      name: 'rss-idle',
      unit: 'MiB',
      weft: perProxy(weftPair, (p) => p.idleRssMiB, max),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.idleRssMiB, max),
      goal: { kind: 'at-most', value: 45 },
    }),
    figure({
      name: 'rss-1000rps-private',
      unit: 'MiB',
      weft: perProxy(weftPair, (p) => p.fixedRatePeakPrivateRssMiB, max),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.fixedRatePeakPrivateRssMiB, max),
      goal: { kind: 'none' },
      note: "private memory (RssAnon) at 1,000 rps: RSS without the file-backed pages of the executable, which every process running the same binary shares (Node's are about 50 MiB of every Node process's RSS, touched at start-up)",
    }),
    figure({
      name: 'rss-idle-private',
      unit: 'MiB',
      weft: perProxy(weftPair, (p) => p.idlePrivateRssMiB, max),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.idlePrivateRssMiB, max),
      goal: { kind: 'none' },
      note: 'private memory (RssAnon) idle',
    }),
    figure({
      name: 'rss-peak',
      unit: 'MiB',
      weft: perProxy(weftPair, (p) => p.peakRssMiB, max),
      peer: 'HAProxy, 2 hops',
      peerValue: perProxy(haproxyPair, (p) => p.peakRssMiB, max),
      goal: { kind: 'none' },
      note: "the kernel's high-water mark (VmHWM) after the saturation runs",
    }),
  ];
}

function fmt(value: number | undefined, digits = 3): string {
  return value === undefined || !Number.isFinite(value) ? '—' : String(round(value, digits));
}

export function dataplaneMarkdown(results: readonly TopologyResult[], figures: readonly Figure[], settings: MeasureSettings): string {
  const base = byId(results, 'baseline');
  const lines = [
    figuresMarkdown(figures),
    '',
    `Every topology, same run (throughput: median of ${settings.throughputRounds} wrk runs of ${settings.throughputS} s; latency: open loop at ${settings.fixedRate} rps, median of ${settings.latencyRounds} runs of ${settings.latencyS} s; CPU and RSS per proxy process):`,
    '',
    '| topology | req/s | x baseline | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | vCPU/1k rps | idle MiB | RSS at rate MiB | peak MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const l = r.fixedRate.latencyMs;
    const proxies = r.proxies;
    const list = (pick: (p: ProxyResources) => number) => (proxies.length === 0 ? '—' : proxies.map((p) => fmt(pick(p))).join(' / '));
    lines.push(
      `| ${r.id} | ${fmt(r.throughputRps, 4)} | ${base ? fmt(r.throughputRps / base.throughputRps) : '—'} | ${fmt(l.p50)} | ${fmt(l.p90)} | ${fmt(l.p99)} | ${fmt(l.p999)} | ${fmt(l.max)} | ${list((p) => p.cpuPer1000AtFixedRate)} | ${list((p) => p.idleRssMiB)} | ${list((p) => p.fixedRatePeakRssMiB)} | ${list((p) => p.peakRssMiB)} |`,
    );
  }
  if (results.some((r) => r.halfSaturation)) {
    lines.push('', 'Latency at 50 % of each topology\'s own saturation (open loop, 32 connections):', '', '| topology | rate | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results) {
      const h = r.halfSaturation;
      if (!h) continue;
      lines.push(`| ${r.id} | ${h.rate} | ${fmt(h.latencyMs.p50)} | ${fmt(h.latencyMs.p90)} | ${fmt(h.latencyMs.p99)} | ${fmt(h.latencyMs.p999)} | ${fmt(h.latencyMs.max)} |`);
    }
  }
  return lines.join('\n');
}
