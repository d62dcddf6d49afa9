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
  /** Where its admin listener (/metrics, /ready) is: the port, and the host it binds (scrape configs use them). */
  adminPort?: number;
  adminHost?: string;
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
  | { type: 'CORS'; cors: CorsPolicy }
  | { type: 'FaultInjection'; fault: FaultInjection }
  | { type: 'GraphQL'; graphql: SnapshotGraphQLApi }
  | { type: 'Portal'; portal: SnapshotPortal }
  | { type: 'Transformation'; transformation: SnapshotTransformation };

/**
 * A Transformation (weft.dev ExtensionRef filter): header values and bodies
 * rendered from templates (api/template.ts), as the control plane checked
 * them; the proxy parses the templates once per snapshot.
 */
export interface SnapshotTransformation {
  /** "<ns>/<name>". */
  name: string;
  extract: { name: string; value: string; regex?: string; group?: number }[];
  request?: SnapshotTransformSide;
  response?: SnapshotTransformSide;
  maxBodyBytes: number;
}

export interface SnapshotTransformSide {
  /** Names lower-case; values are templates. */
  headers?: { set: { name: string; value: string }[]; add: { name: string; value: string }[]; remove: string[] };
  body?: { json: unknown } | { text: string; contentType: string };
}

/** An ApiPortal (weft.dev ExtensionRef filter): the proxy serves its pages and catalog under the rule's path. */
export interface SnapshotPortal {
  /** "<ns>/<name>". */
  name: string;
  title: string;
  description?: string;
  apis: SnapshotPortalApi[];
}

export interface SnapshotPortalApi {
  name: string;
  title: string;
  description?: string;
  /** "http://shop.example.com", from the routes' hostnames and their Gateways' listeners. */
  baseUrls: string[];
  /** From the routes' matches: methods (empty: any) and paths. */
  operations: { methods: string[]; path: string; pathType: 'Exact' | 'PathPrefix' | 'RegularExpression' }[];
  /** How callers authenticate, from the RequestAuthentications on the routes' Gateways ("API key in header x-api-key"). */
  authentication: string[];
  /** A GraphQLApi's SDL, and the paths it is served on. */
  graphql?: { schema: string; paths: string[] };
  /** The OpenAPI document, as JSON text. */
  openapi?: string;
}

/**
 * A GraphQLApi (weft.dev ExtensionRef filter): the proxy answers GraphQL
 * requests itself, calling the resolvers' REST endpoints through the mesh.
 */
export interface SnapshotGraphQLApi {
  /** "<ns>/<name>". */
  name: string;
  /** The SDL, as checked by the control plane. */
  schema: string;
  /** "Type.field" → its REST call. */
  resolvers: Record<string, SnapshotGraphQLResolver>;
  maxDepth: number;
  introspection: boolean;
  timeoutMs: number;
}

/** A `{args.name}` or `{parent.name}` placeholder in a resolver's path: one definition for the schema, the compiler and the proxy (which loads no zod). */
export const GRAPHQL_PLACEHOLDER = /\{(args|parent)\.([A-Za-z_][A-Za-z0-9_]*)\}/g;

export interface SnapshotGraphQLResolver {
  /** A key of `backends` (the Service port called). */
  backend: string;
  /** The Host the call carries: the Service's name. */
  host: string;
  method: string;
  /** With `{args.x}` / `{parent.x}` placeholders. */
  path: string;
  body?: string;
  forwardHeaders: string[];
  resultPath?: string[];
}

/**
 * A FaultInjection (weft.dev ExtensionRef filter): a delay, an abort, or both,
 * each for a share of the requests that carry `headers` (all of them when absent).
 */
export interface FaultInjection {
  /** "<ns>/<name>" of the FaultInjection object, for logs and the abort's message. */
  name: string;
  delay?: { ms: number; percent: number };
  /** httpStatus answers HTTP callers, grpcStatus gRPC callers (HTTP 200, trailers-only); a missing one falls back to the other. */
  abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
  /** Header names lower-case. */
  headers?: ({ name: string } & StringMatch)[];
}

/** What a rate limit's buckets are keyed by, besides its target. */
export type RateLimitDescriptor =
  | { type: 'Route' | 'Service' | 'SourceIdentity' | 'ClientIP' | 'RequestPrincipal' }
  | { type: 'Header'; header: string };

/**
 * One limit of a RateLimitPolicy on one target: a token bucket per distinct
 * descriptor key, refilled at `requests` per `intervalMs`, holding `burst`.
 */
