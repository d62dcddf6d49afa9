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

  topology(window: string): TopologyTraffic {
    const generatedAt = new Date(this.clock.now()).toISOString();
    const windowMs = parseWindow(window);
    if (windowMs === undefined) {
      return { available: false, reason: `window "${window}" is not a duration like 30s, 1m, 5m or 1h (at most 1h)`, window, generatedAt, services: [], edges: [], routes: [] };
    }
    if (!this.reporting) return { available: false, reason: 'no proxy has reported traffic yet', window, generatedAt, services: [], edges: [], routes: [] };
    const { services, edges, routes } = this.aggregate(windowMs);
    // Nothing counted is "no data" to a reader (the dashboard then says so rather than drawing zeros).
    if (services.length === 0) return { available: false, reason: `no requests in the last ${window}`, window, generatedAt, services, edges, routes };
    return { available: true, window, generatedAt, services, edges, routes };
  }

  service(namespace: string, name: string, window: string): ServiceTraffic {
    const all = this.topology(window);
    const mine = (peer: { namespace: string; service?: string | undefined } | undefined) => peer !== undefined && peer.namespace === namespace && peer.service === name;
    const service = all.services.find((s) => mine(s)) ?? { namespace, service: name, requestsPerSecond: 0 };
    return {
      available: all.available,
      ...(all.reason !== undefined ? { reason: all.reason } : {}),
      window,
      generatedAt: all.generatedAt,
      service,
      inbound: all.edges.filter((e) => mine(e.destination) || mine(e.via)),
      outbound: all.edges.filter((e) => mine(e.source)),
      routes: (all.routes ?? []).filter((r) => mine(r.destination) || mine(r.via)),
      ...this.serviceSeries(namespace, name, window),
    };
  }

  /**
   * The Service's golden metrics per step over the window (the dashboard's
   * charts), from the reports kept anyway: each report's counts are spread
   * over the steps its interval overlaps, so steps shorter than the push
   * interval do not alternate between empty and double. The last step ends
   * at the newest report, not now, so that it is never half counted.
   */
  private serviceSeries(namespace: string, name: string, window: string): { series?: TrafficSample[]; seriesStepMs?: number } {
    const windowMs = parseWindow(window);
    if (windowMs === undefined || !this.reporting) return {};
    const stepMs = Math.max(SERIES_MIN_STEP_MS, Math.ceil(windowMs / SERIES_POINTS / 1000) * 1000);
    const steps = Math.max(1, Math.floor(windowMs / stepMs));
    let end = 0;
    for (const list of this.reports.values()) end = Math.max(end, list[list.length - 1]?.end ?? 0);
    const start = end - steps * stepMs;
    const requests = new Float64Array(steps);
    const failures = new Float64Array(steps);
    const buckets = Array.from({ length: steps }, () => new Float64Array(LATENCY_SECONDS_BUCKETS.length + 1));
    const mine = (peer: { namespace: string; service: string } | undefined) => peer !== undefined && peer.namespace === namespace && peer.service === name;
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
    const series: TrafficSample[] = [];
    for (let i = 0; i < steps; i++) {
      const sample: TrafficSample = { t: start + (i + 1) * stepMs, requestsPerSecond: round(requests[i]! / (stepMs / 1000), 3) };
      if (requests[i]! > 0) {
        sample.successRate = round(1 - failures[i]! / requests[i]!, 4);
        sample.p50Ms = quantileMs(buckets[i]!, 0.5);
        sample.p90Ms = quantileMs(buckets[i]!, 0.9);
        sample.p99Ms = quantileMs(buckets[i]!, 0.99);
      }
      series.push(sample);
    }
    return { series, seriesStepMs: stepMs };
  }

  private aggregate(windowMs: number): { services: TrafficService[]; edges: TrafficEdge[]; routes: TrafficRoute[] } {
    const now = this.clock.now();
    const from = now - windowMs;
    const byEdge = new Map<string, { edge: Omit<TrafficEdge, keyof TrafficStats>; acc: Accumulator }>();
    const byService = new Map<string, { namespace: string; service: string; acc: Accumulator }>();
    const byRoute = new Map<string, { route: Omit<TrafficRoute, keyof TrafficStats>; acc: Accumulator }>();
    // A workload's service, as the callers' reports name it, so that a source can be drawn as its service.
    const serviceOfWorkload = new Map<string, string>();
    for (const list of this.reports.values())
      for (const report of list) for (const e of report.edges) if (e.reporter === 'source' && e.destination.service !== 'unknown') serviceOfWorkload.set(`${e.destination.namespace}/${e.destination.workload}`, e.destination.service);

    for (const list of this.reports.values()) {
      // The time covered is what the proxy measured (its reports' intervals follow each other), not receipt
      // times: delivery lag varies, the proxy's own clock counted exactly the interval its counts belong to.
      let coveredMs = 0;
      const inWindow: StoredReport[] = [];
      for (const report of list) {
        if (report.end <= from) continue;
        inWindow.push(report);
        coveredMs += report.end - report.start;
      }
      if (inWindow.length === 0) continue;
      const spanSeconds = Math.max(0.001, coveredMs / 1000);
      for (const report of inWindow) {
        for (const e of report.edges) {
          // Edges and services from the caller's side: it knows the Service it addressed and counts what never arrived.
          if (e.reporter !== 'source' || e.destination.service === 'unknown') continue;
          const sourceService = serviceOfWorkload.get(`${e.source.namespace}/${e.source.workload}`);
          const via = e.via && typeof e.via.namespace === 'string' && typeof e.via.service === 'string' ? e.via : undefined;
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

  private prune(now: number): void {
    for (const [proxy, list] of this.reports) {
      let drop = 0;
      while (drop < list.length && list[drop]!.end < now - RETAIN_MS) drop++;
      if (drop > 0) list.splice(0, drop);
      if (list.length === 0) this.reports.delete(proxy);
    }
  }
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
