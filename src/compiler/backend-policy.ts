// BackendTrafficPolicy → BackendTraffic per Service port and per route variant: target resolution, conflicts (oldest wins), durations, and the policy's status.
import type { Condition } from '../api/meta.ts';
import type { BackendTrafficPolicy, BackendTrafficPolicySpec, BackendTrafficPolicyTargetReference, Service } from '../api/resources.ts';
import { backendVariantKey, servicePortKey, type BackendTraffic, type LoadBalancer, type SnapshotBackend } from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import { GATEWAY_GROUP } from './gateway-grants.ts';
import { compareStrings } from './hash.ts';
import type { AnalyzedRoute } from './routes.ts';
import { meshPorts, serviceNamespace } from './services.ts';
import { CONTROLLER_NAME } from './types.ts';

/** One entry of a policy's `status.ancestors` (Gateway API PolicyStatus): the target and how the policy fares on it. */
export interface PolicyAncestorStatus {
  ancestorRef: { group: string; kind: string; namespace: string; name: string; sectionName?: string };
  controllerName: string;
  conditions: Condition[];
}

export interface PolicyStatus {
  ancestors: PolicyAncestorStatus[];
}

export interface CompiledTraffic {
  traffic: BackendTraffic;
  lb: LoadBalancer;
}

export interface ResolvedBackendPolicies {
  /** servicePortKey → what the winning policy sets there, and the load balancer it asks for. */
  traffic: Map<string, CompiledTraffic>;
  /** routeTargetKey (a whole route, or one named rule) → the same, for the route's backend variants. */
  routeTraffic: Map<string, CompiledTraffic>;
  /** "ns/name" of the policy → its status. */
  statuses: Map<string, PolicyStatus>;
}

/** The route kinds a BackendTrafficPolicy may target, and the rule names each route of theirs has: "Kind/ns/name" → names. */
export type RouteRuleNames = ReadonlyMap<string, ReadonlySet<string>>;

interface Claim {
  policy: BackendTrafficPolicy;
  ref: BackendTrafficPolicyTargetReference;
  /** servicePortKeys (Service targets) or one routeTargetKey (route targets). */
  keys: string[];
  route: boolean;
  /** A claim on a port or rule (sectionName) outranks one on the whole Service or route. */
  specific: boolean;
}

/** "Kind/ns/name" of a route, with "/rule" for one named rule: what a route-targeted policy claims, and a backend variant's name. */
export function routeTargetKey(kind: string, namespace: string, name: string, rule?: string): string {
  return rule === undefined ? `${kind}/${namespace}/${name}` : `${kind}/${namespace}/${name}/${rule}`;
}

const isRouteKind = (kind: string): boolean => kind === 'HTTPRoute' || kind === 'GRPCRoute';

const ms = (text: string): number => parseGatewayDuration(text) ?? 0;

function policyId(policy: BackendTrafficPolicy): string {
  return `${serviceNamespace(policy)}/${policy.metadata.name}`;
}

/** Oldest first (creationTimestamp), then by namespace/name: the Gateway API's rule for conflicting policies. */
function olderFirst(a: BackendTrafficPolicy, b: BackendTrafficPolicy): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta === '' ? 1 : tb === '' ? -1 : compareStrings(ta, tb);
  return compareStrings(policyId(a), policyId(b));
}

function condition(type: string, status: Condition['status'], reason: string, message: string, generation: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (generation !== undefined) c.observedGeneration = generation;
  return c;
}

/** The ports of `service` a targetRef's sectionName names (a port name, or a number); all of them without one. */
function targetPorts(service: Service, sectionName: string | undefined): number[] {
  const ports = meshPorts(service);
  if (sectionName === undefined) return ports.map((p) => p.port);
  return ports.filter((p) => p.name === sectionName || String(p.port) === sectionName).map((p) => p.port);
}

/**
 * Resolves every policy's targets. A target that names a missing Service,
 * port, route or rule is reported (TargetNotFound); two policies on the same
 * target: the older one wins there and the other is reported Conflicted. A
 * policy on one port (rule) wins over one on the whole Service (route),
 * without conflict; route targets are resolved here and applied to the
 * routes' backends by applyRoutePolicies.
 */
