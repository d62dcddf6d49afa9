// AuthorizationPolicy evaluation: snapshot rules compiled once into closures, then Istio's CUSTOM → AUDIT → DENY → ALLOW order per request. Shared by the proxy and `weft explain`.
import { conditionClaimPath, conditionHeader } from './authorization-conditions.ts';
import { compileIpBlocks } from './ip-blocks.ts';
import type { SnapshotAuthorization, SnapshotAuthzCondition, SnapshotAuthzCustomPolicy, SnapshotAuthzOperation, SnapshotAuthzPolicy, SnapshotAuthzRule, SnapshotAuthzSource } from './snapshot.ts';

/** What a policy can look at: the caller (by its verified identity and address), and for HTTP the request. */
export interface AuthzRequest {
  /** The caller's SPIFFE ID as verified by mTLS; undefined for a plaintext caller. */
  peerIdentity: string | undefined;
  /** The caller's address (the tunnel peer at a sidecar, the client at a gateway). */
  sourceIp: string | undefined;
  /** The destination port: the declared app port, the gateway's listener port. */
  port: number;
  /** HTTP only; absent for an opaque TCP connection. */
  http?: AuthzHttp;
}

export interface AuthzHttp {
  method: string;
  /** The Host header as sent (port included when sent). */
  host: string;
  /** The normalised path without its query. */
  path: string;
  /** A request header's value (several joined with ", "), by lower-case name. */
  header: (name: string) => string | undefined;
  /** "<iss>/<sub>" of a JWT a RequestAuthentication verified. */
  requestPrincipal?: string | undefined;
  jwtClaims?: Readonly<Record<string, unknown>> | undefined;
  jwtAudiences?: readonly string[] | undefined;
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT';

export interface AuthzDecision {
  allowed: boolean;
  /** The policy that decided ("ns/name"): the DENY that matched, the ALLOW that matched; absent when no policy decided. */
  policy?: string;
  /** ALLOW: allowed by an ALLOW policy, or denied because none matched; DENY: denied by a DENY policy; absent: no policy applies. */
  action?: 'ALLOW' | 'DENY';
  /** In words, for logs, the audit line and `weft explain`. */
  why: string;
  /** AUDIT policies that matched. */
  audited: string[];
}

export type AuthzEvaluator = (request: AuthzRequest) => AuthzDecision;

type Predicate = (request: AuthzRequest) => boolean;

/** The HTTP-only parts of a rule, which an opaque TCP connection has nothing to match against. */
const HTTP_ONLY_OPERATION: readonly (keyof SnapshotAuthzOperation)[] = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];

/**
 * Compiles the policies once. `tcp`: for opaque connections, as Istio does:
 * an ALLOW rule with HTTP-only fields (methods, paths, hosts, request
 * principals, request headers and JWT conditions) never matches, and a DENY or
 * AUDIT rule is applied with those fields left out (so it denies more, never less).
 */
/**
 * The CUSTOM policies a request matches, in order (their external services
 * decide it before the other policies are looked at); undefined when there
 * are none. On TCP their rules are applied as a DENY's are, with HTTP-only
 * fields left out: a connection such a policy could match is refused, since
 * an HTTP check cannot be made about it.
 */
export function compileCustomAuthorization(authorization: SnapshotAuthorization, tcp = false): ((request: AuthzRequest) => SnapshotAuthzCustomPolicy[]) | undefined {
  const custom = authorization.custom ?? [];
  if (custom.length === 0) return undefined;
  const compiled = custom.map((policy) => ({ policy, matches: compilePolicy(policy, tcp, 'DENY').matches }));
  return (request) => compiled.filter((c) => c.matches(request)).map((c) => c.policy);
}

