// Last known good: which problems make one version of a route or policy uncompilable on its own, and the status of an object whose previous version stays in force.
import type { Condition, Resource } from '../api/meta.ts';
import type { ApiPortal, BackendTrafficPolicy, FaultInjection, GraphQLApi, GRPCRoute, HTTPRoute, RateLimitPolicy, Service } from '../api/resources.ts';
import { resolveBackendPolicies, routeTargetKey } from './backend-policy.ts';
import { indexFaultInjections } from './fault.ts';
import { indexGraphQLApis } from './graphql.ts';
import { openApiJson } from './portal.ts';
import { grpcRouteForm } from './grpc-routes.ts';
import { indexRateLimitPolicies } from './rate-limit.ts';
import { analyzeRoute } from './routes.ts';
import { serviceNamespace } from './services.ts';

/**
 * The kinds whose previous version stays in force when a new one cannot be
 * compiled. Services, Workloads, Gateways and the like are left out: their
 * problems are either rejected by the API's schemas or depend on other objects.
 */
export const LAST_GOOD_KINDS: ReadonlySet<string> = new Set(['HTTPRoute', 'GRPCRoute', 'BackendTrafficPolicy', 'RateLimitPolicy', 'FaultInjection', 'GraphQLApi', 'ApiPortal']);

/**
 * A route or policy compiled from an older version than the one in the store.
 * The control plane puts these in CompilerInput.fallBacks, keyed by objectKey.
 */
export interface FallBack {
  /** The generation in the store, which cannot be compiled. */
  generation: number | undefined;
  /** The generation compiled in its place (the last one without self-contained problems). */
  inForceGeneration: number | undefined;
  /** What is wrong with `generation`. */
  problems: string[];
}

/** Routes judged alone: their ExtensionRefs resolve to nothing here (reference problems are not the route's own). */
const NO_EXTENSIONS = { faults: new Map(), graphqlApis: new Map(), portals: new Map(), transformations: new Map() };

/**
 * Problems of one object version that no other object can cure: an invalid
 * regular expression, an unsupported filter configuration, an invalid
 * duration... In short, whatever the compiler still reports when every
 * Service, route and ReferenceGrant the object names exists. Empty: the
 * version is good. Undefined: weft keeps no last good version of this kind.
 *
 * What depends on other objects (a backend Service that does not exist yet,
 * a missing target, a ReferenceGrant, an older policy holding the target) is
 * a normal transient state in the Gateway API and never counts here.
 */
export function selfContainedProblems(object: Resource): string[] | undefined {
  switch (object.kind) {
    case 'HTTPRoute':
      // Everything analyzeRoute drops a rule for is about the route alone; reference problems go to refProblems.
      return [...analyzeRoute(object as HTTPRoute, new Map(), undefined, undefined, NO_EXTENSIONS).dropped, ...zeroWeightRules(object as HTTPRoute)];
    case 'GRPCRoute': {
      const form = grpcRouteForm(object as GRPCRoute);
      return [...analyzeRoute(form.route, new Map(), undefined, form, NO_EXTENSIONS).dropped, ...zeroWeightRules(object as GRPCRoute)];
    }
    case 'ApiPortal': {
      // Only what the object says itself: an OpenAPI document that does not parse (routes and GraphQLApis are other objects).
      const portal = object as ApiPortal;
      return portal.spec.apis.flatMap((api, i) => (api.openapi === undefined ? [] : [openApiJson(api.openapi).problem].filter((p) => p !== undefined).map((p) => `spec.apis[${i}].openapi: ${p}`)));
    }
    case 'GraphQLApi': {
      const api = object as GraphQLApi;
      return indexGraphQLApis([api], new Map()).get(`${serviceNamespace(api)}/${api.metadata.name}`)?.ownProblems ?? [];
    }
    case 'FaultInjection': {
      const fault = object as FaultInjection;
      return indexFaultInjections([fault]).get(`${serviceNamespace(fault)}/${fault.metadata.name}`)?.problems ?? [];
    }
    case 'RateLimitPolicy': {
      const policy = object as RateLimitPolicy;
      const status = indexRateLimitPolicies([policy], () => true).statuses.get(`${serviceNamespace(policy)}/${policy.metadata.name}`);
      return ownProblems((status?.ancestors ?? []).flatMap((a) => a.conditions));
    }
    case 'BackendTrafficPolicy':
      return backendPolicyProblems(object as BackendTrafficPolicy);
    default:
      return undefined;
  }
}

/**
 * Rules whose backendRefs all weigh 0. The Gateway API answers such a rule
 * with 500, and a route created that way still does; but an update that
 * zeroes every weight of a working rule is far likelier a slip than a wish
 * to fail every request, so the version before it stays in force.
 */
