// How a route table picks a rule for a request: the matchers the proxy's route layers run and `weft explain` replays, as pure functions.
import { ErrorCodes, WeftError } from './errors.ts';
import { hostMatches, normalHost } from './hostnames.ts';
import type { HttpMatch, HttpRouteRule, RouteTable, StringMatch } from './snapshot.ts';

/** What a match reads of a request: the proxy's HttpExchange has these fields, and so has the request `weft explain` imagines. */
export interface MatchableRequest {
  readonly method: string;
  /** The path without its query. */
  readonly pathname: string;
  readonly queryParams: URLSearchParams;
  /** Header names lower-case, as Node gives them. */
  readonly req: { readonly headers: Readonly<Record<string, string | string[] | undefined>> };
}

export type Matcher = (ex: MatchableRequest) => boolean;

/** One condition of a match, named so that a mismatch can say which part failed. */
export interface MatchCondition {
  /** "path", "method", "headers[0]", "queryParams[1]". */
  field: string;
  /** What it requires, in words: `path PathPrefix "/api"`, `header x-env = "canary"`. */
  describe: string;
  test: Matcher;
}

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

function valueText(match: StringMatch): string {
  return match.type === 'Exact' ? `= "${match.value}"` : `~ /${match.value}/`;
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

/** The conditions of a match, in the order the proxy checks them. */
export function compileMatchConditions(match: HttpMatch, where: string): MatchCondition[] {
  const conditions: MatchCondition[] = [];
  if (match.path) conditions.push({ field: 'path', describe: `path ${match.path.type} "${match.path.value}"`, test: pathMatcher(match.path, where) });
  if (match.method) {
    const method = match.method.toUpperCase();
    conditions.push({ field: 'method', describe: `method ${method}`, test: (ex) => ex.method === method });
  }
  (match.headers ?? []).forEach((header, i) => {
    const name = header.name.toLowerCase();
    const test = valueMatcher(header, `${where}.headers[${i}]`);
    conditions.push({
      field: `headers[${i}]`,
      describe: `header ${name} ${valueText(header)}`,
      test: (ex) => {
        const value = ex.req.headers[name];
        if (value === undefined) return false;
        return test(Array.isArray(value) ? value.join(',') : value);
      },
    });
  });
  (match.queryParams ?? []).forEach((param, i) => {
    const name = param.name;
    const test = valueMatcher(param, `${where}.queryParams[${i}]`);
    conditions.push({
      field: `queryParams[${i}]`,
      describe: `query ${name} ${valueText(param)}`,
      test: (ex) => {
        const value = ex.queryParams.get(name);
        return value !== null && test(value);
      },
    });
  });
  return conditions;
}

/** Every condition of the match must hold; an empty match holds for every request. Compiled once per snapshot. */
export function compileMatch(match: HttpMatch, where: string): Matcher {
  const checks = compileMatchConditions(match, where).map((c) => c.test);
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  return (ex) => {
    for (const check of checks) if (!check(ex)) return false;
    return true;
  };
}

/** A rule that takes any request: no method, header or query condition and a path that is "/" or absent. */
export function isCatchAllRule(rule: HttpRouteRule): boolean {
  const m = rule.match;
  const anyPath = !m.path || (m.path.type === 'PathPrefix' && (m.path.value === '/' || m.path.value === ''));
  return anyPath && !m.method && !m.headers?.length && !m.queryParams?.length;
}

/** Opaque TCP has no request to match: the first catch-all rule (the implicit default route), else the first rule. */
export function tcpRuleOf(table: RouteTable): HttpRouteRule | undefined {
  return table.rules.find((r) => isCatchAllRule(r)) ?? table.rules[0];
}

/** Whether the table routes by the ClientHello's SNI (it has TLSRoute rules). */
export function routesBySni(table: RouteTable): boolean {
  return table.rules.some((rule) => rule.sni !== undefined);
}

/**
 * The rule a TLS connection with this SNI takes in a table that routes by
 * SNI: the first rule whose `sni` matches (most specific first), else a rule
 * without `sni` (a TCPRoute's); undefined: refused (NO_ROUTE).
 */
export function sniRuleOf(table: RouteTable, serverName: string | undefined): HttpRouteRule | undefined {
  if (serverName !== undefined) {
    const host = normalHost(serverName);
    for (const rule of table.rules) if (rule.sni !== undefined && hostMatches(rule.sni, host)) return rule;
  }
  return table.rules.find((rule) => rule.sni === undefined);
}

/** The first (most specific) of a gateway port's listeners or a listener's virtual hosts whose hostname takes `host`; an absent hostname takes every host. */
export function firstHostMatch<T extends { hostname?: string | undefined }>(items: readonly T[], host: string): T | undefined {
  for (const item of items) if (item.hostname === undefined || hostMatches(item.hostname, host)) return item;
  return undefined;
}

/** The port a service is reached on when the authority names none: 80 if it has it, else its only port. */
export function defaultServicePort<T>(ports: ReadonlyMap<number, T>): T | undefined {
  return ports.get(80) ?? (ports.size === 1 ? [...ports.values()][0] : undefined);
}