export function compileAuthorization(authorization: SnapshotAuthorization, tcp = false): AuthzEvaluator {
  const audit = authorization.audit.map((p) => compilePolicy(p, tcp, 'AUDIT'));
  const deny = authorization.deny.map((p) => compilePolicy(p, tcp, 'DENY'));
  const allow = authorization.allow?.map((p) => compilePolicy(p, tcp, 'ALLOW'));
  const defaultDeny = authorization.defaultDeny === true;
  return (request) => {
    const audited: string[] = [];
    for (const policy of audit) if (policy.matches(request)) audited.push(policy.name);
    for (const policy of deny) {
      if (policy.matches(request)) return { allowed: false, policy: policy.name, action: 'DENY', why: `denied by DENY policy ${policy.name}`, audited };
    }
    if (allow) {
      for (const policy of allow) {
        if (policy.matches(request)) return { allowed: true, policy: policy.name, action: 'ALLOW', why: `allowed by ALLOW policy ${policy.name}`, audited };
      }
      return { allowed: false, action: 'ALLOW', why: `no ALLOW policy matches (${allow.map((p) => p.name).join(', ')})`, audited };
    }
    if (defaultDeny) return { allowed: false, why: 'no ALLOW policy applies and the mesh default is DENY', audited };
    return { allowed: true, why: deny.length > 0 ? 'no DENY policy matches, and no ALLOW policy applies' : 'no policy applies', audited };
  };
}

interface CompiledPolicy {
  name: string;
  matches: Predicate;
}

function compilePolicy(policy: SnapshotAuthzPolicy, tcp: boolean, action: AuthzAction): CompiledPolicy {
  const rules: Predicate[] = [];
  for (const rule of policy.rules) {
    const compiled = compileRule(rule, tcp, action);
    if (compiled) rules.push(compiled);
  }
  return { name: policy.name, matches: anyOf(rules) };
}

/** undefined: the rule can never match (an ALLOW rule with HTTP-only fields, on TCP). */
function compileRule(rule: SnapshotAuthzRule, tcp: boolean, action: AuthzAction): Predicate | undefined {
  if (tcp && action === 'ALLOW' && hasHttpOnlyFields(rule)) return undefined;
  const parts: Predicate[] = [];
  if (rule.from) parts.push(anyOf(rule.from.map((source) => compileSource(source, tcp))));
  if (rule.to) {
    const operations = rule.to.map((operation) => compileOperation(operation, tcp));
    parts.push(anyOf(operations));
  }
  for (const condition of rule.when ?? []) {
    if (tcp && isHttpOnlyCondition(condition.key)) continue;
    parts.push(compileCondition(condition));
  }
  return allOf(parts);
}

function hasHttpOnlyFields(rule: SnapshotAuthzRule): boolean {
  if (rule.from?.some((s) => s.requestPrincipals !== undefined || s.notRequestPrincipals !== undefined)) return true;
  if (rule.to?.some((o) => HTTP_ONLY_OPERATION.some((field) => o[field] !== undefined))) return true;
  return rule.when?.some((c) => isHttpOnlyCondition(c.key)) ?? false;
}

function isHttpOnlyCondition(key: string): boolean {
  return key.startsWith('request.');
}

function compileSource(source: SnapshotAuthzSource, tcp: boolean): Predicate {
  const parts: Predicate[] = [];
  field(parts, source.principals, source.notPrincipals, compileStrings, (r) => principalOf(r.peerIdentity));
  field(parts, source.namespaces, source.notNamespaces, compileStrings, (r) => namespaceOf(r.peerIdentity));
  field(parts, source.ipBlocks, source.notIpBlocks, compileIpBlocks, (r) => r.sourceIp);
  if (!tcp) field(parts, source.requestPrincipals, source.notRequestPrincipals, compileStrings, (r) => r.http?.requestPrincipal);
  return allOf(parts);
}

function compileOperation(operation: SnapshotAuthzOperation, tcp: boolean): Predicate {
  const parts: Predicate[] = [];
  if (!tcp) {
    field(parts, operation.hosts, operation.notHosts, compileHosts, (r) => r.http?.host.toLowerCase());
    field(parts, operation.methods, operation.notMethods, compileStrings, (r) => r.http?.method);
    field(parts, operation.paths, operation.notPaths, compileStrings, (r) => r.http?.path);
  }
  field(parts, operation.ports?.map(String), operation.notPorts?.map(String), compileStrings, (r) => (r.port > 0 ? String(r.port) : undefined));
  return allOf(parts);
}

