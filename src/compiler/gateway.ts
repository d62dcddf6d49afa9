// Gateways: which GatewayClasses and Gateways are weft's, their listeners, the routes attached to each, and a gateway proxy's snapshot.
import { secretValue } from './secrets.ts';
import { compareHostSpecificity, intersectHostnames, normalHost } from '../api/hostnames.ts';
import type { Condition, Resource } from '../api/meta.ts';
import {
  GATEWAY_CONTROLLER_NAME,
  type Gateway,
  type GatewayClass,
  type GatewayListener,
  type LabelSelector,
  type ParentReference,
  type Secret,
} from '../api/resources.ts';
import { gatewayWorkloadName, type NodeInfo, type ProxySnapshot, type RouteTable, type SnapshotGateway, type SnapshotGatewayListener } from '../api/snapshot.ts';
import { GATEWAY_GROUP, type ReferencePermits } from './gateway-grants.ts';
import { compareStrings } from './hash.ts';
import { prepare, type PreparedInput } from './prepare.ts';
import { buildRouteTable, compareRouteAge, type AnalyzedRoute } from './routes.ts';
import { rateLimitTargetKey, withRateLimits } from './rate-limit.ts';
import { serviceNamespace } from './services.ts';
import type { CompilerInput, RouteGroupKind } from './types.ts';

/** A Gateway naming this class is weft's even when no GatewayClass object exists: the class every weft install has. */
export const DEFAULT_GATEWAY_CLASS = 'weft';

/** The label the control plane puts on a proxy's registered instance (see WORKLOAD_LABEL in the stream server). */
const INSTANCE_WORKLOAD_LABEL = 'weft.dev/workload';
/** The label every namespace carries implicitly, as in Kubernetes, so that selectors can name a namespace. */
const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Route kinds each served listener protocol takes. */
const ROUTE_KINDS: Record<string, readonly string[]> = { HTTP: ['HTTPRoute', 'GRPCRoute'], HTTPS: ['HTTPRoute', 'GRPCRoute'], TCP: ['TCPRoute'], TLS: ['TLSRoute'] };

export type ServedProtocol = 'HTTP' | 'HTTPS' | 'TCP' | 'TLS';

/** Listener protocols whose routes are TCPRoutes and TLSRoutes, compiled in l4-routes.ts rather than here. */
export function isL4Protocol(protocol: string): boolean {
  return protocol === 'TCP' || protocol === 'TLS';
}

/** A condition's status, reason and message, before generation and type are added. */
export interface Verdict {
  status: Condition['status'];
  reason: string;
  message: string;
}

const ok = (reason: string): Verdict => ({ status: 'True', reason, message: '' });
const no = (reason: string, message: string): Verdict => ({ status: 'False', reason, message });

/** A route attached to a listener, with the host names it serves there. */
export interface ListenerAttachment {
  route: AnalyzedRoute;
  /** The intersection of the route's hostnames with the listener's, as patterns. */
  hostnames: string[];
}

export interface AnalyzedListener {
  spec: GatewayListener;
  name: string;
  port: number;
  protocol: string;
  hostname: string | undefined;
  supportedKinds: RouteGroupKind[];
  accepted: Verdict;
  resolvedRefs: Verdict;
  conflicted: Verdict;
  /** Can be served (apart from whether a gateway proxy runs). */
  servable: boolean;
  /** Why not, when it can't. */
  invalid?: string;
  certificates: { certPem: string; keyPem: string }[];
  attached: ListenerAttachment[];
}

export interface AnalyzedGateway {
  gateway: Gateway;
  namespace: string;
  name: string;
  listeners: AnalyzedListener[];
  /** Where its gateway proxies are reached: the addresses of their registered instances. */
  addresses: { type: 'IPAddress' | 'Hostname'; value: string }[];
}

/** What one Gateway parentRef of a route came to. */
export interface GatewayParentResult {
  parentRef: ParentReference;
  accepted: Verdict;
  /** The listeners the parentRef attached the route to. */
  listeners?: AnalyzedListener[];
}

export interface PreparedGateways {
  /** Weft's GatewayClasses by name (explicit objects only). */
  classes: Map<string, GatewayClass>;
  /** Weft's Gateways by "ns/name". */
  gateways: Map<string, AnalyzedGateway>;
  /** The Gateway parents of each route, in spec order. */
  routeParents: Map<AnalyzedRoute, GatewayParentResult[]>;
}

const cache = new WeakMap<PreparedInput, PreparedGateways>();

