// compile(input, node) → ProxySnapshot: pure and deterministic, versioned by a content hash, with a consistency check.
import {
  backendVariantKey,
  servicePortKey,
  type NodeInfo,
  type ProxySnapshot,
  type RouteTable,
  type SnapshotLimits,
  type SnapshotApiKeyRule,
  type SnapshotJwtRule,
  type SnapshotService,
} from '../api/snapshot.ts';
import { canonicalJson, sha256Hex } from './hash.ts';
import { applyGateway, checkGatewaySnapshot } from './gateway.ts';
import { prepare, routeTableFor } from './prepare.ts';
import { meshPorts, portProtocol, serviceHosts, serviceNamespace } from './services.ts';
import type { CompilerInput } from './types.ts';
import { resolveUpstreams } from './upstreams.ts';
import { parseGatewayDuration } from './duration.ts';
import { applyL4Gateway, meshL4Table } from './l4-routes.ts';
import { inboundRateLimits } from './rate-limit.ts';
import { gatewayAuthorization, indexAuthorizationPolicies, workloadAuthorization } from './authorization.ts';
import { observability } from './observability.ts';
import { indexPeerAuthentications, workloadMtlsMode } from './peer-authentication.ts';
import { gatewayRequestAuthentication, inboundRequestAuthentication, type RequestAuthnRules } from './request-authentication.ts';

/**
 * The snapshot for one proxy. Everything in it depends only on the input and
 * on `snapshotInputKey(node)`, so proxies with equal keys get equal
 * snapshots (and versions). The result shares objects with other snapshots
 * compiled from the same input: treat it as immutable.
 */
export function compile(input: CompilerInput, node: NodeInfo): ProxySnapshot {
  const prepared = prepare(input);
  const services: SnapshotService[] = [];
  const routes: Record<string, RouteTable> = {};
  for (const service of prepared.services) {
    const ns = serviceNamespace(service);
    const name = service.metadata.name;
    const ports = meshPorts(service).map((port) => {
      const routeKey = servicePortKey(ns, name, port.port);
      // A TCPRoute or TLSRoute attached to the port (GAMMA) gives its connections their backends.
      routes[routeKey] = meshL4Table(input, ns, name, port.port, node.namespace) ?? routeTableFor(prepared, ns, name, port.port, node.namespace);
      const snapshotPort: SnapshotService['ports'][number] = { port: port.port, protocol: portProtocol(port), routeKey };
      if (port.name) snapshotPort.name = port.name;
      return snapshotPort;
    });
    services.push({ namespace: ns, name, hosts: serviceHosts(service, node.namespace, prepared.clusterDomain), ports });
  }

  const template = node.workload !== undefined ? prepared.templates.get(`${node.namespace}/${node.workload}`) : undefined;
  const declaredPorts = template ? (template.spec.ports ?? []).map((p) => p.port) : [];
  // A template that declares no ports says nothing about them; what the proxy was told is then all we know.
  const inboundPorts = sortedUnique(declaredPorts.length > 0 ? declaredPorts : node.appPorts);
  const upstreams = template ? resolveUpstreams(template, prepared.serviceIndex, prepared.clusterDomain).upstreams : [];

  // RateLimitPolicies on the Services this workload serves are enforced here, on arrival.
  const inboundLimits = template && node.mode === 'sidecar' ? inboundRateLimits(prepared.services, prepared.rateLimits, template) : [];
  // AuthorizationPolicies are enforced where the request arrives: the destination's sidecar (or node proxy), or the gateway.
  const authorization = indexAuthorizationPolicies(input);
  const inboundAuthorization = template && node.mode !== 'gateway' ? workloadAuthorization(authorization, prepared.services, template) : undefined;
  const snapshotNode: ProxySnapshot['node'] = { mode: node.mode, namespace: node.namespace };
  if (node.workload !== undefined) snapshotNode.workload = node.workload;
  if (template?.spec.locality) snapshotNode.locality = { ...template.spec.locality };
  const snapshot: Omit<ProxySnapshot, 'version'> = {
    node: snapshotNode,
    mesh: {
      trustDomain: prepared.trustDomain,
      clusterDomain: prepared.clusterDomain,
      trustBundle: [...(input.trustBundle ?? [])],
      ...(input.signingCa !== undefined ? { signingCa: input.signingCa } : {}),
      // PeerAuthentication overrides MeshConfig for a sidecar's workload or namespace; other proxies follow MeshConfig.
      mtls: {
        mode:
          node.mode === 'sidecar'
            ? workloadMtlsMode(indexPeerAuthentications(input), node.namespace, template?.metadata.labels ?? (template ? {} : undefined), input.meshConfig?.spec?.mtls?.mode ?? 'STRICT')
            : (input.meshConfig?.spec?.mtls?.mode ?? 'STRICT'),
      },
      ...detectionTimeout(input),
      ...meshLimits(input),
      ...pathNormalization(input),
      ...observability(input),
    },
    services,
    routes,
    backends: prepared.backends,
    inbound: {
      ports: inboundPorts,
      ...(inboundLimits.length > 0 ? { rateLimits: inboundLimits } : {}),
      ...(inboundAuthorization ? { authorization: inboundAuthorization } : {}),
    },
    upstreams,
  };
  // Gateway proxies serve one Gateway instead of the mesh's service ports.
  if (node.mode === 'gateway') {
    applyGateway(snapshot, input, node);
    applyL4Gateway(snapshot, input, node);
    if (snapshot.gateway) {
      const gatewayAuthz = gatewayAuthorization(authorization, snapshot.gateway.namespace, snapshot.gateway.name);
      if (gatewayAuthz) snapshot.gateway.authorization = gatewayAuthz;
    }
  }
  // RequestAuthentication: JWT rules and API keys checked on arrival at a workload's proxy (sidecar or node), or at the Gateway.
  const inboundAuthn = node.mode === 'gateway' ? undefined : template ? inboundRequestAuthentication(input, template) : undefined;
  if (inboundAuthn) snapshot.inbound = withAuthn(snapshot.inbound, inboundAuthn);
  if (snapshot.gateway) snapshot.gateway = withAuthn(snapshot.gateway, gatewayRequestAuthentication(input, snapshot.gateway.namespace, snapshot.gateway.name));
  return { version: sha256Hex(canonicalJson(snapshot, prepared.sharedJson)), ...snapshot };
}

