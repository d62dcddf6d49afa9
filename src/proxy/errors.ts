// The WeftErrors the request path throws, the status each answers with, and how network failures are classified.
import { ErrorCodes, WeftError, isWeftError, type ErrorCode } from '../api/errors.ts';

/** `details` of a proxy WeftError: a status that differs from the code's usual one. */
export interface ProxyErrorDetails {
  status?: number;
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
};

export function proxyError(code: ErrorCode, message: string, status?: number): WeftError {
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
