// zod schemas for every kind weft accepts, and the kind registry (group, version, plural, scope).
import { z } from 'zod';
import { ObjectMeta, dnsLabel, type Resource } from './meta.ts';

const port = z.number().int().min(1).max(65535);
const labels = z.record(z.string(), z.string());

/** Gateway API duration: "1h", "10s", "500ms", "1h30m". */
export const gatewayDuration = z
  .string()
  .regex(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/, 'must be a Gateway API duration such as "10s", "500ms" or "1m30s"');

// ---------------------------------------------------------------- core v1

export const NamespaceSpec = z.looseObject({}).default({});

export const ServicePort = z.looseObject({
  name: z.string().optional(),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
  port,
  targetPort: z.union([port, z.string().min(1)]).optional(),
  appProtocol: z.string().optional(),
});
export type ServicePort = z.infer<typeof ServicePort>;

export const ServiceSpec = z.looseObject({
  selector: labels.optional(),
  ports: z.array(ServicePort).min(1, 'a Service needs at least one port'),
  type: z.string().optional(),
});
export type ServiceSpec = z.infer<typeof ServiceSpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1

export const WorkloadPort = z.strictObject({
  name: z.string().optional(),
  port,
  appProtocol: z.string().optional(),
});

export const Upstream = z.strictObject({
  /** "name" (the workload's namespace) or "name.namespace". */
  service: z.string().min(1),
  port,
  localPort: port,
});
export type Upstream = z.infer<typeof Upstream>;

export const Locality = z.strictObject({
  region: z.string().optional(),
  zone: z.string().optional(),
  subzone: z.string().optional(),
});

export const WorkloadSpec = z.strictObject({
  serviceAccount: dnsSubdomain().default('default'),
  /**
   * Where the workload is reached. A Workload with an address is an endpoint;
   * one without is a template that `weft up` starts and whose proxies register
   * instances (Workloads with an address) under a lease.
   */
  address: z.string().min(1).optional(),
  /** The mesh tunnel port of the workload's proxy; absent for workloads outside the mesh. */
  tunnelPort: port.optional(),
  ports: z.array(WorkloadPort).default([]),
  locality: Locality.optional(),
  /** For `weft up`: the command to start (a string runs in a shell), its env and working directory. */
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]).optional(),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
  replicas: z.number().int().min(0).max(64).default(1),
  upstreams: z.array(Upstream).default([]),
});
export type WorkloadSpec = z.infer<typeof WorkloadSpec>;

function dnsSubdomain() {
  return z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain (lower-case letters, digits, "-" and ".")');
}

export const MeshConfigSpec = z.strictObject({
  /** The SPIFFE trust domain of every identity in the mesh. */
  trustDomain: z
    .string()
    .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain: 1-255 of lower-case letters, digits, ".", "_" and "-"')
    .default('cluster.local'),
  /** STRICT (the default): the mesh tunnel accepts only mTLS. PERMISSIVE: it accepts plaintext too (to migrate workloads in). */
  mtls: z.strictObject({ mode: z.enum(['STRICT', 'PERMISSIVE']).default('STRICT') }).optional(),
});
export type MeshConfigSpec = z.infer<typeof MeshConfigSpec>;

// ---------------------------------------------------------------- gateway.networking.k8s.io (HTTPRoute)

export const ParentReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  namespace: dnsLabel.optional(),
  name: z.string().min(1),
  sectionName: z.string().optional(),
  port: port.optional(),
});
export type ParentReference = z.infer<typeof ParentReference>;

export const HTTPPathMatch = z.strictObject({
  type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
  value: z.string().max(1024).default('/'),
});

const headerName = z.string().min(1).max(256).regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, 'must be a valid HTTP header name');

export const HTTPHeaderMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: headerName,
  value: z.string().max(4096),
});

export const HTTPQueryParamMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: z.string().min(1).max(256),
  value: z.string().max(1024),
});

export const HTTPMethod = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

export const HTTPRouteMatch = z.strictObject({
  path: HTTPPathMatch.optional(),
  headers: z.array(HTTPHeaderMatch).max(16).optional(),
  queryParams: z.array(HTTPQueryParamMatch).max(16).optional(),
  method: HTTPMethod.optional(),
});
export type HTTPRouteMatch = z.infer<typeof HTTPRouteMatch>;

