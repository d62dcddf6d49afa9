// Connect-failure retry: an attempt that never reached the app (refused, unreachable) is made again on another endpoint.
//
// Only failures before any of the request reached the app, and only requests
// that can be replayed (no streamed body), so that a retry can never apply a
// request twice. It covers the window between an endpoint dying and the
// snapshot that removes it.
import { ErrorCodes, isWeftError } from '../../../api/errors.ts';
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

export function retryConnectFailures<X extends Exchange>(maxAttempts: number): Layer<{ backend: SnapshotBackend }, X> {
  return (target, next) => {
    if (maxAttempts <= 1 || target.backend.endpoints.length <= 1) return next;
    const attempts = Math.min(maxAttempts, target.backend.endpoints.length);
    return async (ex) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await next(ex);
          return;
        } catch (error) {
          if (attempt >= attempts || !ex.replayable || !isWeftError(error, ErrorCodes.UPSTREAM_CONNECT)) throw error;
          ex.avoid = ex.endpoint;
        }
      }
    };
  };
}
