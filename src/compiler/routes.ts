// HTTPRoutes attached to Services (GAMMA): validation, backendRef resolution, and route tables in Gateway API precedence order.
import type { HTTPBackendRef, HTTPRoute, HTTPRouteMatch, HTTPRouteRule, ParentReference, Service } from '../api/resources.ts';
import {
  servicePortKey,
  type HttpFilter,
  type HttpMatch,
  type HttpRouteRule,
  type RetryPolicy,
  type RouteTable,
  type SessionPersistence,
  type SnapshotRateLimit,
  type StringMatch,
  type WeightedBackend,
} from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import { compileFilters, type FilterScope, type MirrorRef } from './filters.ts';
import { resolveExtensionRef, type ExtensionIndex } from './fault.ts';
import { compareGrpcRanks, type GrpcMatchRank, type GrpcRouteForm } from './grpc-routes.ts';
import { backendRefPermitted, type ReferencePermits } from './gateway-grants.ts';
import { compareStrings } from './hash.ts';
import { meshPorts, portProtocol, serviceNamespace } from './services.ts';
import { HTTP_TOKEN } from '../api/http-syntax.ts';

/** Why a backendRef could not be resolved: the Gateway API's ResolvedRefs reasons. */
export type RefReason = 'BackendNotFound' | 'InvalidKind' | 'RefNotPermitted';

export interface RefProblem {
  reason: RefReason;
  message: string;
}

/** One parentRef of kind Service and what it attaches to. */
export interface ServiceParent {
  /** As written in the route, for status. */
  parentRef: ParentReference;
  /** "ns/name" of the parent Service. */
  serviceKey: string;
  /** The Service's HTTP ports the route attaches to; empty when it attaches to none. */
  ports: number[];
  /** Why the parent was not accepted (NoMatchingParent), when it wasn't. */
  problem?: string;
  /**
   * Why the route was left off some of the parent's ports: a route of the
   * other kind (HTTPRoute / GRPCRoute) that is older holds them (Gateway API:
   * exactly one of the two is accepted).
   */
  kindConflict?: string;
}

/** A backendRef after validation: either a Service (port possibly left to the parent) or invalid. */
interface PendingBackend {
  weight: number;
  filters: HttpFilter[];
  target?: { namespace: string; name: string; port?: number };
}

interface ValidRule {
  ruleIndex: number;
  /** The rule's name, or its index: the third part of HttpRouteRule.id. */
  idPart: string;
  matches: HttpMatch[];
  filters: HttpFilter[];
  backends: PendingBackend[];
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  retry?: RetryPolicy;
  sessionPersistence?: SessionPersistence;
  /** GRPCRoutes: the precedence of each match, which replaces the HTTPRoute one. */
  grpcRanks?: GrpcMatchRank[];
  /** servicePortKey → the key of the route's backend variant, where a BackendTrafficPolicy targets the route (backend-policy.ts). */
  backendVariants?: ReadonlyMap<string, string>;
}

export interface AnalyzedRoute {
  route: HTTPRoute;
  namespace: string;
  name: string;
  /** Parents of kind Service only; Gateway parents are not handled here. */
  parents: ServiceParent[];
  /** Rules that compile, in spec order. */
  rules: ValidRule[];
  /** One message per rule left out (unsupported filter, invalid regex, ...). */
  dropped: string[];
  /** Every backendRef that could not be resolved, in spec order. */
  refProblems: RefProblem[];
  /** The limits of the RateLimitPolicy on this route (rate-limit.ts), set by prepare(). */
  rateLimits?: SnapshotRateLimit[];
}

const CORE_GROUPS = new Set(['', 'core']);
/** Retries after the first attempt when a rule's `retry` leaves `attempts` out (Envoy's default, too). */
export const DEFAULT_RETRY_ATTEMPTS = 1;
/** Base backoff between attempts when `retry.backoff` is left out. */
export const DEFAULT_RETRY_BACKOFF_MS = 25;
/** The session cookie or header name when `sessionPersistence.sessionName` is left out. */
export const DEFAULT_SESSION_NAME = 'weft-session';

