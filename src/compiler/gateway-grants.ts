// ReferenceGrants: which cross-namespace references (route → Service, Gateway → Secret) the target namespace allows.
import type { ReferenceGrant } from '../api/resources.ts';
import { serviceNamespace } from './services.ts';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface ReferenceFrom {
  group: string;
  kind: string;
  namespace: string;
}

export interface ReferenceTo {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

/** Answers whether a reference may cross namespaces. References within one namespace need no grant. */
export interface ReferencePermits {
  permits(from: ReferenceFrom, to: ReferenceTo): boolean;
}

/** The core group is written "" or "core". */
function normalGroup(group: string | undefined): string {
  return group === undefined || group === 'core' ? '' : group;
}

/**
 * Indexes the grants by the namespace they live in, which is the namespace
 * they open up: a grant in namespace B lets objects of the listed kinds in
 * namespace A refer to B's objects of the listed kinds (all of them, or the
 * one named).
 */
export function indexReferenceGrants(grants: readonly ReferenceGrant[]): ReferencePermits {
  const byNamespace = new Map<string, ReferenceGrant[]>();
  for (const grant of grants) {
    const ns = serviceNamespace(grant);
    let list = byNamespace.get(ns);
    if (!list) byNamespace.set(ns, (list = []));
    list.push(grant);
  }
  return {
    permits(from, to) {
      if (from.namespace === to.namespace) return true;
      for (const grant of byNamespace.get(to.namespace) ?? []) {
        const fromOk = grant.spec.from.some(
          (f) => normalGroup(f.group) === normalGroup(from.group) && f.kind === from.kind && f.namespace === from.namespace,
        );
        if (!fromOk) continue;
        const toOk = grant.spec.to.some(
          (t) => normalGroup(t.group) === normalGroup(to.group) && t.kind === to.kind && (t.name === undefined || t.name === '' || t.name === to.name),
        );
        if (toOk) return true;
      }
      return false;
    },
  };
}

/** What a route's backendRef to another namespace needs: a grant from the route's kind to Services there. */
export function backendRefPermitted(permits: ReferencePermits | undefined, routeKind: string, routeNamespace: string, serviceNamespace: string, serviceName: string): boolean {
  if (routeNamespace === serviceNamespace) return true;
  if (!permits) return false;
  return permits.permits(
    { group: GATEWAY_GROUP, kind: routeKind, namespace: routeNamespace },
    { group: '', kind: 'Service', namespace: serviceNamespace, name: serviceName },
  );
}