/** The section with the rules that apply, leaving out empty lists (a snapshot without them reads as before). */
function withAuthn<T extends { requestAuthentication?: SnapshotJwtRule[]; apiKeys?: SnapshotApiKeyRule[] }>(section: T, rules: RequestAuthnRules): T {
  if (rules.jwtRules.length === 0 && rules.apiKeys.length === 0) return section;
  return { ...section, ...(rules.jwtRules.length > 0 ? { requestAuthentication: rules.jwtRules } : {}), ...(rules.apiKeys.length > 0 ? { apiKeys: rules.apiKeys } : {}) };
}

/** The content hash of a snapshot: SHA-256 of its canonical JSON without `version`. */
export function snapshotVersion(snapshot: Omit<ProxySnapshot, 'version'> & { version?: string }): string {
  const { version: _ignored, ...content } = snapshot;
  return sha256Hex(canonicalJson(content));
}

/**
 * The part of NodeInfo a snapshot depends on. Proxies with equal keys (the
 * replicas of one workload) share one snapshot in the cache.
 */
export function snapshotInputKey(node: NodeInfo): string {
  const key: unknown[] = [node.mode, node.namespace, node.workload ?? null, sortedUnique(node.appPorts)];
  if (node.gateway !== undefined) key.push(node.gateway);
  return canonicalJson(key);
}

/** MeshConfig's limits for the snapshot's mesh part, durations in ms; nothing when unset (proxies keep their defaults). */
function meshLimits(input: CompilerInput): { limits?: SnapshotLimits } {
  const spec = input.meshConfig?.spec?.limits;
  if (!spec) return {};
  const { headersTimeout, requestTimeout, idleTimeout, h2SessionIdleTimeout, ...counts } = spec;
  const limits: SnapshotLimits = { ...counts };
  const durations: [keyof SnapshotLimits, string | undefined][] = [
    ['headersTimeoutMs', headersTimeout],
    ['requestTimeoutMs', requestTimeout],
    ['idleTimeoutMs', idleTimeout],
    ['h2SessionIdleTimeoutMs', h2SessionIdleTimeout],
  ];
  for (const [key, text] of durations) {
    const ms = text === undefined ? undefined : parseGatewayDuration(text);
    if (ms !== undefined) limits[key] = ms;
  }
  return Object.keys(limits).length > 0 ? { limits } : {};
}

/** MeshConfig's protocolDetectionTimeout for the snapshot's mesh part; nothing when unset (proxies keep their default). */
function detectionTimeout(input: CompilerInput): { protocolDetectionTimeoutMs?: number } {
  const text = input.meshConfig?.spec?.protocolDetectionTimeout;
  const ms = text === undefined ? undefined : parseGatewayDuration(text);
  return ms === undefined ? {} : { protocolDetectionTimeoutMs: ms };
}

/** MeshConfig's pathNormalization; nothing for BASE (the proxies' default), so that snapshots without it keep their versions. */
function pathNormalization(input: CompilerInput): Pick<ProxySnapshot['mesh'], 'pathNormalization'> {
  const mode = input.meshConfig?.spec?.pathNormalization;
  return mode === undefined || mode === 'BASE' ? {} : { pathNormalization: mode };
}

