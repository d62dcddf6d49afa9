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
  /** Gateway proxies: the Gateway served, "<namespace>/<name>". */
  gateway?: string;
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

/**
 * How a redirect or rewrite changes the path. ReplacePrefixMatch replaces the
 * matched PathPrefix (the rule's match, element-wise, trailing "/" ignored)
 * and keeps the rest; both keep the query string.
 */
export type PathModifier = { type: 'ReplaceFullPath'; value: string } | { type: 'ReplacePrefixMatch'; value: string };

/** RequestRedirect: the proxy answers with `statusCode` and a Location built from the request and these fields. */
export interface RequestRedirect {
  scheme?: 'http' | 'https';
  /** Host name only, no port; absent: the request's Host without its port. */
  hostname?: string;
  /** Absent: the scheme's default port when `scheme` is set, else the port the client addressed; 80 on http and 443 on https are left out. */
  port?: number;
  path?: PathModifier;
  statusCode: 301 | 302 | 303 | 307 | 308;
}

/** URLRewrite: changes the request on its way to the backend. */
export interface UrlRewrite {
  /** Replaces the whole Host header (port included). */
  hostname?: string;
  path?: PathModifier;
}

/** RequestMirror: a copy of the request goes to another backend; its response is discarded. */
export interface RequestMirror {
  /** Key into `ProxySnapshot.backends`; absent when the backendRef could not be resolved (nothing is mirrored). */
  backend?: string;
  /** Share of requests copied, 0–100, possibly fractional (from `fraction`). */
  percent: number;
}

/** CORS: preflights are answered by the proxy; other requests from an allowed Origin get the headers on their response. */
export interface CorsPolicy {
  /** "*", "scheme://host[:port]", or with a "*" leftmost in the host ("https://*.example.com"). Lower-case. */
  allowOrigins: string[];
  allowCredentials: boolean;
  /** Methods, or ["*"]. */
  allowMethods: string[];
  /** Header names (lower-case), or ["*"]. */
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds: number;
}

export type HttpFilter =
  | { type: 'RequestHeaderModifier'; modifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; modifier: HeaderModifier }
  | { type: 'RequestRedirect'; redirect: RequestRedirect }
  | { type: 'URLRewrite'; rewrite: UrlRewrite }
  | { type: 'RequestMirror'; mirror: RequestMirror }
  | { type: 'CORS'; cors: CorsPolicy };

/**
 * A rule's `sessionPersistence` (Gateway API): the proxy gives the client a
 * token naming the backend and endpoint that answered, in a cookie or a
 * header; requests bringing it back go there again while it is valid.
 */
export interface SessionPersistence {
  type: 'Cookie' | 'Header';
  /** The cookie or header name. */
  name: string;
  /** The session ends this long after it began. */
  absoluteTimeoutMs?: number;
  /** The session ends when no request used it for this long. */
  idleTimeoutMs?: number;
  /** Cookie only: a Permanent cookie carries Max-Age (the absolute timeout); a Session cookie ends with the browser session. */
  cookieLifetime?: 'Permanent' | 'Session';
}

/** A rule's `retry` (Gateway API): which answers are tried again, how often, and the backoff between attempts. */
export interface RetryPolicy {
  /** Response statuses that are retried while attempts remain; connection failures and backendRequest timeouts always are. */
  codes: number[];
  /** Retries after the first attempt (0: none). */
  attempts: number;
  /** Base interval between attempts; it doubles per retry, up to 10× the base. */
  backoffMs: number;
}

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
  retry?: RetryPolicy;
  sessionPersistence?: SessionPersistence;
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
  /**
   * With a tunnelPort: the SPIFFE ID the endpoint's proxy must present on the
   * mesh tunnel (its Workload's service account). A tunnelled endpoint without
   * one is never sent to: nobody could be verified as it.
   */
  identity?: string;
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

/**
 * How a proxy's mesh tunnel treats plaintext. STRICT: only mTLS is accepted.
 * PERMISSIVE (for migrations): mTLS and plaintext, told apart by the first
 * byte. There is no DISABLE: proxies always originate mTLS to each other, and
 * workloads outside the mesh are reached directly, never through a tunnel.
 */
export type MtlsMode = 'STRICT' | 'PERMISSIVE';

