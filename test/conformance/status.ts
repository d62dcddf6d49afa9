// Status checks: the conditions upstream asserts on routes and Gateways, read from the objects' `status` in weft's API.
import type { ExpectedCondition, K8sObject, StatusCheck } from './model.ts';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

interface ParentStatus {
  parentRef?: { group?: string; kind?: string; namespace?: string; name?: string; sectionName?: string; port?: number };
  conditions?: Condition[];
}

interface ListenerStatus {
  name: string;
  attachedRoutes?: number;
  supportedKinds?: { group?: string; kind: string }[];
  conditions?: Condition[];
}

type StoredObject = K8sObject & { status?: unknown };

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

function missingConditions(actual: Condition[] | undefined, wanted: ExpectedCondition[] | undefined, where: string): string | undefined {
  for (const w of wanted ?? []) {
    const found = (actual ?? []).find((c) => c.type === w.type);
    if (!found) return `${where}: no ${w.type} condition (has ${(actual ?? []).map((c) => `${c.type}=${c.status}`).join(', ') || 'none'})`;
    if (found.status !== w.status || (w.reason !== undefined && found.reason !== w.reason)) {
      return `${where}: expected ${w.type}=${w.status}${w.reason ? `/${w.reason}` : ''}, got ${found.type}=${found.status}/${found.reason ?? ''}${found.message ? ` (${found.message})` : ''}`;
    }
  }
  return undefined;
}

function sameParent(actual: ParentStatus['parentRef'], wanted: NonNullable<StatusCheck['parentRef']>, routeNamespace: string): boolean {
  if (!actual) return false;
  const kind = (k: string | undefined) => k ?? 'Gateway';
  const group = (g: string | undefined, k: string | undefined) => (g ?? (kind(k) === 'Service' ? '' : GATEWAY_GROUP)) || 'core';
  return (
    actual.name === wanted.name &&
    (actual.namespace ?? routeNamespace) === (wanted.namespace ?? routeNamespace) &&
    kind(actual.kind) === kind(wanted.kind) &&
    group(actual.group, actual.kind) === group(wanted.group, wanted.kind) &&
    // As upstream's HTTPRouteMustHaveCondition: a sectionName or port the check leaves out matches any.
    (wanted.sectionName === undefined || actual.sectionName === wanted.sectionName) &&
    (wanted.port === undefined || actual.port === wanted.port)
  );
}

function observedGenerationProblem(object: StoredObject, conditions: Condition[], where: string): string | undefined {
  const generation = (object.metadata as { generation?: number }).generation;
  const stale = conditions.find((c) => c.observedGeneration !== generation);
  return stale ? `${where}: ${stale.type} observed generation ${stale.observedGeneration ?? 'none'}, the object is at ${generation ?? 'none'}` : undefined;
}

