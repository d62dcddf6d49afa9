// The proxy's metrics: Istio's standard request/TCP metrics under weft_* names, cached per edge so that a request pays a few additions.
//
// An "edge" is one (reporter, source, destination, route) combination. It is
// resolved once through nested maps keyed by strings the snapshot already
// holds (rule id, backend key, endpoint id; inbound: the caller's SPIFFE id and
// weft-source), whose hashes V8 keeps, so no label string is built per request.
// Each edge keeps its series per response (code, grpc-status, weft-reason)
// under a small integer key. Edges unused for `idleSeriesMs` are dropped from
// the registry (Istio's stats expiry), so endpoints that are gone stop being
// rendered. The control-plane push (telemetry.ts) reads the same series.
import type { SnapshotBackend, SnapshotEndpoint } from '../api/snapshot.ts';
import { LATENCY_SECONDS_BUCKETS } from '../api/topology.ts';
import type { Counter, CounterChild, Gauge, Histogram, HistogramChild, MetricsRegistry } from '../telemetry/metrics.ts';
import type { HttpExchange, TcpExchange } from './exchange.ts';

/** The label Workload instances carry naming their template Workload (stream-server.ts WORKLOAD_LABEL). */
const WORKLOAD_LABEL = 'weft.dev/workload';
const SOURCE_HEADER = 'weft-source';

/** Seconds, sub-millisecond through a minute; the same bounds the control plane merges (api/topology.ts). */
export const REQUEST_SECONDS_BUCKETS: readonly number[] = LATENCY_SECONDS_BUCKETS;
/** Bytes: Istio's exponential 1 … 10^7. */
export const SIZE_BYTES_BUCKETS: readonly number[] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000];

/** The labels every request series carries, in order (Istio's standard set, plus route and weft_reason). */
export const REQUEST_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'connection_security_policy',
  'route',
  'response_code',
  'grpc_response_status',
  'weft_reason',
] as const;
/** TCP series: the same identities, no response. */
export const TCP_LABELS = REQUEST_LABELS.slice(0, 13);

/** Who this proxy is: the source of what it sends, the destination of what it receives. */
export interface LocalIdentity {
  namespace: string;
  /** The template Workload (or the gateway / instance name). */
  workload: string;
  /** This proxy's SPIFFE ID once it holds a certificate. */
  principal?: string | undefined;
}

export interface ProxyMetricsOptions {
  /** false: request and TCP series are not recorded at all (the overhead benchmark's baseline). Default true. */
  requestMetrics?: boolean;
  /** Series of an edge unused this long are dropped. Default 5 minutes. */
  idleSeriesMs?: number;
  /** Edges an inbound proxy keeps per (caller identity): caps what a caller can create with made-up weft-source values. Default 200. */
  maxSourcesPerPeer?: number;
  /** `weft tap` (proxy/tap.ts): told of every finished request while `active`; one boolean read otherwise. */
  tap?: { readonly active: boolean; record(ex: HttpExchange, status: number, seconds: number): void } | undefined;
}

/** One response kind on one edge: the counter and histograms of its label set. */
export interface EdgeSeries {
  readonly status: number;
  readonly grpcStatus: number;
  readonly failed: boolean;
  readonly requests: CounterChild;
  readonly duration: HistogramChild;
  readonly requestBytes: HistogramChild;
  readonly responseBytes: HistogramChild;
  readonly labelValues: string[];
}