/**
 * A parentRef to a core Service. The Gateway API defaults group to
 * "gateway.networking.k8s.io", but a Service is never in that group, so a
 * parentRef that says kind Service and leaves the group out means the core one.
 */
export function isServiceParentRef(ref: ParentReference): boolean {
  return ref.kind === 'Service' && (ref.group === undefined || CORE_GROUPS.has(ref.group));
}

export function isHttpProtocolPort(port: { name?: string | undefined; appProtocol?: string | undefined }): boolean {
  return portProtocol(port) !== 'tcp';
}

function routeNamespace(route: HTTPRoute): string {
  return serviceNamespace(route);
}

/**
 * Validates one HTTPRoute against the Services that exist. Pure; the result
 * serves both the snapshots (which rules to compile) and the route's status.
 */
export function analyzeRoute(
  route: HTTPRoute,
  services: ReadonlyMap<string, Service>,
  grants?: ReferencePermits,
  /** A GRPCRoute in its HTTPRoute form (grpc-routes.ts): its match problems and precedence. */
  grpc?: Pick<GrpcRouteForm, 'ruleProblems' | 'ranks'>,
  /** FaultInjections by "ns/name", which ExtensionRef filters resolve to; absent: ExtensionRef filters are unsupported. */
  extensions?: ExtensionIndex,
): AnalyzedRoute {
  const namespace = routeNamespace(route);
  const parents = serviceParents(route, namespace, services);
  const parentServiceKeys = new Set(parents.map((p) => p.serviceKey));
  const rules: ValidRule[] = [];
  const dropped: string[] = [];
  const refProblems: RefProblem[] = [];
  const specRules: HTTPRouteRule[] = route.spec.rules ?? [{}];
  specRules.forEach((rule, ruleIndex) => {
    const where = `rules[${ruleIndex}]${rule.name ? ` (${rule.name})` : ''}`;
    const problems: string[] = [...(grpc?.ruleProblems.get(ruleIndex) ?? [])];
    const granted = (ns: string, name: string) => backendRefPermitted(grants, route.kind, namespace, ns, name);
    const scope = (filtersWhere: string): FilterScope => ({
      where: filtersWhere,
      matches: rule.matches,
      problems,
      resolveMirror: (ref, refWhere) => resolveMirrorRef(ref, refWhere, namespace, parentServiceKeys, services, refProblems, granted),
      ...(extensions ? { resolveExtension: (ref: { group: string; kind: string; name: string }, refWhere: string) => resolveExtensionRef(ref, refWhere, namespace, extensions, refProblems) } : {}),
    });
    const matches = compileMatches(rule.matches, where, problems);
    const ruleScope = scope(`${where}.filters`);
    let filters = compileFilters(rule.filters, ruleScope);
    if (filters.some((f) => f.type === 'RequestRedirect') && (rule.backendRefs?.length ?? 0) > 0) {
      problems.push(`${where}: a RequestRedirect filter must not be used together with backendRefs`);
    }
    for (const [type, kind] of [['GraphQL', 'GraphQLApi'], ['Portal', 'ApiPortal']] as const) {
      if (filters.some((f) => f.type === type) && (rule.backendRefs?.length ?? 0) > 0) {
        problems.push(`${where}: ${kind === 'ApiPortal' ? 'an' : 'a'} ${kind} filter answers the requests itself and must not be used together with backendRefs`);
      }
    }
    const backends = (rule.backendRefs ?? []).map((ref, refIndex) => {
      const refWhere = `${where}.backendRefs[${refIndex}]`;
      const refScope = scope(`${refWhere}.filters`);
      const refFilters = compileFilters(ref.filters, refScope);
      // An ExtensionRef that does not resolve must not be skipped: this backendRef's share answers 500.
      if (refScope.unresolvedExtension) return { weight: ref.weight ?? 1, filters: [] };
      return resolveBackendRef(ref, refWhere, refFilters, namespace, parentServiceKeys, parents, services, refProblems, granted);
    });
    const timeouts = compileTimeouts(rule, where, problems);
    const retry = compileRetry(rule, where, problems);
    const sessionPersistence = compileSessionPersistence(rule, where, problems);
    if (problems.length > 0) {
      dropped.push(problems.join('; '));
      return;
    }
    // A rule-level ExtensionRef that does not resolve: the whole rule answers 500 (no filter runs, no backend).
    if (ruleScope.unresolvedExtension) filters = [];
    const valid: ValidRule = { ruleIndex, idPart: rule.name ?? String(ruleIndex), matches, filters, backends: ruleScope.unresolvedExtension ? [] : backends };
    if (timeouts) valid.timeouts = timeouts;
    if (retry) valid.retry = retry;
    if (sessionPersistence) valid.sessionPersistence = sessionPersistence;
    const grpcRanks = grpc?.ranks.get(ruleIndex);
    if (grpcRanks) valid.grpcRanks = grpcRanks;
    rules.push(valid);
  });
  return { route, namespace, name: route.metadata.name, parents, rules, dropped, refProblems };
}