/** Analyzes every Gateway once per input (the prepared input is cached per input, so is this). */
export function prepareGateways(input: CompilerInput): PreparedGateways {
  const prepared = prepare(input);
  let result = cache.get(prepared);
  if (!result) {
    result = analyzeGateways(input, prepared);
    cache.set(prepared, result);
  }
  return result;
}

function keyOf(resource: Resource): string {
  return `${serviceNamespace(resource)}/${resource.metadata.name}`;
}

function classIsOurs(name: string, classes: ReadonlyMap<string, GatewayClass>, allClasses: ReadonlyMap<string, GatewayClass>): boolean {
  if (classes.has(name)) return true;
  return name === DEFAULT_GATEWAY_CLASS && !allClasses.has(name);
}

function analyzeGateways(input: CompilerInput, prepared: PreparedInput): PreparedGateways {
  const allClasses = new Map<string, GatewayClass>();
  const classes = new Map<string, GatewayClass>();
  for (const gatewayClass of input.gatewayClasses ?? []) {
    allClasses.set(gatewayClass.metadata.name, gatewayClass);
    if (gatewayClass.spec.controllerName === GATEWAY_CONTROLLER_NAME) classes.set(gatewayClass.metadata.name, gatewayClass);
  }
  const secrets = new Map<string, Secret>();
  for (const secret of input.secrets ?? []) secrets.set(keyOf(secret), secret);
  const addresses = gatewayAddresses(input);

  const gateways = new Map<string, AnalyzedGateway>();
  const sorted = [...(input.gateways ?? [])].sort((a, b) => compareStrings(keyOf(a), keyOf(b)));
  for (const gateway of sorted) {
    if (!classIsOurs(gateway.spec.gatewayClassName, classes, allClasses)) continue;
    const key = keyOf(gateway);
    gateways.set(key, {
      gateway,
      namespace: serviceNamespace(gateway),
      name: gateway.metadata.name,
      listeners: analyzeListeners(gateway, secrets, prepared.grants),
      addresses: addresses.get(key) ?? [],
    });
  }

  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const ns of input.namespaces) namespaceLabels.set(ns.metadata.name, { ...(ns.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns.metadata.name });
  const labelsOf = (ns: string) => namespaceLabels.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };

  const existing = new Set((input.gateways ?? []).map(keyOf));
  const routeParents = new Map<AnalyzedRoute, GatewayParentResult[]>();
  for (const route of prepared.routes) {
    const results = attachRoute(route, gateways, existing, labelsOf);
    if (results.length > 0) routeParents.set(route, results);
  }
  for (const gateway of gateways.values()) for (const listener of gateway.listeners) rejectKindConflicts(listener, routeParents);
  return { classes, gateways, routeParents };
}

/** The registered instances of each Gateway's proxies, by "ns/gateway". */
function gatewayAddresses(input: CompilerInput): Map<string, { type: 'IPAddress' | 'Hostname'; value: string }[]> {
  const byGateway = new Map<string, Set<string>>();
  for (const gateway of input.gateways ?? []) byGateway.set(keyOf(gateway), new Set());
  const wanted = new Map<string, string>();
  for (const key of byGateway.keys()) {
    const [ns, name] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    wanted.set(`${ns}/${gatewayWorkloadName(name)}`, key);
  }
  for (const workload of input.workloads) {
    const address = workload.spec?.address;
    const label = workload.metadata.labels?.[INSTANCE_WORKLOAD_LABEL];
    if (!address || !label) continue;
    const key = wanted.get(`${serviceNamespace(workload)}/${label}`);
    if (key) byGateway.get(key)!.add(address);
  }
  const result = new Map<string, { type: 'IPAddress' | 'Hostname'; value: string }[]>();
  for (const [key, set] of byGateway) {
    result.set(
      key,
      [...set].sort(compareStrings).map((value) => ({ type: isIpAddress(value) ? 'IPAddress' : 'Hostname', value })),
    );
  }
  return result;
}

function isIpAddress(value: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(value) || value.includes(':');
}

function normalGroup(group: string | undefined): string {
  return group === undefined || group === 'core' ? '' : group;
}