function compileCondition(condition: SnapshotAuthzCondition): Predicate {
  const parts: Predicate[] = [];
  const key = condition.key;
  const header = conditionHeader(key);
  const claimPath = conditionClaimPath(key);
  if (key === 'source.ip') {
    field(parts, condition.values, condition.notValues, compileIpBlocks, (r) => r.sourceIp);
  } else if (key === 'request.auth.audiences' || claimPath !== undefined) {
    // Claims may be lists ("groups", "aud"): a list matches when one of its members does.
    const read = key === 'request.auth.audiences' ? (r: AuthzRequest) => r.http?.jwtAudiences ?? claimValues(r.http?.jwtClaims, ['aud']) : (r: AuthzRequest) => claimValues(r.http?.jwtClaims, claimPath!);
    listField(parts, condition.values, condition.notValues, read);
  } else {
    const read: (r: AuthzRequest) => string | undefined =
      header !== undefined
        ? (r) => r.http?.header(header)
        : key === 'source.namespace'
          ? (r) => namespaceOf(r.peerIdentity)
          : key === 'source.principal'
            ? (r) => principalOf(r.peerIdentity)
            : key === 'request.auth.principal'
              ? (r) => r.http?.requestPrincipal
              : (r) => (r.port > 0 ? String(r.port) : undefined); // destination.port
    field(parts, condition.values, condition.notValues, compileStrings, read);
  }
  return allOf(parts);
}

/** A field and its `not` form: the value must match one of `values` (when given) and none of `notValues`; an absent value matches no value and every `not`. */
function field(
  parts: Predicate[],
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  compile: (values: readonly string[]) => (value: string) => boolean,
  read: (r: AuthzRequest) => string | undefined,
): void {
  if (values !== undefined) {
    const match = compile(values);
    parts.push((r) => {
      const value = read(r);
      return value !== undefined && match(value);
    });
  }
  if (notValues !== undefined) {
    const match = compile(notValues);
    parts.push((r) => {
      const value = read(r);
      return value === undefined || !match(value);
    });
  }
}

function listField(parts: Predicate[], values: readonly string[] | undefined, notValues: readonly string[] | undefined, read: (r: AuthzRequest) => readonly string[] | undefined): void {
  if (values !== undefined) {
    const match = compileStrings(values);
    parts.push((r) => read(r)?.some(match) ?? false);
  }
  if (notValues !== undefined) {
    const match = compileStrings(notValues);
    parts.push((r) => !(read(r)?.some(match) ?? false));
  }
}

/** Istio's string match, compiled: exact values in a Set, then prefixes, suffixes, and "*" (any non-empty value). */
export function compileStrings(values: readonly string[]): (value: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let any = false;
  for (const value of values) {
    if (value === '*') any = true;
    else if (value.endsWith('*')) prefixes.push(value.slice(0, -1));
    else if (value.startsWith('*')) suffixes.push(value.slice(1));
    else exact.add(value);
  }
  if (any) return (value) => value.length > 0;
  if (prefixes.length === 0 && suffixes.length === 0) return (value) => exact.has(value);
  return (value) => exact.has(value) || prefixes.some((p) => value.startsWith(p)) || suffixes.some((s) => value.endsWith(s));
}

function compileHosts(values: readonly string[]): (value: string) => boolean {
  return compileStrings(values.map((v) => v.toLowerCase()));
}

function claimValues(claims: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): string[] | undefined {
  let value: unknown = claims;
  for (const name of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[name];
  }
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) return value.filter((v): v is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof v)).map(String);
  return undefined;
}

/** "spiffe://td/ns/x/sa/y" → "td/ns/x/sa/y": principals as Istio writes them. */
export function principalOf(peerIdentity: string | undefined): string | undefined {
  if (peerIdentity === undefined) return undefined;
  return peerIdentity.startsWith('spiffe://') ? peerIdentity.slice(9) : peerIdentity;
}

/** The namespace of a SPIFFE ID "spiffe://td/ns/<ns>/sa/<sa>". */
export function namespaceOf(peerIdentity: string | undefined): string | undefined {
  if (peerIdentity === undefined) return undefined;
  const m = /\/ns\/([^/]+)\/sa\/[^/]+$/.exec(peerIdentity);
  return m?.[1];
}

function anyOf(predicates: Predicate[]): Predicate {
  if (predicates.length === 0) return () => false;
  if (predicates.length === 1) return predicates[0]!;
  return (r) => predicates.some((p) => p(r));
}

function allOf(predicates: Predicate[]): Predicate {
  if (predicates.length === 0) return () => true;
  if (predicates.length === 1) return predicates[0]!;
  return (r) => predicates.every((p) => p(r));
}