const HTTPHeader = z.strictObject({ name: headerName, value: z.string().max(4096) });

export const HTTPHeaderFilter = z.strictObject({
  set: z.array(HTTPHeader).max(16).optional(),
  add: z.array(HTTPHeader).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
});
export type HTTPHeaderFilter = z.infer<typeof HTTPHeaderFilter>;

const HTTPPathModifier = z.strictObject({
  type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
  replaceFullPath: z.string().max(1024).optional(),
  replacePrefixMatch: z.string().max(1024).optional(),
});

const LocalObjectReference = z.strictObject({ group: z.string(), kind: z.string().min(1), name: z.string().min(1) });

export const BackendObjectReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: z.string().min(1),
  namespace: dnsLabel.optional(),
  port: port.optional(),
});

export const HTTPRouteFilter = z.strictObject({
  type: z.enum([
    'RequestHeaderModifier',
    'ResponseHeaderModifier',
    'RequestMirror',
    'RequestRedirect',
    'URLRewrite',
    'CORS',
    'ExtensionRef',
  ]),
  requestHeaderModifier: HTTPHeaderFilter.optional(),
  responseHeaderModifier: HTTPHeaderFilter.optional(),
  requestMirror: z
    .strictObject({
      backendRef: BackendObjectReference,
      percent: z.number().int().min(0).max(100).optional(),
      fraction: z.strictObject({ numerator: z.number().int().min(0), denominator: z.number().int().min(1).default(100) }).optional(),
    })
    .optional(),
  requestRedirect: z
    .strictObject({
      scheme: z.enum(['http', 'https']).optional(),
      hostname: z.string().optional(),
      path: HTTPPathModifier.optional(),
      port: port.optional(),
      statusCode: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
    })
    .optional(),
  urlRewrite: z.strictObject({ hostname: z.string().optional(), path: HTTPPathModifier.optional() }).optional(),
  cors: z
    .strictObject({
      allowOrigins: z.array(z.string()).optional(),
      allowCredentials: z.boolean().optional(),
      allowMethods: z.array(z.string()).optional(),
      allowHeaders: z.array(z.string()).optional(),
      exposeHeaders: z.array(z.string()).optional(),
      maxAge: z.number().int().min(0).optional(),
    })
    .optional(),
  extensionRef: LocalObjectReference.optional(),
});
export type HTTPRouteFilter = z.infer<typeof HTTPRouteFilter>;

export const HTTPBackendRef = BackendObjectReference.extend({
  weight: z.number().int().min(0).max(1_000_000).default(1),
  filters: z.array(HTTPRouteFilter).max(16).optional(),
});
export type HTTPBackendRef = z.infer<typeof HTTPBackendRef>;

export const HTTPRouteRule = z.strictObject({
  name: z.string().optional(),
  matches: z.array(HTTPRouteMatch).max(64).optional(),
  filters: z.array(HTTPRouteFilter).max(16).optional(),
  backendRefs: z.array(HTTPBackendRef).max(16).optional(),
  timeouts: z.strictObject({ request: gatewayDuration.optional(), backendRequest: gatewayDuration.optional() }).optional(),
  retry: z
    .strictObject({
      codes: z.array(z.number().int().min(400).max(599)).optional(),
      attempts: z.number().int().min(0).optional(),
      backoff: gatewayDuration.optional(),
    })
    .optional(),
  sessionPersistence: z.looseObject({}).optional(),
});
export type HTTPRouteRule = z.infer<typeof HTTPRouteRule>;

export const HTTPRouteSpec = z.strictObject({
  parentRefs: z.array(ParentReference).max(32).default([]),
  hostnames: z.array(z.string().min(1).max(253)).max(16).optional(),
  rules: z.array(HTTPRouteRule).max(16).default([{}]),
});
export type HTTPRouteSpec = z.infer<typeof HTTPRouteSpec>;

// ---------------------------------------------------------------- gateway.networking.k8s.io (Gateway, GatewayClass, ReferenceGrant)

/** The controllerName of GatewayClasses whose Gateways weft serves. */
export const GATEWAY_CONTROLLER_NAME = 'weft.dev/gateway-controller';

