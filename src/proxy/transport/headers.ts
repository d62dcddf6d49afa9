// Hop-by-hop header handling: what a proxy must not forward, in either direction.
import type { IncomingHttpHeaders } from 'node:http';
import type { Headers } from '../exchange.ts';

/** RFC 9110 §7.6.1 connection-specific fields, plus `expect` (Node answers 100-continue itself) and proxy credentials meant for us. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

/**
 * Headers only a proxy may set: whatever a client sends in them is dropped
 * (the tunnel listener sets the verified caller's x-forwarded-client-cert).
 */
const PROXY_OWNED = new Set(['x-forwarded-client-cert']);

/** Extra hop-by-hop names a sender listed in its Connection header. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = part.trim().toLowerCase();
    if (name && name !== 'close' && name !== 'keep-alive') (tokens ??= new Set()).add(name);
  }
  return tokens;
}

/**
 * A copy of a request's headers without the hop-by-hop and proxy-owned ones
 * (names are lower-case already), nor HTTP/2 pseudo-headers (the listener
 * turns :authority into host; the transport rebuilds them for an HTTP/2 upstream).
 */
export function forwardableRequestHeaders(incoming: IncomingHttpHeaders): Headers {
  const listed = connectionTokens(incoming.connection);
  const out: Headers = {};
  for (const name in incoming) {
    if (name.charCodeAt(0) === 0x3a || HOP_BY_HOP.has(name) || PROXY_OWNED.has(name) || listed?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * An upstream response's fields without its hop-by-hop ones: the same object
 * when it has none, else a copy. A copy, not `delete`: deleting a field turns
 * the object into a slow dictionary, and nearly every HTTP/1.1 response says
 * Connection and Keep-Alive.
 */
export function responseHeadersToForward(headers: Headers): Headers {
  const listed = connectionTokens(headers.connection);
  let found = listed !== undefined;
  if (!found) for (const name of HOP_BY_HOP) if (headers[name] !== undefined) found = true;
  if (!found) return headers;
  const out: Headers = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name) && !listed?.has(name)) out[name] = value;
  }
  return out;
}

/** Headers proxies set for each other (weft-source, weft-target-port, weft-app-protocol, ...). */
const MESH_PREFIX = 'weft-';

/**
 * Clears, in place, the weft-* request headers: those a client outside the
 * mesh sent (an app on the outbound port, a gateway client), since only
 * proxies set them; and inbound, those of the calling proxy, which its app
 * never sees (after the layers that read them).
 */
export function dropMeshHeaders(headers: Headers): void {
  // Cleared, not deleted (every header writer skips an undefined field): a delete turns the object into a slow
  // dictionary, and the inbound stack clears the mesh headers of every tunnelled request.
  for (const name in headers) if (name.startsWith(MESH_PREFIX)) headers[name] = undefined;
}

/**
 * At the edge (the gateway), proxy-owned headers a client sent are claims
 * nobody checked: weft-* go, and so do x-forwarded-host, -port and -prefix
 * (nothing in front of the gateway set them). x-forwarded-for and
 * x-forwarded-proto are the gateway stack's (gateway/stack.ts: the client's
 * address appended, the real scheme); x-forwarded-client-cert never passes
 * forwardableRequestHeaders.
 */
export function sanitizeEdgeHeaders(headers: Headers): void {
  dropMeshHeaders(headers);
  delete headers['x-forwarded-host'];
  delete headers['x-forwarded-port'];
  delete headers['x-forwarded-prefix'];
}
