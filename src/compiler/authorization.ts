// AuthorizationPolicies → what each sidecar, node workload and gateway enforces (SnapshotAuthorization), and each policy's status.
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationRule, AuthorizationSource } from '../api/authorization-policy.ts';
import type { AuthorizationPolicy, Gateway, MeshConfig, Service } from '../api/resources.ts';
import type { Condition } from '../api/meta.ts';
import { servicePortKey, type SnapshotAuthorization, type SnapshotAuthzCondition, type SnapshotAuthzCustomPolicy, type SnapshotAuthzOperation, type SnapshotAuthzPolicy, type SnapshotAuthzRule, type SnapshotAuthzSource, type SnapshotExtAuthz } from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import { serviceNamespace } from './services.ts';
import { CONTROLLER_NAME } from './types.ts';

/** AuthorizationPolicies here apply mesh-wide, unless MeshConfig names another root namespace (Istio's istio-system). */
export const DEFAULT_ROOT_NAMESPACE = 'weft-system';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const GROUP_OF_KIND = { Service: '', Gateway: GATEWAY_GROUP } as const;

export interface AuthorizationAncestorStatus {
  ancestorRef: { group: string; kind: string; namespace: string; name: string };
  controllerName: string;
  conditions: Condition[];
}

/** A policy's status: `conditions` (Accepted), and with targetRefs one ancestor per ref (Gateway API PolicyStatus). */
export interface AuthorizationPolicyStatus {
  conditions: Condition[];
  ancestors?: AuthorizationAncestorStatus[];
}

/** One valid policy, compiled to the snapshot's shape, with what it applies to. */
interface IndexedPolicy {
  namespace: string;
  name: string;
  action: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
  /** CUSTOM policies carry their provider (absent: it could not be resolved, and what they match is denied). */
  compiled: SnapshotAuthzCustomPolicy;
  /** Absent: every workload in scope. */
  matchLabels?: Record<string, string>;
  /** targetRefs that exist, by kind. */
  services?: string[];
  gateways?: string[];
}

export interface AuthorizationIndex {
  policies: IndexedPolicy[];
  statuses: Map<string, AuthorizationPolicyStatus>;
  rootNamespace: string;
  defaultDeny: boolean;
}

export interface AuthorizationInput {
  authorizationPolicies?: readonly AuthorizationPolicy[] | undefined;
  services: readonly Service[];
  gateways?: readonly Gateway[] | undefined;
  meshConfig?: MeshConfig | undefined;
}

const cache = new WeakMap<readonly AuthorizationPolicy[], { key: unknown[]; index: AuthorizationIndex }>();

/** Compiles every policy once per input (remembered per policy list, services, gateways and MeshConfig). */
export function indexAuthorizationPolicies(input: AuthorizationInput): AuthorizationIndex {
  const policies = input.authorizationPolicies ?? [];
  const key = [input.services, input.gateways, input.meshConfig];
  const cached = cache.get(policies);
  if (cached && cached.key.every((k, i) => k === key[i])) return cached.index;
  const index = indexUncached(policies, input);
  cache.set(policies, { key, index });
  return index;
}

function indexUncached(policies: readonly AuthorizationPolicy[], input: AuthorizationInput): AuthorizationIndex {
  const services = new Set(input.services.map((s) => `${serviceNamespace(s)}/${s.metadata.name}`));
  const gateways = new Set((input.gateways ?? []).map((g) => `${serviceNamespace(g)}/${g.metadata.name}`));
  const statuses = new Map<string, AuthorizationPolicyStatus>();
  const indexed: IndexedPolicy[] = [];
  for (const policy of policies) {
    const ns = serviceNamespace(policy);
    const key = `${ns}/${policy.metadata.name}`;
    const generation = policy.metadata.generation;
    const spec = policy.spec;
    const problems: string[] = [];
    const refs = (spec.targetRefs ?? []).map((ref, i) => {
      const group = ref.group === undefined ? GROUP_OF_KIND[ref.kind] : ref.group === 'core' ? '' : ref.group;
      if (group !== GROUP_OF_KIND[ref.kind]) problems.push(`spec.targetRefs[${i}].group: a ${ref.kind} is in group "${GROUP_OF_KIND[ref.kind]}", not "${group}"`);
      return { group: GROUP_OF_KIND[ref.kind], kind: ref.kind, namespace: ns, name: ref.name };
    });
    if (problems.length > 0) {
      const invalid = condition('Accepted', 'False', 'Invalid', problems.join('; '), generation);
      const status: AuthorizationPolicyStatus = { conditions: [invalid] };
      if (refs.length > 0) status.ancestors = refs.map((ref) => ({ ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [invalid] }));
      statuses.set(key, status);
      continue;
    }
    const entry: IndexedPolicy = { namespace: ns, name: policy.metadata.name, action: spec.action ?? 'ALLOW', compiled: { name: key, rules: (spec.rules ?? []).map(compileRule) } };
    // A CUSTOM policy whose provider cannot be resolved still applies, closed: what it matches is denied (as Istio does).
    let providerProblem: string | undefined;
    if (spec.action === 'CUSTOM') {
      const resolved = resolveProvider(spec.provider!.name, input);
      if (resolved.provider) entry.compiled.provider = resolved.provider;
      providerProblem = resolved.problem;
    }
    if (spec.selector?.matchLabels !== undefined) entry.matchLabels = spec.selector.matchLabels;
    if (refs.length > 0) {
      const ancestors = refs.map((ref): AuthorizationAncestorStatus => {
        const exists = (ref.kind === 'Service' ? services : gateways).has(`${ns}/${ref.name}`);
        const accepted = exists
          ? condition('Accepted', 'True', 'Accepted', '', generation)
          : condition('Accepted', 'False', 'TargetNotFound', `${ref.kind} ${ns}/${ref.name} does not exist`, generation);
        return { ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [accepted] };
      });
      const found = refs.filter((_ref, i) => ancestors[i]!.conditions[0]!.status === 'True');
      entry.services = found.filter((r) => r.kind === 'Service').map((r) => r.name);
      entry.gateways = found.filter((r) => r.kind === 'Gateway').map((r) => r.name);
      const overall =
        found.length === 0
          ? condition('Accepted', 'False', 'TargetNotFound', 'none of its targetRefs exists; the policy applies nowhere', generation)
          : providerProblem !== undefined
            ? condition('Accepted', 'False', 'InvalidProvider', providerProblem, generation)
            : condition('Accepted', 'True', 'Accepted', '', generation);
      statuses.set(key, { conditions: [overall], ancestors });
    } else {
      statuses.set(key, { conditions: [providerProblem !== undefined ? condition('Accepted', 'False', 'InvalidProvider', providerProblem, generation) : condition('Accepted', 'True', 'Accepted', '', generation)] });
    }
    indexed.push(entry);
  }
  return {
    policies: indexed,
    statuses,
    rootNamespace: input.meshConfig?.spec?.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    defaultDeny: input.meshConfig?.spec?.authorization?.defaultAction === 'DENY',
  };
}

