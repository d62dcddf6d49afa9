// RequestAuthentications → the JWT rules and API keys each sidecar workload and Gateway checks, and each policy's status.
import type { Condition } from '../api/meta.ts';
import { ASYMMETRIC_JWT_ALGORITHMS, type ApiKeyAuth, type JWTRule, type RequestAuthentication, type Secret } from '../api/resources.ts';
import type { SnapshotApiKeyRule, SnapshotJwtRule } from '../api/snapshot.ts';
import { sha256Hex } from './hash.ts';
import { secretEntries } from './secrets.ts';
import { parseGatewayDuration } from './duration.ts';
import { compareStrings } from './hash.ts';
import { serviceNamespace } from './services.ts';
import { CONTROLLER_NAME, type CompilerInput } from './types.ts';
import { DEFAULT_ROOT_NAMESPACE } from './authorization.ts';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const GROUP_OF_KIND = { Service: '', Gateway: GATEWAY_GROUP } as const;
/** The label Gateway API implementations give a Gateway's pods; a selector matches a Gateway by it (or the Gateway's own labels). */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/** One entry of a policy's `status.ancestors` (Gateway API PolicyStatus). */
export interface RequestAuthnAncestorStatus {
  ancestorRef: { group: string; kind: string; namespace: string; name: string };
  controllerName: string;
  conditions: Condition[];
}

/** A policy with targetRefs: one ancestor per targetRef. With a selector or neither: one Accepted condition. */
export type RequestAuthnStatus = { ancestors: RequestAuthnAncestorStatus[] } | { conditions: Condition[] };

interface CompiledPolicy {
  namespace: string;
  /** Present: only these targets (Kind/name). */
  targets?: { kind: 'Service' | 'Gateway'; name: string }[];
  /** Present: workloads (and Gateways) with these labels. */
  matchLabels?: Record<string, string>;
  rules: SnapshotJwtRule[];
  apiKeys?: SnapshotApiKeyRule;
}

/** What a workload or Gateway checks: JWT rules and API keys, in policy order. */
export interface RequestAuthnRules {
  jwtRules: SnapshotJwtRule[];
  apiKeys: SnapshotApiKeyRule[];
}

export interface RequestAuthnIndex {
  /** Sorted by namespace, then name: the order rules are listed in a snapshot. */
  policies: CompiledPolicy[];
  /** Policies here without targetRefs apply to every namespace (MeshConfig rootNamespace, as AuthorizationPolicy's; Istio's istio-system). */
  rootNamespace: string;
  /** "ns/name" → status. */
  statuses: Map<string, RequestAuthnStatus>;
}

type Labelled = { metadata: { name: string; namespace?: string | undefined; labels?: Record<string, string> | undefined } };
type Selecting = Labelled & { spec: { selector?: Record<string, string> | undefined } };

const cache = new WeakMap<readonly RequestAuthentication[], { services: unknown; gateways: unknown; meshConfig: unknown; secrets: unknown; index: RequestAuthnIndex }>();

