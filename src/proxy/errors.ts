// The WeftErrors the request path throws, the status each answers with, and how network failures are classified.
import { ErrorCodes, WeftError, isWeftError, type ErrorCode } from '../api/errors.ts';

/** `details` of a proxy WeftError: a status that differs from the code's usual one. */
export interface ProxyErrorDetails {
  status?: number;
  /** The gRPC status a gRPC caller is answered with, when the error names its own (a FaultInjection abort's grpcStatus). */
  grpcStatus?: number;
}

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.NO_ROUTE]: 404,
  [ErrorCodes.NO_HEALTHY_UPSTREAM]: 503,
  [ErrorCodes.BACKEND_NOT_FOUND]: 500,
  [ErrorCodes.UPSTREAM_CONNECT]: 503,
  [ErrorCodes.UPSTREAM_RESET]: 502,
  [ErrorCodes.TIMEOUT]: 504,
  [ErrorCodes.INBOUND_PORT]: 404,
  [ErrorCodes.BAD_REQUEST]: 400,
  [ErrorCodes.DRAINING]: 503,
  [ErrorCodes.CIRCUIT_OPEN]: 503,
  [ErrorCodes.RATE_LIMITED]: 429,
  [ErrorCodes.RBAC_DENIED]: 403,
  [ErrorCodes.INVALID_PATH]: 400,
  [ErrorCodes.JWT_INVALID]: 401,
  [ErrorCodes.API_KEY_INVALID]: 401,
  [ErrorCodes.JWKS_UNAVAILABLE]: 401,
  [ErrorCodes.TRANSFORMATION]: 502,
  [ErrorCodes.EXT_AUTHZ_DENIED]: 403,
};

export function proxyError(code: ErrorCode, message: string, status?: number, grpcStatus?: number): WeftError {
  if (grpcStatus !== undefined) return new WeftError(code, message, { ...(status === undefined ? {} : { status }), grpcStatus } satisfies ProxyErrorDetails);
  return new WeftError(code, message, status === undefined ? undefined : ({ status } satisfies ProxyErrorDetails));
}

/** Any thrown value as the WeftError a proxy answers with: unknown errors are bugs (500 INTERNAL). */
export function asProxyError(error: unknown): WeftError {
  if (isWeftError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new WeftError(ErrorCodes.INTERNAL, message);
}

export function statusOf(error: WeftError): number {
  const details = error.details as ProxyErrorDetails | undefined;
  return details?.status ?? STATUS_BY_CODE[error.code] ?? 500;
}

/** gRPC status codes (grpc/doc/statuscodes.md) the proxy answers gRPC callers with. */
export const GrpcStatus = {
  OK: 0,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const GRPC_BY_CODE: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.TIMEOUT]: GrpcStatus.DEADLINE_EXCEEDED,
  [ErrorCodes.NO_HEALTHY_UPSTREAM]: GrpcStatus.UNAVAILABLE,
  // GRPCRoute: a call routed to an invalid backendRef (or a rule with none) gets UNAVAILABLE, where HTTP gets 500.
  [ErrorCodes.BACKEND_NOT_FOUND]: GrpcStatus.UNAVAILABLE,
  [ErrorCodes.UPSTREAM_CONNECT]: GrpcStatus.UNAVAILABLE,
  [ErrorCodes.UPSTREAM_RESET]: GrpcStatus.UNAVAILABLE,
  [ErrorCodes.PEER_IDENTITY]: GrpcStatus.UNAVAILABLE,
  [ErrorCodes.DRAINING]: GrpcStatus.UNAVAILABLE,
  [ErrorCodes.NO_ROUTE]: GrpcStatus.UNIMPLEMENTED,
  [ErrorCodes.INBOUND_PORT]: GrpcStatus.UNIMPLEMENTED,
  [ErrorCodes.FORBIDDEN]: GrpcStatus.PERMISSION_DENIED,
  [ErrorCodes.RBAC_DENIED]: GrpcStatus.PERMISSION_DENIED,
  [ErrorCodes.UNAUTHORIZED]: GrpcStatus.UNAUTHENTICATED,
  [ErrorCodes.JWT_INVALID]: GrpcStatus.UNAUTHENTICATED,
  [ErrorCodes.API_KEY_INVALID]: GrpcStatus.UNAUTHENTICATED,
  [ErrorCodes.JWKS_UNAVAILABLE]: GrpcStatus.UNAUTHENTICATED,
  // Limits of the mesh's own (not the app's): the caller should back off, as for a server's RESOURCE_EXHAUSTED.
  [ErrorCodes.RATE_LIMITED]: GrpcStatus.RESOURCE_EXHAUSTED,
  [ErrorCodes.CIRCUIT_OPEN]: GrpcStatus.RESOURCE_EXHAUSTED,
};

/** gRPC's HTTP → gRPC mapping (grpc/doc/http-grpc-status-mapping.md), with 429 as RESOURCE_EXHAUSTED and 504 as DEADLINE_EXCEEDED, as Envoy answers for its own rate limits and timeouts. */
const GRPC_BY_STATUS: Record<number, number> = {
  401: GrpcStatus.UNAUTHENTICATED,
  403: GrpcStatus.PERMISSION_DENIED,
  404: GrpcStatus.UNIMPLEMENTED,
  429: GrpcStatus.RESOURCE_EXHAUSTED,
  502: GrpcStatus.UNAVAILABLE,
  503: GrpcStatus.UNAVAILABLE,
  504: GrpcStatus.DEADLINE_EXCEEDED,
};

/**
 * The gRPC status a proxy-made answer to a gRPC caller carries: by the
 * error's own (details.grpcStatus), else by its code where it says more than
 * its status, else by its HTTP status, else INTERNAL. Codes added later (rate limits, breakers: 429/503) map by status.
 */
export function grpcStatusOf(error: WeftError, status = statusOf(error)): number {
  return (error.details as ProxyErrorDetails | undefined)?.grpcStatus ?? GRPC_BY_CODE[error.code] ?? GRPC_BY_STATUS[status] ?? GrpcStatus.INTERNAL;
}

/** The HTTP status a gRPC status stands for, so that a route's retry `codes` can match gRPC answers (14 → 503, 4 → 504, ...). */
const STATUS_BY_GRPC: Record<string, number> = {
  '4': 504,
  '7': 403,
  '8': 429,
  '12': 501,
  '13': 500,
  '14': 503,
  '16': 401,
};

export function httpStatusForGrpc(grpcStatus: string): number | undefined {
  return STATUS_BY_GRPC[grpcStatus];
}

const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * A failure talking to an endpoint: could not connect (503) or the connection
 * broke before a response came (502). Our own abort reasons pass through.
 */
export function classifyUpstreamError(error: unknown, where: string): WeftError {
  if (isWeftError(error)) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && CONNECT_FAILURES.has(code)) {
    return new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${where}: ${code}`);
  }
  return new WeftError(ErrorCodes.UPSTREAM_RESET, `${where} closed the connection before answering: ${typeof code === 'string' ? code : message}`);
}