function analyzeListeners(gateway: Gateway, secrets: ReadonlyMap<string, Secret>, grants: ReferencePermits): AnalyzedListener[] {
  const namespace = serviceNamespace(gateway);
  const listeners = gateway.spec.listeners.map((spec): AnalyzedListener => {
    const protocol = spec.protocol;
    const served = ROUTE_KINDS[protocol];
    const listener: AnalyzedListener = {
      spec,
      name: spec.name,
      port: spec.port,
      protocol,
      hostname: spec.hostname === undefined ? undefined : normalHost(spec.hostname),
      supportedKinds: [],
      accepted: ok('Accepted'),
      resolvedRefs: ok('ResolvedRefs'),
      conflicted: no('NoConflicts', ''),
      servable: served !== undefined,
      certificates: [],
      attached: [],
    };
    const refProblems: Verdict[] = [];

    // Route kinds: those asked for that the protocol takes; the others are reported.
    const defaults = served ?? [];
    const asked = spec.allowedRoutes?.kinds;
    if (asked === undefined) listener.supportedKinds = defaults.map((kind) => ({ group: GATEWAY_GROUP, kind }));
    else {
      const invalid: string[] = [];
      for (const k of asked) {
        const group = k.group ?? GATEWAY_GROUP;
        if (group === GATEWAY_GROUP && defaults.includes(k.kind)) {
          if (!listener.supportedKinds.some((s) => s.kind === k.kind)) listener.supportedKinds.push({ group, kind: k.kind });
        } else invalid.push(`${group ? `${group}/` : ''}${k.kind}`);
      }
      if (invalid.length > 0) refProblems.push(no('InvalidRouteKinds', `route kinds ${invalid.join(', ')} are not supported on a ${protocol} listener`));
    }

    if (served === undefined) {
      listener.accepted = no('UnsupportedProtocol', `protocol ${protocol} is not supported; weft serves HTTP, HTTPS, TCP and TLS (passthrough) listeners`);
      listener.invalid = listener.accepted.message;
    } else if (protocol === 'TLS') {
      // TLS passthrough only: weft routes the ClientHello's SNI and never holds the backend's keys.
      if (spec.tls?.mode !== 'Passthrough') {
        listener.accepted = no('UnsupportedValue', 'a TLS listener passes TLS through: tls.mode must be Passthrough (weft does not terminate TLSRoute traffic)');
        listener.servable = false;
        listener.invalid = listener.accepted.message;
      }
    } else if (protocol === 'HTTPS') {
      const tls = spec.tls;
      if (!tls || (tls.mode ?? 'Terminate') !== 'Terminate') {
        listener.accepted = no('UnsupportedValue', 'an HTTPS listener terminates TLS: tls.mode must be Terminate');
        listener.servable = false;
        listener.invalid = listener.accepted.message;
      } else {
        for (const [i, ref] of (tls.certificateRefs ?? []).entries()) {
          const where = `tls.certificateRefs[${i}]`;
          const resolved = resolveCertificate(ref, namespace, secrets, grants, where);
          if ('problem' in resolved) refProblems.push(resolved.problem);
          else listener.certificates.push(resolved.certificate);
        }
        if (listener.certificates.length === 0) {
          listener.servable = false;
          listener.invalid = refProblems.find((p) => p.reason !== 'InvalidRouteKinds')?.message ?? 'the HTTPS listener has no certificate';
          if (!refProblems.some((p) => p.reason !== 'InvalidRouteKinds')) refProblems.push(no('InvalidCertificateRef', 'an HTTPS listener needs tls.certificateRefs'));
        }
      }
    }
    // Certificate problems first: they say why a listener is not programmed.
    const first = refProblems.find((p) => p.reason !== 'InvalidRouteKinds') ?? refProblems[0];
    if (first) listener.resolvedRefs = { status: 'False', reason: first.reason, message: refProblems.map((p) => p.message).join('; ') };
    return listener;
  });

  // Conflicts: one protocol per port; one listener per port, protocol and hostname. The first listener written wins.
  for (let i = 0; i < listeners.length; i++) {
    const listener = listeners[i]!;
    for (let j = 0; j < i; j++) {
      const earlier = listeners[j]!;
      if (earlier.port !== listener.port || earlier.conflicted.status === 'True') continue;
      if (earlier.protocol !== listener.protocol) {
        listener.conflicted = { status: 'True', reason: 'ProtocolConflict', message: `port ${listener.port} is already ${earlier.protocol} (listener ${earlier.name})` };
      } else if ((earlier.hostname ?? '') === (listener.hostname ?? '')) {
        listener.conflicted = {
          status: 'True',
          reason: 'HostnameConflict',
          message: `listener ${earlier.name} already serves ${listener.hostname ?? 'every host'} on port ${listener.port}`,
        };
      }
      if (listener.conflicted.status === 'True') {
        listener.servable = false;
        listener.invalid = listener.conflicted.message;
        break;
      }
    }
  }
  return listeners;
}