export interface SnapshotMesh {
  trustDomain: string;
  clusterDomain: string;
  /** PEM roots the mesh's certificates chain to (two during a root rotation); absent in snapshots made without a CA. */
  trustBundle?: string[];
  /** The mode of this proxy's tunnel; STRICT when absent. */
  mtls?: { mode: MtlsMode };
}

/**
 * What a gateway proxy serves (mode gateway): the ports of one Gateway, each
 * with its listeners, and per listener the virtual hosts the routes attached
 * to it make. Route tables live in `ProxySnapshot.routes` like any other.
 */
export interface SnapshotGateway {
  namespace: string;
  name: string;
  /** Ports with at least one listener that can be served, sorted by port. */
  ports: SnapshotGatewayPort[];
}

export interface SnapshotGatewayPort {
  /** The port the Gateway names (80, 443); the proxy binds it, or the local port it was told to map it to. */
  port: number;
  protocol: 'HTTP' | 'HTTPS';
  /**
   * Most specific hostname first: a request's host (and, for HTTPS, a
   * handshake's SNI) belongs to the first listener whose hostname matches it.
   */
  listeners: SnapshotGatewayListener[];
}

export interface SnapshotGatewayListener {
  name: string;
  /** A host name or "*.suffix", lower-case; absent matches every host. */
  hostname?: string;
  /** HTTPS: the certificates this listener presents (PEM; the key is PKCS#8 or PKCS#1). */
  tls?: { certificates: { certPem: string; keyPem: string }[] };
  /**
   * Virtual hosts from the routes attached to the listener, most specific
   * first ("host", then "*.suffix" longest first, then "*"): the first whose
   * hostname matches the request's host gives its route table.
   */
  hosts: { hostname: string; routeKey: string }[];
}

export interface ProxySnapshot {
  /** Content hash of everything below; equal inputs give equal versions. */
  version: string;
  /** Whom the snapshot is for. Not the proxy id: replicas of one workload share one snapshot. */
  node: { mode: ProxyMode; namespace: string; workload?: string };
  mesh: SnapshotMesh;
  services: SnapshotService[];
  routes: Record<string, RouteTable>;
  backends: Record<string, SnapshotBackend>;
  inbound: SnapshotInbound;
  upstreams: SnapshotUpstream[];
  /** Gateway proxies only: absent when the Gateway does not exist or is not weft's. */
  gateway?: SnapshotGateway;
}

/** "<ns>/<name>:<port>": the key shared by routes and backends for a Service port. */
export function servicePortKey(namespace: string, name: string, port: number): string {
  return `${namespace}/${name}:${port}`;
}

export interface OriginPattern {
  scheme: 'http' | 'https';
  /** Lower-case host; with `wildcard`, the part after "*" (e.g. ".example.com", or "" for "*" alone). */
  host: string;
  wildcard: boolean;
  port: number;
}

/**
 * "https://*.example.com:8443" → its parts, the port defaulted from the
 * scheme (the Gateway API compares origins with 80/443 filled in); undefined
 * when it is not an origin.
 * The compiler validates `CorsPolicy.allowOrigins` with it, the proxy matches with it.
 */
export function parseOriginPattern(text: string): OriginPattern | undefined {
  const m = /^(https?):\/\/(\*|\*\.[a-z0-9.-]+|[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$/.exec(text.toLowerCase());
  if (!m) return undefined;
  const scheme = m[1] as 'http' | 'https';
  const port = m[3] !== undefined ? Number(m[3]) : scheme === 'https' ? 443 : 80;
  if (port < 1 || port > 65535) return undefined;
  const hostText = m[2]!;
  const wildcard = hostText.startsWith('*');
  const host = wildcard ? hostText.slice(1) : hostText;
  if (!wildcard && (host.startsWith('.') || host.endsWith('.') || host.includes('..'))) return undefined;
  return { scheme, host, wildcard, port };
}

/**
 * The Workload name a gateway proxy registers under (its instances carry it
 * in their `weft.dev/workload` label). Suffixed, so that a Gateway never takes
 * on the labels of a Workload template that happens to share its name.
 */
export function gatewayWorkloadName(gatewayName: string): string {
  return `${gatewayName}.gateway`;
}