/** Undefined when the object's status satisfies the check, else why not. */
export function judgeStatus(check: StatusCheck, object: StoredObject | undefined): string | undefined {
  const what = `${check.kind} ${check.namespace}/${check.name}`;
  if (!object) return `${what} does not exist`;
  const status = (object.status ?? {}) as { parents?: ParentStatus[]; conditions?: Condition[]; addresses?: { value?: string }[]; listeners?: ListenerStatus[] };

  if (check.kind === 'HTTPRoute' || check.kind === 'GRPCRoute') {
    const parents = status.parents ?? [];
    if (check.noAcceptedParents) {
      const ok = parents.length === 0 || (parents.length === 1 && parents[0]!.conditions?.find((c) => c.type === 'Accepted')?.status === 'False');
      if (!ok) return `${what}: expected no accepted parent, status.parents is ${JSON.stringify(parents).slice(0, 300)}`;
    }
    if (check.parentRef) {
      const matching = parents.filter((p) => sameParent(p.parentRef, check.parentRef!, check.namespace));
      const refText = `${check.parentRef.kind ?? 'Gateway'} ${check.parentRef.namespace ?? check.namespace}/${check.parentRef.name}${check.parentRef.sectionName ? `#${check.parentRef.sectionName}` : ''}`;
      if (matching.length === 0) return `${what}: no status for parent ${refText} (parents: ${parents.map((p) => p.parentRef?.name ?? '?').join(', ') || 'none'})`;
      // Several entries can name one Gateway (one per sectionName): one of them must have the conditions, as upstream checks.
      const problems = matching.map((p) => missingConditions(p.conditions, check.conditions, `${what} parent ${refText}`));
      const parent = matching[problems.findIndex((p) => p === undefined)];
      if (!parent) return problems[0];
      if (check.latestObservedGeneration) {
        const stale = observedGenerationProblem(object, parent.conditions ?? [], `${what} parent ${refText}`);
        if (stale) return stale;
      }
    } else if (check.latestObservedGeneration) {
      for (const parent of parents) {
        const stale = observedGenerationProblem(object, parent.conditions ?? [], what);
        if (stale) return stale;
      }
    }
    return undefined;
  }

  if (check.kind === 'Gateway') {
    const problem = missingConditions(status.conditions, check.conditions, what);
    if (problem) return problem;
    if (check.hasAddress && !(status.addresses ?? []).some((a) => a.value)) return `${what}: no address in status.addresses`;
    const listeners = status.listeners ?? [];
    if (check.zeroAttachedRoutes) {
      const ok = listeners.length === 0 || (listeners.length === 1 && listeners[0]!.attachedRoutes === 0);
      if (!ok) return `${what}: expected no attached routes, listeners say ${listeners.map((l) => `${l.name}=${l.attachedRoutes}`).join(', ')}`;
    }
    for (const wanted of check.listeners ?? []) {
      const listener = listeners.find((l) => l.name === wanted.name);
      if (!listener) return `${what}: no status for listener ${wanted.name}`;
      if (wanted.attachedRoutes !== undefined && listener.attachedRoutes !== wanted.attachedRoutes) {
        return `${what} listener ${wanted.name}: expected ${wanted.attachedRoutes} attached routes, got ${listener.attachedRoutes ?? 'none'}`;
      }
      if (wanted.supportedKinds) {
        // Upstream's listenersMatch: every expected kind must be supported (an implementation may support more,
        // e.g. GRPCRoute beside HTTPRoute); an empty expectation means none at all.
        const key = (k: { group?: string; kind: string }) => `${k.group ?? GATEWAY_GROUP}/${k.kind}`;
        const got = (listener.supportedKinds ?? []).map(key);
        const missing = wanted.supportedKinds.map(key).filter((k) => !got.includes(k));
        if (wanted.supportedKinds.length === 0 ? got.length > 0 : missing.length > 0) {
          return `${what} listener ${wanted.name}: expected supported kinds ${wanted.supportedKinds.map(key).sort().join(',') || 'none'}, got ${got.sort().join(',') || 'none'}`;
        }
      }
      const conditionProblem = missingConditions(listener.conditions, wanted.conditions, `${what} listener ${wanted.name}`);
      if (conditionProblem) return conditionProblem;
    }
    if (check.latestObservedGeneration) return observedGenerationProblem(object, status.conditions ?? [], what);
    return undefined;
  }

  return missingConditions(status.conditions, check.conditions, what);
}

/** Sets "spec.rules[0].backendRefs[0].name"-style paths in a copy of `object`. */
export function patched<T>(object: T, patch: Record<string, unknown>): T {
  const copy = structuredClone(object) as Record<string, unknown>;
  for (const [path, value] of Object.entries(patch)) {
    const keys = [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
    let node: Record<string | number, unknown> = copy;
    keys.forEach((key, i) => {
      if (i === keys.length - 1) node[key] = value;
      else {
        node[key] ??= typeof keys[i + 1] === 'number' ? [] : {};
        node = node[key] as Record<string | number, unknown>;
      }
    });
  }
  return copy as T;
}