function serviceParents(route: HTTPRoute, namespace: string, services: ReadonlyMap<string, Service>): ServiceParent[] {
  const parents: ServiceParent[] = [];
  const seen = new Set<string>();
  for (const parentRef of route.spec.parentRefs ?? []) {
    if (!isServiceParentRef(parentRef)) continue;
    const ns = parentRef.namespace ?? namespace;
    const serviceKey = `${ns}/${parentRef.name}`;
    // The same parent written twice would attach twice and be reported twice.
    const identity = `${serviceKey}|${parentRef.port ?? ''}|${parentRef.sectionName ?? ''}`;
    if (seen.has(identity)) continue;
    seen.add(identity);
    const service = services.get(serviceKey);
    if (!service) {
      parents.push({ parentRef, serviceKey, ports: [], problem: `Service ${serviceKey} does not exist` });
      continue;
    }
    const candidates = meshPorts(service).filter(
      (p) => (parentRef.port === undefined || p.port === parentRef.port) && (parentRef.sectionName === undefined || p.name === parentRef.sectionName),
    );
    if (candidates.length === 0) {
      const which = [parentRef.port !== undefined ? `port ${parentRef.port}` : '', parentRef.sectionName ? `a port named "${parentRef.sectionName}"` : '']
        .filter(Boolean)
        .join(' and ');
      parents.push({ parentRef, serviceKey, ports: [], problem: `Service ${serviceKey} has no ${which}` });
      continue;
    }
    // HTTPRoutes only make sense where the proxy parses HTTP; TCP ports keep their plain forwarding.
    const httpPorts = candidates.filter(isHttpProtocolPort).map((p) => p.port);
    if (httpPorts.length === 0) {
      parents.push({
        parentRef,
        serviceKey,
        ports: [],
        problem: `Service ${serviceKey} has no HTTP port${parentRef.port !== undefined || parentRef.sectionName ? ' matching the parentRef' : ''}; an ${route.kind} attaches only to HTTP, HTTP/2 or gRPC ports`,
      });
      continue;
    }
    parents.push({ parentRef, serviceKey, ports: httpPorts });
  }
  return parents;
}

function compileMatches(matches: HTTPRouteMatch[] | undefined, where: string, problems: string[]): HttpMatch[] {
  // A rule without matches matches every request: one PathPrefix "/" match.
  const specMatches = matches && matches.length > 0 ? matches : [{}];
  return specMatches.map((m, i) => compileMatch(m, `${where}.matches[${i}]`, problems));
}

