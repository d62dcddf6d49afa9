// HTTPRoute filters → snapshot filters: the Gateway API's validation rules for each filter type, and their compiled form.
import type { HTTPRouteFilter, HTTPRouteMatch } from '../api/resources.ts';
import { parseOriginPattern, type CorsPolicy, type HeaderModifier, type HttpFilter, type PathModifier, type RequestMirror, type RequestRedirect, type UrlRewrite } from '../api/snapshot.ts';

/** A RequestMirror's backendRef, as the route wrote it. */
export type MirrorRef = NonNullable<HTTPRouteFilter['requestMirror']>['backendRef'];

export interface FilterScope {
  /** "rules[0].filters" or "rules[0].backendRefs[1].filters": where problems are reported. */
  where: string;
  /** The rule's matches as written: ReplacePrefixMatch needs exactly one PathPrefix match. */
  matches: HTTPRouteMatch[] | undefined;
  /** Problems that make the rule unservable; the rule is then dropped. */
  problems: string[];
  /**
   * The backend key a mirror's backendRef resolves to, or undefined when it
   * does not resolve (the caller reports that in ResolvedRefs; nothing is then mirrored).
   */
  resolveMirror(ref: MirrorRef, where: string): string | undefined;
  /**
   * The filter an ExtensionRef names (a weft.dev FaultInjection), or undefined
   * when it does not resolve (the resolver reports that in ResolvedRefs). Absent:
   * ExtensionRef filters are not supported where this scope compiles.
   */
  resolveExtension?(ref: NonNullable<HTTPRouteFilter['extensionRef']>, where: string): HttpFilter | undefined;
  /** Set when an ExtensionRef did not resolve: the requests these filters cover must answer 500, not skip the filter. */
  unresolvedExtension?: boolean;
}

/** Which config field each filter type takes; a filter naming another type's field is invalid. */
const CONFIG_FIELD = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  CORS: 'cors',
  ExtensionRef: 'extensionRef',
} as const satisfies Record<HTTPRouteFilter['type'], keyof HTTPRouteFilter>;

/** The Gateway API lets only these repeat within one list of filters. */
const REPEATABLE = new Set<HTTPRouteFilter['type']>(['RequestMirror', 'ExtensionRef']);

// PreciseHostname: a lower-case RFC 1123 subdomain, no wildcard.
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** The CORS filter's default `Access-Control-Max-Age` (Gateway API). */
export const DEFAULT_CORS_MAX_AGE_SECONDS = 5;

/**
 * Compiles one list of filters (a rule's, or a backendRef's). Every problem
 * found is pushed to `scope.problems`; the result is only meaningful when
 * there are none.
 */
export function compileFilters(filters: readonly HTTPRouteFilter[] | undefined, scope: FilterScope): HttpFilter[] {
  const compiled: HttpFilter[] = [];
  const list = filters ?? [];
  const seen = new Set<HTTPRouteFilter['type']>();
  list.forEach((filter, i) => {
    const where = `${scope.where}[${i}]`;
    if (seen.has(filter.type) && !REPEATABLE.has(filter.type)) {
      scope.problems.push(`${where}: ${filter.type} filter cannot be repeated`);
      return;
    }
    seen.add(filter.type);
    const field = CONFIG_FIELD[filter.type];
    const stray = Object.values(CONFIG_FIELD).filter((f) => f !== field && filter[f] !== undefined);
    if (stray.length > 0) {
      scope.problems.push(`${where}: filter.${stray[0]} must not be set when the filter type is ${filter.type}`);
      return;
    }
    if (filter[field] === undefined) {
      scope.problems.push(`${where}: filter type ${filter.type} needs ${field}`);
      return;
    }
    const one = compileOne(filter, where, scope);
    if (one) compiled.push(one);
  });
  if (seen.has('RequestRedirect') && seen.has('URLRewrite')) {
    scope.problems.push(`${scope.where}: RequestRedirect and URLRewrite cannot be used together`);
  }
  return compiled;
}

