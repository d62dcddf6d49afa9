// Merges the per-edge deltas proxies push into per-service, per-edge and per-route golden metrics over a sliding window.
//
// Each report covers an interval of its proxy; the control plane places it
// at its receipt time (no clock skew between hosts) to choose a window's
// reports. A proxy's rate over the window is what those reports counted
// divided by the intervals they cover as the proxy measured them (delivery lag
// varies; the proxy's clock timed exactly what its counts belong to), so a
// proxy that started inside the window is not diluted by time nobody counted. Rates of the proxies reporting one edge
// add up; latency percentiles come from the merged histograms, interpolated
// within a bucket as Prometheus' histogram_quantile does.
import {
  LATENCY_SECONDS_BUCKETS,
  type ServiceTraffic,
  type TelemetryEdgeDelta,
  type TelemetryReport,
  type TopologyTraffic,
  type TrafficEdge,
  type TrafficRoute,
  type TrafficService,
  type TrafficSample,
  type TrafficStats,
} from '../../api/topology.ts';
import type { Clock } from '../../telemetry/clock.ts';

/** The longest window kept ('1h'). */
const RETAIN_MS = 60 * 60_000;
/** Reports a proxy may keep: an hour at one per second. */
const MAX_REPORTS_PER_PROXY = 3600;
const MAX_EDGES_PER_REPORT = 5000;
/** A Service's `series`: about this many steps over the window, none shorter than the shortest step. */
const SERIES_POINTS = 60;
const SERIES_MIN_STEP_MS = 1000;

interface StoredReport {
  start: number;
  end: number;
  edges: TelemetryEdgeDelta[];
}

