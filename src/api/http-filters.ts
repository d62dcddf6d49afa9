// Pure parts of the HTTP filters and deadlines (path modifiers, redirect Locations, grpc-timeout), shared by the proxy's layers and `weft explain`.
import type { HttpMatch, PathModifier, RequestRedirect } from './snapshot.ts';

/** Maps an origin-form target ("/path?query") to the modified one. */
export type PathRewrite = (target: string) => string;

/**
 * Compiles a modifier for a rule whose match is `match`. ReplacePrefixMatch
 * replaces the matched PathPrefix element-wise, ignoring trailing slashes on
 * both sides, as the Gateway API's table says: with prefix "/foo",
 * "/foo/bar" → "/xyz/bar" for "/xyz" or "/xyz/", "/foo/" → "/xyz/", and an
 * empty or "/" replacement strips the prefix ("/foo" → "/", "/foo/bar" → "/bar").
 */
export function compilePathModifier(modifier: PathModifier, match: HttpMatch | undefined): PathRewrite {
  if (modifier.type === 'ReplaceFullPath') {
    const full = modifier.value;
    return (target) => full + queryOf(target);
  }
  // The compiler only allows ReplacePrefixMatch with a PathPrefix match (or none: "/").
  const matched = match?.path?.type === 'PathPrefix' ? match.path.value : '/';
  const prefix = trimTrailingSlashes(matched);
  const replacement = trimTrailingSlashes(modifier.value);
  return (target) => {
    const q = target.indexOf('?');
    const pathname = q === -1 ? target : target.slice(0, q);
    const query = q === -1 ? '' : target.slice(q);
    // The route matched element-wise, so the path is the prefix itself or the prefix and "/...".
    const rest = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : pathname;
    let path = replacement + rest;
    if (path === '') path = '/';
    else if (!path.startsWith('/')) path = `/${path}`;
    return path + query;
  };
}

function trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}

function queryOf(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? '' : target.slice(q);
}

const GRPC_TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** A grpc-timeout value ("100m", "5S": up to 8 digits and a unit) in ms, rounded up; undefined when absent or malformed (then ignored, as gRPC servers do). */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  return Math.max(1, Math.ceil(Number(match[1]) * GRPC_TIMEOUT_UNITS[match[2]!]!));
}

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

/** What a Location is built from: the proxy's HttpExchange has these fields, and so has the request `weft explain` imagines. */
export interface LocatableRequest {
  readonly scheme: 'http' | 'https';
  /** The headers to send on (after the rule's request header filters). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly req: { readonly headers: Readonly<Record<string, string | string[] | undefined>> };
  readonly addressedPort: number;
  readonly targetPort: number;
  /** Origin-form target: path and query. */
  readonly path: string;
}

/**
 * The Location for a request. Scheme: the filter's, else the request's.
 * Host: the filter's, else the request's Host without its port. Port: the
 * filter's; else the scheme's well-known port when the filter sets a scheme;
 * else the port the client addressed (the service or listener port). A port
 * that is the scheme's default (80 for http, 443 for https) is left out.
 * Path: modified by the filter's path, else the request's; the query is kept.
 */
export function compileLocation(redirect: RequestRedirect, match: HttpMatch | undefined): (ex: LocatableRequest) => string {
  const rewrite: PathRewrite | undefined = redirect.path ? compilePathModifier(redirect.path, match) : undefined;
  return (ex) => {
    const scheme = redirect.scheme ?? ex.scheme;
    const host = redirect.hostname ?? hostWithoutPort(firstValue(ex.headers.host) ?? firstValue(ex.req.headers.host) ?? 'localhost');
    const port = redirect.port ?? (redirect.scheme !== undefined ? DEFAULT_PORTS[redirect.scheme] : ex.addressedPort || ex.targetPort);
    const portText = !port || port === DEFAULT_PORTS[scheme] ? '' : `:${port}`;
    const path = rewrite ? rewrite(ex.path) : ex.path;
    return `${scheme}://${host}${portText}${path}`;
  };
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** "host:port" → "host"; "[v6]:port" → "[v6]" (the brackets stay: it goes back into a URL). */
export function hostWithoutPort(authority: string): string {
  const text = authority.trim();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    return close === -1 ? text : text.slice(0, close + 1);
  }
  const colon = text.lastIndexOf(':');
  return colon === -1 ? text : text.slice(0, colon);
}