function compileMatch(match: HTTPRouteMatch, where: string, problems: string[]): HttpMatch {
  const type = match.path?.type ?? 'PathPrefix';
  let value = match.path?.value ?? '/';
  if (type === 'RegularExpression') {
    checkRegex(value, `${where}.path`, problems);
  } else if (!value.startsWith('/')) {
    problems.push(`${where}.path: "${value}" must start with "/"`);
  } else if (type === 'PathPrefix') {
    // The Gateway API ignores a trailing "/" in a prefix: "/abc/" and "/abc" match the same paths.
    value = value.replace(/\/+$/, '') || '/';
  }
  const compiled: HttpMatch = { path: { type, value } };

  const headers: ({ name: string } & StringMatch)[] = [];
  const seenHeaders = new Set<string>();
  (match.headers ?? []).forEach((h, i) => {
    const name = h.name.toLowerCase();
    // The Gateway API: only the first match for a header name counts (names are case-insensitive).
    if (seenHeaders.has(name)) return;
    seenHeaders.add(name);
    const matchType = h.type ?? 'Exact';
    if (matchType === 'RegularExpression') checkRegex(h.value, `${where}.headers[${i}]`, problems);
    headers.push({ name, type: matchType, value: h.value });
  });
  if (headers.length > 0) compiled.headers = headers;

  const queryParams: ({ name: string } & StringMatch)[] = [];
  const seenParams = new Set<string>();
  (match.queryParams ?? []).forEach((q, i) => {
    // Query parameter names are case-sensitive; again only the first match per name counts.
    if (seenParams.has(q.name)) return;
    seenParams.add(q.name);
    const matchType = q.type ?? 'Exact';
    if (matchType === 'RegularExpression') checkRegex(q.value, `${where}.queryParams[${i}]`, problems);
    queryParams.push({ name: q.name, type: matchType, value: q.value });
  });
  if (queryParams.length > 0) compiled.queryParams = queryParams;

  if (match.method) compiled.method = match.method;
  return compiled;
}

/**
 * Checks a regular expression the way the proxy will build it: JavaScript
 * syntax, anchored to the whole value (`^(?:value)$`).
 */
function checkRegex(value: string, where: string, problems: string[]): void {
  try {
    new RegExp(`^(?:${value})$`);
  } catch (error) {
    problems.push(`${where}: invalid regular expression "${value}": ${(error as Error).message}`);
  }
}

function compileTimeouts(rule: HTTPRouteRule, where: string, problems: string[]): { requestMs?: number; backendRequestMs?: number } | undefined {
  if (!rule.timeouts) return undefined;
  const timeouts: { requestMs?: number; backendRequestMs?: number } = {};
  for (const [field, target] of [
    ['request', 'requestMs'],
    ['backendRequest', 'backendRequestMs'],
  ] as const) {
    const text = rule.timeouts[field];
    if (text === undefined) continue;
    const ms = parseGatewayDuration(text);
    if (ms === undefined) problems.push(`${where}.timeouts.${field}: "${text}" is not a Gateway API duration`);
    // "0s" means no timeout.
    else if (ms > 0) timeouts[target] = ms;
  }
  // The request timeout covers every attempt, so a longer per-attempt timeout is a mistake (a Gateway API rule).
  if (timeouts.requestMs !== undefined && timeouts.backendRequestMs !== undefined && timeouts.backendRequestMs > timeouts.requestMs) {
    problems.push(`${where}.timeouts: backendRequest (${rule.timeouts.backendRequest}) cannot be longer than request (${rule.timeouts.request})`);
  }
  return timeouts.requestMs === undefined && timeouts.backendRequestMs === undefined ? undefined : timeouts;
}

/**
 * `sessionPersistence`: type Cookie (default) or Header, the token's name,
 * and its timeouts. A Permanent cookie needs an absolute timeout for its
 * Max-Age (a Gateway API rule).
 */