/**
 * The policies a workload (a template: its instances carry its labels and
 * `weft.dev/workload: <name>`) enforces on arrival: those of its namespace
 * with no selector and no targetRefs, those whose selector its labels match,
 * those targeting a Service of its namespace that selects it; and the same
 * from the root namespace, for workloads of every namespace (targetRefs
 * there only reach the root namespace's own Services).
 */
export function workloadAuthorization(
  index: AuthorizationIndex,
  services: readonly Service[],
  template: { metadata: { name: string; namespace?: string | undefined; labels?: Record<string, string> | undefined } },
): SnapshotAuthorization | undefined {
  const ns = serviceNamespace(template);
  const labels: Record<string, string> = { ...(template.metadata.labels ?? {}), 'weft.dev/workload': template.metadata.name };
  const selecting = new Set<string>();
  for (const service of services) {
    if (serviceNamespace(service) !== ns) continue;
    const selector = service.spec.selector ?? {};
    const keys = Object.keys(selector);
    if (keys.length > 0 && keys.every((k) => labels[k] === selector[k])) selecting.add(service.metadata.name);
  }
  return collect(index, (policy) => {
    if (policy.namespace !== ns && policy.namespace !== index.rootNamespace) return false;
    if (policy.services !== undefined || policy.gateways !== undefined) return policy.namespace === ns && (policy.services ?? []).some((name) => selecting.has(name));
    if (policy.matchLabels !== undefined) return Object.entries(policy.matchLabels).every(([k, v]) => labels[k] === v);
    return true;
  });
}

/** The policies a gateway proxy enforces: those targeting its Gateway, and namespace-wide (and mesh-wide) ones, since the gateway is a workload of its namespace. */
export function gatewayAuthorization(index: AuthorizationIndex, namespace: string, gateway: string): SnapshotAuthorization | undefined {
  return collect(index, (policy) => {
    if (policy.namespace !== namespace && policy.namespace !== index.rootNamespace) return false;
    if (policy.services !== undefined || policy.gateways !== undefined) return policy.namespace === namespace && (policy.gateways ?? []).includes(gateway);
    return policy.matchLabels === undefined;
  });
}

function collect(index: AuthorizationIndex, applies: (policy: IndexedPolicy) => boolean): SnapshotAuthorization | undefined {
  const custom: SnapshotAuthzCustomPolicy[] = [];
  const deny: SnapshotAuthzPolicy[] = [];
  const allow: SnapshotAuthzPolicy[] = [];
  const audit: SnapshotAuthzPolicy[] = [];
  for (const policy of index.policies) {
    if (!applies(policy)) continue;
    if (policy.action === 'CUSTOM') custom.push(policy.compiled);
    else (policy.action === 'DENY' ? deny : policy.action === 'AUDIT' ? audit : allow).push({ name: policy.compiled.name, rules: policy.compiled.rules });
  }
  if (custom.length === 0 && deny.length === 0 && allow.length === 0 && audit.length === 0 && !index.defaultDeny) return undefined;
  const result: SnapshotAuthorization = { deny, audit };
  if (custom.length > 0) result.custom = custom;
  if (allow.length > 0) result.allow = allow;
  if (index.defaultDeny) result.defaultDeny = true;
  return result;
}