/** "30s", "1m", "5m", "1h" → ms; undefined when unreadable. Between 1 s and the retention. */
export function parseWindow(window: string): number | undefined {
  const match = /^(\d{1,4})(s|m|h)$/.exec(window.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * (match[2] === 's' ? 1000 : match[2] === 'm' ? 60_000 : 3_600_000);
  return ms >= 1000 && ms <= RETAIN_MS ? ms : undefined;
}

class Accumulator {
  /** Requests per second, summed over proxies. */
  rate = 0;
  requests = 0;
  failures = 0;
  bytesRate = 0;
  readonly buckets = new Float64Array(LATENCY_SECONDS_BUCKETS.length + 1);

  add(edge: TelemetryEdgeDelta, spanSeconds: number): void {
    this.rate += edge.requests / spanSeconds;
    this.requests += edge.requests;
    this.failures += edge.failures;
    if (edge.tcpBytes) this.bytesRate += edge.tcpBytes / spanSeconds;
    const latency = edge.latency;
    for (let i = 0; i + 1 < latency.length; i += 2) {
      const index = latency[i]!;
      if (index >= 0 && index < this.buckets.length) this.buckets[index]! += latency[i + 1]!;
    }
  }

  stats(): TrafficStats {
    const stats: TrafficStats = { requestsPerSecond: round(this.rate, 3) };
    if (this.bytesRate > 0) stats.bytesPerSecond = round(this.bytesRate, 1);
    if (this.requests > 0) {
      stats.successRate = round(1 - this.failures / this.requests, 4);
      stats.p50Ms = quantileMs(this.buckets, 0.5);
      stats.p90Ms = quantileMs(this.buckets, 0.9);
      stats.p99Ms = quantileMs(this.buckets, 0.99);
    }
    return stats;
  }
}

/**
 * One proxy's traffic over a window, its edges summed per edge and route
 * (the caller's side only). What replicas exchange to show one view: rates
 * are worked out only after the windows of every replica are merged, since a
 * proxy that moved between replicas inside the window has reports on both,
 * and each half alone would count its full rate.
 */
export interface ProxyTrafficWindow {
  /** The time its reports in the window cover, as the proxy measured it. */
  coveredMs: number;
  /** Summed deltas: `latency` is the sparse histogram of the sum. */
  edges: TelemetryEdgeDelta[];
}

/** Every proxy's traffic over a window, as one replica holds it. */
export interface TrafficWindow {
  proxies: Record<string, ProxyTrafficWindow>;
  /** "<namespace>/<workload>" → the Service callers reached it by, so that a source can be drawn as its service. */
  workloadServices: Record<string, string>;
}

/** One Service's traffic per step over a window, summed: the counts behind its charts, added up across replicas. */
export interface SeriesCounts {
  /** The end of the last step (ms since the epoch), and the step length. */
  end: number;
  stepMs: number;
  requests: number[];
  failures: number[];
  /** Per step, the histogram's counts per bucket (last: +Inf). */
  buckets: number[][];
}

export class TelemetryAggregator {
  private readonly clock: Clock;
  private readonly reports = new Map<string, StoredReport[]>();

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Takes one proxy's report; malformed edges are skipped. */
  record(proxyId: string, report: TelemetryReport): void {
    const intervalMs = Number(report.intervalMs);
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) return;
    const end = this.clock.now();
    const edges = (Array.isArray(report.edges) ? report.edges : []).slice(0, MAX_EDGES_PER_REPORT).filter(validEdge);
    let list = this.reports.get(proxyId);
    if (!list) this.reports.set(proxyId, (list = []));
    list.push({ start: end - Math.min(intervalMs, RETAIN_MS), end, edges });
    if (list.length > MAX_REPORTS_PER_PROXY) list.splice(0, list.length - MAX_REPORTS_PER_PROXY);
    this.prune(end);
  }

  /** Whether any proxy has reported (the topology is "available" then). */
  get reporting(): boolean {
    return this.reports.size > 0;
  }

  /** The window's traffic, merged with what other replicas hold (`others`, from their `window`). */
  topology(window: string, others: readonly TrafficWindow[] = []): TopologyTraffic {
    const generatedAt = new Date(this.clock.now()).toISOString();
    const windowMs = parseWindow(window);
    if (windowMs === undefined) {
      return { available: false, reason: `window "${window}" is not a duration like 30s, 1m, 5m or 1h (at most 1h)`, window, generatedAt, services: [], edges: [], routes: [] };
    }
    const merged = mergeTrafficWindows([this.window(windowMs), ...others]);
    if (!this.reporting && Object.keys(merged.proxies).length === 0) return { available: false, reason: 'no proxy has reported traffic yet', window, generatedAt, services: [], edges: [], routes: [] };
    const { services, edges, routes } = aggregate(merged);
    // Nothing counted is "no data" to a reader (the dashboard then says so rather than drawing zeros).
    if (services.length === 0) return { available: false, reason: `no requests in the last ${window}`, window, generatedAt, services, edges, routes };
    return { available: true, window, generatedAt, services, edges, routes };
  }

  /** One Service's traffic; `others` are other replicas' windows and series counts (for the same `seriesEnd`). */
  service(namespace: string, name: string, window: string, others: { windows: readonly TrafficWindow[]; series: readonly SeriesCounts[] } = { windows: [], series: [] }): ServiceTraffic {
    const all = this.topology(window, others.windows);
    const mine = (peer: { namespace: string; service?: string | undefined } | undefined) => peer !== undefined && peer.namespace === namespace && peer.service === name;
    const service = all.services.find((s) => mine(s)) ?? { namespace, service: name, requestsPerSecond: 0 };
    const windowMs = parseWindow(window);
    const local = windowMs === undefined || (!this.reporting && others.series.length === 0) ? undefined : this.seriesCounts(namespace, name, windowMs, this.seriesEnd());
    const counts = local ? mergeSeriesCounts([local, ...others.series]) : undefined;
    return {
      available: all.available,
      ...(all.reason !== undefined ? { reason: all.reason } : {}),
      window,
      generatedAt: all.generatedAt,
      service,
      inbound: all.edges.filter((e) => mine(e.destination) || mine(e.via)),
      outbound: all.edges.filter((e) => mine(e.source)),
      routes: (all.routes ?? []).filter((r) => mine(r.destination) || mine(r.via)),
      ...(counts ? { series: seriesFrom(counts), seriesStepMs: counts.stepMs } : {}),
    };
  }

  /**
   * Where a Service's series ends: at the newest report, not now, so that
   * the last step is never half counted; now when no proxy here reports
   * (the other replicas are then asked for the same end).
   */
  seriesEnd(): number {
    let end = 0;
    for (const list of this.reports.values()) end = Math.max(end, list[list.length - 1]?.end ?? 0);
    return end > 0 ? end : this.clock.now();
  }

  /**
   * The Service callers reach each workload by. A workload in several
   * Services (catalog-v1's pods are catalog's too) may be reached by each of
   * them, by different callers: it is drawn as the one most of its requests
   * were addressed to (ties: the first by name), so that the answer does not
   * flip with whichever report came last.
   */
  private workloadServices(): Record<string, string> {
    const counts = new Map<string, Map<string, number>>();
    for (const list of this.reports.values()) {
      for (const report of list) {
        for (const e of report.edges) {
          if (e.reporter !== 'source' || e.destination.service === 'unknown') continue;
          const workload = `${e.destination.namespace}/${e.destination.workload}`;
          let byService = counts.get(workload);
          if (!byService) counts.set(workload, (byService = new Map()));
          byService.set(e.destination.service, (byService.get(e.destination.service) ?? 0) + e.requests);
        }
      }
    }
    const chosen: Record<string, string> = {};
    for (const [workload, byService] of counts) {
      let best: [string, number] | undefined;
      for (const [service, requests] of byService) if (!best || requests > best[1] || (requests === best[1] && service < best[0])) best = [service, requests];
      chosen[workload] = best![0];
    }
    return chosen;
  }

  /** Every proxy's traffic over the last `windowMs`, summed per edge and route: what another replica merges into its view. */
  window(windowMs: number): TrafficWindow {
    const from = this.clock.now() - windowMs;
    const proxies: Record<string, ProxyTrafficWindow> = {};
    const workloadServices = this.workloadServices();
    for (const [proxyId, list] of this.reports) {
      // The time covered is what the proxy measured (its reports' intervals follow each other), not receipt
      // times: delivery lag varies, the proxy's own clock counted exactly the interval its counts belong to.
      let coveredMs = 0;
      const sums = new Map<string, TelemetryEdgeDelta>();
      for (const report of list) {
        if (report.end <= from) continue;
        coveredMs += report.end - report.start;
        for (const e of report.edges) {
          // Edges and services from the caller's side: it knows the Service it addressed and counts what never arrived.
          if (e.reporter !== 'source' || e.destination.service === 'unknown') continue;
          addEdge(sums, e);
        }
      }
      if (coveredMs > 0) proxies[proxyId] = { coveredMs, edges: [...sums.values()].map(withSparseLatency) };
    }
    return { proxies, workloadServices };
  }

  /** A Service's counts per step over `windowMs`, ending at `end`. */
  seriesCounts(namespace: string, name: string, windowMs: number, end: number): SeriesCounts {
    const stepMs = Math.max(SERIES_MIN_STEP_MS, Math.ceil(windowMs / SERIES_POINTS / 1000) * 1000);
    const steps = Math.max(1, Math.floor(windowMs / stepMs));
    const start = end - steps * stepMs;
    const requests = new Array<number>(steps).fill(0);
    const failures = new Array<number>(steps).fill(0);
    const buckets = Array.from({ length: steps }, () => new Array<number>(LATENCY_SECONDS_BUCKETS.length + 1).fill(0));
    const mine = (peer: { namespace: string; service: string } | undefined) => peer !== undefined && peer.namespace === namespace && peer.service === name;
    // Each report's counts are spread over the steps its interval overlaps, so steps shorter than the push
    // interval do not alternate between empty and double.
    for (const list of this.reports.values()) {
      for (const report of list) {
        if (report.end <= start) continue;
        const span = Math.max(1, report.end - report.start);
        for (const e of report.edges) {
          if (e.reporter !== 'source' || !(mine(e.destination) || mine(e.via))) continue;
          for (let i = Math.max(0, Math.floor((report.start - start) / stepMs)); i < steps; i++) {
            const from = start + i * stepMs;
            if (from >= report.end) break;
            const share = (Math.min(report.end, from + stepMs) - Math.max(report.start, from)) / span;
            if (share <= 0) continue;
            requests[i]! += e.requests * share;
            failures[i]! += e.failures * share;
            const latency = e.latency;
            for (let j = 0; j + 1 < latency.length; j += 2) {
              const index = latency[j]!;
              if (index >= 0 && index < buckets[i]!.length) buckets[i]![index]! += latency[j + 1]! * share;
            }
          }
        }
      }
    }
    return { end, stepMs, requests, failures, buckets };
  }

  private prune(now: number): void {
    for (const [proxy, list] of this.reports) {
      let drop = 0;
      while (drop < list.length && list[drop]!.end < now - RETAIN_MS) drop++;
      if (drop > 0) list.splice(0, drop);
      if (list.length === 0) this.reports.delete(proxy);
    }
  }
}