/** One (reporter, source, destination, route): what the control plane aggregates. */
export class Edge {
  readonly key: string;
  readonly reporter: 'source' | 'destination';
  readonly source: { namespace: string; workload: string; principal: string };
  readonly destination: { namespace: string; service: string; workload: string; workloadNamespace: string; principal: string };
  /** The Service the caller addressed when the route sent the request to another (a split's backend): "ns/name". */
  readonly via: string | undefined;
  readonly route: string;
  readonly protocol: 'http' | 'grpc' | 'tcp';
  readonly mtls: boolean;
  /** Label values up to (not including) response_code. */
  readonly baseLabels: readonly string[];
  readonly series = new Map<number, EdgeSeries>();
  /** TCP: opened, closed, bytes; created on first use. */
  tcp: { opened: CounterChild; closed: CounterChild; sent: CounterChild; received: CounterChild } | undefined = undefined;
  /** The sweep epoch of the last use; older than the idle limit → dropped. */
  usedEpoch = 0;
  dead = false;
  /** What the last push to the control plane counted (telemetry.ts). */
  pushed: { requests: number; failures: number; buckets: Float64Array; tcpBytes: number; tcpOpened: number } | undefined = undefined;

  constructor(init: Omit<Edge, 'series' | 'tcp' | 'usedEpoch' | 'dead' | 'pushed' | 'baseLabels' | 'key'>) {
    this.reporter = init.reporter;
    this.source = init.source;
    this.destination = init.destination;
    this.via = init.via;
    this.route = init.route;
    this.protocol = init.protocol;
    this.mtls = init.mtls;
    this.baseLabels = [
      this.reporter,
      this.source.workload,
      this.source.namespace,
      this.source.principal,
      this.destination.workload,
      this.destination.workloadNamespace,
      this.destination.principal,
      this.destination.service === 'unknown' ? 'unknown' : `${this.destination.namespace}/${this.destination.service}`,
      this.destination.service,
      this.destination.namespace,
      this.protocol,
      this.mtls ? 'mutual_tls' : 'none',
      this.route,
    ];
    this.key = this.baseLabels.join('\u0000');
  }
}

export interface ProxyMetrics {
  readonly registry: MetricsRegistry;
  readonly requests: Counter;
  readonly proxyResponses: Counter;
  readonly duration: Histogram;
  readonly requestBytes: Histogram;
  readonly responseBytes: Histogram;
  readonly snapshotApplies: Counter;
  readonly controlPlaneConnected: Gauge;
  readonly activeConnections: Gauge;
  readonly enabled: boolean;
  /** Who this proxy is; set once the workload (and later its certificate) is known. Edges are looked up afresh; those labelled with the old identity expire. */
  setLocal(local: LocalIdentity): void;
  /** Counts one finished HTTP request (called from the listeners when the response closes). */
  recordRequest(ex: HttpExchange, status: number, seconds: number): void;
  /** A TCP connection was spliced to its upstream; returns the edge to pass to recordTcpClosed. */
  recordTcpOpened(ex: TcpExchange): Edge | undefined;
  recordTcpClosed(edge: Edge | undefined, sentBytes: number, receivedBytes: number): void;
  /** Every live edge (the control-plane push walks them). */
  edges(): IterableIterator<Edge>;
  /** Drops series unused for the idle limit; the proxy calls it every SWEEP_EVERY_MS (tests call it directly). Returns how many edges went. */
  sweep(): number;
}

const NO_GRPC = 17;

