// The topology as nodes and edges: services from the config, edges from route splits and upstreams, numbers from the traffic API. Pure: no DOM.
//
// Ids are stable across updates (they name what an element stands for, not
// its position in a list), so that the view can update elements in place and
// keep the user's zoom, selection and the layout.
import type { Resource } from '../../api/meta.ts';
import type { HTTPRouteSpec, ServiceSpec, WorkloadSpec } from '../../api/resources.ts';
import type { TopologyTraffic, TrafficPeer, TrafficStats } from '../../api/topology.ts';
import { isGatewayParent, isServiceParent, parseServiceRef, ruleBackends, selects, serviceKey, servicesOf } from '../model.ts';

export type TrafficHealth = 'healthy' | 'degraded' | 'failing' | 'idle' | 'unknown';

/** Thresholds for colours: below these success rates or above this p99 an edge is degraded or failing. */
export const HEALTH_THRESHOLDS = { degradedSuccess: 0.99, failingSuccess: 0.95, degradedP99Ms: 1000 } as const;

export interface GraphNode {
  id: string;
  kind: 'service' | 'workload' | 'gateway' | 'external';
  namespace: string;
  name: string;
  label: string;
  /** In another namespace than the filter's, shown because an edge reaches it. */
  foreign: boolean;
  /** Referenced (by a route or upstream) but not defined. */
  missing: boolean;
  health: TrafficHealth;
  stats?: TrafficStats | undefined;
  /** Registered instances ready / declared replicas, for workloads and services. */
  ready?: number;
  expected?: number;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  kind: 'split' | 'upstream' | 'traffic' | 'selects';
  /** For split edges: the route, rule and the backend's share of the rule's weight. */
  route?: string;
  rule?: number;
  share?: number;
  /** The share of the route's observed requests that went this way, when there is traffic. */
  observedShare?: number;
  stats?: TrafficStats | undefined;
  mtls?: boolean;
  health: TrafficHealth;
  label: string;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface GraphInput {
  services: readonly Resource<ServiceSpec>[];
  workloads: readonly Resource<WorkloadSpec>[];
  instances: readonly Resource<WorkloadSpec>[];
  routes: readonly Resource<HTTPRouteSpec>[];
  /** Gateways: routes attached to them draw from a gateway node. */
  gateways?: readonly Resource[] | undefined;
  /** Only this namespace (and the neighbours its edges reach); undefined: all. */
  namespace?: string | undefined;
  showWorkloads: boolean;
  traffic?: TopologyTraffic | undefined;
}

export const serviceNodeId = (namespace: string, name: string) => `svc:${namespace}/${name}`;
export const workloadNodeId = (namespace: string, name: string) => `wl:${namespace}/${name}`;
export const gatewayNodeId = (namespace: string, name: string) => `gw:${namespace}/${name}`;
/** How a gateway's proxies name their workload in traffic reports ("<gateway>.gateway"), and how they say a request was addressed to a listener. */
const GATEWAY_WORKLOAD_SUFFIX = '.gateway';
const GATEWAY_VIA_PREFIX = 'gateway:';
export const EXTERNAL_NODE_ID = 'ext:outside';

export function healthOf(stats: TrafficStats | undefined): TrafficHealth {
  if (!stats) return 'unknown';
  if (!(stats.requestsPerSecond > 0) || stats.successRate === undefined) return 'idle';
  if (stats.successRate < HEALTH_THRESHOLDS.failingSuccess) return 'failing';
  if (stats.successRate < HEALTH_THRESHOLDS.degradedSuccess || (stats.p99Ms ?? 0) > HEALTH_THRESHOLDS.degradedP99Ms) return 'degraded';
  return 'healthy';
}

/** Adds two edges' numbers: rates add, success is weighted by rate, the percentiles keep the worse (an upper bound). */
export function mergeStats(a: TrafficStats | undefined, b: TrafficStats): TrafficStats {
  if (!a) return { ...b };
  const rps = a.requestsPerSecond + b.requestsPerSecond;
  const out: TrafficStats = { requestsPerSecond: rps };
  if (a.successRate !== undefined || b.successRate !== undefined) {
    const wa = a.successRate === undefined ? 0 : a.requestsPerSecond;
    const wb = b.successRate === undefined ? 0 : b.requestsPerSecond;
    out.successRate = wa + wb > 0 ? ((a.successRate ?? 0) * wa + (b.successRate ?? 0) * wb) / (wa + wb) : (a.successRate ?? b.successRate);
  }
  for (const k of ['p50Ms', 'p90Ms', 'p99Ms'] as const) {
    const v = Math.max(a[k] ?? -1, b[k] ?? -1);
    if (v >= 0) out[k] = v;
  }
  if (a.bytesPerSecond !== undefined || b.bytesPerSecond !== undefined) out.bytesPerSecond = (a.bytesPerSecond ?? 0) + (b.bytesPerSecond ?? 0);
  return out;
}

export function formatRate(rps: number): string {
  if (rps >= 100) return `${Math.round(rps)} rps`;
  if (rps >= 10) return `${rps.toFixed(1)} rps`;
  return `${rps.toFixed(2)} rps`;
}

export function formatPercent(share: number): string {
  const pct = share * 100;
  return Number.isInteger(Math.round(pct * 10) / 10) ? `${Math.round(pct)}%` : `${pct.toFixed(1)}%`;
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

/** "12.3 rps · 99.5% · p99 45 ms": the golden numbers of an edge or node. */
export function statsLabel(stats: TrafficStats | undefined): string {
  if (!stats) return '';
  const parts = [formatRate(stats.requestsPerSecond)];
  if (stats.successRate !== undefined) parts.push(`${(stats.successRate * 100).toFixed(stats.successRate >= 0.999 || stats.successRate === 0 ? 0 : 1)}% ok`);
  if (stats.p99Ms !== undefined) parts.push(`p99 ${formatMs(stats.p99Ms)}`);
  return parts.join(' · ');
}

export function buildGraph(input: GraphInput): Graph {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const serviceByKey = new Map(input.services.map((s) => [serviceKey(s.metadata.namespace ?? 'default', s.metadata.name), s]));
  const templateByKey = new Map(input.workloads.map((w) => [serviceKey(w.metadata.namespace ?? 'default', w.metadata.name), w]));
  const inScope = (namespace: string) => input.namespace === undefined || input.namespace === namespace;

  const addService = (namespace: string, name: string): string => {
    const id = serviceNodeId(namespace, name);
    if (!nodes.has(id)) {
      const missing = !serviceByKey.has(serviceKey(namespace, name));
      nodes.set(id, {
        id,
        kind: 'service',
        namespace,
        name,
        label: name,
        foreign: !inScope(namespace),
        missing,
        health: 'unknown',
      });
    }
    return id;
  };
  const addWorkload = (namespace: string, name: string): string => {
    const id = workloadNodeId(namespace, name);
    if (!nodes.has(id)) {
      const template = templateByKey.get(serviceKey(namespace, name));
      const ready = input.instances.filter((i) => i.metadata.namespace === namespace && i.metadata.labels?.['weft.dev/workload'] === name).length;
      nodes.set(id, {
        id,
        kind: 'workload',
        namespace,
        name,
        label: name,
        foreign: !inScope(namespace),
        missing: !template,
        health: 'unknown',
        ready,
        expected: template?.spec?.replicas ?? 1,
      });
    }
    return id;
  };
  const addEdge = (edge: GraphEdge) => {
    // Edges between two nodes outside the filter are not the filtered namespace's business.
    const a = nodes.get(edge.source);
    const b = nodes.get(edge.target);
    if (a?.foreign && b?.foreign) return;
    edges.set(edge.id, edge);
  };

  for (const s of input.services) {
    const namespace = s.metadata.namespace ?? 'default';
    if (inScope(namespace)) addService(namespace, s.metadata.name);
  }

  const gatewayKeys = new Set((input.gateways ?? []).map((g) => serviceKey(g.metadata.namespace ?? 'default', g.metadata.name)));
  const addGateway = (namespace: string, name: string): string => {
    const id = gatewayNodeId(namespace, name);
    if (!nodes.has(id)) {
      nodes.set(id, { id, kind: 'gateway', namespace, name, label: name, foreign: !inScope(namespace), missing: !gatewayKeys.has(serviceKey(namespace, name)), health: 'unknown' });
    }
    return id;
  };
  for (const g of input.gateways ?? []) {
    const namespace = g.metadata.namespace ?? 'default';
    if (inScope(namespace)) addGateway(namespace, g.metadata.name);
  }

  // Route splits: parent service (or gateway) → each backend with its share of the rule.
  for (const route of input.routes) {
    const routeNs = route.metadata.namespace ?? 'default';
    const routeName = `${routeNs}/${route.metadata.name}`;
    const parents: { kind: 'service' | 'gateway'; namespace: string; name: string }[] = [];
    for (const p of route.spec?.parentRefs ?? []) {
      if (isServiceParent(p)) parents.push({ kind: 'service', namespace: p.namespace ?? routeNs, name: p.name });
      else if (isGatewayParent(p)) parents.push({ kind: 'gateway', namespace: p.namespace ?? routeNs, name: p.name });
    }
    const rules = route.spec?.rules ?? [];
    for (const parent of parents) {
      const touchesScope = inScope(parent.namespace) || rules.some((_, r) => ruleBackends(route, r).some((b) => inScope(b.namespace)));
      if (!touchesScope) continue;
      const parentId = parent.kind === 'service' ? addService(parent.namespace, parent.name) : addGateway(parent.namespace, parent.name);
      rules.forEach((rule, r) => {
        // The same backend twice in one rule is one edge with the summed share.
        const shares = new Map<string, number>();
        for (const b of ruleBackends(route, r)) {
          const backendId = addService(b.namespace, b.name);
          shares.set(backendId, (shares.get(backendId) ?? 0) + b.share);
        }
        for (const [backendId, share] of shares) {
          const ruleName = rules.length > 1 ? `${rule.name ?? `rule ${r + 1}`}: ` : '';
          addEdge({
            id: `split:${routeName}:${parentId}:${r}:${backendId}`,
            source: parentId,
            target: backendId,
            kind: 'split',
            route: routeName,
            rule: r,
            share,
            health: 'unknown',
            label: `${ruleName}${formatPercent(share)}`,
          });
        }
      });
    }
  }

  // Upstreams: the services a workload belongs to (or the workload itself) → the upstream service.
  for (const w of input.workloads) {
    const namespace = w.metadata.namespace ?? 'default';
    for (const upstream of w.spec?.upstreams ?? []) {
      const target = parseServiceRef(upstream.service, namespace);
      if (!inScope(namespace) && !inScope(target.namespace)) continue;
      const owners = input.showWorkloads ? [] : servicesOf(w, input.services);
      const sources = owners.length
        ? owners.map((s) => addService(s.metadata.namespace ?? 'default', s.metadata.name))
        : [addWorkload(namespace, w.metadata.name)];
      const targetId = addService(target.namespace, target.name);
      for (const sourceId of sources) {
        addEdge({
          id: `upstream:${sourceId}->${targetId}:${upstream.port}`,
          source: sourceId,
          target: targetId,
          kind: 'upstream',
          health: 'unknown',
          label: `upstream :${upstream.port} via 127.0.0.1:${upstream.localPort}`,
        });
      }
    }
  }

  if (input.showWorkloads) {
    for (const w of input.workloads) {
      const namespace = w.metadata.namespace ?? 'default';
      if (!inScope(namespace)) continue;
      const workloadId = addWorkload(namespace, w.metadata.name);
      for (const s of servicesOf(w, input.services)) {
        addEdge({
          id: `selects:${serviceNodeId(namespace, s.metadata.name)}->${workloadId}`,
          source: serviceNodeId(namespace, s.metadata.name),
          target: workloadId,
          kind: 'selects',
          health: 'unknown',
          label: '',
        });
      }
    }
  }

  if (input.traffic) addTraffic(input, nodes, edges, addService, addWorkload, addEdge);

  // A node outside the filter is drawn for an edge that reaches it; one whose edges were all left out is not.
  if (input.namespace !== undefined) {
    const linked = new Set<string>();
    for (const edge of edges.values()) linked.add(edge.source).add(edge.target);
    for (const [id, node] of nodes) if (node.foreign && !linked.has(id)) nodes.delete(id);
  }

  for (const node of nodes.values()) {
    if (node.kind !== 'service' || node.missing) continue;
    const service = serviceByKey.get(serviceKey(node.namespace, node.name));
    if (!service) continue;
    node.ready = input.instances.filter((i) => i.metadata.namespace === node.namespace && selects(service.spec?.selector, i.metadata.labels)).length;
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

function addTraffic(
  input: GraphInput,
  nodes: Map<string, GraphNode>,
  edges: Map<string, GraphEdge>,
  addService: (namespace: string, name: string) => string,
  addWorkload: (namespace: string, name: string) => string,
  addEdge: (edge: GraphEdge) => void,
): void {
  const traffic = input.traffic!;
  /** A Gateway's node, when the graph has that Gateway (its proxies report as workload "<name>.gateway"). */
  const gatewayNode = (namespace: string, name: string): string | undefined => {
    const id = gatewayNodeId(namespace, name);
    return nodes.has(id) ? id : undefined;
  };
  for (const s of traffic.services) {
    if (!input.namespace || s.namespace === input.namespace) {
      // A Gateway listener's numbers are the Gateway node's.
      const listener = s.namespace.startsWith(GATEWAY_VIA_PREFIX) ? gatewayNode(s.namespace.slice(GATEWAY_VIA_PREFIX.length), s.service.split('/')[0]!) : undefined;
      const node = nodes.get(listener ?? addService(s.namespace, s.service));
      if (node) {
        node.stats = { ...s };
        node.health = healthOf(node.stats);
      }
    }
  }
  const templates = input.workloads;
  const sourceIds = (peer: TrafficPeer): string[] => {
    if (peer.service) return [addService(peer.namespace, peer.service)];
    const gateway = peer.workload?.endsWith(GATEWAY_WORKLOAD_SUFFIX) ? gatewayNode(peer.namespace, peer.workload.slice(0, -GATEWAY_WORKLOAD_SUFFIX.length)) : undefined;
    if (gateway) return [gateway];
    if (peer.workload) {
      const template = templates.find((w) => (w.metadata.namespace ?? 'default') === peer.namespace && w.metadata.name === peer.workload);
      const owners = !input.showWorkloads && template ? servicesOf(template, input.services) : [];
      // A workload in several services (catalog and catalog-v1): its calls are drawn once, from the one that selects it most narrowly.
      const owner = owners.sort((a, b) => Object.keys(b.spec?.selector ?? {}).length - Object.keys(a.spec?.selector ?? {}).length)[0];
      return owner ? [addService(peer.namespace, owner.metadata.name)] : [addWorkload(peer.namespace, peer.workload)];
    }
    if (!nodes.has(EXTERNAL_NODE_ID)) {
      nodes.set(EXTERNAL_NODE_ID, { id: EXTERNAL_NODE_ID, kind: 'external', namespace: '', name: 'outside the mesh', label: 'outside the mesh', foreign: false, missing: false, health: 'unknown' });
    }
    return [EXTERNAL_NODE_ID];
  };

  const accumulate = (id: string, source: string, target: string, stats: TrafficStats, mtls: boolean | undefined) => {
    const existing = edges.get(id);
    if (existing) {
      existing.stats = mergeStats(existing.stats, stats);
      if (mtls !== undefined) existing.mtls = (existing.mtls ?? true) && mtls;
      return;
    }
    addEdge({ id, source, target, kind: 'traffic', stats: { ...stats }, health: 'unknown', label: '', ...(mtls === undefined ? {} : { mtls }) });
  };

  /** What a request was addressed to: a Service, or a Gateway's listener (via "gateway:<ns>" / "<gateway>/<listener>/<host>"), drawn as the Gateway. */
  const addressedNode = (via: { namespace: string; service: string }): string => {
    if (via.namespace.startsWith(GATEWAY_VIA_PREFIX)) {
      const gateway = gatewayNode(via.namespace.slice(GATEWAY_VIA_PREFIX.length), via.service.split('/')[0]!);
      if (gateway) return gateway;
    }
    return addService(via.namespace, via.service);
  };

  for (const e of traffic.edges) {
    const { source: _s, destination, via, mtls, protocol: _p, ...stats } = e;
    const destinationId = addService(destination.namespace, destination.service);
    const addressed = via ? addressedNode(via) : destinationId;
    // A gateway's requests are addressed to the gateway itself: only their leg onto the route's backends is drawn.
    for (const sourceId of sourceIds(e.source)) if (sourceId !== addressed) accumulate(`traffic:${sourceId}->${addressed}`, sourceId, addressed, stats, mtls);
    if (addressed !== destinationId) {
      // The split leg: onto the route's edge when the config has one, else a traffic edge of its own.
      const split = [...edges.values()].filter((g) => g.kind === 'split' && g.source === addressed && g.target === destinationId);
      if (split.length) {
        for (const g of split) {
          g.stats = mergeStats(g.stats, { ...stats, requestsPerSecond: stats.requestsPerSecond / split.length });
          if (mtls !== undefined) g.mtls = (g.mtls ?? true) && mtls;
        }
      } else {
        accumulate(`traffic:${addressed}->${destinationId}`, addressed, destinationId, stats, mtls);
      }
    }
  }

  // Observed shares of each route's split, next to the configured ones.
  const totals = new Map<string, number>();
  for (const g of edges.values()) if (g.kind === 'split' && g.stats) totals.set(`${g.route}|${g.source}|${g.rule}`, (totals.get(`${g.route}|${g.source}|${g.rule}`) ?? 0) + g.stats.requestsPerSecond);
  for (const g of edges.values()) {
    // A config edge that saw no traffic in the window is idle, not unknown: the data exists.
    g.stats ??= g.kind === 'selects' ? undefined : { requestsPerSecond: 0 };
    g.health = healthOf(g.stats);
    if (g.kind === 'split' && g.stats) {
      const total = totals.get(`${g.route}|${g.source}|${g.rule}`) ?? 0;
      if (total > 0) g.observedShare = g.stats.requestsPerSecond / total;
    }
  }
  for (const node of nodes.values()) if (node.health === 'unknown' && node.kind !== 'external') node.health = healthOf(node.stats ?? { requestsPerSecond: 0 });
}

/**
 * The text on an edge in the graph, short enough not to cover its
 * neighbours: the share (configured, and observed) on one line, the numbers
 * on the next. mTLS is drawn as a mark, not written.
 */
export function edgeLabel(edge: GraphEdge, withTraffic: boolean): string {
  const lines: string[] = [];
  if (edge.kind === 'split') lines.push(edge.observedShare === undefined ? edge.label : `${edge.label} (seen ${formatPercent(edge.observedShare)})`);
  else if (edge.kind === 'upstream' && !withTraffic) lines.push('upstream');
  if (withTraffic && edge.stats && edge.stats.requestsPerSecond > 0) lines.push(statsLabel(edge.stats).replace(' ok', ''));
  return lines.join('\n');
}