export function resolveBackendPolicies(
  policies: readonly BackendTrafficPolicy[],
  serviceIndex: ReadonlyMap<string, Service>,
  /** The HTTPRoutes and GRPCRoutes that exist; absent: route targets are all TargetNotFound. */
  routes: RouteRuleNames = new Map(),
): ResolvedBackendPolicies {
  const ordered = [...policies].sort(olderFirst);
  const statuses = new Map<string, PolicyStatus>();
  const claims: Claim[] = [];
  const problems = new Map<BackendTrafficPolicyTargetReference, Condition>();
  for (const policy of ordered) {
    const ns = serviceNamespace(policy);
    for (const ref of policy.spec.targetRefs) {
      const generation = policy.metadata.generation;
      if (isRouteKind(ref.kind)) {
        const problem = routeTargetProblem(policy, ref, routes);
        if (problem) problems.set(ref, condition('Accepted', 'False', problem.reason, problem.message, generation));
        else claims.push({ policy, ref, keys: [routeTargetKey(ref.kind, ns, ref.name, ref.sectionName)], route: true, specific: ref.sectionName !== undefined });
        continue;
      }
      const service = serviceIndex.get(`${ns}/${ref.name}`);
      if ((ref.group ?? '') !== '') {
        problems.set(ref, condition('Accepted', 'False', 'TargetNotFound', `group "${ref.group}" has no kind Service; use group ""`, generation));
        continue;
      }
      if (!service) {
        problems.set(ref, condition('Accepted', 'False', 'TargetNotFound', `Service ${ns}/${ref.name} does not exist`, generation));
        continue;
      }
      const ports = targetPorts(service, ref.sectionName);
      if (ports.length === 0) {
        problems.set(ref, condition('Accepted', 'False', 'TargetNotFound', `Service ${ns}/${ref.name} has no port named ${ref.sectionName}`, generation));
        continue;
      }
      claims.push({ policy, ref, keys: ports.map((port) => servicePortKey(ns, ref.name, port)), route: false, specific: ref.sectionName !== undefined });
    }
  }

  // Per port or route: the first specific claim, else the first whole-Service (whole-route) claim (claims are oldest first).
  const winners = new Map<string, Claim>();
  const conflicts = new Map<Claim, string>();
  for (const specific of [true, false]) {
    for (const claim of claims) {
      if (claim.specific !== specific) continue;
      for (const key of claim.keys) {
        const winner = winners.get(key);
        if (!winner) winners.set(key, claim);
        else if (winner.specific === claim.specific && winner.policy !== claim.policy && !conflicts.has(claim)) {
          conflicts.set(claim, `BackendTrafficPolicy ${policyId(winner.policy)} is older and targets ${key} too`);
        }
      }
    }
  }

  const traffic = new Map<string, CompiledTraffic>();
  const routeTraffic = new Map<string, CompiledTraffic>();
  const compiled = new Map<BackendTrafficPolicy, CompiledTraffic>();
  for (const [key, claim] of winners) {
    let entry = compiled.get(claim.policy);
    if (!entry) compiled.set(claim.policy, (entry = compileTraffic(policyId(claim.policy), claim.policy.spec)));
    (claim.route ? routeTraffic : traffic).set(key, entry);
  }

  for (const policy of ordered) {
    const ns = serviceNamespace(policy);
    const generation = policy.metadata.generation;
    const ancestors = policy.spec.targetRefs.map((ref): PolicyAncestorStatus => {
      const ancestorRef: PolicyAncestorStatus['ancestorRef'] = { group: isRouteKind(ref.kind) ? GATEWAY_GROUP : '', kind: ref.kind, namespace: ns, name: ref.name };
      if (ref.sectionName !== undefined) ancestorRef.sectionName = ref.sectionName;
      const claim = claims.find((c) => c.policy === policy && c.ref === ref);
      const conflict = claim ? conflicts.get(claim) : undefined;
      const accepted =
        problems.get(ref) ??
        (conflict !== undefined ? condition('Accepted', 'False', 'Conflicted', conflict, generation) : condition('Accepted', 'True', 'Accepted', '', generation));
      return { ancestorRef, controllerName: CONTROLLER_NAME, conditions: [accepted] };
    });
    statuses.set(policyId(policy), { ancestors });
  }
  return { traffic, routeTraffic, statuses };
}

/**
 * Why a route targetRef cannot be claimed: a wrong group, a route or rule
 * that does not exist, or settings of the endpoints' shared connection pools,
 * which a route cannot have its own of.
 */