function sortedUnique(ports: readonly number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

function isPort(n: unknown): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export interface CheckSnapshotOptions {
  /**
   * The version was computed from this very object a moment ago (the control
   * plane, right after compile): hashing a large snapshot a second time was a
   * fifth of a compile pass, and can only find what compile already did.
   */
  versionTrusted?: boolean;
}

/**
 * Consistency problems of a snapshot; empty when it is consistent. The
 * control plane runs it before publishing, the proxy before applying.
 */
export function checkSnapshot(s: ProxySnapshot, options: CheckSnapshotOptions = {}): string[] {
  const problems: string[] = [];
  if (!options.versionTrusted && snapshotVersion(s) !== s.version) problems.push(`version ${s.version} is not the content hash of the snapshot`);

  for (const [key, backend] of Object.entries(s.backends)) {
    if (backend.key !== key) problems.push(`backends["${key}"] has key "${backend.key}"`);
    const portKey = servicePortKey(backend.namespace, backend.service, backend.port);
    // A route's variant of a Service port's backend is keyed by the port's key and the variant.
    const expectedKey = backend.variant !== undefined ? backendVariantKey(portKey, backend.variant) : portKey;
    if (expectedKey !== key) problems.push(`backends["${key}"] is for ${expectedKey}`);
    const ids = new Set<string>();
    for (const endpoint of backend.endpoints) {
      if (ids.has(endpoint.id)) problems.push(`backends["${key}"] lists endpoint ${endpoint.id} twice`);
      ids.add(endpoint.id);
      if (!isPort(endpoint.port)) problems.push(`backends["${key}"] endpoint ${endpoint.id} has an invalid port ${endpoint.port}`);
      if (endpoint.tunnelPort !== undefined && !isPort(endpoint.tunnelPort)) {
        problems.push(`backends["${key}"] endpoint ${endpoint.id} has an invalid tunnelPort ${endpoint.tunnelPort}`);
      }
    }
  }

  for (const [key, table] of Object.entries(s.routes)) {
    if (table.key !== key) problems.push(`routes["${key}"] has key "${table.key}"`);
    const ruleIds = new Set<string>();
    for (const rule of table.rules) {
      if (ruleIds.has(rule.id)) problems.push(`routes["${key}"] has rule id ${rule.id} twice`);
      ruleIds.add(rule.id);
      for (const backend of rule.backends) {
        if (backend.backend !== undefined && !(backend.backend in s.backends)) {
          problems.push(`routes["${key}"] rule ${rule.id} sends to backend ${backend.backend}, which is not in backends`);
        }
        if (!Number.isInteger(backend.weight) || backend.weight < 0) problems.push(`routes["${key}"] rule ${rule.id} has weight ${backend.weight}`);
      }
      for (const filter of [...rule.filters, ...rule.backends.flatMap((b) => b.filters)]) {
        if (filter.type === 'GraphQL') {
          for (const [field, resolver] of Object.entries(filter.graphql.resolvers)) {
            if (!(resolver.backend in s.backends)) problems.push(`routes["${key}"] rule ${rule.id}: GraphQLApi ${filter.graphql.name} resolves ${field} with backend ${resolver.backend}, which is not in backends`);
          }
        }
        if (filter.type === 'RequestMirror' && filter.mirror.backend !== undefined && !(filter.mirror.backend in s.backends)) {
          problems.push(`routes["${key}"] rule ${rule.id} mirrors to backend ${filter.mirror.backend}, which is not in backends`);
        }
      }
      for (const regex of regexesOf(rule.match)) {
        try {
          new RegExp(`^(?:${regex})$`);
        } catch {
          problems.push(`routes["${key}"] rule ${rule.id} has an invalid regular expression "${regex}"`);
        }
      }
    }
  }

  const hostPorts = new Map<string, string>();
  const serviceIds = new Set<string>();
  for (const service of s.services) {
    const id = `${service.namespace}/${service.name}`;
    if (serviceIds.has(id)) problems.push(`service ${id} is listed twice`);
    serviceIds.add(id);
    for (const port of service.ports) {
      if (!(port.routeKey in s.routes)) problems.push(`service ${id} port ${port.port} has route key ${port.routeKey}, which is not in routes`);
      for (const host of service.hosts) {
        const hostPort = `${host}:${port.port}`;
        const owner = hostPorts.get(hostPort);
        if (owner !== undefined && owner !== id) problems.push(`${hostPort} reaches both ${owner} and ${id}`);
        hostPorts.set(hostPort, id);
      }
    }
  }

  const localPorts = new Set<number>();
  for (const upstream of s.upstreams) {
    if (!(upstream.routeKey in s.routes)) problems.push(`upstream on localPort ${upstream.localPort} has route key ${upstream.routeKey}, which is not in routes`);
    if (localPorts.has(upstream.localPort)) problems.push(`upstream localPort ${upstream.localPort} is used twice`);
    if (!isPort(upstream.localPort)) problems.push(`upstream localPort ${upstream.localPort} is not a port`);
    localPorts.add(upstream.localPort);
  }

  for (const port of s.inbound.ports) if (!isPort(port)) problems.push(`inbound port ${port} is not a port`);
  problems.push(...checkGatewaySnapshot(s));
  return problems;
}

function regexesOf(match: ProxySnapshot['routes'][string]['rules'][number]['match']): string[] {
  const regexes: string[] = [];
  if (match.path?.type === 'RegularExpression') regexes.push(match.path.value);
  for (const h of match.headers ?? []) if (h.type === 'RegularExpression') regexes.push(h.value);
  for (const q of match.queryParams ?? []) if (q.type === 'RegularExpression') regexes.push(q.value);
  return regexes;
}