function compileSessionPersistence(rule: HTTPRouteRule, where: string, problems: string[]): SessionPersistence | undefined {
  const spec = rule.sessionPersistence as
    | { sessionName?: unknown; absoluteTimeout?: unknown; idleTimeout?: unknown; type?: unknown; cookieConfig?: { lifetimeType?: unknown } }
    | undefined;
  if (!spec) return undefined;
  const at = `${where}.sessionPersistence`;
  const before = problems.length;
  const type = spec.type ?? 'Cookie';
  if (type !== 'Cookie' && type !== 'Header') problems.push(`${at}.type: "${String(type)}" is not Cookie or Header`);
  const name = spec.sessionName ?? DEFAULT_SESSION_NAME;
  if (typeof name !== 'string' || name.length > 128 || !HTTP_TOKEN.test(name)) problems.push(`${at}.sessionName: "${String(name)}" is not a valid cookie or header name`);
  const duration = (field: 'absoluteTimeout' | 'idleTimeout'): number | undefined => {
    const text = spec[field];
    if (text === undefined) return undefined;
    const ms = typeof text === 'string' ? parseGatewayDuration(text) : undefined;
    if (ms === undefined) problems.push(`${at}.${field}: "${String(text)}" is not a Gateway API duration`);
    return ms;
  };
  const absoluteTimeoutMs = duration('absoluteTimeout');
  const idleTimeoutMs = duration('idleTimeout');
  const lifetime = spec.cookieConfig?.lifetimeType;
  if (lifetime !== undefined && lifetime !== 'Permanent' && lifetime !== 'Session') problems.push(`${at}.cookieConfig.lifetimeType: "${String(lifetime)}" is not Permanent or Session`);
  if (lifetime !== undefined && type === 'Header') problems.push(`${at}.cookieConfig: only a Cookie session has a cookie to configure`);
  if (lifetime === 'Permanent' && !absoluteTimeoutMs) problems.push(`${at}: a Permanent cookie needs an absoluteTimeout`);
  if (problems.length !== before) return undefined;
  const session: SessionPersistence = { type: type as SessionPersistence['type'], name: name as string };
  if (absoluteTimeoutMs) session.absoluteTimeoutMs = absoluteTimeoutMs;
  if (idleTimeoutMs) session.idleTimeoutMs = idleTimeoutMs;
  if (lifetime !== undefined) session.cookieLifetime = lifetime as 'Permanent' | 'Session';
  return session;
}

function compileRetry(rule: HTTPRouteRule, where: string, problems: string[]): RetryPolicy | undefined {
  const retry = rule.retry;
  if (!retry) return undefined;
  let backoffMs = DEFAULT_RETRY_BACKOFF_MS;
  if (retry.backoff !== undefined) {
    const ms = parseGatewayDuration(retry.backoff);
    if (ms === undefined) problems.push(`${where}.retry.backoff: "${retry.backoff}" is not a Gateway API duration`);
    else backoffMs = ms;
  }
  const codes = [...new Set(retry.codes ?? [])].sort((a, b) => a - b);
  return { codes, attempts: retry.attempts ?? DEFAULT_RETRY_ATTEMPTS, backoffMs };
}

/**
 * A RequestMirror's backendRef: a core Service port that the route may
 * reach (as for backendRefs). Undefined, with the problem in `refProblems`,
 * when it does not resolve: that mirror is then left out.
 */
function resolveMirrorRef(
  ref: MirrorRef,
  where: string,
  routeNs: string,
  parentServiceKeys: ReadonlySet<string>,
  services: ReadonlyMap<string, Service>,
  refProblems: RefProblem[],
  granted: (namespace: string, name: string) => boolean,
): string | undefined {
  const invalid = (reason: RefReason, message: string): undefined => {
    refProblems.push({ reason, message: `${where}: ${message}` });
    return undefined;
  };
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  if (!CORE_GROUPS.has(group) || kind !== 'Service') {
    return invalid('InvalidKind', `kind ${group ? `${group}/` : ''}${kind} is not supported; only core Services can be mirrored to`);
  }
  const ns = ref.namespace ?? routeNs;
  const serviceKey = `${ns}/${ref.name}`;
  if (ns !== routeNs && !parentServiceKeys.has(serviceKey) && !granted(ns, ref.name)) {
    return invalid('RefNotPermitted', `Service ${serviceKey} is in another namespace and no ReferenceGrant allows it`);
  }
  const service = services.get(serviceKey);
  if (!service) return invalid('BackendNotFound', `Service ${serviceKey} does not exist`);
  if (ref.port === undefined) return invalid('BackendNotFound', `the mirror to Service ${serviceKey} needs a port`);
  if (!meshPorts(service).some((p) => p.port === ref.port)) return invalid('BackendNotFound', `Service ${serviceKey} has no TCP port ${ref.port}`);
  return servicePortKey(ns, ref.name, ref.port);
}