function compileOne(filter: HTTPRouteFilter, where: string, scope: FilterScope): HttpFilter | undefined {
  switch (filter.type) {
    case 'RequestHeaderModifier':
      return { type: 'RequestHeaderModifier', modifier: compileModifier(filter.requestHeaderModifier!) };
    case 'ResponseHeaderModifier':
      return { type: 'ResponseHeaderModifier', modifier: compileModifier(filter.responseHeaderModifier!) };
    case 'RequestRedirect': {
      const redirect = compileRedirect(filter.requestRedirect!, `${where}.requestRedirect`, scope);
      return redirect && { type: 'RequestRedirect', redirect };
    }
    case 'URLRewrite': {
      const rewrite = compileRewrite(filter.urlRewrite!, `${where}.urlRewrite`, scope);
      return rewrite && { type: 'URLRewrite', rewrite };
    }
    case 'RequestMirror': {
      const mirror = compileMirror(filter.requestMirror!, `${where}.requestMirror`, scope);
      return mirror && { type: 'RequestMirror', mirror };
    }
    case 'CORS': {
      const cors = compileCors(filter.cors!, `${where}.cors`, scope.problems);
      return cors && { type: 'CORS', cors };
    }
    case 'ExtensionRef': {
      if (scope.resolveExtension) {
        const resolved = scope.resolveExtension(filter.extensionRef!, `${where}.extensionRef`);
        if (resolved === undefined) scope.unresolvedExtension = true;
        return resolved;
      }
      // Serving the rule without its filter would skip what the user asked for.
      scope.problems.push(`${where}: ExtensionRef filters (${filter.extensionRef!.group}/${filter.extensionRef!.kind} ${filter.extensionRef!.name}) are not supported yet`);
      return undefined;
    }
    default:
      scope.problems.push(`${where}: filter type ${String((filter as { type: unknown }).type)} is not supported`);
      return undefined;
  }
}

/** Header names lower-case, so that the proxy compares and writes them without folding case per request. */
export function compileModifier(config: { set?: { name: string; value: string }[]; add?: { name: string; value: string }[]; remove?: string[] }): HeaderModifier {
  const modifier: HeaderModifier = {};
  if (config.set?.length) modifier.set = config.set.map((h) => ({ name: h.name.toLowerCase(), value: h.value }));
  if (config.add?.length) modifier.add = config.add.map((h) => ({ name: h.name.toLowerCase(), value: h.value }));
  if (config.remove?.length) modifier.remove = config.remove.map((n) => n.toLowerCase());
  return modifier;
}

type PathModifierSpec = NonNullable<NonNullable<HTTPRouteFilter['urlRewrite']>['path']>;

function compilePath(path: PathModifierSpec, where: string, scope: FilterScope): PathModifier | undefined {
  const full = path.replaceFullPath;
  const prefix = path.replacePrefixMatch;
  if (path.type === 'ReplaceFullPath') {
    if (full === undefined) return problem(scope, `${where}: replaceFullPath must be set when type is ReplaceFullPath`);
    if (prefix !== undefined) return problem(scope, `${where}: replacePrefixMatch must not be set when type is ReplaceFullPath`);
    if (!full.startsWith('/') || !isPathText(full)) return problem(scope, `${where}.replaceFullPath: "${full}" must be an absolute path without query, fragment or spaces`);
    return { type: 'ReplaceFullPath', value: full };
  }
  if (prefix === undefined) return problem(scope, `${where}: replacePrefixMatch must be set when type is ReplacePrefixMatch`);
  if (full !== undefined) return problem(scope, `${where}: replaceFullPath must not be set when type is ReplacePrefixMatch`);
  if ((prefix !== '' && !prefix.startsWith('/')) || !isPathText(prefix)) {
    return problem(scope, `${where}.replacePrefixMatch: "${prefix}" must be empty or an absolute path without query, fragment or spaces`);
  }
  // The prefix replaced is the rule's PathPrefix match, so there must be exactly one (the Gateway API's rule).
  const matches = scope.matches && scope.matches.length > 0 ? scope.matches : [{}];
  const only = matches.length === 1 ? matches[0]! : undefined;
  if (!only || (only.path !== undefined && (only.path.type ?? 'PathPrefix') !== 'PathPrefix')) {
    return problem(scope, `${where}: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix`);
  }
  return { type: 'ReplacePrefixMatch', value: prefix };
}