function zeroWeightRules(route: HTTPRoute | GRPCRoute): string[] {
  const problems: string[] = [];
  route.spec.rules?.forEach((rule, i) => {
    const refs = rule.backendRefs ?? [];
    if (refs.length > 0 && refs.every((ref) => (ref.weight ?? 1) === 0)) problems.push(`spec.rules[${i}].backendRefs: every weight is 0, so the rule could only answer 500`);
  });
  return problems;
}

/** A BackendTrafficPolicy resolved alone, in a world where every Service port and route rule it names exists. */
function backendPolicyProblems(policy: BackendTrafficPolicy): string[] {
  const ns = serviceNamespace(policy);
  const services = new Map<string, Service>();
  const routes = new Map<string, Set<string>>();
  for (const ref of policy.spec.targetRefs) {
    if (ref.kind === 'Service') {
      const key = `${ns}/${ref.name}`;
      const service = services.get(key) ?? { apiVersion: 'v1', kind: 'Service', metadata: { namespace: ns, name: ref.name }, spec: { ports: [] } };
      // A port named (or numbered) as the sectionName says, so that the policy claims something.
      const section = ref.sectionName;
      const numbered = section !== undefined && /^[0-9]+$/.test(section);
      const port = numbered ? Number(section) : 80;
      service.spec.ports = [...(service.spec.ports ?? []), { port, protocol: 'TCP', name: section !== undefined && !numbered ? section : `p${port}` }];
      services.set(key, service as Service);
    } else {
      const key = routeTargetKey(ref.kind, ns, ref.name);
      const names = routes.get(key) ?? new Set<string>();
      if (ref.sectionName !== undefined) names.add(ref.sectionName);
      routes.set(key, names);
    }
  }
  const status = resolveBackendPolicies([policy], services, routes).statuses.get(`${ns}/${policy.metadata.name}`);
  return ownProblems((status?.ancestors ?? []).flatMap((a) => a.conditions));
}

/** The messages of conditions that say the object itself is wrong, once each. */
function ownProblems(conditions: readonly Condition[]): string[] {
  const messages = conditions
    .filter((c) => c.type === 'Accepted' && c.status === 'False' && c.reason !== 'TargetNotFound' && c.reason !== 'Conflicted')
    .map((c) => c.message);
  return [...new Set(messages)];
}

/** "generation 3 is invalid: ...; generation 2 stays in force". */
export function fallBackMessage(fallBack: FallBack): string {
  return `generation ${fallBack.generation ?? '?'} is invalid: ${fallBack.problems.join('; ')}; generation ${fallBack.inForceGeneration ?? '?'} stays in force`;
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

/**
 * Rewrites the statuses computed from in-force older versions so that they
 * speak about the version in the store. Routes follow the Gateway API's
 * "Fall Back" form of PartiallyInvalid: Accepted (and ResolvedRefs) keep the
 * observedGeneration of the version in force, and PartiallyInvalid=True,
 * with the current generation, says why and starts with "Fall Back". The
 * policies have no such condition: their Accepted becomes False, reason
 * Invalid, for the current generation, and its message says which older
 * generation still applies.
 */
export function applyFallBacks(statuses: Map<string, unknown>, fallBacks: ReadonlyMap<string, FallBack> | undefined): void {
  if (!fallBacks) return;
  for (const [key, fallBack] of fallBacks) {
    const status = statuses.get(key) as { parents?: { conditions: Condition[] }[]; ancestors?: { conditions: Condition[] }[]; conditions?: Condition[] } | undefined;
    if (!status) continue;
    const message = fallBackMessage(fallBack);
    if (status.parents) {
      const partiallyInvalid = condition('PartiallyInvalid', 'True', 'UnsupportedValue', `Fall Back: ${message}`, fallBack.generation);
      statuses.set(key, {
        ...status,
        parents: status.parents.map((parent) => ({ ...parent, conditions: [...parent.conditions.filter((c) => c.type !== 'PartiallyInvalid'), partiallyInvalid] })),
      });
      continue;
    }
    const invalid = condition('Accepted', 'False', 'Invalid', message, fallBack.generation);
    const rewrite = (conditions: readonly Condition[]) => conditions.map((c) => (c.type === 'Accepted' ? invalid : c));
    if (status.ancestors) statuses.set(key, { ...status, ancestors: status.ancestors.map((a) => ({ ...a, conditions: rewrite(a.conditions) })) });
    else if (status.conditions) statuses.set(key, { ...status, conditions: rewrite(status.conditions) });
  }
}
