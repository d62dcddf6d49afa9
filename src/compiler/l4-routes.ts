// TCPRoutes and TLSRoutes: validation, backendRefs, attachment to Gateway TCP/TLS listeners and to mesh Service ports (GAMMA), tables and status.
import { compareHostSpecificity, normalHost } from '../api/hostnames.ts';
import { objectKey, type Condition, type Resource } from '../api/meta.ts';
import type { L4RouteRule, ParentReference, Service, TCPRoute, TLSRoute } from '../api/resources.ts';
import {
  servicePortKey,
  type NodeInfo,
  type ProxySnapshot,
  type RouteTable,
  type SnapshotGatewayListener,
  type SnapshotGatewayPort,
  type WeightedBackend,
} from '../api/snapshot.ts';
import {
  effectiveHostnames,
  gatewayRouteKey,
  isGatewayParentRef,
  isL4Protocol,
  namespaceAllowed,
  prepareGateways,
  type AnalyzedGateway,
  type AnalyzedListener,
  type Verdict,
} from './gateway.ts';
import { backendRefPermitted } from './gateway-grants.ts';
import { compareStrings } from './hash.ts';
import { prepare, type PreparedInput } from './prepare.ts';
import { isServiceParentRef, type RefProblem } from './routes.ts';
import { meshPorts, portProtocol, serviceNamespace } from './services.ts';
import { CONTROLLER_NAME, GATEWAY_CONTROLLER_NAME, type CompilerInput, type RouteParentStatus } from './types.ts';

type L4Kind = 'TCPRoute' | 'TLSRoute';
type L4Route = TCPRoute | TLSRoute;

const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const ok = (reason: string): Verdict => ({ status: 'True', reason, message: '' });
const no = (reason: string, message: string): Verdict => ({ status: 'False', reason, message });

/** What one parentRef of an L4 route came to. */
interface L4Parent {
  parentRef: ParentReference;
  controllerName: string;
  accepted: Verdict;
}

export interface AnalyzedL4Route {
  route: L4Route;
  kind: L4Kind;
  namespace: string;
  name: string;
  /** TLSRoute: its hostnames, normalised; absent: every name. */
  hostnames: string[] | undefined;
  /**
   * Every rule's backendRefs as one weighted set: an L4 route has nothing to
   * match on, so its rules can only add backends. Unresolvable refs keep their
   * weight with no backend (their share of connections is refused).
   */
  backends: WeightedBackend[];
  refProblems: RefProblem[];
  parents: L4Parent[];
}

/** A route on a Gateway TCP or TLS listener, with the names it serves there ("*" on TCP). */
interface ListenerL4Attachment {
  route: AnalyzedL4Route;
  hostnames: string[];
}

export interface PreparedL4 {
  routes: AnalyzedL4Route[];
  /** Per Gateway ("ns/name") and listener name: the attached routes, oldest first. */
  listeners: Map<string, Map<string, ListenerL4Attachment[]>>;
  /** servicePortKey → the routes attached to that mesh port, as producers (the Service's namespace) and consumers (by namespace). */
  mesh: Map<string, { producers: AnalyzedL4Route[]; consumers: Map<string, AnalyzedL4Route[]> }>;
  tables: Map<string, RouteTable>;
}

const cache = new WeakMap<CompilerInput, { sources: readonly unknown[]; result: PreparedL4 }>();

/** Analyzes every TCPRoute and TLSRoute once per input. */
export function prepareL4(input: CompilerInput): PreparedL4 {
  const prepared = prepare(input);
  const gateways = prepareGateways(input);
  const sources = [prepared, gateways, input.tcpRoutes, input.tlsRoutes];
  const cached = cache.get(input);
  if (cached && cached.sources.every((s, i) => s === sources[i])) return cached.result;
  const result = analyze(input, prepared);
  cache.set(input, { sources, result });
  return result;
}

function keyOf(resource: Resource): string {
  return `${serviceNamespace(resource)}/${resource.metadata.name}`;
}

