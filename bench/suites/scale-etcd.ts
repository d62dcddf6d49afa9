// The etcd scale suite (issue #8): 2,000 Workload instances in a real etcd, 200 simulated proxies over two control-plane replicas, 20 route changes timed until every proxy has ACKed.
import { figure, figuresMarkdown, type SuiteContext, type SuiteOutcome } from '../lib/figures.ts';
import { round } from '../lib/stats.ts';
import { measureScaleEtcd, percentileOf, type ScaleEtcdOptions } from '../cp/scale-etcd.ts';

const FULL: Omit<ScaleEtcdOptions, 'log'> = { workloads: 2000, proxies: 200, replicas: 2, changes: 20 };
const QUICK: Omit<ScaleEtcdOptions, 'log'> = { workloads: 100, proxies: 10, replicas: 2, changes: 3 };

export async function runScaleEtcd(ctx: SuiteContext): Promise<SuiteOutcome> {
  const settings = ctx.quick ? QUICK : FULL;
  ctx.log(`scale-etcd: ${settings.workloads} workloads, ${settings.proxies} simulated proxies on ${settings.replicas} replicas, ${settings.changes} route changes`);
  const result = await measureScaleEtcd({ ...settings, log: ctx.log });
  const firstMedian = percentileOf(result.changes.map((c) => c.firstAckedMs), 50);
  const applyMedian = percentileOf(result.changes.map((c) => c.applyMs), 50);
  const setup = `${result.workloadsListed} Workload instances in etcd, ${result.proxies} simulated proxies (${result.perReplica.join(' + ')} over ${result.replicas} replicas), ${result.changes.length} changes to one HTTPRoute, alternately through each replica`;
  const figures = [
    figure({
      name: `scale-etcd-route-change-p99-${result.proxies}-proxies`,
      unit: 'ms',
      weft: result.p99Ms,
      peer: 'issue #8 goal',
      peerValue: 1000,
      goal: { kind: 'at-most', value: 1000 },
      note: `${setup}; from the apply's acknowledgement until every proxy had ACKed the new version`,
    }),
    figure({ name: `scale-etcd-route-change-median-${result.proxies}-proxies`, unit: 'ms', weft: result.medianMs, peer: 'issue #8 goal', peerValue: 1000, goal: { kind: 'at-most', value: 1000 } }),
    figure({
      name: 'scale-etcd-route-change-first-proxy-median',
      unit: 'ms',
      weft: firstMedian,
      peer: 'none',
      peerValue: null,
      goal: { kind: 'none' },
      note: 'until the first proxy had it: the etcd watch, the compile and the first write, before the fan-out',
    }),
  ];
  const lines = [
    figuresMarkdown(figures),
    '',
    `${setup}. Loading the workloads took ${round(result.loadMs / 1000)} s, connecting the proxies ${round(result.connectMs / 1000)} s; one snapshot is ${round(result.snapshotBytes / 1024)} KiB; the apply itself answered in ${round(applyMedian)} ms (median).`,
    '',
    '| change | apply ms | first proxy ms | all proxies ms |',
    '| ---: | ---: | ---: | ---: |',
    ...result.changes.map((c) => `| ${c.index} | ${round(c.applyMs)} | ${round(c.firstAckedMs)} | ${round(c.allAckedMs)} |`),
  ];
  return { report: { suite: 'scale-etcd', machine: ctx.machine, figures }, details: { settings, result }, markdown: lines.join('\n') };
}
