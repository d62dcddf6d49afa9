// The proxy snapshot: everything one proxy needs, compiled by the control plane, versioned by content hash.
//
// Vocabulary (DESIGN.md house rule 3): a *route* picks a rule for a request and
// says which backends it goes to; a *backend* is one Service port with its
// balancer and endpoints; an *endpoint* is one address.

export type ProxyMode = 'sidecar' | 'node' | 'gateway';

/** What the proxy reports about itself in its hello; part of the compiler's input. */
export interface NodeInfo {
  /** Unique per proxy process: "<namespace>/<instance>". */
  id: string;
  mode: ProxyMode;
  namespace: string;
  /** The template Workload this proxy serves (sidecar), if any. */
  workload?: string;
  /** The registered instance name: "<workload>-<suffix>". */
  instance?: string;
  /** Address at which other proxies reach this proxy (its tunnel listener). */
  address: string;
  tunnelPort: number;
  /** The app's ports on 127.0.0.1, as the proxy was told. */
  appPorts: number[];
}

/** Protocols a Service port can carry; decided from appProtocol / port name. */
export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface SnapshotServicePort {
  port: number;
  name?: string;
  protocol: PortProtocol;
  /** Key into `ProxySnapshot.routes`. */
  routeKey: string;
}

/** A Service as the outbound side sees it: the host names that reach it and its ports. */
export interface SnapshotService {
  namespace: string;
  name: string;
  /**
   * Every host name (without port) that reaches this service from this proxy:
   * "name.ns", "name.ns.svc", "name.ns.svc.<domain>", plus "name" when the
   * service is in the proxy's own namespace. Lower-case.
   */
  hosts: string[];
  ports: SnapshotServicePort[];
}

export type StringMatch = { type: 'Exact'; value: string } | { type: 'RegularExpression'; value: string };

export interface HttpMatch {
  path?: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string };
  /** Header names lower-case. */
  headers?: ({ name: string } & StringMatch)[];
  queryParams?: ({ name: string } & StringMatch)[];
  method?: string;
}

export interface HeaderModifier {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export type HttpFilter =
  | { type: 'RequestHeaderModifier'; modifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; modifier: HeaderModifier };

export interface WeightedBackend {
  /** Key into `ProxySnapshot.backends`; absent when the backendRef could not be resolved (answers 500). */
  backend?: string;
  weight: number;
  filters: HttpFilter[];
}

export interface HttpRouteRule {
  /** Stable id for metrics and logs: "<ns>/<route>/<rule index or name>/<match index>", or "default" for the implicit route. */
  id: string;
  /**
   * One match of one HTTPRoute rule: the compiler flattens every (route, rule,
   * match) into its own entry, so that the Gateway API precedence can order
   * them. An empty match matches every request.
   */
  match: HttpMatch;
  filters: HttpFilter[];
  /** Empty: the rule has no backends and answers 500 (Gateway API). */
  backends: WeightedBackend[];
  timeouts?: { requestMs?: number; backendRequestMs?: number };
}

/**
 * The routing table for one Service port, already in precedence order: the
 * first rule whose match fits the request wins.
 */
export interface RouteTable {
  key: string;
  rules: HttpRouteRule[];
}

export interface SnapshotEndpoint {
  /** "<namespace>/<workload instance>": stable across snapshots, used for pools and metrics. */
  id: string;
  address: string;
  /** The app's port the request is for. */
  port: number;
  /** When set, the endpoint sits behind a weft proxy: connect to address:tunnelPort. */
  tunnelPort?: number;
  labels: Record<string, string>;
}

export type LoadBalancer = 'round-robin' | 'least-request';

export interface SnapshotBackend {
  /** "<ns>/<service>:<port>". */
  key: string;
  namespace: string;
  service: string;
  port: number;
  protocol: PortProtocol;
  lb: LoadBalancer;
  endpoints: SnapshotEndpoint[];
}

/** An upstream port: the proxy listens on 127.0.0.1:localPort and sends everything to one service port. */
export interface SnapshotUpstream {
  localPort: number;
  /** Key into `ProxySnapshot.routes`. */
  routeKey: string;
  /** Host header to use when the client sends none (HTTP/1.0). */
  host: string;
}

export interface SnapshotInbound {
  /** App ports that the tunnel may deliver to (on 127.0.0.1). */
  ports: number[];
}

export interface ProxySnapshot {
  /** Content hash of everything below; equal inputs give equal versions. */
  version: string;
  /** Whom the snapshot is for. Not the proxy id: replicas of one workload share one snapshot. */
  node: { mode: ProxyMode; namespace: string; workload?: string };
  mesh: { trustDomain: string; clusterDomain: string };
  services: SnapshotService[];
  routes: Record<string, RouteTable>;
  backends: Record<string, SnapshotBackend>;
  inbound: SnapshotInbound;
  upstreams: SnapshotUpstream[];
}

/** "<ns>/<name>:<port>": the key shared by routes and backends for a Service port. */
export function servicePortKey(namespace: string, name: string, port: number): string {
  return `${namespace}/${name}:${port}`;
}
