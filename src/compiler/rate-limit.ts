// RateLimitPolicies → the limits each target (HTTPRoute, Service, Gateway) carries, with conflict resolution and policy status.
import type { Condition } from '../api/meta.ts';
import type { RateLimitPolicy } from '../api/resources.ts';
import type { HttpRouteRule, RateLimitDescriptor, RouteTable, SnapshotRateLimit } from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import { compareStrings } from './hash.ts';
import { serviceNamespace } from './services.ts';
import { CONTROLLER_NAME } from './types.ts';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const GROUP_OF_KIND = { HTTPRoute: GATEWAY_GROUP, GRPCRoute: GATEWAY_GROUP, Gateway: GATEWAY_GROUP, Service: '' } as const;
type TargetKind = keyof typeof GROUP_OF_KIND;

/** One entry of a policy's `status.ancestors` (Gateway API PolicyStatus): a target and how the policy fares on it. */
export interface RateLimitAncestorStatus {
  ancestorRef: { group: string; kind: string; namespace: string; name: string };
  controllerName: string;
  conditions: Condition[];
}

export interface RateLimitIndex {
  /** targetKey() → the limits of the policy that holds that target. */
  byTarget: Map<string, SnapshotRateLimit[]>;
  /** "ns/name" of each policy → its status, one ancestor per targetRef. */
  statuses: Map<string, { ancestors: RateLimitAncestorStatus[] }>;
}

