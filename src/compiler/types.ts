// The compiler's input: a read-only view of the objects it needs, as the control plane's index holds them.
import type { HTTPRoute, MeshConfig, Service, Workload } from '../api/resources.ts';
import type { Resource } from '../api/meta.ts';

export interface CompilerInput {
  services: readonly Service[];
  /** Templates (no address) and endpoints (with an address: static or registered by a proxy). */
  workloads: readonly Workload[];
  httpRoutes: readonly HTTPRoute[];
  /** The cluster-scoped MeshConfig named "default", if any. */
  meshConfig?: MeshConfig | undefined;
  namespaces: readonly Resource[];
}