function resolveBackendRef(
  ref: HTTPBackendRef,
  where: string,
  filters: HttpFilter[],
  routeNs: string,
  parentServiceKeys: ReadonlySet<string>,
  parents: readonly ServiceParent[],
  services: ReadonlyMap<string, Service>,
  refProblems: RefProblem[],
  /** Whether a ReferenceGrant lets the route reach this Service in another namespace. */
  granted: (namespace: string, name: string) => boolean = () => false,
): PendingBackend {
  const weight = ref.weight ?? 1;
  const invalid = (reason: RefReason, message: string): PendingBackend => {
    refProblems.push({ reason, message: `${where}: ${message}` });
    return { weight, filters };
  };
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  if (!CORE_GROUPS.has(group) || kind !== 'Service') {
    return invalid('InvalidKind', `kind ${group ? `${group}/` : ''}${kind} is not supported; only core Services can be backends`);
  }
  const ns = ref.namespace ?? routeNs;
  const serviceKey = `${ns}/${ref.name}`;
  // Other namespaces need a ReferenceGrant there, except for the route's own
  // parent Service: a GAMMA consumer route sends its callers on to the Service
  // it is attached to, which they could reach anyway.
  if (ns !== routeNs && !parentServiceKeys.has(serviceKey) && !granted(ns, ref.name)) {
    return invalid('RefNotPermitted', `Service ${serviceKey} is in another namespace and no ReferenceGrant allows it`);
  }
  const service = services.get(serviceKey);
  if (!service) return invalid('BackendNotFound', `Service ${serviceKey} does not exist`);
  if (ref.port === undefined) {
    // Left to the parent port: only meaningful when every parent is this very Service.
    const otherParent = parents.find((p) => p.serviceKey !== serviceKey);
    if (!parentServiceKeys.has(serviceKey) || otherParent) {
      return invalid('BackendNotFound', `backendRef to Service ${serviceKey} needs a port (it may be left out only when the backend is the route's only parent Service)`);
    }
    return { weight, filters, target: { namespace: ns, name: ref.name } };
  }
  if (!meshPorts(service).some((p) => p.port === ref.port)) {
    return invalid('BackendNotFound', `Service ${serviceKey} has no TCP port ${ref.port}`);
  }
  return { weight, filters, target: { namespace: ns, name: ref.name, port: ref.port } };
}

interface FlatEntry {
  route: AnalyzedRoute;
  ruleIndex: number;
  matchIndex: number;
  rule: HttpRouteRule;
  /** GRPCRoute entries: their precedence. */
  grpcRank?: GrpcMatchRank;
}

/**
 * The route table of one Service port from the routes attached to it. With
 * no route attached every request goes to the Service itself; with routes
 * attached a request matching none of their rules has no route (404), as
 * GAMMA and the mesh conformance tests expect.
 */
export function buildRouteTable(serviceNs: string, serviceName: string, port: number, routes: readonly AnalyzedRoute[]): RouteTable {
  const key = servicePortKey(serviceNs, serviceName, port);
  if (routes.length === 0) {
    return { key, rules: [{ id: 'default', match: {}, filters: [], backends: [{ backend: key, weight: 1, filters: [] }] }] };
  }
  const entries: FlatEntry[] = [];
  for (const route of routes) {
    for (const rule of route.rules) {
      const backends = rule.backends.filter((b) => b.weight > 0).map((b) => resolveForTable(b, serviceNs, serviceName, port, rule.backendVariants));
      rule.matches.forEach((match, matchIndex) => {
        const compiled: HttpRouteRule = {
          id: `${route.namespace}/${route.name}/${rule.idPart}/${matchIndex}`,
          match,
          filters: rule.filters,
          backends,
        };
        if (rule.timeouts) compiled.timeouts = rule.timeouts;
        if (rule.retry) compiled.retry = rule.retry;
        if (rule.sessionPersistence) compiled.sessionPersistence = rule.sessionPersistence;
        if (route.rateLimits) compiled.rateLimits = route.rateLimits;
        const entry: FlatEntry = { route, ruleIndex: rule.ruleIndex, matchIndex, rule: compiled };
        const grpcRank = rule.grpcRanks?.[matchIndex];
        if (grpcRank) entry.grpcRank = grpcRank;
        entries.push(entry);
      });
    }
  }
  entries.sort(comparePrecedence);
  return { key, rules: entries.map((e) => e.rule) };
}

