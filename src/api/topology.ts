// The traffic view of the mesh at GET /api/v1/topology: golden metrics per service and per edge over a window (dashboard, CLI).
//
// The control plane answers `{available: false}` until something collects
// metrics; the observability work supplies the data through the API server's
// `topology` option. The dashboard merges these edges with the ones the config
// implies (route splits, upstreams) by service key, so that both draw as one.

export const TOPOLOGY_PATH = '/api/v1/topology';

/** The windows a client may ask for with `?window=`; the server may round to what it keeps. */
export const TOPOLOGY_WINDOWS = ['1m', '5m', '15m', '1h'] as const;
export type TopologyWindow = (typeof TOPOLOGY_WINDOWS)[number];

/** Golden metrics over the window. Percentiles and successRate are absent when no request finished in it. */
export interface TrafficStats {
  requestsPerSecond: number;
  /** 0..1: the share of requests that did not fail (5xx, reset, proxy-made error). */
  successRate?: number;
  p50Ms?: number;
  p90Ms?: number;
  p99Ms?: number;
  /** TCP (and HTTP) bytes both ways per second, when measured. */
  bytesPerSecond?: number;
}

/** One side of an edge. A caller known only as a workload names it; neither name means "outside the mesh". */
export interface TrafficPeer {
  namespace: string;
  service?: string;
  workload?: string;
}

export interface TrafficEdge extends TrafficStats {
  source: TrafficPeer;
  /** The Service that answered (for a split: the backend, e.g. catalog-v1). */
  destination: { namespace: string; service: string };
  /** The Service the caller addressed when a route sent the request to another one (for a split: catalog). */
  via?: { namespace: string; service: string };
  /** Whether the hop ran over mutual TLS. */
  mtls?: boolean;
  protocol?: 'http' | 'http2' | 'grpc' | 'tcp';
}

export interface TrafficService extends TrafficStats {
  namespace: string;
  service: string;
}

export interface TopologyTraffic {
  /** False until the control plane collects metrics; `reason` then says why there is nothing. */
  available: boolean;
  reason?: string;
  window: string;
  /** When the numbers were computed (ISO 8601). */
  generatedAt: string;
  services: TrafficService[];
  edges: TrafficEdge[];
  /** Per route rule (additive; absent from servers that do not collect them). */
  routes?: TrafficRoute[];
  /** Control-plane replicas that did not answer, and why: the traffic of the proxies they hold is missing. */
  partial?: string[];
}

/** GET /api/v1/services/<namespace>/<name>?window=1m: one Service's traffic, its callers, its callees and its routes. */
export const SERVICE_TRAFFIC_PREFIX = '/api/v1/services/';

/** One route rule's traffic towards a destination (what `weft top` lists). */
export interface TrafficRoute extends TrafficStats {
  /** HttpRouteRule id ("<ns>/<route>/<rule>/<match>", "default"), as the calling proxies report it. */
  route: string;
  source: TrafficPeer;
  destination: { namespace: string; service: string };
  /** The Service the caller addressed when the rule sent the request to another (a split's backend). */
  via?: { namespace: string; service: string };
}

export interface ServiceTraffic {
  available: boolean;
  reason?: string;
  window: string;
  generatedAt: string;
  service: TrafficService;
  /** Edges into the Service. */
  inbound: TrafficEdge[];
  /** Edges from the Service's workloads to others. */
  outbound: TrafficEdge[];
  /** Per route rule into the Service. */
  routes: TrafficRoute[];
  /** The Service's golden metrics step by step over the window, oldest first (additive: the dashboard's charts). */
  series?: TrafficSample[];
  /** How long each step of `series` is, in milliseconds. */
  seriesStepMs?: number;
  /** Control-plane replicas that did not answer, and why: the traffic of the proxies they hold is missing. */
  partial?: string[];
}

/** One step of a Service's traffic: what its callers counted in the step that ends at `t`. */
export interface TrafficSample extends TrafficStats {
  /** The end of the step (epoch milliseconds). */
  t: number;
}

/**
 * The latency buckets (seconds, upper bounds; +Inf implied) proxies count
 * requests in and push to the control plane: Istio's 0.5 ms … 10 s plus 30 s
 * and 60 s. Merging histograms needs one set of bounds everywhere.
 */
export const LATENCY_SECONDS_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * What a proxy pushes on its config stream every few seconds (ProxyMessage
 * 'telemetry'): per edge, what it counted since its previous push. Counts,
 * never rates: the control plane divides by the interval it covers.
 */
export interface TelemetryReport {
  /** How long the counted interval lasted, in milliseconds (the proxy's monotonic clock; the CP places it at receipt). */
  intervalMs: number;
  edges: TelemetryEdgeDelta[];
}

export interface TelemetryEdgeDelta {
  /** 'source': the calling proxy counted it; 'destination': the called one did. */
  reporter: 'source' | 'destination';
  source: { namespace: string; workload: string; principal?: string };
  /** `service` is 'unknown' when the reporter cannot tell (a destination reporter knows only its workload). */
  destination: { namespace: string; service: string; workload: string };
  /** The Service the caller addressed, when the route sent the request to another one (a split's backend). */
  via?: { namespace: string; service: string };
  route: string;
  protocol: 'http' | 'grpc' | 'tcp';
  mtls: boolean;
  requests: number;
  failures: number;
  /** Sparse latency histogram: [bucket index, count, bucket index, count, ...] over LATENCY_SECONDS_BUCKETS (index = length: +Inf). */
  latency: number[];
  /** TCP: bytes both ways and connections opened in the interval. */
  tcpBytes?: number;
  tcpOpened?: number;
}