/** Older first, then by "ns/name": the Gateway API's tie-break between conflicting routes. */
function compareAge(a: AnalyzedL4Route, b: AnalyzedL4Route): number {
  const ta = a.route.metadata.creationTimestamp;
  const tb = b.route.metadata.creationTimestamp;
  if (ta !== tb) {
    if (ta === undefined) return 1;
    if (tb === undefined) return -1;
    const diff = Date.parse(ta) - Date.parse(tb);
    if (diff !== 0 && !Number.isNaN(diff)) return diff;
  }
  return compareStrings(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`);
}

function analyze(input: CompilerInput, prepared: PreparedInput): PreparedL4 {
  const all: [L4Kind, L4Route][] = [
    ...(input.tcpRoutes ?? []).map((r): [L4Kind, L4Route] => ['TCPRoute', r]),
    ...(input.tlsRoutes ?? []).map((r): [L4Kind, L4Route] => ['TLSRoute', r]),
  ];
  const routes = all
    .map(([kind, route]) => analyzeOne(kind, route, prepared))
    .sort((a, b) => compareStrings(keyOf(a.route), keyOf(b.route)) || compareStrings(a.kind, b.kind));

  const gateways = prepareGateways(input).gateways;
  const existing = new Set((input.gateways ?? []).map(keyOf));
  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const ns of input.namespaces) namespaceLabels.set(ns.metadata.name, { ...(ns.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns.metadata.name });
  const labelsOf = (ns: string) => namespaceLabels.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };

  const listeners = new Map<string, Map<string, ListenerL4Attachment[]>>();
  const mesh: PreparedL4['mesh'] = new Map();
  for (const route of routes) {
    const seen = new Set<string>();
    for (const parentRef of route.route.spec.parentRefs ?? []) {
      // The same parent named twice attaches (and is reported) once.
      const identity = [parentRef.group ?? '', parentRef.kind ?? '', parentRef.namespace ?? route.namespace, parentRef.name, parentRef.sectionName ?? '', parentRef.port ?? ''].join('|');
      if (seen.has(identity)) continue;
      seen.add(identity);
      if (isServiceParentRef(parentRef)) route.parents.push(attachToService(route, parentRef, prepared, mesh));
      else if (isGatewayParentRef(parentRef)) {
        const parent = attachToGateway(route, parentRef, gateways, existing, labelsOf, listeners);
        if (parent) route.parents.push(parent);
      }
    }
  }
  for (const byListener of listeners.values()) for (const list of byListener.values()) list.sort((a, b) => compareAge(a.route, b.route));
  for (const attachment of mesh.values()) {
    attachment.producers.sort(compareAge);
    for (const list of attachment.consumers.values()) list.sort(compareAge);
  }
  return { routes, listeners, mesh, tables: new Map() };
}

function analyzeOne(kind: L4Kind, route: L4Route, prepared: PreparedInput): AnalyzedL4Route {
  const namespace = serviceNamespace(route);
  const refProblems: RefProblem[] = [];
  const backends: WeightedBackend[] = [];
  const rules: L4RouteRule[] = route.spec.rules ?? [];
  rules.forEach((rule, ruleIndex) => {
    rule.backendRefs.forEach((ref, refIndex) => {
      const where = `rules[${ruleIndex}].backendRefs[${refIndex}]`;
      const weight = ref.weight ?? 1;
      const group = ref.group ?? '';
      const refKind = ref.kind ?? 'Service';
      if ((group !== '' && group !== 'core') || refKind !== 'Service') {
        refProblems.push({ reason: 'InvalidKind', message: `${where}: ${group ? `${group}/` : ''}${refKind} is not a Service` });
        backends.push({ weight, filters: [] });
        return;
      }
      const ns = ref.namespace ?? namespace;
      if (!backendRefPermitted(prepared.grants, kind, namespace, ns, ref.name)) {
        refProblems.push({ reason: 'RefNotPermitted', message: `${where}: Service ${ns}/${ref.name} is in another namespace and no ReferenceGrant allows it` });
        backends.push({ weight, filters: [] });
        return;
      }
      if (ref.port === undefined) {
        refProblems.push({ reason: 'BackendNotFound', message: `${where}: a Service backendRef of a ${kind} needs a port` });
        backends.push({ weight, filters: [] });
        return;
      }
      const key = servicePortKey(ns, ref.name, ref.port);
      if (!(key in prepared.backends)) {
        const service = prepared.serviceIndex.get(`${ns}/${ref.name}`);
        refProblems.push({
          reason: 'BackendNotFound',
          message: service ? `${where}: Service ${ns}/${ref.name} has no TCP port ${ref.port}` : `${where}: Service ${ns}/${ref.name} does not exist`,
        });
        backends.push({ weight, filters: [] });
        return;
      }
      backends.push({ backend: key, weight, filters: [] });
    });
  });
  const hostnames = kind === 'TLSRoute' && (route as TLSRoute).spec.hostnames?.length ? (route as TLSRoute).spec.hostnames!.map(normalHost) : undefined;
  return { route, kind, namespace, name: route.metadata.name, hostnames, backends, refProblems, parents: [] };
}

/**
 * GAMMA for L4: a TCPRoute on a Service carries the opaque TCP of its ports
 * declared TCP (appProtocol tcp, or a "tcp-" name); a TLSRoute on one carries
 * its TLS ports (appProtocol tls/https, which weft carries as TCP). Without a
 * port in the parentRef, every such port of the Service.
 */
function attachToService(route: AnalyzedL4Route, parentRef: ParentReference, prepared: PreparedInput, mesh: PreparedL4['mesh']): L4Parent {
  const ns = parentRef.namespace ?? route.namespace;
  const serviceKey = `${ns}/${parentRef.name}`;
  const parent = (accepted: Verdict): L4Parent => ({ parentRef, controllerName: CONTROLLER_NAME, accepted });
  const service: Service | undefined = prepared.serviceIndex.get(serviceKey);
  if (!service) return parent(no('NoMatchingParent', `Service ${serviceKey} does not exist`));
  const tcpPorts = meshPorts(service).filter((p) => portProtocol(p) === 'tcp');
  const ports = parentRef.port === undefined ? tcpPorts : tcpPorts.filter((p) => p.port === parentRef.port);
  if (ports.length === 0) {
    const which = parentRef.port === undefined ? 'no port' : `no port ${parentRef.port}`;
    return parent(no('NoMatchingParent', `Service ${serviceKey} has ${which} declared as TCP (appProtocol tcp, tls or https, or a "tcp-" port name); other ports carry HTTP routes`));
  }
  for (const port of ports) {
    const key = servicePortKey(ns, parentRef.name, port.port);
    let attachment = mesh.get(key);
    if (!attachment) mesh.set(key, (attachment = { producers: [], consumers: new Map() }));
    const list = route.namespace === ns ? attachment.producers : (attachment.consumers.get(route.namespace) ?? []);
    if (route.namespace !== ns) attachment.consumers.set(route.namespace, list);
    if (!list.includes(route)) list.push(route);
  }
  return parent(ok('Accepted'));
}

function attachToGateway(
  route: AnalyzedL4Route,
  parentRef: ParentReference,
  gateways: ReadonlyMap<string, AnalyzedGateway>,
  existing: ReadonlySet<string>,
  labelsOf: (ns: string) => Record<string, string>,
  listeners: PreparedL4['listeners'],
): L4Parent | undefined {
  const key = `${parentRef.namespace ?? route.namespace}/${parentRef.name}`;
  const parent = (accepted: Verdict): L4Parent => ({ parentRef, controllerName: GATEWAY_CONTROLLER_NAME, accepted });
  const gateway = gateways.get(key);
  if (!gateway) return existing.has(key) ? undefined : parent(no('NoMatchingParent', `Gateway ${key} does not exist`));
  const candidates = gateway.listeners.filter(
    (l) => (parentRef.sectionName === undefined || l.name === parentRef.sectionName) && (parentRef.port === undefined || l.port === parentRef.port),
  );
  if (candidates.length === 0) return parent(no('NoMatchingParent', `Gateway ${key} has no listener that the parentRef selects`));
  const allowed = candidates.filter(
    (l: AnalyzedListener) => l.supportedKinds.some((k) => k.kind === route.kind) && namespaceAllowed(l, gateway.namespace, route.namespace, labelsOf),
  );
  if (allowed.length === 0) {
    return parent(no('NotAllowedByListeners', `no listener of Gateway ${key} that the parentRef selects allows ${route.kind}s from namespace ${route.namespace}`));
  }
  let attached = false;
  for (const listener of allowed) {
    const hostnames = route.kind === 'TCPRoute' ? ['*'] : effectiveHostnames(listener.hostname, route.hostnames);
    if (hostnames.length === 0) continue;
    attached = true;
    let byListener = listeners.get(key);
    if (!byListener) listeners.set(key, (byListener = new Map()));
    let list = byListener.get(listener.name);
    if (!list) byListener.set(listener.name, (list = []));
    const found = list.find((a) => a.route === route);
    if (found) {
      for (const h of hostnames) if (!found.hostnames.includes(h)) found.hostnames.push(h);
    } else list.push({ route, hostnames });
  }
  if (!attached) {
    return parent(no('NoMatchingListenerHostname', `none of the route's hostnames (${(route.hostnames ?? []).join(', ')}) is served by the listeners it selects`));
  }
  return parent(ok('Accepted'));
}