/** "<Kind>/<ns>/<name>". */
export function rateLimitTargetKey(kind: TargetKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** Whether an object of that kind exists: the compiler's view of the targets. */
export type TargetExists = (kind: TargetKind, namespace: string, name: string) => boolean;

interface Candidate {
  policy: RateLimitPolicy;
  key: string;
  limits: Omit<SnapshotRateLimit, 'id'>[];
}

/**
 * Compiles every policy and gives each target to one policy. Conflicting
 * policies on one target: the oldest wins (then the first by "ns/name"), as
 * the Gateway API resolves policy conflicts; the others are Accepted=False,
 * reason Conflicted, on that target. An invalid policy (Accepted=False,
 * Invalid on every target) is skipped as a whole; a target that does not
 * exist is TargetNotFound. Status is a Gateway API PolicyStatus: one
 * ancestor per targetRef.
 */
export function indexRateLimitPolicies(policies: readonly RateLimitPolicy[], exists: TargetExists): RateLimitIndex {
  const statuses = new Map<string, { ancestors: RateLimitAncestorStatus[] }>();
  const claims = new Map<string, Candidate[]>();
  /** Policy key → per targetRef: its target key, or the condition it already has. */
  const pending = new Map<string, { ref: RateLimitAncestorStatus['ancestorRef']; targetKey?: string; condition?: Condition }[]>();
  for (const policy of policies) {
    const ns = serviceNamespace(policy);
    const key = `${ns}/${policy.metadata.name}`;
    const generation = policy.metadata.generation;
    const problems: string[] = [];
    const limits = compileLimits(policy, key, problems);
    const refs = policy.spec.targetRefs.map((ref, i) => {
      const group = ref.group === undefined ? GROUP_OF_KIND[ref.kind] : ref.group === 'core' ? '' : ref.group;
      if (group !== GROUP_OF_KIND[ref.kind]) problems.push(`spec.targetRefs[${i}].group: a ${ref.kind} is in group "${GROUP_OF_KIND[ref.kind]}", not "${group}"`);
      return { ref: { group: GROUP_OF_KIND[ref.kind], kind: ref.kind, namespace: ns, name: ref.name }, kind: ref.kind };
    });
    if (problems.length > 0) {
      const invalid = condition('Accepted', 'False', 'Invalid', problems.join('; '), generation);
      statuses.set(key, { ancestors: refs.map(({ ref }) => ({ ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [invalid] })) });
      continue;
    }
    const entries: { ref: RateLimitAncestorStatus['ancestorRef']; targetKey?: string; condition?: Condition }[] = [];
    const seen = new Set<string>();
    for (const { ref, kind } of refs) {
      if (!exists(kind, ns, ref.name)) {
        entries.push({ ref, condition: condition('Accepted', 'False', 'TargetNotFound', `${kind} ${ns}/${ref.name} does not exist`, generation) });
        continue;
      }
      const targetKey = rateLimitTargetKey(kind, ns, ref.name);
      entries.push({ ref, targetKey });
      // The same target named twice claims it once.
      if (seen.has(targetKey)) continue;
      seen.add(targetKey);
      let list = claims.get(targetKey);
      if (!list) claims.set(targetKey, (list = []));
      list.push({ policy, key, limits });
    }
    pending.set(key, entries);
  }
  const byTarget = new Map<string, SnapshotRateLimit[]>();
  const holders = new Map<string, string>();
  for (const [targetKey, candidates] of claims) {
    candidates.sort((a, b) => compareAge(a.policy, b.policy) || compareStrings(a.key, b.key));
    const winner = candidates[0]!;
    holders.set(targetKey, winner.key);
    byTarget.set(
      targetKey,
      winner.limits.map((limit) => ({ ...limit, id: `${limit.policy}@${targetKey}` })),
    );
  }
  for (const policy of policies) {
    const key = `${serviceNamespace(policy)}/${policy.metadata.name}`;
    const entries = pending.get(key);
    if (!entries) continue;
    const generation = policy.metadata.generation;
    const ancestors = entries.map(({ ref, targetKey, condition: known }): RateLimitAncestorStatus => {
      let accepted = known;
      if (!accepted) {
        const holder = holders.get(targetKey!);
        accepted =
          holder === key
            ? condition('Accepted', 'True', 'Accepted', '', generation)
            : condition('Accepted', 'False', 'Conflicted', `the older RateLimitPolicy ${holder} holds ${ref.kind} ${ref.namespace}/${ref.name}`, generation);
      }
      return { ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [accepted] };
    });
    statuses.set(key, { ancestors });
  }
  return { byTarget, statuses };
}

function compileLimits(policy: RateLimitPolicy, key: string, problems: string[]): Omit<SnapshotRateLimit, 'id'>[] {
  const names = new Set<string>();
  return policy.spec.limits.map((limit, i) => {
    const where = `spec.limits[${i}]`;
    const name = limit.name ?? String(i);
    if (names.has(name)) problems.push(`${where}.name: "${name}" is used by another limit of this policy`);
    names.add(name);
    const intervalMs = parseGatewayDuration(limit.interval ?? '1s');
    if (intervalMs === undefined || intervalMs <= 0) problems.push(`${where}.interval: "${limit.interval}" must be a duration longer than 0`);
    const descriptors: RateLimitDescriptor[] = [];
    const seen = new Set<string>();
    (limit.descriptors ?? []).forEach((d, j) => {
      const identity = d.type === 'Header' ? `Header:${(d.header ?? '').toLowerCase()}` : d.type;
      if (seen.has(identity)) problems.push(`${where}.descriptors[${j}]: ${identity} is listed twice`);
      seen.add(identity);
      descriptors.push(d.type === 'Header' ? { type: 'Header', header: (d.header ?? '').toLowerCase() } : { type: d.type });
    });
    return {
      policy: `${key}/${name}`,
      requests: limit.requests,
      intervalMs: intervalMs ?? 1000,
      burst: limit.burst ?? limit.requests,
      descriptors,
      scope: limit.scope ?? 'Local',
      maxKeys: limit.maxKeys ?? 10_000,
    };
  });
}

/** A route table with `limits` added to every rule (a Gateway's limits on each of its virtual hosts' tables). */
export function withRateLimits(table: RouteTable, limits: readonly SnapshotRateLimit[] | undefined): RouteTable {
  if (!limits || limits.length === 0) return table;
  return {
    ...table,
    rules: table.rules.map((rule): HttpRouteRule => ({ ...rule, rateLimits: [...limits, ...(rule.rateLimits ?? [])] })),
  };
}

function compareAge(a: RateLimitPolicy, b: RateLimitPolicy): number {
  const ta = a.metadata.creationTimestamp;
  const tb = b.metadata.creationTimestamp;
  if (ta === tb) return 0;
  if (ta === undefined) return 1;
  if (tb === undefined) return -1;
  return Date.parse(ta) - Date.parse(tb) || compareStrings(ta, tb);
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

/**
 * The limits of the RateLimitPolicies on the Services a workload template
 * serves (its instances carry its labels and `weft.dev/workload: <name>`):
 * enforced by its sidecar on arrival, as Istio applies local rate limits at
 * the inbound sidecar.
 */
export function inboundRateLimits(
  services: readonly { metadata: { name: string; namespace?: string | undefined }; spec: { selector?: Record<string, string> | undefined } }[],
  index: RateLimitIndex,
  template: { metadata: { name: string; namespace?: string | undefined; labels?: Record<string, string> | undefined } },
): SnapshotRateLimit[] {
  const ns = serviceNamespace(template);
  const labels: Record<string, string> = { ...(template.metadata.labels ?? {}), 'weft.dev/workload': template.metadata.name };
  const limits: SnapshotRateLimit[] = [];
  for (const service of services) {
    if (serviceNamespace(service) !== ns) continue;
    const selector = service.spec.selector ?? {};
    const keys = Object.keys(selector);
    if (keys.length === 0 || keys.some((k) => labels[k] !== selector[k])) continue;
    limits.push(...(index.byTarget.get(rateLimitTargetKey('Service', ns, service.metadata.name)) ?? []));
  }
  return limits;
}
