// What the pages derive from the objects: keys, label selection, a service's routes, endpoints and callers, status conditions. Pure: no DOM.
import type { Condition, Resource } from '../api/meta.ts';
import type { HTTPBackendRef, HTTPRouteSpec, ParentReference, ServiceSpec, WorkloadSpec } from '../api/resources.ts';
import type { ProxyStatus } from '../api/stream.ts';

/** The label a registered instance carries, naming the template Workload it was started from (control plane). */
export const WORKLOAD_LABEL = 'weft.dev/workload';
/** The annotation naming the proxy that registered an instance. */
export const PROXY_ANNOTATION = 'weft.dev/proxy';

export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/** The store's key of an object: versions of a group share it, as on the server. */
export function keyOf(o: { apiVersion: string; kind: string; metadata: { namespace?: string | undefined; name: string } }): string {
  return `${groupOf(o.apiVersion) || 'core'}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** "ns/name", the id of a service everywhere in the dashboard. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function displayName(o: { metadata: { namespace?: string | undefined; name: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export interface Objects {
  services: Resource<ServiceSpec>[];
  /** Templates: what the user declared (no address). */
  workloads: Resource<WorkloadSpec>[];
  /** Instances: registered by proxies (or declared with an address). */
  instances: Resource<WorkloadSpec>[];
  routes: Resource<HTTPRouteSpec>[];
  gateways: Resource[];
  all: Resource[];
}

export function byName<T extends { metadata: { namespace?: string | undefined; name: string } }>(a: T, b: T): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  // Numeric: s2 before s10, as people number their services.
  return an === bn ? a.metadata.name.localeCompare(b.metadata.name, 'en', { numeric: true }) : an.localeCompare(bn, 'en', { numeric: true });
}

export function partition(all: Iterable<Resource>): Objects {
  const out: Objects = { services: [], workloads: [], instances: [], routes: [], gateways: [], all: [] };
  for (const o of all) {
    out.all.push(o);
    if (o.kind === 'Service' && groupOf(o.apiVersion) === '') out.services.push(o as Resource<ServiceSpec>);
    else if (o.kind === 'Workload') {
      const w = o as Resource<WorkloadSpec>;
      (w.spec?.address ? out.instances : out.workloads).push(w);
    } else if (o.kind === 'HTTPRoute') out.routes.push(o as Resource<HTTPRouteSpec>);
    else if (o.kind === 'Gateway' && groupOf(o.apiVersion) === 'gateway.networking.k8s.io') out.gateways.push(o);
  }
  for (const list of [out.services, out.workloads, out.instances, out.routes, out.gateways, out.all]) list.sort(byName);
  return out;
}

export function namespacesOf(all: Iterable<Resource>): string[] {
  const set = new Set<string>();
  for (const o of all) {
    if (o.metadata.namespace) set.add(o.metadata.namespace);
    if (o.kind === 'Namespace') set.add(o.metadata.name);
  }
  return [...set].sort();
}

/** Kubernetes selector semantics: every key of the selector matches; an empty or absent selector selects nothing. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => labels?.[k] === v);
}

/** The services whose selector picks this workload (template or instance), in its namespace. */
export function servicesOf(workload: Resource, services: readonly Resource<ServiceSpec>[]): Resource<ServiceSpec>[] {
  return services.filter((s) => s.metadata.namespace === workload.metadata.namespace && selects(s.spec?.selector, workload.metadata.labels));
}

/** "name" or "name.namespace" as an upstream names a service. */
export function parseServiceRef(ref: string, defaultNamespace: string): { namespace: string; name: string } {
  const dot = ref.indexOf('.');
  return dot === -1 ? { namespace: defaultNamespace, name: ref } : { namespace: ref.slice(dot + 1).split('.')[0]!, name: ref.slice(0, dot) };
}

const isCoreGroup = (group: string | undefined) => group === undefined || group === '' || group === 'core';

/** A GAMMA parent: a route attached to a core Service. As the compiler reads it, kind Service without a group means the core one. */
export function isServiceParent(ref: ParentReference): boolean {
  return ref.kind === 'Service' && isCoreGroup(ref.group);
}

/** A Gateway parent: kind and group default to the Gateway API's Gateway. */
export function isGatewayParent(ref: ParentReference): boolean {
  return (ref.kind ?? 'Gateway') === 'Gateway' && (ref.group ?? 'gateway.networking.k8s.io') === 'gateway.networking.k8s.io';
}

export function isServiceBackend(ref: HTTPBackendRef): boolean {
  return (ref.kind ?? 'Service') === 'Service' && isCoreGroup(ref.group);
}

export interface RouteBackendShare {
  namespace: string;
  name: string;
  port?: number | undefined;
  weight: number;
  /** weight / the rule's total; 0 when every weight is 0. */
  share: number;
}

/** A rule's backends with their shares of its traffic. */
export function ruleBackends(route: Resource<HTTPRouteSpec>, ruleIndex: number): RouteBackendShare[] {
  const namespace = route.metadata.namespace ?? 'default';
  const refs = (route.spec?.rules?.[ruleIndex]?.backendRefs ?? []).filter(isServiceBackend);
  const total = refs.reduce((sum, r) => sum + (r.weight ?? 1), 0);
  return refs.map((r) => ({
    namespace: r.namespace ?? namespace,
    name: r.name,
    port: r.port,
    weight: r.weight ?? 1,
    share: total > 0 ? (r.weight ?? 1) / total : 0,
  }));
}

/** Routes attached to the service (its GAMMA routes) and routes that send traffic to it. */
export function routesOfService(namespace: string, name: string, routes: readonly Resource<HTTPRouteSpec>[]): { attached: Resource<HTTPRouteSpec>[]; sendingHere: Resource<HTTPRouteSpec>[] } {
  const attached: Resource<HTTPRouteSpec>[] = [];
  const sendingHere: Resource<HTTPRouteSpec>[] = [];
  for (const route of routes) {
    const routeNs = route.metadata.namespace ?? 'default';
    if ((route.spec?.parentRefs ?? []).some((p) => isServiceParent(p) && p.name === name && (p.namespace ?? routeNs) === namespace)) attached.push(route);
    const rules = route.spec?.rules ?? [];
    if (rules.some((_, i) => ruleBackends(route, i).some((b) => b.name === name && b.namespace === namespace))) sendingHere.push(route);
  }
  return { attached, sendingHere };
}

export interface Endpoint {
  instance: Resource<WorkloadSpec>;
  proxy: ProxyStatus | undefined;
  /** Registered and its proxy connected and ready: what the proxies send traffic to. */
  ready: boolean;
  /** Why not ready, for people. */
  reason: string;
}

/** The registered instances a service selects, each with its proxy's view. An instance exists only while its proxy reports the app ready. */
export function endpointsOf(service: Resource<ServiceSpec>, instances: readonly Resource<WorkloadSpec>[], proxies: readonly ProxyStatus[]): Endpoint[] {
  const byId = new Map(proxies.map((p) => [p.id, p]));
  return instances
    .filter((i) => i.metadata.namespace === service.metadata.namespace && selects(service.spec?.selector, i.metadata.labels))
    .map((instance) => {
      const proxyId = instance.metadata.annotations?.[PROXY_ANNOTATION];
      const proxy = proxyId ? byId.get(proxyId) : undefined;
      // A static endpoint (declared with an address, no proxy) is taken as ready: nothing reports otherwise.
      if (!proxyId) return { instance, proxy, ready: true, reason: 'static endpoint' };
      if (!proxy) return { instance, proxy, ready: false, reason: 'proxy unknown to the control plane' };
      if (!proxy.connected) return { instance, proxy, ready: false, reason: 'proxy disconnected' };
      if (!proxy.ready) return { instance, proxy, ready: false, reason: 'app not answering its proxy' };
      return { instance, proxy, ready: true, reason: 'ready' };
    });
}

/** Every condition an object reports: `status.conditions`, or per parent for routes (`status.parents[].conditions`). */
export function conditionsOf(o: Resource): { scope?: string; condition: Condition }[] {
  const status = o.status as { conditions?: Condition[]; parents?: { parentRef?: ParentReference; conditions?: Condition[] }[] } | undefined;
  const out: { scope?: string; condition: Condition }[] = [];
  for (const c of status?.conditions ?? []) out.push({ condition: c });
  for (const p of status?.parents ?? []) {
    const ref = p.parentRef;
    const scope = ref ? `${ref.kind ?? 'Gateway'} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}${ref.port ? `:${ref.port}` : ''}` : 'parent';
    for (const c of p.conditions ?? []) out.push({ scope, condition: c });
  }
  return out;
}

export type Health = 'ok' | 'problem' | 'pending';

/**
 * One word for an object's conditions: a problem when any condition is not
 * True (Gateway API conditions are all positive-polarity), pending when there
 * are none yet.
 */
export function conditionHealth(o: Resource): Health {
  const conditions = conditionsOf(o);
  if (conditions.length === 0) return 'pending';
  return conditions.every((c) => c.condition.status === 'True') ? 'ok' : 'problem';
}

/** Managed fields a person should not edit or copy into another cluster. */
export function editable(o: Resource): Resource {
  const { uid: _uid, resourceVersion: _rv, generation: _g, creationTimestamp: _ct, ...metadata } = o.metadata as Resource['metadata'] & { managedFields?: unknown };
  delete (metadata as { managedFields?: unknown }).managedFields;
  return { apiVersion: o.apiVersion, kind: o.kind, metadata, spec: o.spec };
}

/** "3m", "2h", "5d": how long ago an ISO time was, for tables. */
export function age(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export function shortVersion(version: string | undefined): string {
  return version ? version.slice(0, 12) : '-';
}

/** The policy kinds the Service page lists, with how each one picks what it applies to. */
export const POLICY_KINDS = ['BackendTrafficPolicy', 'RateLimitPolicy', 'RequestAuthentication', 'AuthorizationPolicy', 'PeerAuthentication'] as const;

export interface AppliedPolicy {
  policy: Resource;
  /** In words: "targets Service catalog (port http)", "selects app=catalog", "namespace-wide". */
  why: string;
}

interface PolicyTarget {
  kind?: string;
  name?: string;
  sectionName?: string;
}

/**
 * The policies that apply to a Service, as the compiler attaches them: by
 * targetRefs (the Service, or a route attached to it), by a label selector
 * that picks one of its workloads, or namespace-wide when a policy kind that
 * allows it names neither. Policies live in the Service's namespace.
 */
export function policiesOf(namespace: string, name: string, all: readonly Resource[], workloads: readonly Resource<WorkloadSpec>[], attachedRoutes: readonly Resource<HTTPRouteSpec>[]): AppliedPolicy[] {
  const routeNames = new Set(attachedRoutes.map((r) => `${r.kind}/${r.metadata.name}`));
  const behind = workloads.filter((w) => (w.metadata.namespace ?? 'default') === namespace);
  const out: AppliedPolicy[] = [];
  for (const policy of all) {
    if (!(POLICY_KINDS as readonly string[]).includes(policy.kind) || (policy.metadata.namespace ?? 'default') !== namespace) continue;
    const spec = (policy.spec ?? {}) as { targetRefs?: PolicyTarget[]; selector?: { matchLabels?: Record<string, string> } };
    if (spec.targetRefs) {
      for (const ref of spec.targetRefs) {
        if (ref.kind === 'Service' && ref.name === name) out.push({ policy, why: `targets Service ${name}${ref.sectionName ? ` (${ref.sectionName})` : ''}` });
        else if ((ref.kind === 'HTTPRoute' || ref.kind === 'GRPCRoute') && routeNames.has(`${ref.kind}/${ref.name}`)) out.push({ policy, why: `targets ${ref.kind} ${ref.name}${ref.sectionName ? ` (rule ${ref.sectionName})` : ''}, attached to it` });
        else continue;
        break;
      }
      continue;
    }
    const matchLabels = spec.selector?.matchLabels;
    if (matchLabels) {
      const picked = behind.filter((w) => selects(matchLabels, w.metadata.labels));
      if (picked.length) out.push({ policy, why: `selects ${Object.entries(matchLabels).map(([k, v]) => `${k}=${v}`).join(', ')} (${picked.map((w) => w.metadata.name).join(', ')})` });
      continue;
    }
    // Targeted kinds need a target; the others without one cover the namespace.
    if (policy.kind === 'RequestAuthentication' || policy.kind === 'AuthorizationPolicy' || policy.kind === 'PeerAuthentication') out.push({ policy, why: `namespace-wide (every workload in ${namespace})` });
  }
  return out;
}
