// Where the path normalisation (api/path-normalize.ts) meets the request: once per exchange, as the listener makes it, before routing and authorization.
import { ErrorCodes, type WeftError } from '../api/errors.ts';
import { normalizePath, type PathNormalization } from '../api/path-normalize.ts';
import { proxyError } from './errors.ts';
import type { HttpExchange } from './exchange.ts';

/**
 * Rewrites the exchange's path to its normal form (MeshConfig
 * pathNormalization, BASE when unset); the error to answer with (400
 * WEFT_ERR_INVALID_PATH) when it cannot be normalised. The headers and the
 * request line sent on carry the normalised path, so that the app reads what
 * routing and authorization decided on.
 */
export function normalizeExchangePath(ex: HttpExchange, mode: PathNormalization | undefined): WeftError | undefined {
  const result = normalizePath(ex.path, mode ?? 'BASE');
  if (!result.ok) return proxyError(ErrorCodes.INVALID_PATH, `cannot normalise the path: ${result.why}`, 400);
  if (result.path !== ex.path) ex.setPath(result.path);
  return undefined;
}
