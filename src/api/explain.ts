// `weft explain`: the request a user imagines, the live proxy state it may bring, and the decision trace the control plane answers with.
import type { BackendTraffic, FaultInjection, HttpFilter, LoadBalancer, PortProtocol, RetryPolicy, SessionPersistence, SnapshotLocality } from './snapshot.ts';

/** POST: an ExplainRequest in, an ExplainTrace out. */
export const EXPLAIN_PATH = '/weft/v1/explain';

export interface ExplainRequest {
  /** "<ns>/<workload>": the request leaves this workload through its sidecar. Exactly one of `from` and `gateway`. */
  from?: string;
  /** "<ns>/<gateway>": the request enters the mesh at this Gateway. */
  gateway?: string;
  /** HTTP method; ignored for tcp:// and tls:// URLs. */
  method: string;
  /**
   * What the caller addresses: "http://reviews.default:9080/path?q" (a
   * sidecar resolves the host as a mesh service; a gateway takes the host as
   * the Host header and the port as the listener port, 80/443 by default),
   * "https://..." at a gateway (the host is also the SNI), "tcp://svc:port"
   * or "tls://sni.example:443" for opaque connections.
   */
  url: string;
  /** Request headers, names in any case. */
  headers?: Record<string, string>;
  /** TLS: the ClientHello's server name when it differs from the URL's host. */
  sni?: string;
  /**
   * The caller's address, for AuthorizationPolicies on ipBlocks and source.ip: the client's at a gateway, the
   * calling instance's at the workloads a sidecar sends to. Workloads behind a gateway see the gateway's address.
   */
  sourceIp?: string;
  /** What the calling proxy's admin answered at /debug/backends, when the caller could reach it. */
  live?: LiveProxyState;
  /** Why `live` is absent (no admin address known, admin unreachable), said in the trace. */
  liveUnavailable?: string;
}

/** How the request would end. */
export type ExplainOutcome =
  /** Sent to a backend, which answers. */
  | 'forwarded'
  /** The proxy answers with a redirect (RequestRedirect). */
  | 'redirected'
  /** The proxy answers a CORS preflight itself. */
  | 'preflight'
  /** The proxy answers it as a GraphQLApi, calling the resolvers' services for the fields asked. */
  | 'graphql'
  /** The proxy serves an ApiPortal's pages. */
  | 'portal'
  /** A policy refuses it: an exhausted rate limit, a FaultInjection abort at 100 %, an AuthorizationPolicy (403 WEFT_ERR_RBAC_DENIED). */
  | 'denied'
  /** The proxy refuses the request as malformed (a path that cannot be normalised: 400 WEFT_ERR_INVALID_PATH). */
  | 'bad-request'
  | 'no-route'
  /** The backend has no ready endpoint registered with the control plane. */
  | 'no-healthy-endpoint'
  | 'backend-not-found'
  /** The backend's circuit breaker is at its limit in the calling proxy. */
  | 'circuit-open';

export interface ExplainVerdict {
  outcome: ExplainOutcome;
  /** The status the proxy answers with itself; absent when a backend answers. */
  status?: number;
  /** The `weft-reason` header of that answer (a WEFT_ERR_* code). */
  reason?: string;
  /** One sentence a user reads first. */
  summary: string;
}

/** Something that happens to a share of such requests, or under load: a fault at 30 %, a weighted backend that does not exist, an ejected endpoint. */
export interface ExplainRisk {
  /** WEFT_ERR_* code the proxy would answer with, when it answers. */
  reason?: string;
  status?: number;
  /** Share of such requests it happens to, 0–100; absent when it depends on state (load, time). */
  percent?: number;
  why: string;
}

/** Where the request enters: a service port of the sidecar's outbound side, an endpoint addressed directly, or a gateway listener. */
export interface ExplainEntry {
  kind: 'service-port' | 'endpoint' | 'gateway-listener';
  /** In words: "reviews.default:9080 (service default/reviews port 9080, http)". */
  summary: string;
  host: string;
  port: number;
  protocol: PortProtocol | 'HTTP' | 'HTTPS' | 'TCP' | 'TLS';
  /** Key of the route table used ("<ns>/<svc>:<port>", a gateway virtual host's). */
  routeKey?: string;
  service?: { namespace: string; name: string };
  gateway?: { namespace: string; name: string; port: number; listener?: string; virtualHost?: string; sni?: string };
  /** How the host was matched, step by step (gateway listeners and virtual hosts tried in order). */
  steps: string[];
}

export interface ExplainCondition {
  describe: string;
  ok: boolean;
}

/** One rule of the route table, in precedence order, and what it made of the request. */
export interface ExplainRuleCheck {
  index: number;
  /** "<ns>/<route>/<rule>/<match>", or "default" for the implicit route. */
  id: string;
  /** matched: the rule used; no-match: a condition failed; shadowed: it matches too but an earlier rule wins; not-checked: an opaque connection has no request to match. */
  result: 'matched' | 'no-match' | 'shadowed' | 'not-checked';
  conditions: ExplainCondition[];
  /** In words: why it did (not) take the request. */
  why: string;
}