function resolveForTable(pending: PendingBackend, serviceNs: string, serviceName: string, port: number, variants: ReadonlyMap<string, string> | undefined): WeightedBackend {
  const target = pending.target;
  if (!target) return { weight: pending.weight, filters: pending.filters };
  let targetPort = target.port;
  if (targetPort === undefined && target.namespace === serviceNs && target.name === serviceName) targetPort = port;
  if (targetPort === undefined) return { weight: pending.weight, filters: pending.filters };
  const key = servicePortKey(target.namespace, target.name, targetPort);
  return { backend: variants?.get(key) ?? key, weight: pending.weight, filters: pending.filters };
}

const PATH_RANK = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;

/**
 * Gateway API precedence: Exact path, then the longest prefix, then (our
 * implementation-specific choice) regular expressions; then a method match;
 * then more header matches; then more query matches; then the oldest route,
 * then "ns/name" alphabetically; then rule and match order within a route.
 */
export function comparePrecedence(a: FlatEntry, b: FlatEntry): number {
  // GRPCRoutes have their own precedence (service, method, headers), then the same route and rule order.
  if (a.grpcRank && b.grpcRank) return compareGrpcRanks(a.grpcRank, b.grpcRank) || compareRouteOrder(a, b);
  const pa = a.rule.match.path ?? { type: 'PathPrefix', value: '/' };
  const pb = b.rule.match.path ?? { type: 'PathPrefix', value: '/' };
  const byRank = PATH_RANK[pa.type] - PATH_RANK[pb.type];
  if (byRank !== 0) return byRank;
  if (pa.type === 'PathPrefix' && pa.value.length !== pb.value.length) return pb.value.length - pa.value.length;
  const byMethod = (a.rule.match.method ? 0 : 1) - (b.rule.match.method ? 0 : 1);
  if (byMethod !== 0) return byMethod;
  const byHeaders = (b.rule.match.headers?.length ?? 0) - (a.rule.match.headers?.length ?? 0);
  if (byHeaders !== 0) return byHeaders;
  const byQuery = (b.rule.match.queryParams?.length ?? 0) - (a.rule.match.queryParams?.length ?? 0);
  if (byQuery !== 0) return byQuery;
  return compareRouteOrder(a, b);
}

/** The tie-breakers both kinds share: the oldest route, then "ns/name", then rule and match order within a route. */
function compareRouteOrder(a: FlatEntry, b: FlatEntry): number {
  if (a.route !== b.route) {
    const byAge = compareCreation(a.route.route.metadata.creationTimestamp, b.route.route.metadata.creationTimestamp);
    if (byAge !== 0) return byAge;
    const byName = compareStrings(`${a.route.namespace}/${a.route.name}`, `${b.route.namespace}/${b.route.name}`);
    if (byName !== 0) return byName;
  }
  return a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex;
}

/** Older route first, then "ns/name" alphabetically: the order the Gateway API breaks ties between routes with. */
export function compareRouteAge(a: AnalyzedRoute, b: AnalyzedRoute): number {
  return (
    compareCreation(a.route.metadata.creationTimestamp, b.route.metadata.creationTimestamp) ||
    compareStrings(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`)
  );
}

/** Older first; a route without a timestamp counts as the newest (it has not been stored yet). */
function compareCreation(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (!Number.isNaN(ta) && !Number.isNaN(tb) && ta !== tb) return ta - tb;
  return compareStrings(a, b);
}