/** The key of one edge and route as the caller reported it. */
function edgeRouteKey(e: TelemetryEdgeDelta): string {
  const via = e.via && typeof e.via.namespace === 'string' && typeof e.via.service === 'string' ? `<${e.via.namespace}/${e.via.service}` : '';
  return `${e.source.namespace}/${e.source.workload}>${e.destination.namespace}/${e.destination.service}${via}>${e.route}`;
}

/** Adds `e` into the sum for its edge and route; sums keep a dense histogram (made sparse again by withSparseLatency). */
function addEdge(sums: Map<string, TelemetryEdgeDelta>, e: TelemetryEdgeDelta): void {
  const key = edgeRouteKey(e);
  let sum = sums.get(key);
  if (!sum) {
    sum = {
      reporter: 'source',
      source: { namespace: e.source.namespace, workload: e.source.workload },
      destination: { namespace: e.destination.namespace, service: e.destination.service, workload: e.destination.workload },
      ...(e.via && typeof e.via.namespace === 'string' && typeof e.via.service === 'string' ? { via: { namespace: e.via.namespace, service: e.via.service } } : {}),
      route: e.route,
      protocol: e.protocol,
      mtls: e.mtls,
      requests: 0,
      failures: 0,
      latency: new Array<number>(LATENCY_SECONDS_BUCKETS.length + 1).fill(0),
    };
    sums.set(key, sum);
  }
  if (!e.mtls) sum.mtls = false;
  sum.requests += e.requests;
  sum.failures += e.failures;
  if (e.tcpBytes) sum.tcpBytes = (sum.tcpBytes ?? 0) + e.tcpBytes;
  const latency = e.latency;
  for (let i = 0; i + 1 < latency.length; i += 2) {
    const index = latency[i]!;
    if (Number.isInteger(index) && index >= 0 && index < sum.latency.length) sum.latency[index]! += Number(latency[i + 1]) || 0;
  }
}

