// The status every object should have, computed from the same validation the snapshots use.
import { objectKey, type Condition, type Resource } from '../api/meta.ts';
import { prepare } from './prepare.ts';
import { prepareGateways } from './gateway.ts';
import { l4AttachedRoutes, l4RouteStatuses } from './l4-routes.ts';
import { gatewayObjectStatuses, gatewayParentStatuses } from './gateway-status.ts';
import type { AnalyzedRoute } from './routes.ts';
import { CONTROLLER_NAME, type HTTPRouteStatus, type ObjectStatus, type CompilerInput } from './types.ts';
import { resolveUpstreams } from './upstreams.ts';
import { indexFaultInjections } from './fault.ts';
import { indexGraphQLApis } from './graphql.ts';
import { indexApiPortals } from './portal.ts';
import { applyFallBacks } from './last-good.ts';
import { indexAuthorizationPolicies } from './authorization.ts';
import { indexRequestAuthentications } from './request-authentication.ts';
import { indexPeerAuthentications } from './peer-authentication.ts';

/**
 * The `status` each object should have, keyed by objectKey(). No timestamps:
 * the control plane adds lastTransitionTime when it writes a condition whose
 * status changed. HTTPRoute statuses list their Service parents (GAMMA),
 * then their parents among weft's Gateways. Gateways and GatewayClasses of
 * other controllers get no status from weft.
 */
export function computeStatuses(input: CompilerInput): Map<string, unknown> {
  const prepared = prepare(input);
  const statuses = new Map<string, unknown>();
  for (const namespace of input.namespaces) statuses.set(keyOf(namespace), accepted(namespace));
  if (input.meshConfig) statuses.set(keyOf(input.meshConfig), accepted(input.meshConfig));
  for (const service of input.services) statuses.set(keyOf(service), accepted(service));
  for (const workload of input.workloads) {
    const status = accepted(workload);
    if (!workload.spec?.address && (workload.spec?.upstreams?.length ?? 0) > 0) {
      const resolution = resolveUpstreams(workload, prepared.serviceIndex, prepared.clusterDomain);
      const generation = workload.metadata.generation;
      status.conditions.push(
        resolution.unresolved.length > 0
          ? condition('ResolvedRefs', 'False', 'BackendNotFound', `${resolution.unresolved.join('; ')}; these upstreams are not served`, generation)
          : condition('ResolvedRefs', 'True', 'ResolvedRefs', '', generation),
      );
      if (resolution.duplicates.length > 0) {
        status.conditions.push(
          condition('PartiallyInvalid', 'True', 'DuplicateLocalPort', `${resolution.duplicates.join('; ')}; these upstreams are not served`, generation),
        );
      }
    }
    statuses.set(keyOf(workload), status);
  }
  const policyStatuses = prepared.backendPolicies.statuses;
  for (const policy of input.backendTrafficPolicies ?? []) {
    const status = policyStatuses.get(`${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`);
    if (status) statuses.set(keyOf(policy), status);
  }
  // Gateway parents follow the Service parents in a route's status.parents.
  const gateways = prepareGateways(input);
  for (const route of prepared.routes) {
    const status = routeStatus(route);
    status.parents.push(...gatewayParentStatuses(route, gateways));
    statuses.set(keyOf(route.route), status);
  }
  const { classes, gateways: gatewayStatuses } = gatewayObjectStatuses(input);
  for (const gatewayClass of input.gatewayClasses ?? []) {
    const status = classes.get(gatewayClass.metadata.name);
    if (status) statuses.set(keyOf(gatewayClass), status);
  }
  // TCPRoutes and TLSRoutes (l4-routes.ts): their own statuses, and their count in their listeners' attachedRoutes.
  const l4Counts = l4AttachedRoutes(input);
  for (const [gatewayKey, byListener] of l4Counts) {
    for (const listener of gatewayStatuses.get(gatewayKey)?.listeners ?? []) listener.attachedRoutes += byListener.get(listener.name) ?? 0;
  }
  for (const [key, status] of l4RouteStatuses(input)) statuses.set(key, status);
  for (const gateway of input.gateways ?? []) {
    const status = gatewayStatuses.get(`${gateway.metadata.namespace ?? 'default'}/${gateway.metadata.name}`);
    if (status) statuses.set(keyOf(gateway), status);
  }
  // FaultInjections: Accepted unless they cannot compile; RateLimitPolicies: per policy, from rate-limit.ts.
  const faults = indexFaultInjections(input.faultInjections ?? []);
  for (const fault of input.faultInjections ?? []) {
    const problems = faults.get(`${fault.metadata.namespace ?? 'default'}/${fault.metadata.name}`)?.problems ?? [];
    statuses.set(
      keyOf(fault),
      problems.length === 0 ? accepted(fault) : { conditions: [condition('Accepted', 'False', 'Invalid', problems.join('; '), fault.metadata.generation)] },
    );
  }
  // GraphQLApis: Accepted unless their schema, resolvers or the Services these call are wrong (graphql.ts).
  const graphqlApis = indexGraphQLApis(input.graphqlApis ?? [], prepared.serviceIndex);
  for (const api of input.graphqlApis ?? []) {
    const problems = graphqlApis.get(`${api.metadata.namespace ?? 'default'}/${api.metadata.name}`)?.problems ?? [];
    statuses.set(keyOf(api), problems.length === 0 ? accepted(api) : { conditions: [condition('Accepted', 'False', 'Invalid', problems.join('; '), api.metadata.generation)] });
  }
  // ApiPortals: Accepted unless a route, GraphQLApi or OpenAPI document they publish is missing or bad (portal.ts).
  const portals = indexApiPortals(input, graphqlApis);
  for (const portal of input.apiPortals ?? []) {
    const problems = portals.get(`${portal.metadata.namespace ?? 'default'}/${portal.metadata.name}`)?.problems ?? [];
    statuses.set(keyOf(portal), problems.length === 0 ? accepted(portal) : { conditions: [condition('Accepted', 'False', 'Invalid', problems.join('; '), portal.metadata.generation)] });
  }
  // Transformations: always Accepted, since the API's schema checks every template and expression they hold.
  for (const transformation of input.transformations ?? []) statuses.set(keyOf(transformation), accepted(transformation));
  for (const policy of input.rateLimitPolicies ?? []) {
    const status = prepared.rateLimits.statuses.get(`${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`);
    if (status) statuses.set(keyOf(policy), status);
  }
  // RequestAuthentications: Accepted, or per targetRef TargetNotFound (request-authentication.ts).
  const requestAuthn = indexRequestAuthentications(input).statuses;
  for (const policy of input.requestAuthentications ?? []) {
    const status = requestAuthn.get(`${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`);
    if (status) statuses.set(keyOf(policy), status);
  }
  const authorization = indexAuthorizationPolicies(input);
  for (const policy of input.authorizationPolicies ?? []) {
    const status = authorization.statuses.get(`${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`);
    if (status) statuses.set(keyOf(policy), status);
  }
  const peerAuthn = indexPeerAuthentications(input).statuses;
  for (const policy of input.peerAuthentications ?? []) {
    const status = peerAuthn.get(`${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`);
    if (status) statuses.set(keyOf(policy), status);
  }
  // Objects whose previous version stays in force: their statuses speak of the version in the store.
  applyFallBacks(statuses, input.fallBacks);
  return statuses;
}