/** A MeshConfig extensionProvider as the snapshot carries it, or why it cannot be used. */
function resolveProvider(name: string, input: AuthorizationInput): { provider?: SnapshotExtAuthz; problem?: string } {
  const found = input.meshConfig?.spec?.extensionProviders?.find((p) => p.name === name);
  if (!found) return { problem: `spec.provider.name: MeshConfig has no extensionProvider named "${name}"; the requests the policy matches are denied` };
  const http = found.envoyExtAuthzHttp;
  const [service, namespace] = http.service.split('.') as [string, string];
  const provider: SnapshotExtAuthz = {
    name,
    backend: servicePortKey(namespace, service, http.port),
    host: `${service}.${namespace}`,
    timeoutMs: parseGatewayDuration(http.timeout) ?? 1000,
    pathPrefix: http.pathPrefix ?? '',
    includeRequestHeaders: http.includeRequestHeadersInCheck.map((h) => h.toLowerCase()),
    additionalHeaders: Object.fromEntries(Object.entries(http.includeAdditionalHeadersInCheck).map(([name, value]) => [name.toLowerCase(), value])),
    ...(http.includeRequestBodyInCheck ? { maxRequestBytes: http.includeRequestBodyInCheck.maxRequestBytes } : {}),
    headersToUpstreamOnAllow: http.headersToUpstreamOnAllow.map((h) => h.toLowerCase()),
    headersToDownstreamOnAllow: http.headersToDownstreamOnAllow.map((h) => h.toLowerCase()),
    headersToDownstreamOnDeny: http.headersToDownstreamOnDeny.map((h) => h.toLowerCase()),
    failOpen: http.failOpen,
    statusOnError: http.statusOnError,
  };
  const target = input.services.find((s) => serviceNamespace(s) === namespace && s.metadata.name === service);
  if (!target) return { provider, problem: `extensionProvider "${name}": Service ${namespace}/${service} does not exist; checks fail (${http.failOpen ? 'allowed: failOpen' : `answered ${http.statusOnError}`})` };
  if (!(target.spec.ports ?? []).some((p) => p.port === http.port)) return { provider, problem: `extensionProvider "${name}": Service ${namespace}/${service} has no port ${http.port}; checks fail (${http.failOpen ? 'allowed: failOpen' : `answered ${http.statusOnError}`})` };
  return { provider };
}

function compileRule(rule: AuthorizationRule): SnapshotAuthzRule {
  const out: SnapshotAuthzRule = {};
  if (rule.from !== undefined && rule.from.length > 0) out.from = rule.from.map(({ source }) => compileSource(source));
  if (rule.to !== undefined && rule.to.length > 0) out.to = rule.to.map(({ operation }) => compileOperation(operation));
  if (rule.when !== undefined && rule.when.length > 0) out.when = rule.when.map(compileCondition);
  return out;
}

function compileSource(source: AuthorizationSource): SnapshotAuthzSource {
  const out: SnapshotAuthzSource = {};
  if (source.principals) out.principals = source.principals.map(withoutScheme);
  if (source.notPrincipals) out.notPrincipals = source.notPrincipals.map(withoutScheme);
  if (source.namespaces) out.namespaces = [...source.namespaces];
  if (source.notNamespaces) out.notNamespaces = [...source.notNamespaces];
  if (source.ipBlocks) out.ipBlocks = [...source.ipBlocks];
  if (source.notIpBlocks) out.notIpBlocks = [...source.notIpBlocks];
  if (source.requestPrincipals) out.requestPrincipals = [...source.requestPrincipals];
  if (source.notRequestPrincipals) out.notRequestPrincipals = [...source.notRequestPrincipals];
  return out;
}

function compileOperation(operation: AuthorizationOperation): SnapshotAuthzOperation {
  const out: SnapshotAuthzOperation = {};
  if (operation.hosts) out.hosts = operation.hosts.map((h) => h.toLowerCase());
  if (operation.notHosts) out.notHosts = operation.notHosts.map((h) => h.toLowerCase());
  if (operation.methods) out.methods = [...operation.methods];
  if (operation.notMethods) out.notMethods = [...operation.notMethods];
  if (operation.paths) out.paths = [...operation.paths];
  if (operation.notPaths) out.notPaths = [...operation.notPaths];
  if (operation.ports) out.ports = operation.ports.map(Number);
  if (operation.notPorts) out.notPorts = operation.notPorts.map(Number);
  return out;
}

function compileCondition(when: AuthorizationCondition): SnapshotAuthzCondition {
  const principal = when.key === 'source.principal';
  const out: SnapshotAuthzCondition = { key: when.key };
  if (when.values) out.values = principal ? when.values.map(withoutScheme) : [...when.values];
  if (when.notValues) out.notValues = principal ? when.notValues.map(withoutScheme) : [...when.notValues];
  return out;
}

/** Istio writes principals without "spiffe://"; weft takes both and compares without. */
function withoutScheme(principal: string): string {
  return principal.startsWith('spiffe://') ? principal.slice(9) : principal;
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}