function withSparseLatency(sum: TelemetryEdgeDelta): TelemetryEdgeDelta {
  const sparse: number[] = [];
  sum.latency.forEach((count, index) => {
    if (count > 0) sparse.push(index, count);
  });
  return { ...sum, latency: sparse };
}

/**
 * Several replicas' windows as one: a proxy's windows add up (its reports
 * went to one replica, then another), so its rate is counted once over all
 * the time it was measured. Malformed entries (from a peer) are skipped.
 */
export function mergeTrafficWindows(windows: readonly TrafficWindow[]): TrafficWindow {
  if (windows.length === 1) return windows[0]!;
  const sums = new Map<string, { coveredMs: number; edges: Map<string, TelemetryEdgeDelta> }>();
  const workloadServices: Record<string, string> = {};
  for (const window of windows) {
    Object.assign(workloadServices, window.workloadServices);
    for (const [proxyId, proxy] of Object.entries(window.proxies ?? {})) {
      if (!Number.isFinite(proxy?.coveredMs) || proxy.coveredMs <= 0 || !Array.isArray(proxy.edges)) continue;
      let sum = sums.get(proxyId);
      if (!sum) sums.set(proxyId, (sum = { coveredMs: 0, edges: new Map() }));
      sum.coveredMs += proxy.coveredMs;
      for (const e of proxy.edges) if (validEdge(e)) addEdge(sum.edges, e);
    }
  }
  const proxies: Record<string, ProxyTrafficWindow> = {};
  for (const [proxyId, sum] of sums) proxies[proxyId] = { coveredMs: sum.coveredMs, edges: [...sum.edges.values()].map(withSparseLatency) };
  return { proxies, workloadServices };
}

