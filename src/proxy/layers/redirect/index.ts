// RequestRedirect filter (Gateway API): the proxy answers with a redirect; nothing is sent to a backend.
import type { OutgoingHttpHeaders } from 'node:http';
import type { HttpFilter, HttpMatch } from '../../../api/snapshot.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { filterOf } from '../filters.ts';
import { compileLocation } from '../../../api/http-filters.ts';

export { compileLocation, hostWithoutPort } from '../../../api/http-filters.ts';

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