/** Compiles every RequestAuthentication once per input. */
export function indexRequestAuthentications(input: CompilerInput): RequestAuthnIndex {
  const policies = input.requestAuthentications ?? [];
  const cached = cache.get(policies);
  if (cached && cached.services === input.services && cached.gateways === input.gateways && cached.meshConfig === input.meshConfig && cached.secrets === input.secrets) return cached.index;
  const services = new Set(input.services.map((s) => `${serviceNamespace(s)}/${s.metadata.name}`));
  const gateways = new Set((input.gateways ?? []).map((g) => `${serviceNamespace(g)}/${g.metadata.name}`));
  const index: RequestAuthnIndex = { policies: [], statuses: new Map(), rootNamespace: input.meshConfig?.spec?.rootNamespace ?? DEFAULT_ROOT_NAMESPACE };
  const sorted = [...policies].sort(
    (a, b) => compareStrings(serviceNamespace(a), serviceNamespace(b)) || compareStrings(a.metadata.name, b.metadata.name),
  );
  for (const policy of sorted) {
    const ns = serviceNamespace(policy);
    const key = `${ns}/${policy.metadata.name}`;
    const generation = policy.metadata.generation;
    const rules = (policy.spec.jwtRules ?? []).map((rule, i) => compileRule(rule, `${key}/${i}`));
    const compiled: CompiledPolicy = { namespace: ns, rules };
    // A Secret that is missing or holds no key is named in the status; the keys of the others still count.
    let keysProblem: string | undefined;
    if (policy.spec.apiKeys) {
      const { rule, problem } = compileApiKeys(policy.spec.apiKeys, key, ns, input.secrets ?? []);
      compiled.apiKeys = rule;
      keysProblem = problem;
    }
    const accepted = (): Condition =>
      keysProblem === undefined ? condition('Accepted', 'True', 'Accepted', '', generation) : condition('Accepted', 'False', 'Invalid', keysProblem, generation);
    if (policy.spec.targetRefs) {
      compiled.targets = [];
      const ancestors = policy.spec.targetRefs.map((ref, i): RequestAuthnAncestorStatus => {
        const group = ref.group === undefined || ref.group === 'core' ? GROUP_OF_KIND[ref.kind] : ref.group;
        const ancestorRef = { group: GROUP_OF_KIND[ref.kind], kind: ref.kind, namespace: ns, name: ref.name };
        let verdict: Condition;
        if (group !== GROUP_OF_KIND[ref.kind]) {
          verdict = condition('Accepted', 'False', 'Invalid', `spec.targetRefs[${i}].group: a ${ref.kind} is in group "${GROUP_OF_KIND[ref.kind]}", not "${group}"`, generation);
        } else if (!(ref.kind === 'Service' ? services : gateways).has(`${ns}/${ref.name}`)) {
          verdict = condition('Accepted', 'False', 'TargetNotFound', `${ref.kind} ${ns}/${ref.name} does not exist`, generation);
        } else {
          compiled.targets!.push({ kind: ref.kind, name: ref.name });
          verdict = accepted();
        }
        return { ancestorRef, controllerName: CONTROLLER_NAME, conditions: [verdict] };
      });
      index.statuses.set(key, { ancestors });
    } else {
      if (policy.spec.selector) compiled.matchLabels = { ...policy.spec.selector.matchLabels };
      index.statuses.set(key, { conditions: [accepted()] });
    }
    if (rules.length > 0 || compiled.apiKeys) index.policies.push(compiled);
  }
  cache.set(policies, { services: input.services, gateways: input.gateways, meshConfig: input.meshConfig, secrets: input.secrets, index });
  return index;
}

function compileRule(rule: JWTRule, id: string): SnapshotJwtRule {
  const noLocation = rule.fromHeaders === undefined && rule.fromParams === undefined && rule.fromCookies === undefined;
  const compiled: SnapshotJwtRule = {
    id,
    issuer: rule.issuer,
    audiences: [...(rule.audiences ?? [])],
    // Envoy's (and so Istio's) default locations: the Bearer scheme, then the access_token query parameter.
    fromHeaders: noLocation
      ? [{ name: 'authorization', prefix: 'Bearer ' }]
      : (rule.fromHeaders ?? []).map((h) => ({ name: h.name.toLowerCase(), prefix: h.prefix ?? '' })),
    fromParams: noLocation ? ['access_token'] : [...(rule.fromParams ?? [])],
    fromCookies: [...(rule.fromCookies ?? [])],
    outputClaimToHeaders: (rule.outputClaimToHeaders ?? []).map((o) => ({ header: o.header.toLowerCase(), claim: o.claim })),
    forwardOriginalToken: rule.forwardOriginalToken ?? false,
    algorithms: [...(rule.algorithms ?? ASYMMETRIC_JWT_ALGORITHMS)],
    clockSkewMs: parseGatewayDuration(rule.clockSkew ?? '60s') ?? 60_000,
    jwksCacheMs: Math.max(1000, parseGatewayDuration(rule.jwksCacheDuration ?? '10m') ?? 600_000),
    jwksTimeoutMs: Math.max(1, parseGatewayDuration(rule.timeout ?? '5s') ?? 5000),
  };
  if (rule.jwksUri !== undefined) compiled.jwksUri = rule.jwksUri;
  if (rule.jwks !== undefined) compiled.jwks = rule.jwks;
  if (rule.outputPayloadToHeader !== undefined) compiled.outputPayloadToHeader = rule.outputPayloadToHeader.toLowerCase();
  return compiled;
}

/**
 * The keys of the referenced Secrets as SHA-256 digests, each naming its
 * client (the Secret's key). Two clients with the same key cannot be told
 * apart: that is a problem, and the key is left out.
 */
