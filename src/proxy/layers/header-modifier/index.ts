// RequestHeaderModifier and ResponseHeaderModifier filters (Gateway API): set, add, remove, compiled per rule or backend.
import type { HeaderModifier, HttpFilter } from '../../../api/snapshot.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

type Edit = (headers: Headers) => void;

/**
 * One function applying a modifier: set replaces, add appends, remove
 * deletes; names are case-insensitive. An appended value joins a single one
 * with "," (the Gateway API's "foo,bar"), but becomes a line of its own where
 * the header already has several lines, and always for Set-Cookie, whose
 * values may themselves contain commas.
 */
export function compileModifier(modifier: HeaderModifier): Edit | undefined {
  const set = (modifier.set ?? []).map((h) => [h.name.toLowerCase(), h.value] as const);
  const add = (modifier.add ?? []).map((h) => [h.name.toLowerCase(), h.value] as const);
  const remove = (modifier.remove ?? []).map((name) => name.toLowerCase());
  if (set.length + add.length + remove.length === 0) return undefined;
  return (headers) => {
    for (const [name, value] of set) headers[name] = value;
    for (const [name, value] of add) {
      const existing = headers[name];
      if (existing === undefined) headers[name] = value;
      else if (Array.isArray(existing)) headers[name] = [...existing, value];
      else headers[name] = name === 'set-cookie' ? [existing, value] : `${existing},${value}`;
    }
    for (const name of remove) delete headers[name];
  };
}

function editsOf(filters: readonly HttpFilter[], type: 'RequestHeaderModifier' | 'ResponseHeaderModifier'): Edit[] {
  const edits: Edit[] = [];
  for (const filter of filters) {
    if ((filter.type !== 'RequestHeaderModifier' && filter.type !== 'ResponseHeaderModifier') || filter.type !== type) continue;
    const edit = compileModifier(filter.modifier);
    if (edit) edits.push(edit);
  }
  return edits;
}

export const requestHeaderModifier: Layer<{ filters: readonly HttpFilter[] }, HttpExchange> = (target, next) => {
  const edits = editsOf(target.filters, 'RequestHeaderModifier');
  if (edits.length === 0) return next;
  return (ex) => {
    for (const edit of edits) edit(ex.headers);
    return next(ex);
  };
};

export const responseHeaderModifier: Layer<{ filters: readonly HttpFilter[] }, HttpExchange> = (target, next) => {
  const edits = editsOf(target.filters, 'ResponseHeaderModifier');
  if (edits.length === 0) return next;
  return (ex) => {
    for (const edit of edits) ex.addResponseEdit(edit);
    return next(ex);
  };
};
