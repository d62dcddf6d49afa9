// CORS filter (Gateway API): the proxy answers preflights itself; requests from an allowed Origin get the CORS headers on their response.
import type { OutgoingHttpHeaders } from 'node:http';
import { parseOriginPattern, type CorsPolicy, type HttpFilter, type OriginPattern } from '../../../api/snapshot.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { filterOf } from '../filters.ts';

/** Whether an Origin header value is allowed; "*" allows any, even "null". */
export function compileOriginCheck(allowOrigins: readonly string[]): (origin: string) => boolean {
  if (allowOrigins.includes('*')) return () => true;
  const patterns = allowOrigins.map(parseOriginPattern).filter((p): p is OriginPattern => p !== undefined);
  return (origin) => {
    const o = parseOriginPattern(origin);
    // A request's Origin never has a wildcard; one that parses as one is not a real origin.
    if (!o || o.wildcard) return false;
    return patterns.some(
      (p) =>
        p.scheme === o.scheme &&
        p.port === o.port &&
        // "*" is greedy to the left: "*.bar.com" allows "a.bar.com" and "x.www.bar.com", not "bar.com".
        (p.wildcard ? o.host.endsWith(p.host) && o.host.length > p.host.length : p.host === o.host),
    );
  };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function appendVary(headers: Headers, name: string): void {
  const existing = single(headers.vary);
  if (existing === undefined || existing.trim() === '') headers.vary = name;
  else if (!existing.toLowerCase().split(',').some((v) => v.trim() === name.toLowerCase() || v.trim() === '*')) headers.vary = `${existing}, ${name}`;
}

interface CompiledCors {
  allowed: (origin: string) => boolean;
  /** "*" may be answered instead of the origin: every origin is allowed and no credentials are. */
  anyOrigin: boolean;
  policy: CorsPolicy;
  methods: string | undefined;
  headers: string | undefined;
  expose: string | undefined;
}

function compile(policy: CorsPolicy): CompiledCors {
  const credentials = policy.allowCredentials;
  const list = (values: readonly string[]) => (values.length > 0 ? values.join(', ') : undefined);
  return {
    allowed: compileOriginCheck(policy.allowOrigins),
    anyOrigin: policy.allowOrigins.includes('*') && !credentials,
    policy,
    methods: list(policy.allowMethods),
    headers: list(policy.allowHeaders),
    // With credentials a browser takes "*" literally, so it is left out.
    expose: list(credentials ? policy.exposeHeaders.filter((h) => h !== '*') : policy.exposeHeaders),
  };
}

/** The headers of an answer to an allowed preflight. */
function preflightHeaders(cors: CompiledCors, origin: string, ex: HttpExchange): Headers {
  const { policy } = cors;
  const credentials = policy.allowCredentials;
  const headers: Headers = { 'access-control-allow-origin': cors.anyOrigin ? '*' : origin };
  if (!cors.anyOrigin) headers.vary = 'Origin';
  if (credentials) headers['access-control-allow-credentials'] = 'true';
  const requestedMethod = single(ex.req.headers['access-control-request-method'])?.trim();
  if (cors.methods === '*') {
    // With credentials "*" is not a wildcard to a browser: name the method asked for.
    if (!credentials) headers['access-control-allow-methods'] = '*';
    else if (requestedMethod) headers['access-control-allow-methods'] = requestedMethod;
  } else if (cors.methods !== undefined) headers['access-control-allow-methods'] = cors.methods;
  const requestedHeaders = single(ex.req.headers['access-control-request-headers'])?.trim();
  if (cors.headers === '*') {
    if (!credentials) headers['access-control-allow-headers'] = '*';
    else if (requestedHeaders) headers['access-control-allow-headers'] = requestedHeaders;
  } else if (cors.headers !== undefined) headers['access-control-allow-headers'] = cors.headers;
  if (cors.expose !== undefined) headers['access-control-expose-headers'] = cors.expose;
  headers['access-control-max-age'] = String(policy.maxAgeSeconds);
  return headers;
}

/**
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here with 204: with the CORS headers when the Origin is allowed,
 * without them when it is not (the browser then refuses the real request).
 * Any other request carrying an Origin goes on; when the Origin is allowed
 * its response gets Access-Control-Allow-Origin (and -Credentials,
 * -Expose-Headers). Requests without an Origin are not CORS requests.
 */
export const cors: Layer<{ filters: readonly HttpFilter[] }, HttpExchange> = (target, next) => {
  const filter = filterOf(target.filters, 'CORS');
  if (!filter) return next;
  const compiled = compile(filter.cors);
  return async (ex) => {
    const origin = single(ex.req.headers.origin);
    if (origin === undefined) return next(ex);
    const allowed = compiled.allowed(origin);
    if (ex.method === 'OPTIONS' && ex.req.headers['access-control-request-method'] !== undefined) {
      const headers = allowed ? preflightHeaders(compiled, origin, ex) : { vary: 'Origin' };
      ex.res.writeHead(204, headers as OutgoingHttpHeaders);
      ex.res.end();
      return;
    }
    if (allowed) {
      ex.addResponseEdit((headers) => {
        headers['access-control-allow-origin'] = compiled.anyOrigin ? '*' : origin;
        if (!compiled.anyOrigin) appendVary(headers, 'Origin');
        if (compiled.policy.allowCredentials) headers['access-control-allow-credentials'] = 'true';
        if (compiled.expose !== undefined) headers['access-control-expose-headers'] = compiled.expose;
      });
    }
    return next(ex);
  };
};