function tableOf(key: string, route: AnalyzedL4Route): RouteTable {
  return { key, rules: [{ id: `${route.namespace}/${route.name}/0`, match: {}, filters: [], backends: route.backends.map((b) => ({ ...b, filters: [] })) }] };
}

/**
 * The table for opaque TCP to a mesh Service port when an L4 route is
 * attached to it (GAMMA: the caller's namespace's consumer routes, else the
 * producer's), the oldest route winning; undefined when none is, and the
 * port keeps its default table.
 */
export function meshL4Table(input: CompilerInput, serviceNs: string, serviceName: string, port: number, callerNamespace: string): RouteTable | undefined {
  const l4 = prepareL4(input);
  const key = servicePortKey(serviceNs, serviceName, port);
  const attachment = l4.mesh.get(key);
  if (!attachment) return undefined;
  const consumers = callerNamespace !== serviceNs ? attachment.consumers.get(callerNamespace) : undefined;
  const routes = consumers ?? attachment.producers;
  if (routes.length === 0) return undefined;
  const cacheKey = `${key}|${consumers ? callerNamespace : ''}`;
  let table = l4.tables.get(cacheKey);
  if (!table) l4.tables.set(cacheKey, (table = meshTable(key, routes)));
  return table;
}

/**
 * One mesh port's L4 routes (oldest first) as a table: TLSRoutes give one
 * rule per SNI name (most specific first, the oldest route winning a name);
 * the oldest TCPRoute, if any, takes every other connection.
 */