function isPathText(text: string): boolean {
  return !/[?#\s\u0000-\u001f\u007f]/.test(text);
}

function compileHostname(hostname: string, where: string, scope: FilterScope): string | undefined {
  const lower = hostname.toLowerCase();
  if (!PRECISE_HOSTNAME.test(lower) || lower.length > 253) return problem(scope, `${where}: "${hostname}" is not a host name (no port, no wildcard)`);
  return lower;
}

function compileRedirect(spec: NonNullable<HTTPRouteFilter['requestRedirect']>, where: string, scope: FilterScope): RequestRedirect | undefined {
  const before = scope.problems.length;
  const redirect: RequestRedirect = { statusCode: spec.statusCode ?? 302 };
  if (spec.scheme !== undefined) redirect.scheme = spec.scheme;
  if (spec.hostname !== undefined) {
    const hostname = compileHostname(spec.hostname, `${where}.hostname`, scope);
    if (hostname !== undefined) redirect.hostname = hostname;
  }
  if (spec.port !== undefined) redirect.port = spec.port;
  if (spec.path !== undefined) {
    const path = compilePath(spec.path, `${where}.path`, scope);
    if (path) redirect.path = path;
  }
  return scope.problems.length === before ? redirect : undefined;
}

function compileRewrite(spec: NonNullable<HTTPRouteFilter['urlRewrite']>, where: string, scope: FilterScope): UrlRewrite | undefined {
  const before = scope.problems.length;
  const rewrite: UrlRewrite = {};
  if (spec.hostname !== undefined) {
    const hostname = compileHostname(spec.hostname, `${where}.hostname`, scope);
    if (hostname !== undefined) rewrite.hostname = hostname;
  }
  if (spec.path !== undefined) {
    const path = compilePath(spec.path, `${where}.path`, scope);
    if (path) rewrite.path = path;
  }
  return scope.problems.length === before ? rewrite : undefined;
}

function compileMirror(spec: NonNullable<HTTPRouteFilter['requestMirror']>, where: string, scope: FilterScope): RequestMirror | undefined {
  if (spec.percent !== undefined && spec.fraction !== undefined) return problem(scope, `${where}: only one of percent and fraction may be set`);
  let percent = 100;
  if (spec.percent !== undefined) percent = spec.percent;
  else if (spec.fraction !== undefined) {
    const { numerator, denominator } = spec.fraction;
    if (numerator > denominator) return problem(scope, `${where}.fraction: the numerator (${numerator}) must not exceed the denominator (${denominator})`);
    percent = (numerator / denominator) * 100;
  }
  const mirror: RequestMirror = { percent };
  // An unresolved mirror is reported in ResolvedRefs and left out; the rule itself still serves.
  const backend = scope.resolveMirror(spec.backendRef, `${where}.backendRef`);
  if (backend !== undefined) mirror.backend = backend;
  return mirror;
}

function compileCors(spec: NonNullable<HTTPRouteFilter['cors']>, where: string, problems: string[]): CorsPolicy | undefined {
  const before = problems.length;
  const wildcardAlone = (list: readonly string[], field: string) => {
    if (list.includes('*') && list.length > 1) problems.push(`${where}.${field}: "*" cannot be listed with other values`);
  };
  const allowOrigins = (spec.allowOrigins ?? []).map((o) => o.toLowerCase());
  wildcardAlone(allowOrigins, 'allowOrigins');
  for (const origin of allowOrigins) {
    if (origin !== '*' && !parseOriginPattern(origin)) problems.push(`${where}.allowOrigins: "${origin}" is not "*" or <scheme>://<host>[:<port>] (http or https; "*" only leftmost in the host)`);
  }
  const allowMethods = [...new Set(spec.allowMethods ?? [])];
  wildcardAlone(allowMethods, 'allowMethods');
  for (const method of allowMethods) if (method !== '*' && !METHODS.has(method)) problems.push(`${where}.allowMethods: "${method}" is not an HTTP method`);
  const allowHeaders = [...new Set((spec.allowHeaders ?? []).map((h) => h.toLowerCase()))];
  wildcardAlone(allowHeaders, 'allowHeaders');
  const exposeHeaders = [...new Set((spec.exposeHeaders ?? []).map((h) => h.toLowerCase()))];
  for (const [field, list] of [
    ['allowHeaders', allowHeaders],
    ['exposeHeaders', exposeHeaders],
  ] as const) {
    for (const name of list) if (name !== '*' && !HEADER_NAME.test(name)) problems.push(`${where}.${field}: "${name}" is not a header name`);
  }
  const maxAgeSeconds = spec.maxAge ?? DEFAULT_CORS_MAX_AGE_SECONDS;
  if (maxAgeSeconds < 1) problems.push(`${where}.maxAge: must be at least 1 second`);
  if (problems.length !== before) return undefined;
  return { allowOrigins, allowCredentials: spec.allowCredentials === true, allowMethods, allowHeaders, exposeHeaders, maxAgeSeconds };
}

function problem(scope: FilterScope, message: string): undefined {
  scope.problems.push(message);
  return undefined;
}
