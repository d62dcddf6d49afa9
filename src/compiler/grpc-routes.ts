// GRPCRoutes: their method and header matches in the route-rule form HTTPRoutes compile to, their precedence, and their h2c backends.
import type { GRPCRoute, GRPCRouteMatch, HTTPRoute, HTTPRouteMatch, HTTPRouteRule, ServicePort } from '../api/resources.ts';
import type { PortProtocol } from '../api/snapshot.ts';
import { portProtocol } from './services.ts';

/**
 * What GRPCRoute precedence compares, per match (Gateway API): the characters
 * of an exact service, then of an exact method, then the number of header
 * matches. Regular expressions count no characters: an exact name is always
 * the more specific (the specification leaves regexes to implementations).
 */
export interface GrpcMatchRank {
  serviceChars: number;
  methodChars: number;
  headers: number;
}

export interface GrpcRouteForm {
  /** The route with each rule's matches written as HTTPRoute matches; kind, apiVersion and metadata are the GRPCRoute's. */
  route: HTTPRoute;
  /** Problems of a rule's gRPC matches, by rule index: such a rule is dropped like any rule that does not compile. */
  ruleProblems: Map<number, string[]>;
  /** By rule index, one rank per match of the rewritten rule (a rule without matches has one). */
  ranks: Map<number, GrpcMatchRank[]>;
}

/** The HTTP method of every gRPC call. */
const GRPC_HTTP_METHOD = 'POST';
/** One path segment: a service or a method name in "/<service>/<method>". */
const ANY_SEGMENT = '[^/]+';

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function checkRegex(value: string, where: string, problems: string[]): void {
  try {
    new RegExp(`^(?:${value})$`);
  } catch (error) {
    problems.push(`${where}: invalid regular expression "${value}": ${(error as Error).message}`);
  }
}

/**
 * One GRPCRoute match as an HTTPRoute match: gRPC calls are POSTs to
 * "/<service>/<method>", so a method match is a path match (Exact when both
 * names are given, else a regular expression with the missing one as any
 * segment), and header matches are header matches.
 */
export function grpcMatchAsHttp(match: GRPCRouteMatch, where: string, problems: string[]): { match: HTTPRouteMatch; rank: GrpcMatchRank } {
  const http: HTTPRouteMatch = { method: GRPC_HTTP_METHOD };
  const rank: GrpcMatchRank = { serviceChars: 0, methodChars: 0, headers: new Set((match.headers ?? []).map((h) => h.name.toLowerCase())).size };
  if (match.headers?.length) http.headers = match.headers;
  const method = match.method;
  if (method) {
    const { service, method: name } = method;
    if ((method.type ?? 'Exact') === 'Exact') {
      rank.serviceChars = service?.length ?? 0;
      rank.methodChars = name?.length ?? 0;
      http.path =
        service !== undefined && name !== undefined
          ? { type: 'Exact', value: `/${service}/${name}` }
          : { type: 'RegularExpression', value: `/${service !== undefined ? escapeRegex(service) : ANY_SEGMENT}/${name !== undefined ? escapeRegex(name) : ANY_SEGMENT}` };
    } else {
      if (service !== undefined) checkRegex(service, `${where}.method.service`, problems);
      if (name !== undefined) checkRegex(name, `${where}.method.method`, problems);
      http.path = { type: 'RegularExpression', value: `/(?:${service ?? ANY_SEGMENT})/(?:${name ?? ANY_SEGMENT})` };
    }
  }
  return { match: http, rank };
}

/**
 * A GRPCRoute rewritten so that the HTTPRoute analysis (parents, filters,
 * backendRefs, status) serves it unchanged; what differs is kept beside it.
 */
export function grpcRouteForm(route: GRPCRoute): GrpcRouteForm {
  const ruleProblems = new Map<number, string[]>();
  const ranks = new Map<number, GrpcMatchRank[]>();
  const rules: HTTPRouteRule[] = (route.spec.rules ?? [{}]).map((rule, ruleIndex) => {
    const where = `rules[${ruleIndex}]${rule.name ? ` (${rule.name})` : ''}`;
    const problems: string[] = [];
    const specMatches = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
    const converted = specMatches.map((m, i) => grpcMatchAsHttp(m, `${where}.matches[${i}]`, problems));
    if (problems.length > 0) ruleProblems.set(ruleIndex, problems);
    ranks.set(
      ruleIndex,
      converted.map((c) => c.rank),
    );
    const http: HTTPRouteRule = { matches: converted.map((c) => c.match) };
    if (rule.name !== undefined) http.name = rule.name;
    if (rule.filters) http.filters = rule.filters;
    if (rule.backendRefs) http.backendRefs = rule.backendRefs;
    if (rule.sessionPersistence) http.sessionPersistence = rule.sessionPersistence;
    return http;
  });
  const spec: HTTPRoute['spec'] = { parentRefs: route.spec.parentRefs ?? [], rules };
  if (route.spec.hostnames) spec.hostnames = route.spec.hostnames;
  return { route: { ...route, spec }, ruleProblems, ranks };
}

/**
 * GRPCRoute precedence between two matches (Gateway API): more characters
 * of exact service, then of exact method, then more header matches; negative
 * when `a` goes first, 0 on a tie (the caller then orders by route age, name
 * and rule order).
 */
export function compareGrpcRanks(a: GrpcMatchRank, b: GrpcMatchRank): number {
  return b.serviceChars - a.serviceChars || b.methodChars - a.methodChars || b.headers - a.headers;
}

/**
 * The protocol a GRPCRoute's backend port is spoken to with: gRPC needs
 * HTTP/2, so a port that declares nothing (no appProtocol weft knows, no
 * protocol-named port) is spoken to in h2c; a declared protocol always wins.
 */
export function grpcBackendProtocol(port: Pick<ServicePort, 'name' | 'appProtocol'>): PortProtocol {
  const protocol = portProtocol(port);
  if (protocol !== 'http') return protocol;
  // "http" is either declared (appProtocol http or kubernetes.io/ws, a port named "http" or "http-...") or only the default.
  const appProtocol = port.appProtocol?.toLowerCase();
  const declared = appProtocol === 'http' || appProtocol === 'kubernetes.io/ws' || port.name?.toLowerCase().split('-')[0] === 'http';
  return declared ? 'http' : 'grpc';
}