function meshTable(key: string, routes: readonly AnalyzedL4Route[]): RouteTable {
  const tcp = routes.find((r) => r.kind === 'TCPRoute');
  const byHost = new Map<string, AnalyzedL4Route>();
  for (const route of routes) {
    if (route.kind !== 'TLSRoute') continue;
    for (const hostname of route.hostnames ?? ['*']) if (!byHost.has(hostname)) byHost.set(hostname, route);
  }
  if (byHost.size === 0) return tableOf(key, tcp!);
  const rules: RouteTable['rules'] = [...byHost.keys()].sort(compareHostSpecificity).map((sni) => {
    const route = byHost.get(sni)!;
    return { id: `${route.namespace}/${route.name}/sni:${sni}`, match: {}, filters: [], sni, backends: route.backends.map((b) => ({ ...b, filters: [] })) };
  });
  if (tcp) rules.push(...tableOf(key, tcp).rules);
  return { key, rules };
}

/**
 * Adds a gateway proxy's TCP and TLS listeners to its snapshot: one port per
 * Gateway port; a TCP listener gets one virtual host "*" (the oldest TCPRoute
 * attached), a TLS listener one virtual host per SNI name its TLSRoutes
 * serve (exact names before wildcards, the oldest route winning a name).
 */
export function applyL4Gateway(snapshot: Omit<ProxySnapshot, 'version'>, input: CompilerInput, node: NodeInfo): void {
  const gatewayKey = node.gateway;
  if (gatewayKey === undefined || !snapshot.gateway) return;
  const analyzed = prepareGateways(input).gateways.get(gatewayKey);
  if (!analyzed) return;
  const attachments = prepareL4(input).listeners.get(gatewayKey);
  const ports = new Map<number, SnapshotGatewayPort>();
  for (const listener of analyzed.listeners) {
    if (!listener.servable || !isL4Protocol(listener.protocol) || listener.conflicted.status === 'True') continue;
    // One protocol per port: an L4 listener on a port the HTTP side already serves is a conflict, reported there.
    if (snapshot.gateway.ports.some((p) => p.port === listener.port)) continue;
    let port = ports.get(listener.port);
    if (!port) ports.set(listener.port, (port = { port: listener.port, protocol: listener.protocol as 'TCP' | 'TLS', listeners: [] }));
    const byHost = new Map<string, AnalyzedL4Route>();
    for (const attachment of attachments?.get(listener.name) ?? []) {
      for (const hostname of attachment.hostnames) if (!byHost.has(hostname)) byHost.set(hostname, attachment.route);
    }
    // TCP: one route carries the listener; the others are reported in their status as conflicting.
    if (listener.protocol === 'TCP') for (const hostname of [...byHost.keys()].slice(1)) byHost.delete(hostname);
    const hosts = [...byHost.keys()].sort(compareHostSpecificity).map((hostname) => {
      const routeKey = gatewayRouteKey(analyzed.namespace, analyzed.name, listener.name, hostname);
      snapshot.routes[routeKey] = tableOf(routeKey, byHost.get(hostname)!);
      return { hostname, routeKey };
    });
    const entry: SnapshotGatewayListener = { name: listener.name, hosts };
    if (listener.hostname !== undefined) entry.hostname = listener.hostname;
    port.listeners.push(entry);
  }
  if (ports.size === 0) return;
  for (const port of ports.values()) port.listeners.sort((a, b) => compareHostSpecificity(a.hostname ?? '*', b.hostname ?? '*'));
  snapshot.gateway = { ...snapshot.gateway, ports: [...snapshot.gateway.ports, ...ports.values()].sort((a, b) => a.port - b.port) };
}

