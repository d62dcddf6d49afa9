// RequestRedirect filter (Gateway API): the proxy answers with a redirect; nothing is sent to a backend.
import type { OutgoingHttpHeaders } from 'node:http';
import type { HttpFilter, HttpMatch, RequestRedirect } from '../../../api/snapshot.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { filterOf } from '../filters.ts';
import { compilePathModifier, type PathRewrite } from '../url-rewrite/path.ts';

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

export const requestRedirect: Layer<{ filters: readonly HttpFilter[]; match?: HttpMatch }, HttpExchange> = (target, next) => {
  const filter = filterOf(target.filters, 'RequestRedirect');
  if (!filter) return next;
  const locate = compileLocation(filter.redirect, target.match);
  const status = filter.redirect.statusCode;
  return async (ex) => {
    const headers: Headers = { location: locate(ex), 'content-length': '0' };
    // The rule's ResponseHeaderModifier applies to this answer as to a backend's.
    if (ex.responseEdits) for (const edit of ex.responseEdits) edit(headers);
    ex.res.writeHead(status, headers as OutgoingHttpHeaders);
    ex.res.end();
  };
};

/**
 * The Location for a request. Scheme: the filter's, else the request's.
 * Host: the filter's, else the request's Host without its port. Port: the
 * filter's; else the scheme's well-known port when the filter sets a scheme;
 * else the port the client addressed (the service or listener port). A port
 * that is the scheme's default (80 for http, 443 for https) is left out.
 * Path: modified by the filter's path, else the request's; the query is kept.
 */
export function compileLocation(redirect: RequestRedirect, match: HttpMatch | undefined): (ex: HttpExchange) => string {
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
