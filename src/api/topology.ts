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
}