function routeTargetProblem(
  policy: BackendTrafficPolicy,
  ref: BackendTrafficPolicyTargetReference,
  routes: RouteRuleNames,
): { reason: string; message: string } | undefined {
  const ns = serviceNamespace(policy);
  if (ref.group !== undefined && ref.group !== GATEWAY_GROUP) {
    return { reason: 'TargetNotFound', message: `group "${ref.group}" has no kind ${ref.kind}; use ${GATEWAY_GROUP}` };
  }
  const rules = routes.get(routeTargetKey(ref.kind, ns, ref.name));
  if (!rules) return { reason: 'TargetNotFound', message: `${ref.kind} ${ns}/${ref.name} does not exist` };
  if (ref.sectionName !== undefined && !rules.has(ref.sectionName)) {
    return { reason: 'TargetNotFound', message: `${ref.kind} ${ns}/${ref.name} has no rule named ${ref.sectionName}` };
  }
  const pool = [policy.spec.connection ? 'connection' : '', policy.spec.circuitBreaker?.maxConnections !== undefined ? 'circuitBreaker.maxConnections' : ''].filter(Boolean);
  if (pool.length > 0) {
    return {
      reason: 'Invalid',
      message: `${pool.join(' and ')} size the connection pools to the Service's endpoints, which every route shares; set them in a policy that targets the Service`,
    };
  }
  return undefined;
}

/** "Kind/ns/name" → rule names, of every HTTPRoute and GRPCRoute (whether or not it compiles: the policy's target exists). */
export function routeRuleNames(routes: readonly { kind: string; metadata: { namespace?: string | undefined; name: string }; spec: { rules?: readonly { name?: string | undefined }[] | undefined } }[]): Map<string, Set<string>> {
  const index = new Map<string, Set<string>>();
  for (const route of routes) {
    const names = new Set<string>();
    for (const rule of route.spec.rules ?? []) if (rule.name !== undefined) names.add(rule.name);
    index.set(routeTargetKey(route.kind, serviceNamespace(route), route.metadata.name), names);
  }
  return index;
}

const LB: Record<string, LoadBalancer> = { LeastRequest: 'least-request', RoundRobin: 'round-robin', Random: 'random', ConsistentHash: 'consistent-hash' };

/** The spec (already validated, defaults filled) as the proxy reads it. */
export function compileTraffic(policy: string, spec: BackendTrafficPolicySpec): { traffic: BackendTraffic; lb: LoadBalancer } {
  const traffic: BackendTraffic = { policy };
  const lbSpec = spec.loadBalancer;
  const lb = LB[lbSpec?.type ?? 'LeastRequest'] ?? 'least-request';
  const hash = lbSpec?.consistentHash;
  if (lb === 'consistent-hash' && hash) {
    const algorithm = hash.algorithm === 'RingHash' ? 'ring-hash' : 'maglev';
    if (hash.type === 'Header') traffic.hash = { source: 'header', name: hash.header!.name.toLowerCase(), algorithm };
    else if (hash.type === 'Cookie') traffic.hash = { source: 'cookie', name: hash.cookie!.name, algorithm };
    else if (hash.type === 'QueryParam') traffic.hash = { source: 'query', name: hash.queryParam!.name, algorithm };
    else traffic.hash = { source: 'source-ip', algorithm };
  }
  if (lbSpec?.slowStart) traffic.slowStartMs = ms(lbSpec.slowStart.window);
  // As in Istio, locality preference needs a way to learn that local endpoints are down.
  if ((lbSpec?.localityFailover ?? true) && (spec.outlierDetection || spec.healthCheck)) traffic.localityFailover = true;

  const cb = spec.circuitBreaker;
  if (cb) {
    const breaker: NonNullable<BackendTraffic['circuitBreaker']> = {};
    if (cb.maxConnections !== undefined) breaker.maxConnections = cb.maxConnections;
    if (cb.maxPendingRequests !== undefined) breaker.maxPendingRequests = cb.maxPendingRequests;
    if (cb.maxParallelRequests !== undefined) breaker.maxRequests = cb.maxParallelRequests;
    if (cb.maxParallelRetries !== undefined) breaker.maxRetries = cb.maxParallelRetries;
    traffic.circuitBreaker = breaker;
  }
  const od = spec.outlierDetection;
  if (od) {
    const base = ms(od.baseEjectionTime ?? '30s');
    const outlier: NonNullable<BackendTraffic['outlierDetection']> = {
      baseEjectionMs: base,
      maxEjectionMs: Math.max(base, ms(od.maxEjectionTime ?? '300s')),
      maxEjectionPercent: od.maxEjectionPercent ?? 10,
    };
    if (od.consecutive5xxErrors !== undefined) outlier.consecutive5xx = od.consecutive5xxErrors;
    if (od.consecutiveGatewayErrors !== undefined) outlier.consecutiveGatewayErrors = od.consecutiveGatewayErrors;
    if (od.consecutiveConnectFailures !== undefined) outlier.consecutiveConnectFailures = od.consecutiveConnectFailures;
    traffic.outlierDetection = outlier;
  }
  const hc = spec.healthCheck;
  if (hc) {
    const check: NonNullable<BackendTraffic['healthCheck']> = {
      type: hc.type === 'HTTP' ? 'http' : 'tcp',
      intervalMs: Math.max(1, ms(hc.interval ?? '5s')),
      timeoutMs: Math.max(1, ms(hc.timeout ?? '1s')),
      healthyThreshold: hc.healthyThreshold ?? 1,
      unhealthyThreshold: hc.unhealthyThreshold ?? 3,
    };
    if (hc.type === 'HTTP' && hc.http) {
      check.path = hc.http.path;
      check.expectedStatuses = [...(hc.http.expectedStatuses ?? [200])];
    }
    traffic.healthCheck = check;
  }
  const conn = spec.connection;
  if (conn) {
    const connection: NonNullable<BackendTraffic['connection']> = {};
    if (conn.connectTimeout !== undefined) connection.connectTimeoutMs = ms(conn.connectTimeout);
    if (conn.idleTimeout !== undefined) connection.idleTimeoutMs = ms(conn.idleTimeout);
    if (conn.maxRequestsPerConnection !== undefined) connection.maxRequestsPerConnection = conn.maxRequestsPerConnection;
    traffic.connection = connection;
  }
  const rb = spec.retryBudget;
  if (rb) traffic.retryBudget = { percent: rb.percent ?? 20, minRetriesPerSecond: rb.minRetriesPerSecond ?? 10, windowMs: Math.max(1000, ms(rb.window ?? '10s')) };
  return { traffic, lb };
}