export interface SnapshotRateLimit {
  /** Stable across snapshots while the limit and its target stay: "<ns>/<policy>/<limit name or index>@<Kind>/<ns>/<name>". Keys the buckets (and the global quota). */
  id: string;
  /** "<ns>/<policy>/<limit name or index>": the policy name in RateLimit-Policy headers. */
  policy: string;
  requests: number;
  intervalMs: number;
  burst: number;
  descriptors: RateLimitDescriptor[];
  scope: 'Local' | 'Global';
  maxKeys: number;
}

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
  /**
   * Opaque TCP on a mesh port with TLSRoutes: the SNI host pattern ("a.example",
   * "*.example", "*") of the ClientHello this rule takes. A table whose rules
   * carry `sni` is routed by the client's ClientHello (most specific rule
   * first; a rule without `sni`, a TCPRoute's, takes any other connection).
   */
  sni?: string;
  retry?: RetryPolicy;
  sessionPersistence?: SessionPersistence;
  /** RateLimitPolicies on the rule's route, its Gateway, ...: every one must let the request pass. */
  rateLimits?: SnapshotRateLimit[];
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
  /** Where the endpoint runs (its Workload's `locality`); callers prefer endpoints near them when a BackendTrafficPolicy asks. */
  locality?: SnapshotLocality;
}

export interface SnapshotLocality {
  region?: string;
  zone?: string;
  subzone?: string;
}

/** How the balancer picks an endpoint: least-request is power of two choices on in-flight × latency EWMA. */
export type LoadBalancer = 'round-robin' | 'least-request' | 'random' | 'consistent-hash';

/**
 * What a BackendTrafficPolicy sets for one backend, compiled (durations in
 * ms, defaults filled in). Absent parts are off. docs/policies.md says how
 * each behaves.
 */
export interface BackendTraffic {
  /** The policy it came from, "ns/name", for logs and the admin page. */
  policy: string;
  /** ConsistentHash: what a request is hashed on; requests without that key get a random endpoint. */
  hash?: {
    source: 'header' | 'cookie' | 'query' | 'source-ip';
    /** Header (lower-case), cookie or query parameter name. */
    name?: string;
    algorithm: 'maglev' | 'ring-hash';
  };
  /** An endpoint new to a running proxy gets a share of traffic growing linearly over this window. */
  slowStartMs?: number;
  /** Prefer endpoints in the caller's locality, failing over region by region when none there is available. */
  localityFailover?: boolean;
  circuitBreaker?: {
    /** Connections per endpoint (the connection pool's size). */
    maxConnections?: number;
    /** Requests waiting for a connection, across the backend. */
    maxPendingRequests?: number;
    /** Requests in flight to the backend. */
    maxRequests?: number;
    /** Requests with a retry in progress, across the backend. */
    maxRetries?: number;
  };
  outlierDetection?: {
    consecutive5xx?: number;
    consecutiveGatewayErrors?: number;
    consecutiveConnectFailures?: number;
    baseEjectionMs: number;
    maxEjectionMs: number;
    maxEjectionPercent: number;
  };
  healthCheck?: {
    type: 'http' | 'tcp';
    /** HTTP: the path requested (GET) and the statuses that count as healthy. */
    path?: string;
    expectedStatuses?: number[];
    intervalMs: number;
    timeoutMs: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
  };
  connection?: { connectTimeoutMs?: number; idleTimeoutMs?: number; maxRequestsPerConnection?: number };
  /** Retries may add at most `percent` % to the request rate over `windowMs`, plus `minRetriesPerSecond`. */
  retryBudget?: { percent: number; minRetriesPerSecond: number; windowMs: number };
}

export interface SnapshotBackend {
  /** "<ns>/<service>:<port>". */
  key: string;
  namespace: string;
  service: string;
  port: number;
  protocol: PortProtocol;
  lb: LoadBalancer;
  endpoints: SnapshotEndpoint[];
  /** From the BackendTrafficPolicy that targets this Service (port), if any. */
  traffic?: BackendTraffic;
  /**
   * Set on a route's variant of a Service port's backend (key
   * backendVariantKey(servicePortKey, variant)): "<Kind>/<ns>/<route>[/<rule>]",
   * the route (rule) whose BackendTrafficPolicy `traffic` comes from. Same
   * endpoints as the Service port's backend; its own balancer, breaker and
   * outlier state in the proxy.
   */
  variant?: string;
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
  /** RateLimitPolicies on the Services this workload serves, enforced on arrival (keyed by the caller's verified identity, ...). */
  rateLimits?: SnapshotRateLimit[];
  /** RequestAuthentication rules that apply to this workload: tokens are verified on arrival (before authorization). */
  requestAuthentication?: SnapshotJwtRule[];
  /** RequestAuthentication apiKeys that apply to this workload: keys are checked on arrival (before authorization). */
  apiKeys?: SnapshotApiKeyRule[];
  /** AuthorizationPolicies this workload enforces on arrival; absent when none applies and the mesh default is ALLOW. */
  authorization?: SnapshotAuthorization;
}

