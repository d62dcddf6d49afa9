// URLRewrite filter (Gateway API): replaces the Host header and/or the path before the request goes on to its backend.
import type { HttpFilter, HttpMatch } from '../../../api/snapshot.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { filterOf } from '../filters.ts';
import { compilePathModifier } from './path.ts';

export const urlRewrite: Layer<{ filters: readonly HttpFilter[]; match?: HttpMatch }, HttpExchange> = (target, next) => {
  const filter = filterOf(target.filters, 'URLRewrite');
  if (!filter) return next;
  const hostname = filter.rewrite.hostname;
  const path = filter.rewrite.path ? compilePathModifier(filter.rewrite.path, target.match) : undefined;
  return (ex) => {
    // The whole Host is replaced, port included: the backend sees the name the route asked for.
    if (hostname !== undefined) ex.headers.host = hostname;
    if (path) ex.setPath(path(ex.path));
    return next(ex);
  };
};