// Loose: GatewayClass and Gateway carry provisioning fields (parametersRef, infrastructure, ...) weft ignores rather than rejects.
export const GatewayClassSpec = z.looseObject({
  controllerName: z.string().min(1).max(253),
  description: z.string().max(64).optional(),
});
export type GatewayClassSpec = z.infer<typeof GatewayClassSpec>;

export const LabelSelector = z.strictObject({
  matchLabels: labels.optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string().min(1),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});
export type LabelSelector = z.infer<typeof LabelSelector>;

const RouteGroupKind = z.strictObject({ group: z.string().optional(), kind: z.string().min(1) });

export const SecretObjectReference = z.strictObject({
  group: z.string().optional(),
  kind: z.string().optional(),
  name: z.string().min(1),
  namespace: dnsLabel.optional(),
});
export type SecretObjectReference = z.infer<typeof SecretObjectReference>;

export const GatewayListener = z.looseObject({
  name: z.string().min(1).max(253),
  /** A host name or "*.suffix"; absent: every host. */
  hostname: z
    .string()
    .max(253)
    .regex(/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a host name, optionally starting with "*."')
    .optional(),
  port,
  /** HTTP and HTTPS are served; any other protocol is reported in the listener's status. */
  protocol: z.string().min(1),
  tls: z
    .looseObject({
      mode: z.enum(['Terminate', 'Passthrough']).default('Terminate'),
      certificateRefs: z.array(SecretObjectReference).max(64).optional(),
    })
    .optional(),
  allowedRoutes: z
    .looseObject({
      namespaces: z
        .looseObject({ from: z.enum(['All', 'Same', 'Selector']).default('Same'), selector: LabelSelector.optional() })
        .optional(),
      kinds: z.array(RouteGroupKind).max(8).optional(),
    })
    .optional(),
});
export type GatewayListener = z.infer<typeof GatewayListener>;

export const GatewaySpec = z.looseObject({
  gatewayClassName: z.string().min(1).max(253),
  listeners: z
    .array(GatewayListener)
    .min(1, 'a Gateway needs at least one listener')
    .max(64)
    .superRefine((listeners, ctx) => {
      const seen = new Set<string>();
      listeners.forEach((listener, i) => {
        if (seen.has(listener.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `listener name "${listener.name}" is used twice` });
        seen.add(listener.name);
      });
    }),
  addresses: z.array(z.looseObject({ type: z.string().optional(), value: z.string().min(1) })).max(16).optional(),
});
export type GatewaySpec = z.infer<typeof GatewaySpec>;

const ReferenceGrantFrom = z.strictObject({ group: z.string(), kind: z.string().min(1), namespace: dnsLabel });
const ReferenceGrantTo = z.strictObject({ group: z.string(), kind: z.string().min(1), name: z.string().min(1).optional() });

export const ReferenceGrantSpec = z.strictObject({
  from: z.array(ReferenceGrantFrom).min(1).max(16),
  to: z.array(ReferenceGrantTo).min(1).max(16),
});
export type ReferenceGrantSpec = z.infer<typeof ReferenceGrantSpec>;

// ---------------------------------------------------------------- core v1 Secret, discovery.k8s.io EndpointSlice
//
// These kinds keep their content beside metadata rather than under `spec`, as
// Kubernetes writes them. weft stores that content as `spec` (see
// KindInfo.topLevelFields), so that the store, its generations and `apply`
// treat them like every other kind.

const base64 = z.string().regex(/^[A-Za-z0-9+/\s]*={0,2}\s*$/, 'must be base64');

export const SecretSpec = z.strictObject({
  type: z.string().min(1).default('Opaque'),
  data: z.record(z.string(), base64).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
  immutable: z.boolean().optional(),
});
export type SecretSpec = z.infer<typeof SecretSpec>;

export const EndpointSliceSpec = z.strictObject({
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  endpoints: z
    .array(
      z.looseObject({
        addresses: z.array(z.string().min(1)).min(1).max(100),
        conditions: z.looseObject({ ready: z.boolean().optional(), serving: z.boolean().optional(), terminating: z.boolean().optional() }).optional(),
      }),
    )
    .max(1000)
    .default([]),
  ports: z
    .array(z.strictObject({ name: z.string().optional(), port: port.optional(), protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'), appProtocol: z.string().optional() }))
    .max(100)
    .default([]),
});
export type EndpointSliceSpec = z.infer<typeof EndpointSliceSpec>;

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

// ---------------------------------------------------------------- registry

export interface KindInfo {
  group: string; // "" for core
  versions: readonly string[]; // accepted versions, preferred first
  kind: string;
  plural: string;
  namespaced: boolean;
  spec: z.ZodType;
  /**
   * Kinds that Kubernetes writes without a `spec` (Secret, EndpointSlice):
   * these top-level fields are what weft validates and stores as `spec`.
   */
  topLevelFields?: readonly string[];
}

export const KINDS: readonly KindInfo[] = [
  { group: '', versions: ['v1'], kind: 'Namespace', plural: 'namespaces', namespaced: false, spec: NamespaceSpec },
  { group: '', versions: ['v1'], kind: 'Service', plural: 'services', namespaced: true, spec: ServiceSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'Workload', plural: 'workloads', namespaced: true, spec: WorkloadSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'MeshConfig', plural: 'meshconfigs', namespaced: false, spec: MeshConfigSpec },
  {
    group: 'gateway.networking.k8s.io',
    versions: ['v1', 'v1beta1'],
    kind: 'HTTPRoute',
    plural: 'httproutes',
    namespaced: true,
    spec: HTTPRouteSpec,
  },
  {
    group: 'gateway.networking.k8s.io',
    versions: ['v1', 'v1beta1'],
    kind: 'GatewayClass',
    plural: 'gatewayclasses',
    namespaced: false,
    spec: GatewayClassSpec,
  },
  { group: 'gateway.networking.k8s.io', versions: ['v1', 'v1beta1'], kind: 'Gateway', plural: 'gateways', namespaced: true, spec: GatewaySpec },
  {
    group: 'gateway.networking.k8s.io',
    versions: ['v1beta1', 'v1'],
    kind: 'ReferenceGrant',
    plural: 'referencegrants',
    namespaced: true,
    spec: ReferenceGrantSpec,
  },
  { group: '', versions: ['v1'], kind: 'Secret', plural: 'secrets', namespaced: true, spec: SecretSpec, topLevelFields: ['type', 'data', 'stringData', 'immutable'] },
  {
    group: 'discovery.k8s.io',
    versions: ['v1'],
    kind: 'EndpointSlice',
    plural: 'endpointslices',
    namespaced: true,
    spec: EndpointSliceSpec,
    topLevelFields: ['addressType', 'endpoints', 'ports'],
  },
];

export function apiVersionOf(info: KindInfo, version = info.versions[0]): string {
  return info.group ? `${info.group}/${version}` : `${version}`;
}

/** Looks a kind up by its kind name, plural or lower-case singular (what `weft get` accepts). */
export function findKind(name: string): KindInfo | undefined {
  const lower = name.toLowerCase();
  return KINDS.find((k) => k.kind.toLowerCase() === lower || k.plural === lower || `${k.plural}.${k.group}` === lower);
}

export function kindOf(apiVersion: string, kind: string): KindInfo | undefined {
  const slash = apiVersion.indexOf('/');
  const group = slash === -1 ? '' : apiVersion.slice(0, slash);
  const version = slash === -1 ? apiVersion : apiVersion.slice(slash + 1);
  return KINDS.find((k) => k.kind === kind && k.group === group && k.versions.includes(version));
}

export type Service = Resource<ServiceSpec>;
export type Workload = Resource<WorkloadSpec>;
export type MeshConfig = Resource<MeshConfigSpec>;
export type HTTPRoute = Resource<HTTPRouteSpec>;
export type GatewayClass = Resource<GatewayClassSpec>;
export type Gateway = Resource<GatewaySpec>;
export type ReferenceGrant = Resource<ReferenceGrantSpec>;
export type Secret = Resource<SecretSpec>;
export type EndpointSlice = Resource<EndpointSliceSpec>;

export const DEFAULT_NAMESPACE = 'default';

/** The envelope every object is checked against before its spec. */
export const ResourceEnvelope = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: ObjectMeta,
  spec: z.unknown().optional(),
  status: z.unknown().optional(),
});