type CertificateResult = { certificate: { certPem: string; keyPem: string } } | { problem: Verdict };

function resolveCertificate(
  ref: { group?: string | undefined; kind?: string | undefined; name: string; namespace?: string | undefined },
  gatewayNamespace: string,
  secrets: ReadonlyMap<string, Secret>,
  grants: ReferencePermits,
  where: string,
): CertificateResult {
  const group = normalGroup(ref.group);
  const kind = ref.kind ?? 'Secret';
  if (group !== '' || kind !== 'Secret') return { problem: no('InvalidCertificateRef', `${where}: ${group ? `${group}/` : ''}${kind} is not a Secret`) };
  const namespace = ref.namespace ?? gatewayNamespace;
  const key = `${namespace}/${ref.name}`;
  if (
    !grants.permits({ group: GATEWAY_GROUP, kind: 'Gateway', namespace: gatewayNamespace }, { group: '', kind: 'Secret', namespace, name: ref.name })
  ) {
    return { problem: no('RefNotPermitted', `${where}: Secret ${key} is in another namespace and no ReferenceGrant allows it`) };
  }
  const secret = secrets.get(key);
  if (!secret) return { problem: no('InvalidCertificateRef', `${where}: Secret ${key} does not exist`) };
  if (secret.spec.type !== 'kubernetes.io/tls') return { problem: no('InvalidCertificateRef', `${where}: Secret ${key} is of type ${secret.spec.type}, not kubernetes.io/tls`) };
  const certPem = secretValue(secret, 'tls.crt');
  const keyPem = secretValue(secret, 'tls.key');
  if (!certPem || !/-----BEGIN CERTIFICATE-----/.test(certPem)) {
    return { problem: no('InvalidCertificateRef', `${where}: Secret ${key} has no PEM certificate in tls.crt`) };
  }
  if (!keyPem || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
    return { problem: no('InvalidCertificateRef', `${where}: Secret ${key} has no PEM private key in tls.key`) };
  }
  return { certificate: { certPem, keyPem } };
}

function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  // From: Selector without a selector selects nothing; an empty selector selects everything, as in Kubernetes.
  if (!selector) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const expression of selector.matchExpressions ?? []) {
    const value = labels[expression.key];
    const values = expression.values ?? [];
    const pass =
      expression.operator === 'In'
        ? value !== undefined && values.includes(value)
        : expression.operator === 'NotIn'
          ? value === undefined || !values.includes(value)
          : expression.operator === 'Exists'
            ? value !== undefined
            : value === undefined;
    if (!pass) return false;
  }
  return true;
}

export function namespaceAllowed(listener: AnalyzedListener, gatewayNamespace: string, routeNamespace: string, labelsOf: (ns: string) => Record<string, string>): boolean {
  const from = listener.spec.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from === 'Same') return routeNamespace === gatewayNamespace;
  return selectorMatches(listener.spec.allowedRoutes?.namespaces?.selector, labelsOf(routeNamespace));
}

