// The node-independent half of compiling: indexes, validated routes and backends, computed once per input.
import type { Service, Workload } from '../api/resources.ts';
import { servicePortKey, type RouteTable, type SnapshotBackend } from '../api/snapshot.ts';
import { canonicalJson, compareStrings } from './hash.ts';
import { applyBackendPolicies, applyRoutePolicies, resolveBackendPolicies, routeRuleNames, type ResolvedBackendPolicies } from './backend-policy.ts';
import { analyzeRoute, buildRouteTable, compareRouteAge, type AnalyzedRoute } from './routes.ts';
import { grpcBackendProtocol, grpcRouteForm } from './grpc-routes.ts';
import { indexEndpointSlices, sliceEndpoints } from './endpoint-slices.ts';
import { indexFaultInjections } from './fault.ts';
import { indexTransformations } from './transformation.ts';
import { indexGraphQLApis } from './graphql.ts';
import { indexApiPortals } from './portal.ts';
import { indexRateLimitPolicies, rateLimitTargetKey, type RateLimitIndex } from './rate-limit.ts';
import { indexReferenceGrants, type ReferencePermits } from './gateway-grants.ts';
import { CLUSTER_DOMAIN, indexEndpointWorkloads, meshPorts, portProtocol, serviceEndpoints, serviceNamespace } from './services.ts';
import type { CompilerInput } from './types.ts';

interface PortAttachments {
  /** Routes in the Service's own namespace: they apply to every caller. */
  producers: AnalyzedRoute[];
  /** Routes from other namespaces, by namespace: they apply only to callers there, instead of the producers. */
  consumers: Map<string, AnalyzedRoute[]>;
}

export interface PreparedInput {
  trustDomain: string;
  clusterDomain: string;
  /** Sorted by namespace, then name. */
  services: Service[];
  /** "ns/name" → Service. */
  serviceIndex: Map<string, Service>;
  /** Every Service port the mesh carries, by servicePortKey. */
  backends: Record<string, SnapshotBackend>;
  /** Sorted by namespace, then name. */
  routes: AnalyzedRoute[];
  /** servicePortKey → routes attached to it (accepted parents, at least one valid rule). */
  attachments: Map<string, PortAttachments>;
  /** Template Workloads (no address), by "ns/name". */
  templates: Map<string, Workload>;
  /** Route tables already built, by servicePortKey + caller namespace (or "" for producers). */
  tableCache: Map<string, RouteTable>;
  /** Canonical JSON of the parts snapshots share (backends, route tables), so each is encoded once. */
  sharedJson: WeakMap<object, string>;
  /** The ReferenceGrants, for cross-namespace references. */
  grants: ReferencePermits;
  /** RateLimitPolicies: the limits each target carries, and each policy's status. */
  rateLimits: RateLimitIndex;
  /** BackendTrafficPolicies resolved: what applies where, and each policy's status. */
  backendPolicies: ResolvedBackendPolicies;
}

interface CacheEntry {
  sources: readonly unknown[];
  prepared: PreparedInput;
}

const cache = new WeakMap<CompilerInput, CacheEntry>();

function sourcesOf(input: CompilerInput): readonly unknown[] {
  return [
    input.services,
    input.workloads,
    input.httpRoutes,
    input.backendTrafficPolicies,
    input.grpcRoutes,
    input.faultInjections,
    input.graphqlApis,
    input.apiPortals,
    input.transformations,
    input.rateLimitPolicies,
    input.meshConfig,
    input.namespaces,
    input.gatewayClasses,
    input.gateways,
    input.referenceGrants,
    input.secrets,
    input.endpointSlices,
  ];
}

/**
 * Prepares an input once however many proxies it is compiled for. The result
 * is remembered per input object (and its arrays), so callers must treat a
 * CompilerInput as immutable: build a new one (or new arrays) for every change.
 */
export function prepare(input: CompilerInput): PreparedInput {
  const sources = sourcesOf(input);
  const cached = cache.get(input);
  if (cached && cached.sources.every((s, i) => s === sources[i])) return cached.prepared;
  const prepared = prepareUncached(input);
  cache.set(input, { sources, prepared });
  return prepared;
}

function byNamespaceAndName(a: { metadata: { namespace?: string | undefined; name: string } }, b: typeof a): number {
  return compareStrings(serviceNamespace(a), serviceNamespace(b)) || compareStrings(a.metadata.name, b.metadata.name);
}

