// The compiler's input: a read-only view of the objects it needs, as the control plane's index holds them.
import type { HTTPRoute, MeshConfig, ParentReference, Service, Workload } from '../api/resources.ts';
import type { Condition, Resource } from '../api/meta.ts';

export interface CompilerInput {
  services: readonly Service[];
  /** Templates (no address) and endpoints (with an address: static or registered by a proxy). */
  workloads: readonly Workload[];
  httpRoutes: readonly HTTPRoute[];
  /** The cluster-scoped MeshConfig named "default", if any. */
  meshConfig?: MeshConfig | undefined;
  namespaces: readonly Resource[];
}

/** The controllerName weft writes in route statuses. */
export const CONTROLLER_NAME = 'weft.dev/mesh';

/** `status` of Services, Workloads, MeshConfigs and Namespaces. */
export interface ObjectStatus {
  conditions: Condition[];
}

/** One entry of a route's `status.parents`. */
export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

/** `status` of an HTTPRoute, as the Gateway API defines it. */
export interface HTTPRouteStatus {
  parents: RouteParentStatus[];
}
