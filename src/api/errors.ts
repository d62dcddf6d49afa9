// Typed errors with stable WEFT_ERR_* codes, shared by the control plane, the proxy and the CLI.

export const ErrorCodes = {
  /** Proxy: no service, route or rule matches the request. */
  NO_ROUTE: 'WEFT_ERR_NO_ROUTE',
  /** Proxy: the backend has no endpoint to send to. */
  NO_HEALTHY_UPSTREAM: 'WEFT_ERR_NO_HEALTHY_UPSTREAM',
  /** Proxy: the rule's backends are all invalid (Gateway API: answer 500). */
  BACKEND_NOT_FOUND: 'WEFT_ERR_BACKEND_NOT_FOUND',
  /** Proxy: could not connect to the endpoint. */
  UPSTREAM_CONNECT: 'WEFT_ERR_UPSTREAM_CONNECT',
  /** Proxy: the endpoint reset or closed the connection before answering. */
  UPSTREAM_RESET: 'WEFT_ERR_UPSTREAM_RESET',
  /** Proxy: the route's request or backendRequest timeout passed. */
  TIMEOUT: 'WEFT_ERR_TIMEOUT',
  /** Proxy: the tunnel was asked for a port this workload does not serve. */
  INBOUND_PORT: 'WEFT_ERR_INBOUND_PORT',
  /** Proxy: the request is malformed (bad target, bad host). */
  BAD_REQUEST: 'WEFT_ERR_BAD_REQUEST',
  /** Gateway: the request's host belongs to another listener than the one its TLS connection was opened for (421). */
  MISDIRECTED_REQUEST: 'WEFT_ERR_MISDIRECTED_REQUEST',
  /** Proxy: a FaultInjection filter aborted the request (its configured status). */
  FAULT_INJECTED: 'WEFT_ERR_FAULT_INJECTED',
  /** Proxy: a RateLimitPolicy's bucket for this request is empty (429). */
  RATE_LIMITED: 'WEFT_ERR_RATE_LIMITED',
  /** Proxy: a BackendTrafficPolicy circuit breaker limit (requests, pending requests) is reached: 503 at once. */
  CIRCUIT_OPEN: 'WEFT_ERR_CIRCUIT_OPEN',
  /** Proxy: the request's JWT failed verification (RequestAuthentication): 401 with WWW-Authenticate. */
  JWT_INVALID: 'WEFT_ERR_JWT_INVALID',
  /** Proxy: the request carries an API key that no RequestAuthentication's apiKeys accepts: 401 with WWW-Authenticate. */
  API_KEY_INVALID: 'WEFT_ERR_API_KEY_INVALID',
  /** Proxy: a JWT could not be verified because its issuer's keys (JWKS) cannot be fetched and none are cached: 401 (fail closed). */
  JWKS_UNAVAILABLE: 'WEFT_ERR_JWKS_UNAVAILABLE',
  /** Proxy: a Transformation cannot be applied: a request body it reads is not JSON (400), or a body is over its maxBodyBytes (413 request, 502 response). */
  TRANSFORMATION: 'WEFT_ERR_TRANSFORMATION',
  /** Proxy: an AuthorizationPolicy denies the request (403; gRPC PERMISSION_DENIED; a TCP connection is closed). */
  RBAC_DENIED: 'WEFT_ERR_RBAC_DENIED',
  /** Proxy: an external authorization service (a CUSTOM AuthorizationPolicy's provider) denied the request, or could not be asked (its answer's status, or statusOnError). */
  EXT_AUTHZ_DENIED: 'WEFT_ERR_EXT_AUTHZ_DENIED',
  /** Proxy: the request's path cannot be normalised (invalid percent-encoding, NUL, not origin-form): 400. */
  INVALID_PATH: 'WEFT_ERR_INVALID_PATH',
  /** Proxy: shutting down. */
  DRAINING: 'WEFT_ERR_DRAINING',
  /** Proxy: the snapshot could not be applied (NACK). */
  SNAPSHOT_INVALID: 'WEFT_ERR_SNAPSHOT_INVALID',
  /** Control plane: the object failed validation. */
  INVALID: 'WEFT_ERR_INVALID',
  /** Control plane: resourceVersion compare-and-swap failed. */
  CONFLICT: 'WEFT_ERR_CONFLICT',
  NOT_FOUND: 'WEFT_ERR_NOT_FOUND',
  ALREADY_EXISTS: 'WEFT_ERR_ALREADY_EXISTS',
  UNAUTHORIZED: 'WEFT_ERR_UNAUTHORIZED',
  /** The caller is authenticated but may not have what it asked for (e.g. a token scoped to another workload). */
  FORBIDDEN: 'WEFT_ERR_FORBIDDEN',
  /** CA: the certificate signing request is malformed, badly signed or uses a refused key. */
  CSR_INVALID: 'WEFT_ERR_CSR_INVALID',
  /** CA: the CA certificate or key is unusable (mismatched, not a CA, expired). */
  CA_INVALID: 'WEFT_ERR_CA_INVALID',
  /** A SPIFFE ID (or a part of one) is not `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. */
  IDENTITY_INVALID: 'WEFT_ERR_IDENTITY_INVALID',
  /** mTLS: the peer's certificate does not carry the identity expected of it. */
  PEER_IDENTITY: 'WEFT_ERR_PEER_IDENTITY',
  /** Control plane: the store cannot be reached. */
  STORE_UNAVAILABLE: 'WEFT_ERR_STORE_UNAVAILABLE',
  /** Control plane: a bug; the message says more. */
  INTERNAL: 'WEFT_ERR_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'WeftError';
    this.code = code;
    this.details = details;
  }
}

export function isWeftError(e: unknown, code?: ErrorCode): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}

/** The response header every proxy-made response carries. */
export const REASON_HEADER = 'weft-reason';
