// Compiles one HTTPRoute match (path, headers, query params, method) into a predicate, once per snapshot.
import type { HttpMatch, StringMatch } from '../../../api/snapshot.ts';
import { ErrorCodes, WeftError } from '../../../api/errors.ts';
import type { HttpExchange } from '../../exchange.ts';

export type Matcher = (ex: HttpExchange) => boolean;

/** A Gateway API RegularExpression match is a full match. A bad one rejects the snapshot. */
export function fullMatchRegex(source: string, where: string): RegExp {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (error) {
    throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `${where}: invalid regular expression "${source}": ${error instanceof Error ? error.message : String(error)}`);
  }
}

function valueMatcher(match: StringMatch, where: string): (value: string) => boolean {
  if (match.type === 'Exact') {
    const expected = match.value;
    return (value) => value === expected;
  }
  const regex = fullMatchRegex(match.value, where);
  return (value) => regex.test(value);
}

function pathMatcher(path: NonNullable<HttpMatch['path']>, where: string): Matcher {
  const value = path.value;
  switch (path.type) {
    case 'Exact':
      return (ex) => ex.pathname === value;
    case 'PathPrefix': {
      // Segment-wise: "/foo" (or "/foo/") matches "/foo" and "/foo/bar", never "/foobar".
      const prefix = value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
      if (prefix === '/' || prefix === '') return () => true;
      const withSlash = `${prefix}/`;
      return (ex) => {
        const p = ex.pathname;
        return p === prefix || p.startsWith(withSlash);
      };
    }
    case 'RegularExpression': {
      const regex = fullMatchRegex(value, `${where}.path`);
      return (ex) => regex.test(ex.pathname);
    }
    default:
      throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `${where}.path: unknown match type ${String((path as { type: unknown }).type)}`);
  }
}

/** Every condition of the match must hold; an empty match holds for every request. */
export function compileMatch(match: HttpMatch, where: string): Matcher {
  const checks: Matcher[] = [];
  if (match.path) checks.push(pathMatcher(match.path, where));
  if (match.method) {
    const method = match.method.toUpperCase();
    checks.push((ex) => ex.method === method);
  }
  (match.headers ?? []).forEach((header, i) => {
    const name = header.name.toLowerCase();
    const test = valueMatcher(header, `${where}.headers[${i}]`);
    checks.push((ex) => {
      const value = ex.req.headers[name];
      if (value === undefined) return false;
      return test(Array.isArray(value) ? value.join(',') : value);
    });
  });
  (match.queryParams ?? []).forEach((param, i) => {
    const name = param.name;
    const test = valueMatcher(param, `${where}.queryParams[${i}]`);
    checks.push((ex) => {
      const value = ex.queryParams.get(name);
      return value !== null && test(value);
    });
  });
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  return (ex) => {
    for (const check of checks) if (!check(ex)) return false;
    return true;
  };
}
