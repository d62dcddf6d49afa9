// `weft top [workload|service]`: a live table of traffic per route and edge (rps, success rate, p50/p99) from the control plane, refreshed every second.
import { Command, Option } from 'commander';
import type { TopologyTraffic, TrafficRoute, TrafficStats } from '../api/topology.ts';
import { WeftClient } from './client.ts';
import { table } from './format.ts';
import { CliError, resolveServer } from './options.ts';

export interface TopOptions {
  window: string;
  /** "ns/name" or "name": keep rows whose source workload or destination service is this. */
  filter?: string | undefined;
}

/** "ns/name" or a bare name (any namespace) against a peer. */
function matches(filter: string, namespace: string, name: string | undefined): boolean {
  if (name === undefined) return false;
  const slash = filter.indexOf('/');
  return slash === -1 ? filter === name : filter === `${namespace}/${name}`;
}

const percent = (s: TrafficStats) => (s.successRate === undefined ? '-' : `${(s.successRate * 100).toFixed(2)}%`);
const ms = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? `${v.toFixed(2)}ms` : `${Math.round(v)}ms`);
const rps = (s: TrafficStats) => s.requestsPerSecond.toFixed(s.requestsPerSecond < 10 ? 2 : 1);

/** The table for one topology answer: one row per route rule per edge, busiest first. */
export function formatTop(traffic: TopologyTraffic, options: TopOptions): string {
  if (!traffic.available) return `No traffic data: ${traffic.reason ?? 'the control plane collects none'}\n`;
  let routes: TrafficRoute[] = traffic.routes ?? [];
  const filter = options.filter;
  if (filter) {
    routes = routes.filter(
      (r) => matches(filter, r.source.namespace, r.source.workload) || matches(filter, r.source.namespace, r.source.service) || matches(filter, r.destination.namespace, r.destination.service),
    );
  }
  routes = [...routes].sort((a, b) => b.requestsPerSecond - a.requestsPerSecond || `${a.destination.service}${a.route}`.localeCompare(`${b.destination.service}${b.route}`));
  const header = `weft top — window ${traffic.window}, ${traffic.generatedAt}${filter ? `, ${filter}` : ''}\n`;
  if (routes.length === 0) return `${header}No requests in the window${filter ? ` for ${filter}` : ''}.\n`;
  const rows = routes.map((r) => [
    `${r.source.namespace}/${r.source.workload ?? r.source.service ?? '?'}`,
    `${r.destination.namespace}/${r.destination.service}`,
    r.route,
    rps(r),
    percent(r),
    ms(r.p50Ms),
    ms(r.p99Ms),
  ]);
  return header + table(['SOURCE', 'DESTINATION', 'ROUTE', 'RPS', 'SUCCESS', 'P50', 'P99'], rows);
}

export function topCommand(): Command {
  return new Command('top')
    .description('live traffic per route and edge (requests/s, success rate, p50/p99) from the control plane, refreshed every second')
    .argument('[target]', 'a workload or service ("name" or "namespace/name"): only its edges')
    .option('--window <duration>', 'sliding window the rates are computed over (e.g. 10s, 1m, 5m)', '1m')
    .option('--interval <ms>', 'refresh period in milliseconds', '1000')
    .addOption(new Option('--iterations <n>', 'stop after this many refreshes (default: until interrupted)'))
    .option('--once', 'print one table and exit (same as --iterations 1)')
    .action(async (target: string | undefined, options: { window: string; interval: string; iterations?: string; once?: boolean }, command: Command) => {
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const interval = Number(options.interval);
      if (!Number.isFinite(interval) || interval < 100) throw new CliError(`--interval must be at least 100 (ms), got "${options.interval}"`);
      const iterations = options.once ? 1 : options.iterations === undefined ? Infinity : Number(options.iterations);
      if (!(iterations >= 1)) throw new CliError(`--iterations must be a positive number, got "${options.iterations}"`);
      // A terminal gets the table redrawn in place; a pipe gets one table after another.
      const redraw = process.stdout.isTTY === true && iterations > 1;
      for (let i = 0; i < iterations; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, interval));
        const text = formatTop(await client.topology(options.window), { window: options.window, filter: target });
        process.stdout.write(redraw ? `\x1b[H\x1b[2J${text}` : text);
      }
    });
}