export function createProxyMetrics(registry: MetricsRegistry, options: ProxyMetricsOptions = {}): ProxyMetrics {
  const labels = REQUEST_LABELS as unknown as string[];
  const requests = registry.counter(
    'weft_requests_total',
    'Requests the proxy handled (Istio istio_requests_total), by reporter, source, destination, route and response.',
    labels,
  );
  const duration = registry.histogram('weft_request_duration_seconds', 'Time from receiving a request to the end of its response (Istio istio_request_duration_milliseconds, in seconds).', labels, REQUEST_SECONDS_BUCKETS);
  const requestBytes = registry.histogram('weft_request_bytes', 'Request body sizes as declared by content-length (Istio istio_request_bytes).', labels, SIZE_BYTES_BUCKETS);
  const responseBytes = registry.histogram('weft_response_bytes', 'Response sizes (Istio istio_response_bytes).', labels, SIZE_BYTES_BUCKETS);
  const tcpLabels = TCP_LABELS as unknown as string[];
  const tcpOpened = registry.counter('weft_tcp_connections_opened_total', 'Opaque TCP connections opened (Istio istio_tcp_connections_opened_total).', tcpLabels);
  const tcpClosed = registry.counter('weft_tcp_connections_closed_total', 'Opaque TCP connections closed (Istio istio_tcp_connections_closed_total).', tcpLabels);
  const tcpSent = registry.counter('weft_tcp_sent_bytes_total', 'Bytes sent to the client of opaque TCP connections (Istio istio_tcp_sent_bytes_total).', tcpLabels);
  const tcpReceived = registry.counter('weft_tcp_received_bytes_total', 'Bytes received from the client of opaque TCP connections (Istio istio_tcp_received_bytes_total).', tcpLabels);
  const enabled = options.requestMetrics !== false;
  const idleMs = options.idleSeriesMs ?? 5 * 60_000;
  const maxSourcesPerPeer = options.maxSourcesPerPeer ?? 200;
  const tap = options.tap;

  let local: LocalIdentity = { namespace: 'unknown', workload: 'unknown' };
  /** Canonical edges by their label values: nested lookups of another snapshot's objects land on the same edge. */
  const byKey = new Map<string, Edge>();
  // outbound: rule id → backend key → endpoint id → edge
  let outbound = new Map<string, Map<string, Map<string, Edge>>>();
  // inbound: caller principal → weft-source → service port → edge
  let inbound = new Map<string, Map<string, Map<string, Edge>>>();
  const reasons = new Map<string, number>([['', 0]]);
  const reasonNames: string[] = [''];
  let epoch = 0;

  const canonical = (edge: Edge): Edge => {
    const existing = byKey.get(edge.key);
    if (existing && !existing.dead) return existing;
    byKey.set(edge.key, edge);
    return edge;
  };

  const outboundEdge = (ruleId: string, backend: SnapshotBackend | undefined, endpoint: SnapshotEndpoint | undefined, service: string, protocol: 'http' | 'grpc' | 'tcp'): Edge => {
    let byBackend = outbound.get(ruleId);
    if (!byBackend) outbound.set(ruleId, (byBackend = new Map()));
    const backendKey = backend?.key ?? service;
    let byEndpoint = byBackend.get(backendKey);
    if (!byEndpoint) byBackend.set(backendKey, (byEndpoint = new Map()));
    // gRPC and HTTP on one endpoint are two edges: the protocol is a label.
    const endpointKey = protocol === 'grpc' ? `grpc ${endpoint?.id ?? ''}` : (endpoint?.id ?? '');
    let edge = byEndpoint.get(endpointKey);
    if (edge && !edge.dead) return edge;
    const [serviceNamespace, serviceName] = backend ? [backend.namespace, backend.service] : splitService(service);
    const [addressedNamespace, addressedName] = splitService(service);
    const via = backend && (addressedNamespace !== serviceNamespace || addressedName !== serviceName) && service !== 'unknown' ? `${addressedNamespace}/${addressedName}` : undefined;
    const instance: [string, string] = endpoint ? splitService(endpoint.id) : ['unknown', 'unknown'];
    edge = canonical(
      new Edge({
        reporter: 'source',
        source: { namespace: local.namespace, workload: local.workload, principal: local.principal ?? 'unknown' },
        destination: {
          namespace: serviceNamespace,
          service: serviceName,
          workload: endpoint?.labels[WORKLOAD_LABEL] ?? instance[1],
          workloadNamespace: instance[0],
          principal: endpoint?.identity ?? 'unknown',
        },
        via,
        route: ruleId || 'unknown',
        protocol,
        mtls: endpoint?.tunnelPort !== undefined,
      }),
    );
    byEndpoint.set(endpointKey, edge);
    return edge;
  };

  const inboundEdge = (peer: string | undefined, sourceHeader: string | undefined, service: string, protocol: 'http' | 'grpc' | 'tcp'): Edge => {
    const peerKey = peer ?? '';
    let bySource = inbound.get(peerKey);
    if (!bySource) inbound.set(peerKey, (bySource = new Map()));
    // weft-source is the caller's word: past the cap, new values count as unknown rather than as new series.
    let sourceKey = sourceHeader ?? '';
    if (!bySource.has(sourceKey) && bySource.size >= maxSourcesPerPeer) sourceKey = '';
    let byService = bySource.get(sourceKey);
    if (!byService) bySource.set(sourceKey, (byService = new Map()));
    const serviceKey = protocol === 'http' ? service : `${protocol} ${service}`;
    let edge = byService.get(serviceKey);
    if (edge && !edge.dead) return edge;
    const [sourceNamespace, sourceWorkload] = sourceKey ? splitService(sourceKey) : [peer ? namespaceOfSpiffe(peer) : 'unknown', 'unknown'];
    edge = canonical(
      new Edge({
        reporter: 'destination',
        source: { namespace: sourceNamespace, workload: sourceWorkload, principal: peer ?? 'unknown' },
        // The caller addressed a Service, but the tunnel only says which port: the workload's port stands for it.
        destination: { namespace: local.namespace, service: 'unknown', workload: local.workload, workloadNamespace: local.namespace, principal: local.principal ?? 'unknown' },
        via: undefined,
        route: service === 'unknown' ? 'unknown' : `inbound:${service.slice(service.lastIndexOf(':') + 1)}`,
        protocol,
        mtls: peer !== undefined,
      }),
    );
    byService.set(serviceKey, edge);
    return edge;
  };

  const seriesOf = (edge: Edge, status: number, grpcStatus: number, reasonId: number): EdgeSeries => {
    const key = (reasonId * 32 + grpcStatus) * 1000 + status;
    let series = edge.series.get(key);
    if (series) return series;
    const values = [...edge.baseLabels, String(status), grpcStatus === NO_GRPC ? '' : String(grpcStatus), reasonNames[reasonId]!];
    series = {
      status,
      grpcStatus,
      failed: status >= 500 || status === 0 || (grpcStatus !== NO_GRPC && grpcStatus !== 0),
      requests: requests.labels(...values),
      duration: duration.labels(...values),
      requestBytes: requestBytes.labels(...values),
      responseBytes: responseBytes.labels(...values),
      labelValues: values,
    };
    edge.series.set(key, series);
    return series;
  };

  const reasonId = (reason: unknown): number => {
    if (typeof reason !== 'string' || reason === '') return 0;
    let id = reasons.get(reason);
    if (id === undefined) {
      // weft-reason values are error codes (a few dozen); anything past that is not one of ours.
      if (reasons.size >= 256) return 0;
      id = reasonNames.length;
      reasons.set(reason, id);
      reasonNames.push(reason);
    }
    return id;
  };

  const sweep = (): number => {
    // An edge used in the sweep period now ending has usedEpoch === epoch; idle for idleMs: that many periods behind.
    const limit = epoch - Math.max(1, Math.ceil(idleMs / SWEEP_EVERY_MS));
    epoch++;
    let dropped = 0;
    for (const [key, edge] of byKey) {
      if (edge.usedEpoch > limit) continue;
      edge.dead = true;
      byKey.delete(key);
      dropped++;
      for (const series of edge.series.values()) {
        requests.remove(...series.labelValues);
        duration.remove(...series.labelValues);
        requestBytes.remove(...series.labelValues);
        responseBytes.remove(...series.labelValues);
      }
      if (edge.tcp) for (const family of [tcpOpened, tcpClosed, tcpSent, tcpReceived]) family.remove(...edge.baseLabels);
    }
    if (dropped > 0) {
      // The lookup maps may still point at dead edges; rebuild them from the live ones lazily by starting afresh.
      outbound = new Map();
      inbound = new Map();
    }
    return dropped;
  };

  return {
    registry,
    requests,
    proxyResponses: registry.counter('weft_proxy_responses_total', 'Responses the proxy made itself (not the upstream), by weft-reason.', ['reason']),
    duration,
    requestBytes,
    responseBytes,
    snapshotApplies: registry.counter('weft_snapshot_applies_total', 'Snapshots applied (ok) or rejected (error).', ['result']),
    controlPlaneConnected: registry.gauge('weft_control_plane_connected', '1 while the config stream to the control plane is open.'),
    activeConnections: registry.gauge('weft_active_connections', 'Client connections open now, by listener.', ['listener']),
    enabled,
    setLocal(next) {
      local = { ...next };
      // Edges carry the local identity in their labels: new ones are made on next use; the old ones expire.
      outbound = new Map();
      inbound = new Map();
    },
    recordRequest(ex, status, seconds) {
      if (tap?.active) tap.record(ex, status, seconds);
      if (!enabled) return;
      const grpc = ex.grpc;
      const protocol = grpc ? 'grpc' : 'http';
      const edge =
        ex.direction === 'outbound'
          ? outboundEdge(ex.routeId ?? '', ex.backend, ex.endpoint, ex.service, protocol)
          : inboundEdge(ex.peerIdentity, ex.req.headers[SOURCE_HEADER] as string | undefined, ex.service, protocol);
      edge.usedEpoch = epoch;
      const res = ex.res;
      let grpcStatus = NO_GRPC;
      if (grpc) {
        const answered = ex.answeredGrpcStatus ?? res.getHeader('grpc-status');
        const code = answered === undefined ? NaN : Number(answered);
        grpcStatus = code >= 0 && code < NO_GRPC ? code : NO_GRPC;
      }
      const reason = ex.proxyReason === undefined ? 0 : reasonId(ex.proxyReason);
      const series = seriesOf(edge, status, grpcStatus, reason);
      series.requests.value++;
      series.duration.observe(seconds);
      series.requestBytes.observe(declaredLength(ex.req.headers['content-length']) ?? ex.bufferedBody?.length ?? 0);
      series.responseBytes.observe(ex.req.httpVersionMajor === 2 ? (declaredLength(res.getHeader('content-length')) ?? 0) : writtenSince(ex.req.socket));
    },
    recordTcpOpened(ex) {
      if (!enabled) return undefined;
      const edge =
        ex.direction === 'outbound'
          ? outboundEdge(ex.routeId ?? '', ex.backend, ex.endpoint, ex.service, 'tcp')
          : inboundEdge(ex.peerIdentity, undefined, ex.service, 'tcp');
      edge.usedEpoch = epoch;
      edge.tcp ??= {
        opened: tcpOpened.labels(...edge.baseLabels),
        closed: tcpClosed.labels(...edge.baseLabels),
        sent: tcpSent.labels(...edge.baseLabels),
        received: tcpReceived.labels(...edge.baseLabels),
      };
      edge.tcp.opened.value++;
      return edge;
    },
    recordTcpClosed(edge, sentBytes, receivedBytes) {
      if (!edge?.tcp) return;
      edge.usedEpoch = epoch;
      edge.tcp.closed.value++;
      edge.tcp.sent.value += sentBytes;
      edge.tcp.received.value += receivedBytes;
    },
    edges: () => byKey.values(),
    sweep,
  };
}