export interface ExplainFilter {
  type: HttpFilter['type'] | 'RateLimit' | 'SessionPersistence';
  /** "rule", or the backend key whose backendRef carries it. */
  scope: string;
  describe: string;
  /** What it does to this request: the rewritten path, the Location, whether a fault's header condition holds. */
  effect?: string;
  /** The filter as the snapshot has it. */
  config?: unknown;
}

export interface ExplainRateLimit {
  id: string;
  policy: string;
  scope: 'Local' | 'Global';
  requests: number;
  intervalMs: number;
  burst: number;
  /** The bucket key parts of this request, as the proxy would build them ("Header x-user=alice"). */
  key: string[];
  /** From the calling proxy: tokens left in this request's bucket; absent without live state or when the bucket does not exist yet (full). */
  tokensLeft?: number;
  exhausted?: boolean;
}

export interface ExplainEndpointLive {
  /** Ejected by outlier detection until this many ms from the moment of the read. */
  ejectedForMs?: number;
  ejections: number;
  /** False once the active health check failed its threshold. */
  healthy: boolean;
  inFlight: number;
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  consecutiveConnectFailures: number;
}

export interface ExplainEndpoint {
  id: string;
  address: string;
  port: number;
  tunnelPort?: number;
  identity?: string;
  locality?: SnapshotLocality;
  /** The control plane lists only registered, ready instances: every endpoint here is one. */
  registered: true;
  live?: ExplainEndpointLive;
  /** Whether the balancer would pick it now (not ejected, not failing health checks); true without live state. */
  available: boolean;
  /** In words: "ready", "ejected by outlier detection for 28 s (3 ejections)", "failing health checks". */
  state: string;
}

export interface ExplainBackend {
  /** Backend key; absent when the backendRef could not be resolved. */
  key?: string;
  weight: number;
  /** Share of the rule's requests, 0–100. */
  percent: number;
  service?: { namespace: string; name: string; port: number };
  protocol?: PortProtocol;
  lb?: LoadBalancer;
  /** A route-targeted BackendTrafficPolicy variant: "<Kind>/<ns>/<route>[/<rule>]". */
  variant?: string;
  /** The BackendTrafficPolicy in force ("ns/name") and what it sets. */
  traffic?: BackendTraffic;
  filters: ExplainFilter[];
  endpoints: ExplainEndpoint[];
  circuitBreaker?: {
    maxRequests?: number;
    maxPendingRequests?: number;
    maxConnections?: number;
    maxRetries?: number;
    /** From the calling proxy. */
    live?: { requests: number; pending: number; retries: number };
    /** At its limit now: a new request is refused with 503 WEFT_ERR_CIRCUIT_OPEN. */
    open: boolean;
  };
  /** Why this backend cannot take the request, when it cannot. */
  problem?: string;
}

export interface ExplainTimeouts {
  /** The whole request, retries included (rule timeouts.request). */
  requestMs?: number;
  /** Each attempt (rule timeouts.backendRequest). */
  backendRequestMs?: number;
  /** The caller's grpc-timeout, a deadline too. */
  grpcTimeoutMs?: number;
  /** The deadline that applies: the earlier of request and grpc-timeout; absent: none. */
  effectiveMs?: number;
  summary: string;
}

export interface ExplainRetry {
  /** The rule's retry policy; absent: connect failures only. */
  policy?: RetryPolicy;
  /** Attempts in all, the first included. */
  attempts: number;
  /** Per backend: its retry budget (BackendTrafficPolicy retryBudget). */
  budgets: { backend: string; percent: number; minRetriesPerSecond: number; windowMs: number }[];
  summary: string;
}

export interface ExplainTrace {
  request: { method: string; url: string; host: string; port: number; path: string; headers: Record<string, string>; sni?: string; sourceIp?: string };
  from: { kind: 'workload' | 'gateway'; name: string; snapshotVersion: string };
  verdict: ExplainVerdict;
  risks: ExplainRisk[];
  entry?: ExplainEntry;
  /** The route table's rules in precedence order, each with its result. */
  rules: ExplainRuleCheck[];
  /** The rule used, when one is. */
  rule?: {
    id: string;
    filters: ExplainFilter[];
    rateLimits: ExplainRateLimit[];
    sessionPersistence?: SessionPersistence;
    faults: FaultInjection[];
  };
  backends: ExplainBackend[];
  /** AuthorizationPolicies met on the way: at the gateway (when entering there), then at each destination workload. */
  authorization?: ExplainAuthorization[];
  /** RequestAuthentications met on the way (before the AuthorizationPolicies of the same proxy): their rules and the request's tokens, unverified. */
  authentication?: ExplainAuthentication[];
  timeouts?: ExplainTimeouts;
  retry?: ExplainRetry;
  /** Whether the calling proxy's live state was used. */
  live: { used: boolean; source?: string; why?: string };
  notes: string[];
}

