// Pushes per-edge deltas of the proxy's request metrics to the control plane over the config stream, every few seconds.
//
// Push, not scrape: the stream to the control plane already exists from every
// proxy (also from other hosts, whose admin port may bind loopback only), is
// authenticated, and survives NAT; a delta per edge is a few hundred bytes.
import type { TelemetryEdgeDelta, TelemetryReport } from '../api/topology.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Edge, ProxyMetrics } from './metrics.ts';

export const DEFAULT_TELEMETRY_INTERVAL_MS = 5000;
/**
 * Edges per report: keeps a line well under the control plane's 1 MiB message
 * limit (an edge is ~300 bytes). Edges left out keep their deltas for the next
 * report.
 */
export const MAX_EDGES_PER_REPORT = 1000;

export interface TelemetryPusherOptions {
  metrics: ProxyMetrics;
  clock: Clock;
  intervalMs?: number | undefined;
  /** Sends a report on the stream; false when there is no stream now (the deltas are then kept for the next try). */
  send: (report: TelemetryReport) => boolean;
}

export class TelemetryPusher {
  private readonly options: TelemetryPusherOptions;
  private timer: Timer | undefined;
  private lastSentAt: number;

  constructor(options: TelemetryPusherOptions) {
    this.options = options;
    this.lastSentAt = options.clock.monotonic();
  }

  start(): void {
    this.timer ??= this.options.clock.setInterval(() => this.push(), this.options.intervalMs ?? DEFAULT_TELEMETRY_INTERVAL_MS).unref();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Builds and sends one report; returns it (tests), or undefined when it could not be sent. */
  push(): TelemetryReport | undefined {
    const now = this.options.clock.monotonic();
    const pending: { edge: Edge; totals: Totals }[] = [];
    const edges: TelemetryEdgeDelta[] = [];
    for (const edge of this.options.metrics.edges()) {
      const totals = totalsOf(edge);
      const delta = deltaOf(edge, totals);
      if (delta) {
        if (edges.length >= MAX_EDGES_PER_REPORT) continue;
        edges.push(delta);
      }
      pending.push({ edge, totals });
    }
    const report: TelemetryReport = { intervalMs: Math.max(1, Math.round(now - this.lastSentAt)), edges };
    if (!this.options.send(report)) return undefined;
    this.lastSentAt = now;
    for (const { edge, totals } of pending) edge.pushed = totals;
    return report;
  }
}

type Totals = NonNullable<Edge['pushed']>;

function totalsOf(edge: Edge): Totals {
  let requests = 0;
  let failures = 0;
  let buckets: Float64Array | undefined;
  for (const series of edge.series.values()) {
    requests += series.requests.value;
    if (series.failed) failures += series.requests.value;
    const counts = series.duration.counts;
    buckets ??= new Float64Array(counts.length);
    for (let i = 0; i < counts.length; i++) buckets[i]! += counts[i]!;
  }
  const tcp = edge.tcp;
  return {
    requests,
    failures,
    buckets: buckets ?? new Float64Array(0),
    tcpBytes: tcp ? tcp.sent.value + tcp.received.value : 0,
    tcpOpened: tcp ? tcp.opened.value : 0,
  };
}

function deltaOf(edge: Edge, totals: Totals): TelemetryEdgeDelta | undefined {
  const before = edge.pushed;
  const requests = totals.requests - (before?.requests ?? 0);
  const tcpBytes = totals.tcpBytes - (before?.tcpBytes ?? 0);
  const tcpOpened = totals.tcpOpened - (before?.tcpOpened ?? 0);
  if (requests <= 0 && tcpBytes <= 0 && tcpOpened <= 0) return undefined;
  const latency: number[] = [];
  for (let i = 0; i < totals.buckets.length; i++) {
    const n = totals.buckets[i]! - (before?.buckets[i] ?? 0);
    if (n > 0) latency.push(i, n);
  }
  const delta: TelemetryEdgeDelta = {
    reporter: edge.reporter,
    source: { namespace: edge.source.namespace, workload: edge.source.workload, principal: edge.source.principal },
    destination: { namespace: edge.destination.namespace, service: edge.destination.service, workload: edge.destination.workload },
    route: edge.route,
    protocol: edge.protocol,
    mtls: edge.mtls,
    requests,
    failures: totals.failures - (before?.failures ?? 0),
    latency,
  };
  if (edge.via) {
    const slash = edge.via.indexOf('/');
    delta.via = { namespace: edge.via.slice(0, slash), service: edge.via.slice(slash + 1) };
  }
  if (tcpBytes > 0) delta.tcpBytes = tcpBytes;
  if (tcpOpened > 0) delta.tcpOpened = tcpOpened;
  return delta;
}
