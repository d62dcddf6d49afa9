// The headers proxies add for each other on the tunnel (target port, caller), and the layer that hides them from apps.
import type { HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { dropMeshHeaders } from '../../transport/headers.ts';

/** The app port (declared) a tunnelled request is for. */
export const TARGET_PORT_HEADER = 'weft-target-port';
/** The caller, "<namespace>/<workload>"; informational until mTLS identities replace it. */
export const SOURCE_HEADER = 'weft-source';
/**
 * The protocol the receiving proxy speaks to its app: "h2" or "http1". The
 * sending proxy decides (it knows the Service port's declared protocol; the
 * receiver knows only app ports), so both hops agree.
 */
export const APP_PROTOCOL_HEADER = 'weft-app-protocol';

/** Inbound: the app never sees weft-* request headers (the same clearing as for a client outside the mesh). */
export const stripMeshHeaders: Layer<unknown, HttpExchange> = (_target, next) => (ex) => {
  dropMeshHeaders(ex.headers);
  return next(ex);
};