/** How often the proxy sweeps idle series; idleSeriesMs is counted in sweeps. */
export const SWEEP_EVERY_MS = 60_000;

const WRITTEN_AT_LAST_RESPONSE = Symbol('weft.metrics.written');

/**
 * HTTP/1.1 responses on one connection follow each other: what the socket
 * wrote since the previous response closed is this response, head included
 * (Envoy's bytes-sent, which istio_response_bytes reports, counts it too).
 * writeHead(status, object) keeps no header that getHeader could read back.
 */
function writtenSince(socket: { bytesWritten?: number; [WRITTEN_AT_LAST_RESPONSE]?: number } | null): number {
  if (!socket) return 0;
  const written = socket.bytesWritten ?? 0;
  const before = socket[WRITTEN_AT_LAST_RESPONSE] ?? 0;
  socket[WRITTEN_AT_LAST_RESPONSE] = written;
  return written > before ? written - before : 0;
}

function declaredLength(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string' || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** "ns/name[:port]" → [ns, name]. */
function splitService(key: string): [string, string] {
  const slash = key.indexOf('/');
  if (slash === -1) return ['unknown', key || 'unknown'];
  const colon = key.lastIndexOf(':');
  return [key.slice(0, slash), key.slice(slash + 1, colon > slash ? colon : key.length)];
}

/** spiffe://<trust domain>/ns/<ns>/sa/<sa> → <ns>. */
function namespaceOfSpiffe(id: string): string {
  const match = /\/ns\/([^/]+)\//.exec(id);
  return match?.[1] ?? 'unknown';
}

/** What the health gauges read at scrape time. */
export interface HealthSources {
  /** The config version running now ('' before the first snapshot) and when it was applied (epoch ms; 0: never). */
  config: () => { version: string; appliedAt: number; source: string };
  /** Epoch ms now. */
  now: () => number;
}

/**
 * Proxy health: weft_config_info{version,source} 1, the config's age, event-loop
 * delay (perf_hooks' histogram, reset at every scrape so each scrape reports the
 * interval since the last one) and memory. Certificate expiry and the
 * control-plane connection are set where they change (main.ts, discovery.ts).
 * Returns a stop function for the event-loop monitor.
 */
export function registerProxyHealth(registry: MetricsRegistry, sources: HealthSources, monitor: { enable(): void; disable(): void; reset(): void; percentile(p: number): number; max: number; mean: number }): () => void {
  const info = registry.gauge('weft_config_info', 'Always 1; the labels name the config snapshot running now and where it came from.', ['version', 'source']);
  const applied = registry.gauge('weft_config_applied_timestamp_seconds', 'When the running config was applied, in seconds since the epoch.');
  const age = registry.gauge('weft_config_age_seconds', 'How long ago the running config was applied.');
  const delay = registry.gauge('weft_event_loop_delay_seconds', 'Event-loop delay since the previous scrape, by quantile (perf_hooks monitorEventLoopDelay).', ['quantile']);
  const memory = registry.gauge('weft_process_memory_bytes', 'Process memory by kind: rss, heap_used, heap_total, external.', ['kind']);
  monitor.enable();
  let shown = '';
  registry.addCollector(() => {
    const config = sources.config();
    const label = `${config.version} ${config.source}`;
    if (label !== shown) {
      info.reset();
      shown = label;
    }
    info.labels(config.version || 'none', config.source).set(1);
    applied.labels().set(config.appliedAt / 1000);
    age.labels().set(config.appliedAt === 0 ? 0 : Math.max(0, (sources.now() - config.appliedAt) / 1000));
    // The histogram is in nanoseconds; an idle one reports 0 rather than its NaN/huge placeholders.
    const seen = Number.isFinite(monitor.mean) && monitor.max > 0;
    delay.labels('0.5').set(seen ? monitor.percentile(50) / 1e9 : 0);
    delay.labels('0.99').set(seen ? monitor.percentile(99) / 1e9 : 0);
    delay.labels('1').set(seen ? monitor.max / 1e9 : 0);
    monitor.reset();
    const usage = process.memoryUsage();
    memory.labels('rss').set(usage.rss);
    memory.labels('heap_used').set(usage.heapUsed);
    memory.labels('heap_total').set(usage.heapTotal);
    memory.labels('external').set(usage.external);
  });
  return () => monitor.disable();
}