/** Per-service, per-edge and per-route golden metrics of a (merged) window. Rates of the proxies reporting one edge add up. */
function aggregate(window: TrafficWindow): { services: TrafficService[]; edges: TrafficEdge[]; routes: TrafficRoute[] } {
  const byEdge = new Map<string, { edge: Omit<TrafficEdge, keyof TrafficStats>; acc: Accumulator }>();
  const byService = new Map<string, { namespace: string; service: string; acc: Accumulator }>();
  const byRoute = new Map<string, { route: Omit<TrafficRoute, keyof TrafficStats>; acc: Accumulator }>();
  for (const proxy of Object.values(window.proxies)) {
    const spanSeconds = Math.max(0.001, proxy.coveredMs / 1000);
    for (const e of proxy.edges) {
      const sourceService = window.workloadServices[`${e.source.namespace}/${e.source.workload}`];
      const via = e.via;
      const edgeKey = `${e.source.namespace}/${e.source.workload}>${e.destination.namespace}/${e.destination.service}${via ? `<${via.namespace}/${via.service}` : ''}`;
      let edge = byEdge.get(edgeKey);
      if (!edge) {
        edge = {
          edge: {
            source: { namespace: e.source.namespace, workload: e.source.workload, ...(sourceService ? { service: sourceService } : {}) },
            destination: { namespace: e.destination.namespace, service: e.destination.service },
            ...(via ? { via: { namespace: via.namespace, service: via.service } } : {}),
            mtls: e.mtls,
            protocol: e.protocol,
          },
          acc: new Accumulator(),
        };
        byEdge.set(edgeKey, edge);
      }
      if (!e.mtls) edge.edge.mtls = false;
      edge.acc.add(e, spanSeconds);
      // A split's request counts for the backend that answered and for the Service the caller addressed.
      for (const target of via ? [e.destination, via] : [e.destination]) {
        const serviceKey = `${target.namespace}/${target.service}`;
        let service = byService.get(serviceKey);
        if (!service) byService.set(serviceKey, (service = { namespace: target.namespace, service: target.service, acc: new Accumulator() }));
        service.acc.add(e, spanSeconds);
      }
      const routeKey = `${edgeKey}>${e.route}`;
      let route = byRoute.get(routeKey);
      if (!route) {
        route = { route: { route: e.route, source: edge.edge.source, destination: edge.edge.destination, ...(edge.edge.via ? { via: edge.edge.via } : {}) }, acc: new Accumulator() };
        byRoute.set(routeKey, route);
      }
      route.acc.add(e, spanSeconds);
    }
  }
  const services = [...byService.values()].map((s) => ({ namespace: s.namespace, service: s.service, ...s.acc.stats() }));
  const edges = [...byEdge.values()].map((e) => ({ ...e.edge, ...e.acc.stats() }));
  const routes = [...byRoute.values()].map((r) => ({ ...r.route, ...r.acc.stats() }));
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  services.sort((a, b) => order(`${a.namespace}/${a.service}`, `${b.namespace}/${b.service}`));
  edges.sort((a, b) => order(`${a.source.namespace}/${a.source.workload}>${a.destination.service}`, `${b.source.namespace}/${b.source.workload}>${b.destination.service}`));
  routes.sort((a, b) => order(`${a.destination.namespace}/${a.destination.service}/${a.route}`, `${b.destination.namespace}/${b.destination.service}/${b.route}`));
  return { services, edges, routes };
}

