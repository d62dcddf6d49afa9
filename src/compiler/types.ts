// The compiler's input: a read-only view of the objects it needs, as the control plane's index holds them.
import type {
  AuthorizationPolicy,
  BackendTrafficPolicy,
  EndpointSlice,
  FaultInjection,
  GraphQLApi,
  ApiPortal,
  Gateway,
  GatewayClass,
  GRPCRoute,
  HTTPRoute,
  MeshConfig,
  ParentReference,
  PeerAuthentication,
  RateLimitPolicy,
  ReferenceGrant,
  RequestAuthentication,
  Secret,
  Service,
  TCPRoute,
  TLSRoute,
  Transformation,
  Workload,
} from '../api/resources.ts';
import type { Condition, Resource } from '../api/meta.ts';
import type { FallBack } from './last-good.ts';

export interface CompilerInput {
  services: readonly Service[];
  /** Templates (no address) and endpoints (with an address: static or registered by a proxy). */
  workloads: readonly Workload[];
  httpRoutes: readonly HTTPRoute[];
  /** FaultInjections (weft.dev), which routes' ExtensionRef filters name. */
  faultInjections?: readonly FaultInjection[] | undefined;
  graphqlApis?: readonly GraphQLApi[] | undefined;
  apiPortals?: readonly ApiPortal[] | undefined;
  /** Transformations (weft.dev), which routes' ExtensionRef filters name. */
  transformations?: readonly Transformation[] | undefined;
  /** RateLimitPolicies (weft.dev), attached to HTTPRoutes, Services and Gateways. */
  rateLimitPolicies?: readonly RateLimitPolicy[] | undefined;
  /** AuthorizationPolicies (weft.dev): enforced by the workloads and gateways they select or target. */
  authorizationPolicies?: readonly AuthorizationPolicy[] | undefined;
  /** PeerAuthentications (weft.dev): per-namespace and per-workload mTLS modes (peer-authentication.ts). */
  peerAuthentications?: readonly PeerAuthentication[] | undefined;
  /** RequestAuthentications (weft.dev): JWT rules for sidecars and Gateways. */
  requestAuthentications?: readonly RequestAuthentication[] | undefined;
  /** TCPRoutes and TLSRoutes (l4-routes.ts); optional, so that inputs built without them stay valid. */
  tcpRoutes?: readonly TCPRoute[] | undefined;
  tlsRoutes?: readonly TLSRoute[] | undefined;
  /** GRPCRoutes; optional, so that inputs built without them stay valid. */
  grpcRoutes?: readonly GRPCRoute[] | undefined;
  /** BackendTrafficPolicies; optional, so that inputs built without them stay valid. */
  backendTrafficPolicies?: readonly BackendTrafficPolicy[] | undefined;
  /** The cluster-scoped MeshConfig named "default", if any. */
  meshConfig?: MeshConfig | undefined;
  namespaces: readonly Resource[];
  // Gateway API objects and what they refer to; optional, so that inputs built without them stay valid.
  gatewayClasses?: readonly GatewayClass[] | undefined;
  gateways?: readonly Gateway[] | undefined;
  referenceGrants?: readonly ReferenceGrant[] | undefined;
  /** Only Secrets of type kubernetes.io/tls matter (listener certificates). */
  secrets?: readonly Secret[] | undefined;
  /** Endpoints of Services without a selector. */
  endpointSlices?: readonly EndpointSlice[] | undefined;
  /** The mesh CA's roots (PEM), which every snapshot carries; the control plane adds them, not the store. */
  trustBundle?: readonly string[] | undefined;
  /** Fingerprint of the CA certificate signing new workload certificates (snapshot mesh.signingCa); the control plane adds it. */
  signingCa?: string | undefined;
  /**
   * Routes and policies in this input that are an older version than the
   * store's (last-good.ts), by objectKey; their statuses speak of the store's.
   */
  fallBacks?: ReadonlyMap<string, FallBack> | undefined;
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

/** The controllerName weft writes in route statuses for Gateway parents (and accepts in GatewayClasses). */
export { GATEWAY_CONTROLLER_NAME } from '../api/resources.ts';

/** `status` of a GatewayClass. */
export interface GatewayClassStatus {
  conditions: Condition[];
}

export interface RouteGroupKind {
  group: string;
  kind: string;
}

/** One entry of a Gateway's `status.listeners`. */
export interface ListenerStatus {
  name: string;
  supportedKinds: RouteGroupKind[];
  attachedRoutes: number;
  conditions: Condition[];
}

/** `status` of a Gateway, as the Gateway API defines it. */
export interface GatewayStatus {
  addresses: { type: 'IPAddress' | 'Hostname'; value: string }[];
  conditions: Condition[];
  listeners: ListenerStatus[];
}