function prepareUncached(input: CompilerInput): PreparedInput {
  const services = [...input.services].sort(byNamespaceAndName);
  const serviceIndex = new Map<string, Service>();
  for (const service of services) serviceIndex.set(`${serviceNamespace(service)}/${service.metadata.name}`, service);

  const trustDomain = input.meshConfig?.spec?.trustDomain ?? 'cluster.local';
  const endpointWorkloads = indexEndpointWorkloads(input.workloads);
  const slicesByService = indexEndpointSlices(input.endpointSlices ?? []);
  const backends: Record<string, SnapshotBackend> = {};
  for (const service of services) {
    const ns = serviceNamespace(service);
    for (const port of meshPorts(service)) {
      const key = servicePortKey(ns, service.metadata.name, port.port);
      backends[key] = {
        key,
        namespace: ns,
        service: service.metadata.name,
        port: port.port,
        protocol: portProtocol(port),
        lb: 'least-request',
        endpoints:
          Object.keys(service.spec.selector ?? {}).length > 0
            ? serviceEndpoints(service, port, endpointWorkloads, trustDomain)
            : sliceEndpoints(service, port, slicesByService),
      };
    }
  }

  const backendPolicies = resolveBackendPolicies(input.backendTrafficPolicies ?? [], serviceIndex, routeRuleNames([...input.httpRoutes, ...(input.grpcRoutes ?? [])]));
  applyBackendPolicies(backends, backendPolicies);

  const grants = indexReferenceGrants(input.referenceGrants ?? []);
  const graphqlApis = indexGraphQLApis(input.graphqlApis ?? [], serviceIndex);
  const extensions = {
    faults: indexFaultInjections(input.faultInjections ?? []),
    graphqlApis,
    portals: indexApiPortals(input, graphqlApis),
    transformations: indexTransformations(input.transformations ?? []),
  };
  const httpRoutes = input.httpRoutes.map((route) => analyzeRoute(route, serviceIndex, grants, undefined, extensions));
  // GRPCRoutes compile through the HTTPRoute analysis in their HTTP form (POST /<service>/<method>).
  const grpcRoutes = (input.grpcRoutes ?? []).map((route) => {
    const form = grpcRouteForm(route);
    return analyzeRoute(form.route, serviceIndex, grants, form, extensions);
  });
  const routes = [...httpRoutes, ...grpcRoutes].sort((a, b) => byNamespaceAndName(a.route, b.route) || compareStrings(a.route.kind, b.route.kind));
  speakGrpcToGrpcBackends(grpcRoutes, backends, serviceIndex);
  // Route-targeted BackendTrafficPolicies: variants of the backends their rules send to (after the protocols are final).
  applyRoutePolicies(routes, backends, backendPolicies);
  const routeKeys = new Set([...httpRoutes, ...grpcRoutes].map((r) => `${r.route.kind}/${r.namespace}/${r.name}`));
  const gatewayKeys = new Set((input.gateways ?? []).map((g) => `${serviceNamespace(g)}/${g.metadata.name}`));
  const rateLimits = indexRateLimitPolicies(input.rateLimitPolicies ?? [], (kind, ns, name) =>
    kind === 'HTTPRoute' || kind === 'GRPCRoute' ? routeKeys.has(`${kind}/${ns}/${name}`) : kind === 'Service' ? serviceIndex.has(`${ns}/${name}`) : gatewayKeys.has(`${ns}/${name}`),
  );
  for (const route of [...httpRoutes, ...grpcRoutes]) {
    const limits = rateLimits.byTarget.get(rateLimitTargetKey(route.route.kind === 'GRPCRoute' ? 'GRPCRoute' : 'HTTPRoute', route.namespace, route.name));
    if (limits) route.rateLimits = limits;
  }
  const attachments = new Map<string, PortAttachments>();
  for (const route of routes) {
    // A route none of whose rules compile is ignored as a whole (reported as not Accepted).
    if (route.rules.length === 0) continue;
    const attachedKeys = new Set<string>();
    for (const parent of route.parents) {
      for (const port of parent.ports) {
        const [serviceNs = '', serviceName = ''] = splitServiceKey(parent.serviceKey);
        const key = servicePortKey(serviceNs, serviceName, port);
        // Two parentRefs naming the same port (with and without `port`) attach the route once.
        if (attachedKeys.has(key)) continue;
        attachedKeys.add(key);
        let attachment = attachments.get(key);
        if (!attachment) attachments.set(key, (attachment = { producers: [], consumers: new Map() }));
        if (route.namespace === serviceNs) attachment.producers.push(route);
        else {
          let list = attachment.consumers.get(route.namespace);
          if (!list) attachment.consumers.set(route.namespace, (list = []));
          list.push(route);
        }
      }
    }
  }

  for (const [key, attachment] of attachments) {
    const serviceKey = key.slice(0, key.lastIndexOf(':'));
    attachment.producers = withoutKindConflicts(attachment.producers, serviceKey);
    for (const [ns, list] of attachment.consumers) attachment.consumers.set(ns, withoutKindConflicts(list, serviceKey));
  }

  const templates = new Map<string, Workload>();
  for (const workload of input.workloads) {
    if (workload.spec?.address) continue;
    templates.set(`${serviceNamespace(workload)}/${workload.metadata.name}`, workload);
  }

  const sharedJson = new WeakMap<object, string>();
  sharedJson.set(deepFreeze(backends), canonicalJson(backends));
  return {
    trustDomain,
    clusterDomain: CLUSTER_DOMAIN,
    services,
    serviceIndex,
    backends,
    routes,
    attachments,
    templates,
    tableCache: new Map(),
    sharedJson,
    grants,
    rateLimits,
    backendPolicies,
  };
}