function keyOf(resource: Resource): string {
  return objectKey({ apiVersion: resource.apiVersion, kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name });
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

function accepted(resource: Resource): ObjectStatus {
  return { conditions: [condition('Accepted', 'True', 'Accepted', '', resource.metadata.generation)] };
}

/**
 * Accepted is per parent: False/NoMatchingParent when the Service or its port
 * is missing, False/UnsupportedValue when no rule of the route compiles (the
 * route is then ignored as a whole). When only some rules compile, the others
 * are dropped and PartiallyInvalid says which, as the Gateway API asks of
 * implementations that drop invalid rules. ResolvedRefs covers every
 * backendRef of every rule, so it is the same for every parent.
 */
function routeStatus(route: AnalyzedRoute): HTTPRouteStatus {
  const generation = route.route.metadata.generation;
  const resolvedRefs =
    route.refProblems.length === 0
      ? condition('ResolvedRefs', 'True', 'ResolvedRefs', '', generation)
      : condition('ResolvedRefs', 'False', route.refProblems[0]!.reason, route.refProblems.map((p) => p.message).join('; '), generation);
  const noValidRule = route.rules.length === 0;
  const parents = route.parents.map((parent) => {
    let acceptedCondition: Condition;
    if (parent.problem !== undefined) acceptedCondition = condition('Accepted', 'False', 'NoMatchingParent', parent.problem, generation);
    else if (parent.kindConflict !== undefined) acceptedCondition = condition('Accepted', 'False', 'NotAllowedByListeners', parent.kindConflict, generation);
    else if (noValidRule) {
      const why = route.dropped.length > 0 ? `no rule can be served: ${route.dropped.join('; ')}` : 'the route has no rules';
      acceptedCondition = condition('Accepted', 'False', 'UnsupportedValue', why, generation);
    } else acceptedCondition = condition('Accepted', 'True', 'Accepted', '', generation);
    const conditions = [acceptedCondition, resolvedRefs];
    if (!noValidRule && route.dropped.length > 0) {
      conditions.push(condition('PartiallyInvalid', 'True', 'UnsupportedValue', `Dropped Rule(s): ${route.dropped.join('; ')}`, generation));
    }
    return { parentRef: { ...parent.parentRef }, controllerName: CONTROLLER_NAME, conditions };
  });
  return { parents };
}