function compileApiKeys(auth: ApiKeyAuth, id: string, namespace: string, secrets: readonly Secret[]): { rule: SnapshotApiKeyRule; problem?: string } {
  const problems: string[] = [];
  // Every client a key names: one key naming two clients could be either.
  const owners = new Map<string, Set<string>>();
  auth.credentialRefs.forEach((ref, i) => {
    const secret = secrets.find((s) => serviceNamespace(s) === namespace && s.metadata.name === ref.name);
    if (!secret) return problems.push(`spec.apiKeys.credentialRefs[${i}]: Secret ${namespace}/${ref.name} does not exist`);
    const entries = secretEntries(secret).filter(([, value]) => value !== '');
    if (entries.length === 0) return problems.push(`spec.apiKeys.credentialRefs[${i}]: Secret ${namespace}/${ref.name} holds no key (each data key is a client id, its value that client's API key)`);
    for (const [client, value] of entries) {
      const digest = sha256Hex(value);
      let clients = owners.get(digest);
      if (!clients) owners.set(digest, (clients = new Set()));
      clients.add(client);
    }
    return undefined;
  });
  const keys: Record<string, string> = {};
  for (const [digest, clients] of owners) {
    if (clients.size === 1) keys[digest] = [...clients][0]!;
    else problems.push(`clients ${[...clients].sort().join(', ')} of spec.apiKeys share one key: it is accepted for none of them`);
  }
  const noLocation = auth.fromHeaders === undefined && auth.fromParams === undefined;
  const rule: SnapshotApiKeyRule = {
    id,
    keys,
    fromHeaders: noLocation ? [{ name: 'x-api-key', prefix: '' }] : (auth.fromHeaders ?? []).map((h) => ({ name: h.name.toLowerCase(), prefix: h.prefix ?? '' })),
    fromParams: [...(auth.fromParams ?? [])],
    forwardOriginalKey: auth.forwardOriginalKey ?? false,
  };
  if (auth.clientIdHeader !== undefined) rule.clientIdHeader = auth.clientIdHeader.toLowerCase();
  return problems.length > 0 ? { rule, problem: problems.join('; ') } : { rule };
}

/** A policy applies in its own namespace; one in the root namespace without targetRefs, in every namespace. */
function inScope(policy: CompiledPolicy, namespace: string, rootNamespace: string): boolean {
  return policy.namespace === namespace || (policy.namespace === rootNamespace && policy.targets === undefined);
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * The rules a sidecar (or a node proxy's workload) verifies: policies of its
 * namespace with no target (all of them), a selector its template's labels
 * match, or a Service targetRef whose selector picks its instances (they
 * carry the template's labels plus `weft.dev/workload: <name>`).
 */
export function inboundRequestAuthentication(input: CompilerInput, template: Labelled): RequestAuthnRules {
  const ns = serviceNamespace(template);
  const labels: Record<string, string> = { ...(template.metadata.labels ?? {}), 'weft.dev/workload': template.metadata.name };
  const services = input.services as readonly Selecting[];
  const rules: RequestAuthnRules = { jwtRules: [], apiKeys: [] };
  const index = indexRequestAuthentications(input);
  for (const policy of index.policies) {
    if (!inScope(policy, ns, index.rootNamespace)) continue;
    let applies: boolean;
    if (policy.targets) {
      applies = policy.targets.some((t) => {
        if (t.kind !== 'Service') return false;
        const service = services.find((s) => serviceNamespace(s) === ns && s.metadata.name === t.name);
        const selector = service?.spec.selector ?? {};
        return Object.keys(selector).length > 0 && labelsMatch(selector, labels);
      });
    } else applies = policy.matchLabels === undefined || labelsMatch(policy.matchLabels, labels);
    if (applies) add(rules, policy);
  }
  return rules;
}

function add(rules: RequestAuthnRules, policy: CompiledPolicy): void {
  rules.jwtRules.push(...policy.rules);
  if (policy.apiKeys) rules.apiKeys.push(policy.apiKeys);
}

/** The rules a Gateway's proxy verifies: namespace-wide policies, a selector its labels (or its gateway-name label) match, or a Gateway targetRef. */
export function gatewayRequestAuthentication(input: CompilerInput, namespace: string, name: string): RequestAuthnRules {
  const gateway = (input.gateways ?? []).find((g) => serviceNamespace(g) === namespace && g.metadata.name === name);
  const labels: Record<string, string> = { ...(gateway?.metadata.labels ?? {}), [GATEWAY_NAME_LABEL]: name };
  const rules: RequestAuthnRules = { jwtRules: [], apiKeys: [] };
  const index = indexRequestAuthentications(input);
  for (const policy of index.policies) {
    if (!inScope(policy, namespace, index.rootNamespace)) continue;
    const applies = policy.targets
      ? policy.targets.some((t) => t.kind === 'Gateway' && t.name === name)
      : policy.matchLabels === undefined || labelsMatch(policy.matchLabels, labels);
    if (applies) add(rules, policy);
  }
  return rules;
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}