/**
 * The AuthorizationPolicies one proxy enforces, by action. Evaluated as
 * Istio does: every matching AUDIT policy is logged; any matching DENY
 * policy denies; then, when `allow` is present (some ALLOW policy applies),
 * a request no ALLOW policy matches is denied; when it is absent, the request
 * is allowed unless `defaultDeny` (MeshConfig authorization.defaultAction DENY).
 */
/**
 * One jwtRule of a RequestAuthentication, compiled (durations in ms, defaults
 * filled in, header names lower-case). A request may carry no token; a token
 * it carries must verify against a rule with its issuer, else 401.
 */
export interface SnapshotJwtRule {
  /** "<ns>/<policy>/<rule index>", for logs. */
  id: string;
  issuer: string;
  /** Empty: `aud` is not checked. */
  audiences: string[];
  /** Exactly one of jwksUri and jwks (an inline JSON Web Key Set). */
  jwksUri?: string;
  jwks?: string;
  /** Where tokens are looked for: headers (prefix stripped), query parameters, cookies. */
  fromHeaders: { name: string; prefix: string }[];
  fromParams: string[];
  fromCookies: string[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders: { header: string; claim: string }[];
  forwardOriginalToken: boolean;
  algorithms: string[];
  clockSkewMs: number;
  jwksCacheMs: number;
  jwksTimeoutMs: number;
}

/**
 * The apiKeys of one RequestAuthentication, compiled. The keys themselves
 * never leave the control plane: a proxy gets each one's SHA-256 and checks
 * the digest of what a request presents.
 */
export interface SnapshotApiKeyRule {
  /** "<ns>/<policy>", for logs. */
  id: string;
  /** Hex SHA-256 of each accepted key → the client id it identifies. */
  keys: Record<string, string>;
  /** Header names lower-case; `prefix` stripped (compared case-insensitively). */
  fromHeaders: { name: string; prefix: string }[];
  fromParams: string[];
  clientIdHeader?: string;
  forwardOriginalKey: boolean;
}

export interface SnapshotAuthorization {
  /** CUSTOM policies: an external service decides the requests they match, before DENY and ALLOW are looked at. */
  custom?: SnapshotAuthzCustomPolicy[];
  deny: SnapshotAuthzPolicy[];
  /** Absent: no ALLOW policy applies. Present and empty cannot happen; an ALLOW policy without rules is listed with `rules: []`. */
  allow?: SnapshotAuthzPolicy[];
  audit: SnapshotAuthzPolicy[];
  defaultDeny?: boolean;
}

export interface SnapshotAuthzPolicy {
  /** "<ns>/<name>". */
  name: string;
  /** Any rule may match; none (empty): the policy matches nothing. */
  rules: SnapshotAuthzRule[];
}

/** A CUSTOM policy; `provider` absent: its provider is not (or no longer) defined, and what it matches is denied. */
export interface SnapshotAuthzCustomPolicy extends SnapshotAuthzPolicy {
  provider?: SnapshotExtAuthz;
}

/** An external authorization service over HTTP (MeshConfig extensionProviders[].envoyExtAuthzHttp). */
export interface SnapshotExtAuthz {
  /** The provider's name. */
  name: string;
  /** A key of `backends`: the Service port asked. */
  backend: string;
  /** The Host the check carries. */
  host: string;
  timeoutMs: number;
  pathPrefix: string;
  /** Lower-case. */
  includeRequestHeaders: string[];
  /** Lower-case names. */
  additionalHeaders: Record<string, string>;
  /** Present: the request body goes with the check, up to this many bytes. */
  maxRequestBytes?: number;
  headersToUpstreamOnAllow: string[];
  headersToDownstreamOnAllow: string[];
  headersToDownstreamOnDeny: string[];
  failOpen: boolean;
  statusOnError: number;
}

/** Every part present must match: one of `from`, one of `to`, all of `when`. String values use Istio's matches: "abc", "abc*", "*abc", "*". */
export interface SnapshotAuthzRule {
  from?: SnapshotAuthzSource[];
  to?: SnapshotAuthzOperation[];
  when?: SnapshotAuthzCondition[];
}

/** Principals without "spiffe://" ("<td>/ns/<ns>/sa/<sa>"); every field present must match. */
export interface SnapshotAuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
}