/**
 * An HTTPRoute and a GRPCRoute on the same Service port: as on a Gateway
 * listener whose routes' hostnames intersect (a mesh port has no hostnames),
 * the Gateway API accepts exactly one of them, the older (then the first by
 * "ns/name"); every route of the other kind is left off the port and says so
 * in its status.
 */
function withoutKindConflicts(routes: AnalyzedRoute[], serviceKey: string): AnalyzedRoute[] {
  if (routes.length < 2 || routes.every((r) => r.route.kind === routes[0]!.route.kind)) return routes;
  const winner = [...routes].sort(compareRouteAge)[0]!;
  const kept: AnalyzedRoute[] = [];
  for (const route of routes) {
    if (route.route.kind === winner.route.kind) {
      kept.push(route);
      continue;
    }
    const message = `${winner.route.kind} ${winner.namespace}/${winner.name} is older and attached to the same Service port; a Service port takes HTTPRoutes or GRPCRoutes, not both`;
    for (const parent of route.parents) if (parent.serviceKey === serviceKey) parent.kindConflict ??= message;
  }
  return kept;
}

/**
 * gRPC is HTTP/2: the Service ports GRPCRoutes send to (backendRefs and
 * mirrors) are spoken to in h2c even when they declare no protocol.
 */
function speakGrpcToGrpcBackends(grpcRoutes: readonly AnalyzedRoute[], backends: Record<string, SnapshotBackend>, serviceIndex: ReadonlyMap<string, Service>): void {
  const keys = new Set<string>();
  for (const route of grpcRoutes) {
    for (const rule of route.rules) {
      for (const backend of rule.backends) {
        const target = backend.target;
        if (!target) continue;
        if (target.port !== undefined) keys.add(servicePortKey(target.namespace, target.name, target.port));
        else {
          for (const parent of route.parents) {
            if (parent.serviceKey === `${target.namespace}/${target.name}`) for (const port of parent.ports) keys.add(servicePortKey(target.namespace, target.name, port));
          }
        }
      }
      for (const filter of [...rule.filters, ...rule.backends.flatMap((b) => b.filters)]) {
        if (filter.type === 'RequestMirror' && filter.mirror.backend !== undefined) keys.add(filter.mirror.backend);
      }
    }
  }
  for (const key of keys) {
    const backend = backends[key];
    if (!backend) continue;
    const port = meshPorts(serviceIndex.get(`${backend.namespace}/${backend.service}`)!).find((p) => p.port === backend.port);
    if (!port) continue;
    const protocol = grpcBackendProtocol(port);
    if (protocol !== backend.protocol) backends[key] = { ...backend, protocol };
  }
}

/** "ns/name" → [ns, name]; names have no "/", so the first one splits. */
export function splitServiceKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

/**
 * The route table a caller in `callerNamespace` uses for one Service port
 * (GAMMA): the consumer routes of the caller's namespace when there are any
 * for this port, else the producer routes. A consumer route replaces the
 * producer routes only on the ports it attaches to, so that a consumer
 * customising port 80 does not silently lose the producer's rules on 8080.
 */
export function routeTableFor(prepared: PreparedInput, serviceNs: string, serviceName: string, port: number, callerNamespace: string): RouteTable {
  const key = servicePortKey(serviceNs, serviceName, port);
  const attachment = prepared.attachments.get(key);
  const consumers = callerNamespace !== serviceNs ? attachment?.consumers.get(callerNamespace) : undefined;
  const cacheKey = `${key}|${consumers ? callerNamespace : ''}`;
  let table = prepared.tableCache.get(cacheKey);
  if (!table) {
    table = buildRouteTable(serviceNs, serviceName, port, consumers ?? attachment?.producers ?? []);
    prepared.tableCache.set(cacheKey, table);
    prepared.sharedJson.set(deepFreeze(table), canonicalJson(table));
  }
  return table;
}

/**
 * Parts shared by many snapshots are frozen: their canonical JSON is
 * remembered, so a change made through one snapshot would corrupt the
 * others and their versions. Freezing turns such a change into a TypeError.
 */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