/** Series counts of several replicas for the same end and step, added up; one of another shape (a peer's bad answer) is left out. */
export function mergeSeriesCounts(all: readonly SeriesCounts[]): SeriesCounts {
  const base = all[0]!;
  const requests = [...base.requests];
  const failures = [...base.failures];
  const buckets = base.buckets.map((b) => [...b]);
  for (const other of all.slice(1)) {
    if (other.end !== base.end || other.stepMs !== base.stepMs || other.requests?.length !== requests.length || other.buckets?.length !== buckets.length) continue;
    for (let i = 0; i < requests.length; i++) {
      requests[i]! += Number(other.requests[i]) || 0;
      failures[i]! += Number(other.failures[i]) || 0;
      const into = buckets[i]!;
      const from = other.buckets[i] ?? [];
      for (let j = 0; j < into.length; j++) into[j]! += Number(from[j]) || 0;
    }
  }
  return { end: base.end, stepMs: base.stepMs, requests, failures, buckets };
}

/** The dashboard's chart points from series counts. */
function seriesFrom(counts: SeriesCounts): TrafficSample[] {
  const steps = counts.requests.length;
  const start = counts.end - steps * counts.stepMs;
  const series: TrafficSample[] = [];
  for (let i = 0; i < steps; i++) {
    const requests = counts.requests[i]!;
    const sample: TrafficSample = { t: start + (i + 1) * counts.stepMs, requestsPerSecond: round(requests / (counts.stepMs / 1000), 3) };
    if (requests > 0) {
      sample.successRate = round(1 - counts.failures[i]! / requests, 4);
      sample.p50Ms = quantileMs(counts.buckets[i]!, 0.5);
      sample.p90Ms = quantileMs(counts.buckets[i]!, 0.9);
      sample.p99Ms = quantileMs(counts.buckets[i]!, 0.99);
    }
    series.push(sample);
  }
  return series;
}

function validEdge(e: TelemetryEdgeDelta): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e.reporter === 'source' || e.reporter === 'destination') &&
    typeof e.source?.namespace === 'string' &&
    typeof e.source.workload === 'string' &&
    typeof e.destination?.namespace === 'string' &&
    typeof e.destination.service === 'string' &&
    typeof e.destination.workload === 'string' &&
    typeof e.route === 'string' &&
    Number.isFinite(e.requests) &&
    e.requests >= 0 &&
    Number.isFinite(e.failures) &&
    e.failures >= 0 &&
    Array.isArray(e.latency)
  );
}

/** histogram_quantile over per-bucket counts (last = +Inf), in milliseconds. */
export function quantileMs(buckets: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < buckets.length; i++) total += buckets[i]!;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i]!;
    if (seen + count >= rank && count > 0) {
      const bounds = LATENCY_SECONDS_BUCKETS;
      // Past the last bound nothing is known but that bound (as Prometheus answers).
      if (i >= bounds.length) return round(bounds[bounds.length - 1]! * 1000, 3);
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return round((lower + ((upper - lower) * (rank - seen)) / count) * 1000, 3);
    }
    seen += count;
  }
  return undefined;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