/** A parentRef to a Gateway: the group and kind default to the Gateway API's. */
export function isGatewayParentRef(ref: ParentReference): boolean {
  return (ref.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && (ref.kind ?? 'Gateway') === 'Gateway';
}

/** The route's hostnames on a listener: the route's (or every host) narrowed to the listener's. */
export function effectiveHostnames(listenerHostname: string | undefined, routeHostnames: readonly string[] | undefined): string[] {
  if (!routeHostnames || routeHostnames.length === 0) return [listenerHostname ?? '*'];
  const out = new Set<string>();
  for (const h of routeHostnames) {
    const hit = intersectHostnames(listenerHostname, normalHost(h));
    if (hit !== undefined) out.add(hit);
  }
  return [...out];
}

/**
 * Attaches one route to the listeners its Gateway parentRefs select, and says
 * for each parentRef why it was or was not accepted, in the order the Gateway
 * API checks: the parent (and its listener by sectionName and port), the
 * listener's allowedRoutes (namespaces and kinds), then the host names.
 */
function attachRoute(
  route: AnalyzedRoute,
  gateways: ReadonlyMap<string, AnalyzedGateway>,
  existing: ReadonlySet<string>,
  labelsOf: (ns: string) => Record<string, string>,
): GatewayParentResult[] {
  const results: GatewayParentResult[] = [];
  const seen = new Set<string>();
  const kind = route.route.kind;
  for (const parentRef of route.route.spec.parentRefs ?? []) {
    if (!isGatewayParentRef(parentRef)) continue;
    const namespace = parentRef.namespace ?? route.namespace;
    const key = `${namespace}/${parentRef.name}`;
    const identity = `${key}|${parentRef.sectionName ?? ''}|${parentRef.port ?? ''}`;
    if (seen.has(identity)) continue;
    seen.add(identity);
    const gateway = gateways.get(key);
    if (!gateway) {
      // Another controller's Gateway is its business; a missing one nobody else will report.
      if (!existing.has(key)) results.push({ parentRef, accepted: no('NoMatchingParent', `Gateway ${key} does not exist`) });
      continue;
    }
    const candidates = gateway.listeners.filter(
      (l) => (parentRef.sectionName === undefined || l.name === parentRef.sectionName) && (parentRef.port === undefined || l.port === parentRef.port),
    );
    if (candidates.length === 0) {
      const which = [parentRef.sectionName !== undefined ? `named "${parentRef.sectionName}"` : '', parentRef.port !== undefined ? `on port ${parentRef.port}` : '']
        .filter(Boolean)
        .join(' and ');
      results.push({ parentRef, accepted: no('NoMatchingParent', `Gateway ${key} has no listener ${which}`) });
      continue;
    }
    const allowed = candidates.filter((l) => l.supportedKinds.some((k) => k.kind === kind) && namespaceAllowed(l, gateway.namespace, route.namespace, labelsOf));
    if (allowed.length === 0) {
      results.push({
        parentRef,
        accepted: no('NotAllowedByListeners', `no listener of Gateway ${key} that the parentRef selects allows ${kind}s from namespace ${route.namespace}`),
      });
      continue;
    }
    let attachedAny = false;
    const attachedTo: AnalyzedListener[] = [];
    for (const listener of allowed) {
      const hostnames = effectiveHostnames(listener.hostname, route.route.spec.hostnames);
      if (hostnames.length === 0) continue;
      attachedAny = true;
      attachedTo.push(listener);
      const existing = listener.attached.find((a) => a.route === route);
      if (existing) {
        for (const h of hostnames) if (!existing.hostnames.includes(h)) existing.hostnames.push(h);
      } else listener.attached.push({ route, hostnames });
    }
    if (!attachedAny) {
      results.push({
        parentRef,
        accepted: no('NoMatchingListenerHostname', `none of the route's hostnames (${(route.route.spec.hostnames ?? []).join(', ')}) is served by the listeners it selects`),
      });
      continue;
    }
    results.push({ parentRef, accepted: ok('Accepted'), listeners: attachedTo });
  }
  return results;
}

function hostnamesIntersect(a: readonly string[], b: readonly string[]): boolean {
  return a.some((x) => b.some((y) => intersectHostnames(x, y) !== undefined));
}

/**
 * An HTTPRoute and a GRPCRoute on one listener whose hostnames intersect:
 * the Gateway API accepts exactly one, the older (then the first by
 * "ns/name"). The other is not Accepted on that parentRef and is taken off
 * every listener the parentRef attached it to.
 */
function rejectKindConflicts(listener: AnalyzedListener, routeParents: Map<AnalyzedRoute, GatewayParentResult[]>): void {
  const kinds = new Set(listener.attached.map((a) => a.route.route.kind));
  if (kinds.size < 2) return;
  const kept: ListenerAttachment[] = [];
  for (const attachment of [...listener.attached].sort((a, b) => compareRouteAge(a.route, b.route))) {
    const rival = kept.find((k) => k.route.route.kind !== attachment.route.route.kind && hostnamesIntersect(k.hostnames, attachment.hostnames));
    if (!rival) {
      kept.push(attachment);
      continue;
    }
    const why = `listener ${listener.name} already serves ${rival.route.route.kind} ${rival.route.namespace}/${rival.route.name} (older) for hostnames that intersect this route's; a hostname takes HTTPRoutes or GRPCRoutes, not both`;
    for (const result of routeParents.get(attachment.route) ?? []) {
      if (!result.listeners?.includes(listener) || result.accepted.status !== 'True') continue;
      result.accepted = no('NotAllowedByListeners', why);
      for (const other of result.listeners) other.attached = other.attached.filter((a) => a.route !== attachment.route);
    }
  }
}

/** Route key of one virtual host: unique per Gateway, listener and host pattern. */
export function gatewayRouteKey(namespace: string, name: string, listener: string, hostname: string): string {
  return `gateway:${namespace}/${name}/${listener}/${hostname}`;
}

/** The Gateway of a gateway proxy: "ns/name", from its node info. */
export function gatewayOfNode(node: NodeInfo): string | undefined {
  return node.gateway;
}

/**
 * The gateway-specific part of a gateway proxy's snapshot: its listeners and
 * their virtual hosts, and the route tables these point at. Routes whose rules
 * all failed to compile serve nothing; the others go into one table per
 * host pattern, ordered by the same precedence as the mesh's tables.
 */
export function compileGatewayParts(input: CompilerInput, node: NodeInfo): { gateway?: SnapshotGateway; routes: Record<string, RouteTable> } {
  const key = gatewayOfNode(node);
  const routes: Record<string, RouteTable> = {};
  if (key === undefined) return { routes };
  const analyzed = prepareGateways(input).gateways.get(key);
  if (!analyzed) return { routes };

  // A RateLimitPolicy on the Gateway covers every rule of every virtual host.
  const gatewayLimits = prepare(input).rateLimits.byTarget.get(rateLimitTargetKey('Gateway', analyzed.namespace, analyzed.name));
  const byPort = new Map<number, { protocol: ServedProtocol; listeners: SnapshotGatewayListener[] }>();
  for (const listener of analyzed.listeners) {
    // TCP and TLS listeners are added by l4-routes.ts (applyL4Gateway).
    if (!listener.servable || isL4Protocol(listener.protocol)) continue;
    const protocol = listener.protocol as ServedProtocol;
    let port = byPort.get(listener.port);
    if (!port) byPort.set(listener.port, (port = { protocol, listeners: [] }));
    const tables = new Map<string, AnalyzedRoute[]>();
    for (const attachment of listener.attached) {
      if (attachment.route.rules.length === 0) continue;
      for (const hostname of attachment.hostnames) {
        let list = tables.get(hostname);
        if (!list) tables.set(hostname, (list = []));
        list.push(attachment.route);
      }
    }
    const hosts = [...tables.keys()].sort(compareHostSpecificity).map((hostname) => {
      const routeKey = gatewayRouteKey(analyzed.namespace, analyzed.name, listener.name, hostname);
      routes[routeKey] = withRateLimits({ ...buildRouteTable('', '', 0, tables.get(hostname)!), key: routeKey }, gatewayLimits);
      return { hostname, routeKey };
    });
    const entry: SnapshotGatewayListener = { name: listener.name, hosts };
    if (listener.hostname !== undefined) entry.hostname = listener.hostname;
    if (protocol === 'HTTPS') entry.tls = { certificates: listener.certificates.map((c) => ({ ...c })) };
    port.listeners.push(entry);
  }
  const ports = [...byPort.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([port, { protocol, listeners }]) => ({
      port,
      protocol,
      listeners: listeners.sort((a, b) => compareHostSpecificity(a.hostname ?? '*', b.hostname ?? '*')),
    }));
  return { gateway: { namespace: analyzed.namespace, name: analyzed.name, ports }, routes };
}

/** Makes a snapshot built for a gateway proxy serve its Gateway: no mesh services, upstreams or inbound ports; the Gateway's tables. */
export function applyGateway(snapshot: Omit<ProxySnapshot, 'version'>, input: CompilerInput, node: NodeInfo): void {
  const parts = compileGatewayParts(input, node);
  snapshot.services = [];
  snapshot.routes = parts.routes;
  snapshot.inbound = { ports: [] };
  snapshot.upstreams = [];
  if (parts.gateway) snapshot.gateway = parts.gateway;
  else delete snapshot.gateway;
}

/** Consistency problems of a snapshot's gateway part. */
export function checkGatewaySnapshot(s: ProxySnapshot): string[] {
  const problems: string[] = [];
  const ports = new Set<number>();
  for (const port of s.gateway?.ports ?? []) {
    if (ports.has(port.port)) problems.push(`gateway port ${port.port} is listed twice`);
    ports.add(port.port);
    for (const listener of port.listeners) {
      if (port.protocol === 'HTTPS' && !listener.tls?.certificates.length) problems.push(`gateway listener ${listener.name} is HTTPS without a certificate`);
      for (const host of listener.hosts) {
        if (!(host.routeKey in s.routes)) problems.push(`gateway listener ${listener.name} host ${host.hostname} has route key ${host.routeKey}, which is not in routes`);
      }
    }
  }
  return problems;
}