/** The backends with their policies applied (new objects where a policy applies; the others unchanged). */
export function applyBackendPolicies(backends: Record<string, SnapshotBackend>, resolved: ResolvedBackendPolicies): void {
  for (const [key, entry] of resolved.traffic) {
    const backend = backends[key];
    if (backend) backends[key] = { ...backend, lb: entry.lb, traffic: entry.traffic };
  }
}

/**
 * Route-targeted policies: every rule they cover gets, for each Service port
 * it sends to, a variant of that port's backend (same endpoints, the route's
 * policy), added to `backends`, and the rule's `backendVariants` says which
 * (buildRouteTable puts the variant keys in the WeightedBackends). A policy
 * on one named rule wins over one on the whole route, which wins over the
 * Service's; nothing merges, except that a variant keeps the Service
 * policy's connection-pool settings: the pool to an endpoint is one, shared
 * by the Service's backend and its variants (route policies cannot set them).
 * Run after the backends' protocols are final (a variant copies its base).
 */
export function applyRoutePolicies(routes: readonly AnalyzedRoute[], backends: Record<string, SnapshotBackend>, resolved: ResolvedBackendPolicies): void {
  if (resolved.routeTraffic.size === 0) return;
  for (const route of routes) {
    const routeKey = routeTargetKey(route.route.kind, route.namespace, route.name);
    const whole = resolved.routeTraffic.get(routeKey);
    for (const rule of route.rules) {
      const ruleName = route.route.spec.rules?.[rule.ruleIndex]?.name;
      const ruleKey = ruleName !== undefined ? routeTargetKey(route.route.kind, route.namespace, route.name, ruleName) : undefined;
      const perRule = ruleKey !== undefined ? resolved.routeTraffic.get(ruleKey) : undefined;
      const entry = perRule ?? whole;
      if (!entry) continue;
      const variant = perRule ? ruleKey! : routeKey;
      const variants = new Map<string, string>();
      for (const pending of rule.backends) {
        const target = pending.target;
        if (!target) continue;
        // A backendRef without a port takes the port of the parent it is reached through (routes.ts resolveForTable).
        const ports =
          target.port !== undefined ? [target.port] : route.parents.filter((p) => p.serviceKey === `${target.namespace}/${target.name}`).flatMap((p) => p.ports);
        for (const port of ports) {
          const baseKey = servicePortKey(target.namespace, target.name, port);
          const base = backends[baseKey];
          if (!base) continue;
          const key = backendVariantKey(baseKey, variant);
          backends[key] ??= { ...base, key, variant, lb: entry.lb, traffic: withPoolSettingsOf(entry.traffic, base.traffic) };
          variants.set(baseKey, key);
        }
      }
      if (variants.size > 0) rule.backendVariants = variants;
    }
  }
}

/** A route policy's traffic with the Service policy's connection-pool settings (connection, circuitBreaker.maxConnections), which are per endpoint. */
function withPoolSettingsOf(traffic: BackendTraffic, service: BackendTraffic | undefined): BackendTraffic {
  if (!service) return traffic;
  const maxConnections = service.circuitBreaker?.maxConnections;
  if (!service.connection && maxConnections === undefined) return traffic;
  const merged: BackendTraffic = { ...traffic };
  if (service.connection) merged.connection = { ...service.connection };
  if (maxConnections !== undefined) merged.circuitBreaker = { ...traffic.circuitBreaker, maxConnections };
  return merged;
}
