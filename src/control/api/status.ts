// Kubernetes Status objects for API errors, and the one place that maps weft error codes to HTTP statuses.
import { ErrorCodes, isWeftError, type ErrorCode } from '../../api/errors.ts';

export interface StatusCause {
  /** Dotted field path, e.g. "spec.rules[0].matches[0].path.type". */
  field?: string | undefined;
  message: string;
  /** Which object, for errors about one of several ("HTTPRoute default/reviews"). */
  object?: string | undefined;
  /** Its position in an apply request's items. */
  item?: number | undefined;
  line?: number | undefined;
  column?: number | undefined;
}

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
  weftCode: ErrorCode;
  details: { name?: string; kind?: string; causes: StatusCause[] };
}

/** An error that already knows its HTTP answer. */
export class ApiError extends Error {
  readonly httpStatus: number;
  readonly reason: string;
  readonly weftCode: ErrorCode;
  readonly causes: StatusCause[];
  readonly headers: Record<string, string>;
  constructor(httpStatus: number, reason: string, weftCode: ErrorCode, message: string, causes: StatusCause[] = [], headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.httpStatus = httpStatus;
    this.reason = reason;
    this.weftCode = weftCode;
    this.causes = causes;
    this.headers = headers;
  }
}

const BY_CODE: Partial<Record<ErrorCode, { httpStatus: number; reason: string }>> = {
  [ErrorCodes.INVALID]: { httpStatus: 422, reason: 'Invalid' },
  [ErrorCodes.CONFLICT]: { httpStatus: 409, reason: 'Conflict' },
  [ErrorCodes.ALREADY_EXISTS]: { httpStatus: 409, reason: 'AlreadyExists' },
  [ErrorCodes.NOT_FOUND]: { httpStatus: 404, reason: 'NotFound' },
  [ErrorCodes.BAD_REQUEST]: { httpStatus: 400, reason: 'BadRequest' },
  [ErrorCodes.UNAUTHORIZED]: { httpStatus: 401, reason: 'Unauthorized' },
  [ErrorCodes.STORE_UNAVAILABLE]: { httpStatus: 503, reason: 'ServiceUnavailable' },
};

export interface ErrorAnswer {
  httpStatus: number;
  headers: Record<string, string>;
  body: StatusObject;
}

export function errorAnswer(error: unknown, details: { name?: string | undefined; kind?: string | undefined } = {}): ErrorAnswer {
  let httpStatus = 500;
  let reason = 'InternalError';
  let weftCode: ErrorCode = ErrorCodes.INTERNAL;
  let causes: StatusCause[] = [];
  let headers: Record<string, string> = {};
  let message = 'internal error';
  if (error instanceof ApiError) {
    ({ httpStatus, reason, weftCode, causes, headers } = error);
    message = error.message;
  } else if (isWeftError(error)) {
    const mapped = BY_CODE[error.code];
    if (mapped) ({ httpStatus, reason } = mapped);
    weftCode = error.code;
    message = error.message;
  } else if (error instanceof Error) {
    message = `internal error: ${error.message}`;
  }
  const body: StatusObject = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code: httpStatus,
    weftCode,
    details: { causes },
  };
  if (details.name) body.details.name = details.name;
  if (details.kind) body.details.kind = details.kind;
  return { httpStatus, headers, body };
}