/** What the AuthorizationPolicies of one enforcing proxy decide for the request. */
export interface ExplainAuthorization {
  /** "gateway <ns>/<name>" or "workload <ns>/<name>". */
  at: string;
  /** The caller's identity as that proxy sees it (the SPIFFE ID of the sending proxy); absent at a gateway (external clients have none). */
  principal?: string;
  allowed: boolean;
  /** The deciding policy, "ns/name", when one decided. */
  policy?: string;
  why: string;
  /** AUDIT policies that would log the request. */
  audited: string[];
  /**
   * "<iss>/<sub>" of the request's token, which requestPrincipals and JWT
   * conditions were evaluated with: read from the token WITHOUT verifying its
   * signature (explain has no keys), so the decision holds only for a genuine token.
   */
  unverifiedRequestPrincipal?: string;
  /** "api-key/<client>" of the request's API key, which explain checks against the keys' digests as the proxy does. */
  requestPrincipal?: string;
  /**
   * CUSTOM policies the request matches: an external service decides it first,
   * which explain cannot ask. The rest of the decision holds if it allows.
   */
  externalChecks?: { policy: string; provider?: string }[];
}

/** The RequestAuthentication rules one proxy verifies tokens with, and the tokens the request carries where they look. */
export interface ExplainAuthentication {
  /** "gateway <ns>/<name>" or "workload <ns>/<name>". */
  at: string;
  rules: ExplainJwtRule[];
  /** In the order the proxy finds them; the first gives the request principal. */
  tokens: ExplainToken[];
  /** RequestAuthentication apiKeys there, and the keys the request carries (checked for real: the snapshot holds their digests). */
  apiKeyRules?: ExplainApiKeyRule[];
  apiKeys?: ExplainApiKey[];
}

export interface ExplainApiKeyRule {
  /** "<ns>/<policy>". */
  id: string;
  /** Where keys are looked for. */
  from: string[];
  /** How many clients it knows. */
  clients: number;
}

export interface ExplainApiKey {
  /** 'header x-api-key', 'query parameter api_key'. */
  foundIn: string;
  /** The client the key identifies; absent when no rule reading that place knows it. */
  client?: string;
  /** The rule that knows it. */
  acceptedBy?: string;
  problem?: string;
}

export interface ExplainJwtRule {
  /** "<ns>/<policy>/<rule index>". */
  id: string;
  issuer: string;
  /** Empty: `aud` is not checked. */
  audiences: string[];
  /** Where tokens are looked for: 'header authorization (prefix "Bearer ")', "query parameter access_token", "cookie session". */
  from: string[];
  /** The jwksUri, or "inline jwks". */
  keys: string;
}

/** A token as the request carries it, decoded but never verified. */
export interface ExplainToken {
  /** Where it was found ('header authorization (prefix "Bearer ")'). */
  foundIn: string;
  /** Always false: explain does not verify signatures; the claims are what the token says. */
  verified: false;
  iss?: string;
  sub?: string;
  aud?: string[];
  /** `exp` as an ISO time. */
  expiresAt?: string;
  /** Whether `exp` (with the rule's clock skew) is past. */
  expired?: boolean;
  /** Whether a rule reading the place it was found names its issuer. */
  issuerAccepted: boolean;
  /** Those rules' ids. */
  acceptedBy?: string[];
  /** Why the proxy answers 401 whatever the signature. */
  problem?: string;
  /** The decoded payload (unverified). */
  claims?: Record<string, unknown>;
}

/** One endpoint as the calling proxy's balancer registry holds it. */
export interface LiveEndpointState {
  id: string;
  inFlight: number;
  /** Ejected for this many more ms; 0: not ejected. */
  ejectedForMs: number;
  ejections: number;
  healthy: boolean;
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  consecutiveConnectFailures: number;
}

export interface LiveBackendState {
  key: string;
  /** Circuit breaker counters across the backend. */
  requests: number;
  pending: number;
  retries: number;
  endpoints: LiveEndpointState[];
  /** Whether active health checks run for it. */
  healthChecked: boolean;
}

export interface LiveRateLimitState {
  id: string;
  /** The fullest-first buckets are left out beyond a bound: these are the emptiest, by key (parts joined by U+0000). */
  buckets: { key: string; tokens: number }[];
  /** Buckets in all. */
  size: number;
}

/** GET /debug/backends on a proxy's admin listener. */
export interface LiveProxyState {
  /** Who answered: "<ns>/<instance>" or the admin address. */
  proxy?: string;
  readAt: string;
  backends: LiveBackendState[];
  rateLimits: LiveRateLimitState[];
}

/** The admin path that answers LiveProxyState. */
export const DEBUG_BACKENDS_PATH = '/debug/backends';