/** Hosts are lower-case; paths match the normalised path without its query. */
export interface SnapshotAuthzOperation {
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
  ports?: number[];
  notPorts?: number[];
}

/** An Istio `when` condition: key "request.headers[name]", "source.ip", "request.auth.claims[a][b]", ... */
export interface SnapshotAuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
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
  /**
   * SHA-256 fingerprint (colon hex) of the CA certificate that signs new
   * workload certificates. After a root rotation a proxy whose certificate
   * another CA signed renews early (with jitter), once it trusts the new bundle.
   */
  signingCa?: string;
  /** The mode of this proxy's tunnel; STRICT when absent. */
  mtls?: { mode: MtlsMode };
  /** MeshConfig protocolDetectionTimeout; absent: the proxy's own default. */
  protocolDetectionTimeoutMs?: number;
  /** MeshConfig limits, durations in ms; absent fields keep the proxy's defaults (its --limit flags win). */
  limits?: SnapshotLimits;
  /** MeshConfig pathNormalization; absent: BASE. */
  pathNormalization?: 'NONE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';
  /** MeshConfig tracing; absent: trace headers pass through untouched and no span is made. */
  tracing?: SnapshotTracing;
  /** MeshConfig accessLog; absent or disabled: no access log. */
  accessLog?: SnapshotAccessLog;
}

/** Listener limits as the proxy applies them (src/proxy/transport/hardening.ts ListenerLimits, whose field names these are). */
export interface SnapshotLimits {
  maxHeaderCount?: number;
  maxHeaderBytes?: number;
  maxUriBytes?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
  h2SessionIdleTimeoutMs?: number;
  maxConnections?: number;
  h2MaxConcurrentStreams?: number;
  h2MaxPrematureResets?: number;
  h2MaxControlFramesPerSecond?: number;
}

/** Tracing as the proxy applies it (src/proxy/tracing/). */
export interface SnapshotTracing {
  /** Traces this proxy starts that are recorded, 0-100; a caller's own decision (sampled flag) wins. */
  samplingPercent: number;
  /** The OTLP/HTTP collector; absent: context is propagated, spans go nowhere. */
  collector?: { endpoint: string; timeoutMs?: number };
  batchSize?: number;
  maxQueueSize?: number;
  exportIntervalMs?: number;
}

/** Access logging as the proxy applies it (src/proxy/access-log.ts). */
export interface SnapshotAccessLog {
  enabled: boolean;
  /** Requests and connections logged, 0-100. */
  samplingPercent: number;
  /** 'stdout' or an absolute file path (appended to). */
  path: string;
  /** The fields of each line, in order; absent: all of them. */
  fields?: string[];
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
  /** RequestAuthentication rules on this Gateway: tokens are verified before routing. */
  requestAuthentication?: SnapshotJwtRule[];
  /** RequestAuthentication apiKeys on this Gateway: keys are checked before routing. */
  apiKeys?: SnapshotApiKeyRule[];
  /** AuthorizationPolicies targeting this Gateway (and mesh-wide ones), enforced on every HTTP request and TCP connection it accepts. */
  authorization?: SnapshotAuthorization;
}

export interface SnapshotGatewayPort {
  /** The port the Gateway names (80, 443); the proxy binds it, or the local port it was told to map it to. */
  port: number;
  /**
   * HTTP and HTTPS: requests routed by host. TCP: every connection goes to
   * the one virtual host ("*") of the port's listener (a TCPRoute's backends).
   * TLS: passthrough, routed by the ClientHello's SNI to a virtual host of a
   * TLSRoute, never terminated. L4 route tables have one catch-all rule.
   */
  protocol: 'HTTP' | 'HTTPS' | 'TCP' | 'TLS';
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
  node: { mode: ProxyMode; namespace: string; workload?: string; locality?: SnapshotLocality };
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

/** "<servicePortKey>~<variant>": the key of a route's variant of a Service port's backend (SnapshotBackend.variant). */
export function backendVariantKey(baseKey: string, variant: string): string {
  return `${baseKey}~${variant}`;
}

/** The Service port's backend key of a backend key, variant or not. */
export function baseBackendKey(key: string): string {
  const tilde = key.indexOf('~');
  return tilde < 0 ? key : key.slice(0, tilde);
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