function condition(type: string, verdict: Verdict, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status: verdict.status, reason: verdict.reason, message: verdict.message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

/** `status` of every TCPRoute and TLSRoute, by objectKey: per parent, Accepted and ResolvedRefs, as for HTTPRoutes. */
export function l4RouteStatuses(input: CompilerInput): Map<string, { parents: RouteParentStatus[] }> {
  const l4 = prepareL4(input);
  const statuses = new Map<string, { parents: RouteParentStatus[] }>();
  // A TCP listener carries one route: the others attached to it are told which one does.
  const losers = new Map<AnalyzedL4Route, string>();
  for (const [gatewayKey, byListener] of l4.listeners) {
    for (const [listenerName, list] of byListener) {
      const winner = list[0]?.route;
      if (!winner || winner.kind !== 'TCPRoute') continue;
      for (const other of list.slice(1)) {
        losers.set(other.route, `listener ${listenerName} of Gateway ${gatewayKey} already carries TCPRoute ${winner.namespace}/${winner.name} (older); a TCP listener takes one route`);
      }
    }
  }
  for (const route of l4.routes) {
    const generation = route.route.metadata.generation;
    const resolvedRefs: Verdict =
      route.refProblems.length === 0
        ? ok('ResolvedRefs')
        : { status: 'False', reason: route.refProblems[0]!.reason, message: route.refProblems.map((p) => p.message).join('; ') };
    const parents = route.parents.map((parent): RouteParentStatus => {
      let accepted = parent.accepted;
      const lost = losers.get(route);
      if (accepted.status === 'True' && lost !== undefined && parent.controllerName === GATEWAY_CONTROLLER_NAME) accepted = no('NotAllowedByListeners', lost);
      return {
        parentRef: { ...parent.parentRef },
        controllerName: parent.controllerName,
        conditions: [condition('Accepted', accepted, generation), condition('ResolvedRefs', resolvedRefs, generation)],
      };
    });
    statuses.set(
      objectKey({ apiVersion: route.route.apiVersion, kind: route.route.kind, namespace: route.route.metadata.namespace, name: route.route.metadata.name }),
      { parents },
    );
  }
  return statuses;
}

/** How many L4 routes are attached to each listener of each Gateway: "ns/name" → listener → count, for the listener status. */
export function l4AttachedRoutes(input: CompilerInput): Map<string, Map<string, number>> {
  const counts = new Map<string, Map<string, number>>();
  for (const [gatewayKey, byListener] of prepareL4(input).listeners) {
    counts.set(gatewayKey, new Map([...byListener].map(([name, list]) => [name, list.length])));
  }
  return counts;
}
