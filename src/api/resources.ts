// zod schemas for every kind weft accepts, and the kind registry (group, version, plural, scope).
import { z } from 'zod';
import { ObjectMeta, dnsLabel, type Resource } from './meta.ts';
import { AuthorizationPolicySpec } from './authorization-policy.ts';
import { PeerAuthenticationSpec } from './peer-authentication.ts';
import { PATH_NORMALIZATIONS } from './path-normalize.ts';
import { ACCESS_LOG_FIELDS } from './access-log.ts';
import { HTTP_TOKEN } from './http-syntax.ts';
import { GRAPHQL_PLACEHOLDER } from './snapshot.ts';
import { TemplateError, jsonTemplateRefs, parseJsonTemplate, parseTemplate, refName, templateRefs, type TemplateRef } from './template.ts';

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

/**
 * What every proxy's listeners take from clients (docs/hardening.md). Each
 * field left out keeps the proxy's default; a proxy's own --limit wins.
 */
export const MeshLimits = z.strictObject({
  maxHeaderCount: z.number().int().min(8).max(10_000).optional(),
  maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).optional(),
  maxUriBytes: z.number().int().min(256).max(1024 * 1024).optional(),
  headersTimeout: gatewayDuration.optional(),
  requestTimeout: gatewayDuration.optional(),
  idleTimeout: gatewayDuration.optional(),
  h2SessionIdleTimeout: gatewayDuration.optional(),
  maxConnections: z.number().int().min(1).max(1_000_000).optional(),
  h2MaxConcurrentStreams: z.number().int().min(1).max(100_000).optional(),
  h2MaxPrematureResets: z.number().int().min(1).max(1_000_000).optional(),
  h2MaxControlFramesPerSecond: z.number().int().min(1).max(1_000_000).optional(),
});
export type MeshLimits = z.infer<typeof MeshLimits>;

/** An HTTP header name (a token, RFC 9110 §5.1). */
const headerName = z.string().min(1).max(256).regex(HTTP_TOKEN, 'must be a valid HTTP header name');
/** Header names, as ext authz lists them. */
const headerNames = z.array(headerName).max(64);

/**
 * An external authorization service over HTTP (Istio's envoyExtAuthzHttp):
 * asked about each request a CUSTOM AuthorizationPolicy's rules match, with
 * the request's method, path (after pathPrefix) and chosen headers. A 2xx
 * answer allows; any other is the caller's answer.
 */
export const ExtAuthzHttpProvider = z.strictObject({
  /** "<name>.<namespace>", or its "....svc.cluster.local" form. */
  service: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.svc(\.cluster\.local)?)?$/, 'must be "<service>.<namespace>" (optionally followed by .svc.cluster.local)'),
  port: z.number().int().min(1).max(65535),
  /** How long one check may take; default 1s. */
  timeout: gatewayDuration.default('1s'),
  /** Put in front of the request's path in the check. */
  pathPrefix: z.string().regex(/^\/[^?#\s]*$/, 'must be a path starting with /').optional(),
  /** Request headers sent with the check (besides host, method, path and authorization, which always are). */
  includeRequestHeadersInCheck: headerNames.default([]),
  /** Fixed headers added to every check (they replace a request header of the same name). */
  includeAdditionalHeadersInCheck: z
    .record(headerName, z.string().max(4096))
    .refine((headers) => Object.keys(headers).length <= 32, 'at most 32 headers')
    .default({}),
  /** The request body is sent with the check, up to maxRequestBytes; a longer one is refused (413). */
  includeRequestBodyInCheck: z
    .strictObject({
      maxRequestBytes: z.number().int().min(1).max(16 * 1024 * 1024),
      allowPartialMessage: z.literal(false, { error: 'only false: weft sends the whole body or refuses the request (413), it does not check part of one' }).optional(),
    })
    .optional(),
  /** Headers of an allowing answer set on the request before it goes on. */
  headersToUpstreamOnAllow: headerNames.default([]),
  /** Headers of an allowing answer set on the response the caller gets. */
  headersToDownstreamOnAllow: headerNames.default([]),
  /** Headers of a denying answer passed to the caller with it. */
  headersToDownstreamOnDeny: headerNames.default([]),
  /** When the service cannot be asked (down, slow, no endpoint): allow (true) or answer statusOnError (false, the default). */
  failOpen: z.boolean().default(false),
  statusOnError: z.number().int().min(400).max(599).default(403),
});
export type ExtAuthzHttpProvider = z.infer<typeof ExtAuthzHttpProvider>;

export const MeshConfigSpec = z.strictObject({
  /** The SPIFFE trust domain of every identity in the mesh. */
  trustDomain: z
    .string()
    .regex(/^[a-z0-9._-]{1,255}$/, 'must be a SPIFFE trust domain: 1-255 of lower-case letters, digits, ".", "_" and "-"')
    .default('cluster.local'),
  /** STRICT (the default): the mesh tunnel accepts only mTLS. PERMISSIVE: it accepts plaintext too (to migrate workloads in). */
  mtls: z.strictObject({ mode: z.enum(['STRICT', 'PERMISSIVE']).default('STRICT') }).optional(),
  /**
   * Ports with no declared protocol: how long a silent client is waited for
   * before its connection is carried as opaque TCP (server-first protocols
   * wait this long for their greeting). Default 1s; a proxy's --detect-timeout wins.
   */
  protocolDetectionTimeout: gatewayDuration.optional(),
  /** Listener limits for every proxy (sizes, counts, timeouts, HTTP/2 abuse, connections); defaults when absent. */
  limits: MeshLimits.optional(),
  /** ALLOW (the default): a workload with no ALLOW AuthorizationPolicy takes every request no DENY refuses. DENY: it takes none (mesh-wide default-deny). */
  authorization: z.strictObject({ defaultAction: z.enum(['ALLOW', 'DENY']).default('ALLOW') }).optional(),
  /** How request paths are normalised before routing and authorization (Istio's options); BASE when absent. */
  pathNormalization: z.enum(PATH_NORMALIZATIONS as ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']).optional(),
  /** Services the mesh can delegate to by name: CUSTOM AuthorizationPolicies name an external authorization provider here (Istio's extensionProviders). */
  extensionProviders: z
    .array(z.strictObject({ name: z.string().min(1).max(253), envoyExtAuthzHttp: ExtAuthzHttpProvider }))
    .max(32)
    .refine((list) => new Set(list.map((p) => p.name)).size === list.length, 'two extensionProviders have the same name')
    .optional(),
  /** AuthorizationPolicies in this namespace apply mesh-wide (Istio's root namespace); default "weft-system". */
  rootNamespace: dnsLabel.optional(),
  /** Distributed tracing (W3C and B3 propagation, OTLP/HTTP export); absent: trace headers pass through untouched. */
  tracing: z
    .strictObject({
      /** Traces started by the mesh that are recorded, 0-100 (Istio's default is 1); a caller's sampled flag wins. */
      samplingPercent: z.number().min(0).max(100).default(1),
      collector: z
        .strictObject({
          /** OTLP/HTTP base URL (http://collector:4318; /v1/traces is added) or the full traces URL. */
          endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
          timeout: gatewayDuration.optional(),
        })
        .optional(),
      /** Spans per export request (default 512), spans waiting at most (default 2048; more are dropped and counted), time between exports (default 1s). */
      batchSize: z.number().int().min(1).max(10_000).optional(),
      maxQueueSize: z.number().int().min(1).max(1_000_000).optional(),
      exportInterval: gatewayDuration.optional(),
    })
    .optional(),
  /** One JSON line per request or TCP connection (docs/observability.md lists the fields). */
  accessLog: z
    .strictObject({
      enabled: z.boolean().default(true),
      samplingPercent: z.number().min(0).max(100).default(100),
      /** "stdout" (the default) or an absolute file path, appended to. */
      path: z
        .string()
        .refine((path) => path === 'stdout' || (path.startsWith('/') && path.length > 1 && !path.includes('\0')), 'must be "stdout" or an absolute file path')
        .default('stdout'),
      /** The fields each line carries, in this order; absent: all of them. */
      fields: z.array(z.enum(ACCESS_LOG_FIELDS)).min(1).optional(),
    })
    .optional(),
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

// ---------------------------------------------------------------- gateway.networking.k8s.io (GRPCRoute)

// gRPC names as the Gateway API validates them for Exact matches: a dotted service name and a method identifier.
const GRPC_SERVICE = /^(?i:\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*)$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

export const GRPCMethodMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    service: z.string().min(1).max(1024).optional(),
    method: z.string().min(1).max(1024).optional(),
  })
  .superRefine((match, ctx) => {
    if (match.service === undefined && match.method === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'one or both of service and method must be set' });
    }
    if ((match.type ?? 'Exact') !== 'Exact') return;
    if (match.service !== undefined && !GRPC_SERVICE.test(match.service)) {
      ctx.addIssue({ code: 'custom', path: ['service'], message: `"${match.service}" is not a gRPC service name (letters, digits and "_", dot-separated, e.g. "pkg.Service")` });
    }
    if (match.method !== undefined && !GRPC_METHOD.test(match.method)) {
      ctx.addIssue({ code: 'custom', path: ['method'], message: `"${match.method}" is not a gRPC method name (letters, digits and "_", not starting with a digit)` });
    }
  });
export type GRPCMethodMatch = z.infer<typeof GRPCMethodMatch>;

export const GRPCRouteMatch = z.strictObject({
  method: GRPCMethodMatch.optional(),
  headers: z.array(HTTPHeaderMatch).max(16).optional(),
});
export type GRPCRouteMatch = z.infer<typeof GRPCRouteMatch>;

export const GRPCRouteFilter = z.strictObject({
  type: z.enum(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef']),
  requestHeaderModifier: HTTPRouteFilter.shape.requestHeaderModifier,
  responseHeaderModifier: HTTPRouteFilter.shape.responseHeaderModifier,
  requestMirror: HTTPRouteFilter.shape.requestMirror,
  extensionRef: HTTPRouteFilter.shape.extensionRef,
});
export type GRPCRouteFilter = z.infer<typeof GRPCRouteFilter>;

export const GRPCBackendRef = BackendObjectReference.extend({
  weight: z.number().int().min(0).max(1_000_000).default(1),
  filters: z.array(GRPCRouteFilter).max(16).optional(),
});
export type GRPCBackendRef = z.infer<typeof GRPCBackendRef>;

export const GRPCRouteRule = z.strictObject({
  name: z.string().optional(),
  matches: z.array(GRPCRouteMatch).max(8).optional(),
  filters: z.array(GRPCRouteFilter).max(16).optional(),
  backendRefs: z.array(GRPCBackendRef).max(16).optional(),
  sessionPersistence: z.looseObject({}).optional(),
});
export type GRPCRouteRule = z.infer<typeof GRPCRouteRule>;

export const GRPCRouteSpec = z.strictObject({
  parentRefs: z.array(ParentReference).max(32).default([]),
  hostnames: z.array(z.string().min(1).max(253)).max(16).optional(),
  rules: z.array(GRPCRouteRule).max(16).default([{}]),
});
export type GRPCRouteSpec = z.infer<typeof GRPCRouteSpec>;

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
  /** HTTP, HTTPS, TCP and TLS (Passthrough) are served; any other protocol is reported in the listener's status. */
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

// ---------------------------------------------------------------- gateway.networking.k8s.io (TCPRoute, TLSRoute)

/** A backendRef of an L4 route: a Service and its port (an L4 route has no filters). */
export const L4BackendRef = BackendObjectReference.extend({
  weight: z.number().int().min(0).max(1_000_000).default(1),
});
export type L4BackendRef = z.infer<typeof L4BackendRef>;

export const L4RouteRule = z.strictObject({
  name: z.string().optional(),
  backendRefs: z.array(L4BackendRef).min(1, 'a rule needs at least one backendRef').max(16),
});
export type L4RouteRule = z.infer<typeof L4RouteRule>;

/** TCPRoute (v1alpha2): every connection to the parent goes to the rule's weighted backends. */
export const TCPRouteSpec = z.strictObject({
  parentRefs: z.array(ParentReference).max(32).default([]),
  rules: z.array(L4RouteRule).min(1, 'a TCPRoute needs a rule').max(16),
});
export type TCPRouteSpec = z.infer<typeof TCPRouteSpec>;

/** TLSRoute (v1alpha2/v1alpha3): TLS connections picked by the ClientHello's SNI, passed through unterminated. */
export const TLSRouteSpec = z.strictObject({
  parentRefs: z.array(ParentReference).max(32).default([]),
  hostnames: z.array(z.string().min(1).max(253)).max(16).optional(),
  rules: z.array(L4RouteRule).min(1, 'a TLSRoute needs a rule').max(16),
});
export type TLSRouteSpec = z.infer<typeof TLSRouteSpec>;

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

// ---------------------------------------------------------------- weft.dev/v1alpha1 (FaultInjection, RateLimitPolicy)

/** A share of requests, 0–100, fractions allowed (0.1 = one request in a thousand). */
const percentage = z.number().min(0, 'must be between 0 and 100').max(100, 'must be between 0 and 100');

/** An ExtensionRef filter (group weft.dev, kind FaultInjection) names one of these in the route's namespace. */
export const FaultInjectionSpec = z
  .strictObject({
    /** Requests are held this long before they go on. */
    delay: z.strictObject({ fixedDelay: gatewayDuration, percentage: percentage.default(100) }).optional(),
    /** Requests are answered by the proxy: httpStatus for HTTP callers, grpcStatus (HTTP 200, trailers-only) for gRPC callers. */
    abort: z
      .strictObject({
        httpStatus: z.number().int().min(200).max(599).optional(),
        grpcStatus: z.number().int().min(1).max(16).optional(),
        percentage: percentage.default(100),
      })
      .superRefine((abort, ctx) => {
        if (abort.httpStatus === undefined && abort.grpcStatus === undefined) {
          ctx.addIssue({ code: 'custom', path: [], message: 'an abort needs httpStatus, grpcStatus or both' });
        }
      })
      .optional(),
    /** Only requests carrying these headers get the fault (every one must match). */
    match: z.strictObject({ headers: z.array(HTTPHeaderMatch).min(1).max(16) }).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.delay === undefined && spec.abort === undefined) ctx.addIssue({ code: 'custom', path: [], message: 'a FaultInjection needs a delay, an abort or both' });
  });
export type FaultInjectionSpec = z.infer<typeof FaultInjectionSpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1 (GraphQLApi)


/** How one field is resolved: a call to a REST endpoint of a Service in the API's namespace, through the mesh. */
export const GraphQLRestResolver = z.strictObject({
  service: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
  /** The path (and query); `{args.x}` is the field's argument x, `{parent.x}` field x of the object being resolved, each URL-encoded. */
  path: z
    .string()
    .min(1)
    .max(2048)
    .regex(/^\//, 'must start with /')
    .refine((path) => !/[\s#]/.test(path.replace(GRAPHQL_PLACEHOLDER, '')), 'must not hold spaces or a fragment (#)'),
  /** POST, PUT and PATCH: the JSON body, the field's arguments (`args`) or one of them (`args.input`). */
  body: z
    .string()
    .regex(/^args(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'must be "args" or "args.<argument>"')
    .optional(),
  /** Headers of the GraphQL request passed on to the call (authorization, say). */
  forwardHeaders: z.array(headerName).max(16).optional(),
  /** Where the value is in the JSON answer, as a dot path ("data.items"); default: the whole answer. */
  resultPath: z
    .string()
    .regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, 'must be a dot path such as data.items')
    .optional(),
});
export type GraphQLRestResolver = z.infer<typeof GraphQLRestResolver>;

/**
 * A GraphQL endpoint over REST services (as Gloo's GraphQLApi): an SDL
 * schema, and for the fields that need one a REST call that resolves it.
 * Fields without a resolver take the value of the same name from their
 * parent. An HTTPRoute rule serves it through an ExtensionRef filter.
 */
export const GraphQLApiSpec = z
  .strictObject({
    schema: z.string().min(1).max(262_144),
    resolvers: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/, 'must be "Type.field"'), z.strictObject({ rest: GraphQLRestResolver }))
      .default({}),
    /** Deeper queries are refused before anything is called. */
    maxDepth: z.number().int().min(1).max(64).default(12),
    /** Whether clients may ask for the schema (__schema, __type). */
    introspection: z.boolean().default(true),
    /** How long one REST call may take. */
    timeout: gatewayDuration.default('10s'),
  })
  .superRefine((spec, ctx) => {
    for (const [field, { rest }] of Object.entries(spec.resolvers)) {
      if (rest.body !== undefined && !['POST', 'PUT', 'PATCH'].includes(rest.method)) {
        ctx.addIssue({ code: 'custom', path: ['resolvers', field, 'rest', 'body'], message: `a ${rest.method} call carries no body: use POST, PUT or PATCH` });
      }
    }
  });
export type GraphQLApiSpec = z.infer<typeof GraphQLApiSpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1 (Transformation)

/** Headers a transformation may not write: the framing and the connection are the proxy's. */
const TRANSFORM_RESERVED_HEADERS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

const transformHeader = z.strictObject({ name: headerName, value: z.string().max(4096) });

/** Header edits whose values are templates: set replaces, add appends, remove drops (before set and add). */
const TransformHeaders = z.strictObject({
  set: z.array(transformHeader).max(32).optional(),
  add: z.array(transformHeader).max(32).optional(),
  remove: z.array(headerName).max(32).optional(),
});

/** A new body: a JSON template (any JSON value whose strings may hold placeholders), or a text template with its content type. */
const TransformBody = z.union([
  z.strictObject({ json: z.unknown().refine((value) => value !== undefined, 'must be a JSON value') }),
  z.strictObject({ text: z.string().max(65_536), contentType: z.string().min(1).max(256).default('text/plain; charset=utf-8') }),
]);

const TransformSide = z.strictObject({ headers: TransformHeaders.optional(), body: TransformBody.optional() });

/**
 * Rewrites requests and responses (as Gloo's transformations): header values
 * and bodies rendered from templates over the request, the response, values
 * extracted by regular expressions, and the verified JWT. An HTTPRoute rule or
 * backendRef applies it through an ExtensionRef filter.
 */
export const TransformationSpec = z
  .strictObject({
    /** Named values, in order: a template, optionally narrowed by a regular expression's capture group; `{{ extract.<name> }}` reads them. */
    extract: z
      .array(
        z.strictObject({
          name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a name of letters, digits and _'),
          value: z.string().min(1).max(4096),
          regex: z.string().min(1).max(1024).optional(),
          /** The capture group taken; default 1 when the expression has one, else the whole match. */
          group: z.number().int().min(0).max(16).optional(),
        }),
      )
      .max(32)
      .default([]),
    request: TransformSide.optional(),
    response: TransformSide.optional(),
    /** The largest body held to read or replace it, request or response. */
    maxBodyBytes: z.number().int().min(1).max(16 * 1024 * 1024).default(1024 * 1024),
  })
  .superRefine((spec, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const extractors = new Set<string>();
    /** Checks one template's placeholders against its side; `extractorsBefore`: the extractors it may read. */
    const check = (path: (string | number)[], refs: readonly TemplateRef[], side: 'request' | 'response') => {
      for (const ref of refs) {
        if (side === 'request' && ref.source.startsWith('response.')) issue(path, `{{ ${refName(ref)} }}: the response is not known yet on the request side`);
        if (side === 'response' && ref.source === 'request.body') issue(path, `{{ ${refName(ref)} }}: the request body is gone by the time the response comes; extract what is needed from it`);
        if (ref.source === 'extract' && !extractors.has(ref.path[0]!)) issue(path, `{{ ${refName(ref)} }}: no extractor "${ref.path[0]}" is defined before this`);
        if (ref.source === 'item') issue(path, `{{ ${refName(ref)} }}: is only known inside a JSON body's $each`);
      }
    };
    const text = (path: (string | number)[], value: string): TemplateRef[] => {
      try {
        return templateRefs(parseTemplate(value));
      } catch (error) {
        if (error instanceof TemplateError) issue(path, error.message);
        else throw error;
        return [];
      }
    };
    spec.extract.forEach((extractor, i) => {
      if (extractors.has(extractor.name)) issue(['extract', i, 'name'], `"${extractor.name}" is defined twice`);
      check(['extract', i, 'value'], text(['extract', i, 'value'], extractor.value), 'request');
      if (extractor.regex !== undefined) {
        try {
          const groups = new RegExp(`${extractor.regex}|`).exec('')!.length - 1;
          if (extractor.group !== undefined && extractor.group > groups) issue(['extract', i, 'group'], `the expression has ${groups} capture group(s)`);
        } catch (error) {
          issue(['extract', i, 'regex'], `invalid regular expression: ${(error as Error).message}`);
        }
      } else if (extractor.group !== undefined) issue(['extract', i, 'group'], 'a group needs a regex');
      extractors.add(extractor.name);
    });
    for (const side of ['request', 'response'] as const) {
      const edits = spec[side];
      if (!edits) continue;
      if (!edits.headers && !edits.body) issue([side], 'give headers, a body or both');
      for (const list of ['set', 'add'] as const) {
        edits.headers?.[list]?.forEach((header, i) => {
          const path = [side, 'headers', list, i];
          if (TRANSFORM_RESERVED_HEADERS.has(header.name.toLowerCase())) issue([...path, 'name'], `${header.name} is set by the proxy`);
          check([...path, 'value'], text([...path, 'value'], header.value), side);
        });
      }
      edits.headers?.remove?.forEach((name, i) => {
        if (TRANSFORM_RESERVED_HEADERS.has(name.toLowerCase())) issue([side, 'headers', 'remove', i], `${name} is set by the proxy`);
      });
      const body = edits.body;
      if (body && 'json' in body) {
        try {
          check([side, 'body', 'json'], jsonTemplateRefs(parseJsonTemplate(body.json)), side);
        } catch (error) {
          if (error instanceof TemplateError) issue([side, 'body', 'json'], error.message);
          else throw error;
        }
      } else if (body) check([side, 'body', 'text'], text([side, 'body', 'text'], body.text), side);
    }
    if (!spec.request && !spec.response) issue([], 'a Transformation needs a request side, a response side or both');
  });
export type TransformationSpec = z.infer<typeof TransformationSpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1 (ApiPortal)

const portalText = z.string().max(4096);

/** One API a portal publishes: its routes (their hostnames and matches are its operations), a GraphQLApi's schema, an OpenAPI document. */
export const PortalApi = z.strictObject({
  /** Its address in the portal (…/apis/<name>/). */
  name: dnsLabel,
  title: z.string().min(1).max(200).optional(),
  description: portalText.optional(),
  /** HTTPRoutes of the portal's namespace. */
  routes: z.array(z.strictObject({ name: z.string().min(1).max(253) })).max(32).optional(),
  /** A GraphQLApi of the portal's namespace: its schema is published. */
  graphql: z.strictObject({ name: z.string().min(1).max(253) }).optional(),
  /** An OpenAPI document (JSON or YAML), published as JSON. */
  openapi: z.string().max(1_048_576).optional(),
});
export type PortalApi = z.infer<typeof PortalApi>;

/**
 * A developer portal: pages a gateway serves (through a route's
 * ExtensionRef filter) that publish APIs to the developers who call them:
 * where to reach each one, its operations, how it authenticates (from the
 * Gateway's RequestAuthentications), its OpenAPI document or GraphQL schema.
 */
export const ApiPortalSpec = z
  .strictObject({
    title: z.string().min(1).max(200),
    description: portalText.optional(),
    apis: z.array(PortalApi).min(1).max(64),
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    spec.apis.forEach((api, i) => {
      if (seen.has(api.name)) ctx.addIssue({ code: 'custom', path: ['apis', i, 'name'], message: `another API is already named "${api.name}"` });
      seen.add(api.name);
      if (!api.routes?.length && !api.graphql && api.openapi === undefined) ctx.addIssue({ code: 'custom', path: ['apis', i], message: 'an API publishes routes, a GraphQLApi or an OpenAPI document (at least one)' });
    });
  });
export type ApiPortalSpec = z.infer<typeof ApiPortalSpec>;

/** What a rate limit's buckets are keyed by, besides the policy's target (Envoy calls these descriptors). */
export const RateLimitDescriptor = z
  .strictObject({
    type: z.enum(['Route', 'Service', 'SourceIdentity', 'Header', 'ClientIP', 'RequestPrincipal']),
    /** Header only: the header whose value keys the bucket; a request without it shares one bucket. */
    header: headerName.optional(),
  })
  .superRefine((d, ctx) => {
    if (d.type === 'Header' && d.header === undefined) ctx.addIssue({ code: 'custom', path: ['header'], message: 'a Header descriptor needs the header name' });
    if (d.type !== 'Header' && d.header !== undefined) ctx.addIssue({ code: 'custom', path: ['header'], message: `only a Header descriptor takes a header (this one is ${d.type})` });
  });

export const RateLimit = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label').max(63).optional(),
    /** Requests allowed per interval (the bucket refills at requests/interval). */
    requests: z.number().int().min(1, 'must be at least 1').max(1_000_000_000),
    interval: gatewayDuration.default('1s'),
    /** The bucket's size: requests that may pass at once after a quiet time; requests when absent. */
    burst: z.number().int().min(1, 'must be at least 1').max(1_000_000_000).optional(),
    /** Each distinct value of these gives its own bucket; none: one bucket for the target. */
    descriptors: z.array(RateLimitDescriptor).max(4).default([]),
    /** Local: per proxy. Global: shared by every proxy enforcing it, through the control plane. */
    scope: z.enum(['Local', 'Global']).default('Local'),
    /** Distinct keys (buckets) kept per proxy; the least recently used is forgotten beyond it. */
    maxKeys: z.number().int().min(1).max(100_000).default(10_000),
  });
export type RateLimit = z.infer<typeof RateLimit>;

export const PolicyTargetReference = z.strictObject({
  /** Left out: the kind's own group (gateway.networking.k8s.io for routes and Gateways, "" for Service). */
  group: z.string().optional(),
  kind: z.enum(['HTTPRoute', 'GRPCRoute', 'Service', 'Gateway']),
  name: z.string().min(1),
});

export const RateLimitPolicySpec = z.strictObject({
  targetRefs: z.array(PolicyTargetReference).min(1, 'a RateLimitPolicy needs at least one targetRef').max(16),
  limits: z.array(RateLimit).min(1, 'a RateLimitPolicy needs at least one limit').max(16),
});
export type RateLimitPolicySpec = z.infer<typeof RateLimitPolicySpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1 (BackendTrafficPolicy)

const positiveInt = z.number().int().min(1, 'must be at least 1');
const httpStatus = z.number().int().min(100).max(599);

export const BackendTrafficPolicyTargetReference = z.strictObject({
  /** Left out: the kind's own group ("" for Service, gateway.networking.k8s.io for routes). */
  group: z.string().optional(),
  kind: z.enum(['Service', 'HTTPRoute', 'GRPCRoute']),
  name: z.string().min(1),
  /**
   * Service: a port name (or number, as a string); route: a rule name. The
   * policy then applies to that port or rule only, and wins over a policy on
   * the whole Service or route.
   */
  sectionName: z.string().min(1).optional(),
});
export type BackendTrafficPolicyTargetReference = z.infer<typeof BackendTrafficPolicyTargetReference>;

export const BackendTrafficPolicySpec = z.strictObject({
  targetRefs: z.array(BackendTrafficPolicyTargetReference).min(1, 'a BackendTrafficPolicy needs at least one targetRef').max(16),
  loadBalancer: z
    .strictObject({
      type: z.enum(['LeastRequest', 'RoundRobin', 'Random', 'ConsistentHash']).default('LeastRequest'),
      consistentHash: z
        .strictObject({
          type: z.enum(['Header', 'Cookie', 'QueryParam', 'SourceIP']),
          header: z.strictObject({ name: headerName }).optional(),
          cookie: z.strictObject({ name: z.string().min(1).max(256) }).optional(),
          queryParam: z.strictObject({ name: z.string().min(1).max(256) }).optional(),
          algorithm: z.enum(['Maglev', 'RingHash']).default('Maglev'),
        })
        .superRefine((hash, ctx) => {
          const field = hash.type === 'Header' ? 'header' : hash.type === 'Cookie' ? 'cookie' : hash.type === 'QueryParam' ? 'queryParam' : undefined;
          if (field !== undefined && hash[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `type ${hash.type} needs ${field}.name` });
        })
        .optional(),
      slowStart: z.strictObject({ window: gatewayDuration }).optional(),
      /** Prefer endpoints in the caller's locality (when outlier detection or health checks can tell they are unhealthy). */
      localityFailover: z.boolean().default(true),
    })
    .superRefine((lb, ctx) => {
      if (lb.type === 'ConsistentHash' && lb.consistentHash === undefined) ctx.addIssue({ code: 'custom', path: ['consistentHash'], message: 'type ConsistentHash needs consistentHash' });
      if (lb.type !== 'ConsistentHash' && lb.consistentHash !== undefined) ctx.addIssue({ code: 'custom', path: ['consistentHash'], message: `only type ConsistentHash takes consistentHash, not ${lb.type}` });
    })
    .optional(),
  circuitBreaker: z
    .strictObject({
      maxConnections: positiveInt.max(100_000).optional(),
      maxPendingRequests: z.number().int().min(0).max(1_000_000).optional(),
      maxParallelRequests: positiveInt.max(1_000_000).optional(),
      maxParallelRetries: z.number().int().min(0).max(1_000_000).optional(),
    })
    .optional(),
  outlierDetection: z
    .strictObject({
      consecutive5xxErrors: positiveInt.max(1000).optional(),
      consecutiveGatewayErrors: positiveInt.max(1000).optional(),
      consecutiveConnectFailures: positiveInt.max(1000).optional(),
      baseEjectionTime: gatewayDuration.default('30s'),
      maxEjectionTime: gatewayDuration.default('300s'),
      maxEjectionPercent: z.number().int().min(0).max(100).default(10),
    })
    .refine((o) => o.consecutive5xxErrors ?? o.consecutiveGatewayErrors ?? o.consecutiveConnectFailures, {
      message: 'set at least one of consecutive5xxErrors, consecutiveGatewayErrors, consecutiveConnectFailures',
    })
    .optional(),
  healthCheck: z
    .strictObject({
      type: z.enum(['HTTP', 'TCP']),
      http: z
        .strictObject({
          path: z.string().regex(/^\//, 'must start with "/"').max(1024),
          expectedStatuses: z.array(httpStatus).min(1).max(32).default([200]),
        })
        .optional(),
      interval: gatewayDuration.default('5s'),
      timeout: gatewayDuration.default('1s'),
      healthyThreshold: positiveInt.max(100).default(1),
      unhealthyThreshold: positiveInt.max(100).default(3),
    })
    .superRefine((hc, ctx) => {
      if (hc.type === 'HTTP' && hc.http === undefined) ctx.addIssue({ code: 'custom', path: ['http'], message: 'type HTTP needs http.path' });
    })
    .optional(),
  connection: z
    .strictObject({
      connectTimeout: gatewayDuration.optional(),
      idleTimeout: gatewayDuration.optional(),
      maxRequestsPerConnection: positiveInt.max(1_000_000).optional(),
    })
    .optional(),
  retryBudget: z
    .strictObject({
      /** Retries may add this share of the request rate (Linkerd's retryRatio × 100). */
      percent: z.number().min(0).max(1000).default(20),
      minRetriesPerSecond: z.number().int().min(0).max(100_000).default(10),
      /** How far back requests and retries are counted. */
      window: gatewayDuration.default('10s'),
    })
    .optional(),
});
export type BackendTrafficPolicySpec = z.infer<typeof BackendTrafficPolicySpec>;

// ---------------------------------------------------------------- weft.dev/v1alpha1 (RequestAuthentication)

/** JWT signature algorithms weft verifies. `none` is never one of them. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512'] as const;
/** The default: every asymmetric algorithm (a public key can only verify; an HMAC secret could also sign). */
export const ASYMMETRIC_JWT_ALGORITHMS = JWT_ALGORITHMS.filter((alg) => !alg.startsWith('HS'));
const HMAC_JWT_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512'];

/** Headers a claim may not be copied into: framing, routing and the mesh's own. */
const RESERVED_OUTPUT_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'te', 'upgrade', 'keep-alive', 'proxy-connection', 'x-forwarded-client-cert']);
const outputHeaderName = headerName.refine((name) => !RESERVED_OUTPUT_HEADERS.has(name.toLowerCase()) && !name.toLowerCase().startsWith('weft-'), {
  message: 'must not be a framing header (host, content-length, ...), x-forwarded-client-cert or a weft-* header',
});

export const JWTHeader = z.strictObject({
  name: headerName,
  /** Stripped before decoding ("Bearer "); compared case-insensitively. A header not starting with it carries no token. */
  prefix: z.string().max(64).optional(),
});

/** An inline JWKS: what `jwks` must hold, checked here so that a bad key set is refused when applied. */
function checkInlineJwks(text: string, algorithms: readonly string[], ctx: z.RefinementCtx): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', path: ['jwks'], message: `must be a JSON Web Key Set (JSON): ${error instanceof Error ? error.message : String(error)}` });
    return;
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'must be a JSON Web Key Set: an object with a non-empty "keys" array' });
    return;
  }
  const hmac = algorithms.some((alg) => HMAC_JWT_ALGORITHMS.includes(alg));
  keys.forEach((key: unknown, i) => {
    const jwk = key as Record<string, unknown> | null;
    const kty = jwk?.kty;
    if (typeof kty !== 'string' || !['RSA', 'EC', 'OKP', 'oct'].includes(kty)) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: `keys[${i}]: kty must be RSA, EC, OKP or oct` });
      return;
    }
    if (kty === 'oct') {
      if (!hmac) ctx.addIssue({ code: 'custom', path: ['jwks'], message: `keys[${i}] is an HMAC secret (kty oct): it is only used when algorithms lists HS256, HS384 or HS512` });
      if (typeof jwk?.k !== 'string' || jwk.k === '') ctx.addIssue({ code: 'custom', path: ['jwks'], message: `keys[${i}]: an oct key needs "k"` });
      return;
    }
    if (hmac) ctx.addIssue({ code: 'custom', path: ['jwks'], message: `keys[${i}] (kty ${kty}) is a public key: HMAC algorithms are never mixed with public keys (key confusion)` });
    if (jwk?.d !== undefined) ctx.addIssue({ code: 'custom', path: ['jwks'], message: `keys[${i}] carries private key material ("d"): give public keys only` });
  });
}

export const JWTRule = z
  .strictObject({
    /** Must equal the token's `iss`. */
    issuer: z.string().min(1).max(1024),
    /** The token's `aud` must hold one of these; empty: `aud` is not checked (as Istio and Envoy). */
    audiences: z.array(z.string().min(1).max(1024)).max(64).optional(),
    /** Where the public keys are fetched from (cached, refreshed); exactly one of jwksUri and jwks. */
    jwksUri: z
      .string()
      .max(2048)
      .refine((uri) => {
        try {
          const url = new URL(uri);
          return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
        } catch {
          return false;
        }
      }, 'must be an http:// or https:// URL')
      .optional(),
    /** An inline JSON Web Key Set (a JSON string); exactly one of jwksUri and jwks. */
    jwks: z.string().min(1).max(262_144).optional(),
    /** Where tokens are looked for; none of fromHeaders, fromParams, fromCookies: `Authorization: Bearer <token>` and `?access_token=`. */
    fromHeaders: z.array(JWTHeader).max(8).optional(),
    fromParams: z.array(z.string().min(1).max(256)).max(8).optional(),
    fromCookies: z
      .array(z.string().min(1).max(256).regex(HTTP_TOKEN, 'must be a cookie name'))
      .max(8)
      .optional(),
    /** The verified token's payload (base64url, as in the token) is sent on in this header. */
    outputPayloadToHeader: outputHeaderName.optional(),
    /** Claims of the verified token sent on as headers ("a.b" reaches a nested claim); a request's own such headers are removed. */
    outputClaimToHeaders: z
      .array(z.strictObject({ header: outputHeaderName, claim: z.string().min(1).max(256) }))
      .max(32)
      .optional(),
    /** false (default): the token is removed from the request once verified. */
    forwardOriginalToken: z.boolean().default(false),
    /** Accepted signature algorithms; default every asymmetric one. HS* only with an inline jwks of oct keys. */
    algorithms: z
      .array(
        z.string().superRefine((alg, ctx) => {
          if (alg.toLowerCase() === 'none') ctx.addIssue({ code: 'custom', message: 'alg "none" is never accepted: an unsigned token proves nothing' });
          else if (!(JWT_ALGORITHMS as readonly string[]).includes(alg)) ctx.addIssue({ code: 'custom', message: `"${alg}" is not one of ${JWT_ALGORITHMS.join(', ')}` });
        }),
      )
      .min(1)
      .max(JWT_ALGORITHMS.length)
      .optional(),
    /** Leeway for exp and nbf. */
    clockSkew: gatewayDuration.default('60s'),
    /** How long fetched keys are used before they are fetched again (Envoy's remote_jwks default). */
    jwksCacheDuration: gatewayDuration.default('10m'),
    /** How long a JWKS fetch may take (Istio's JWTRule timeout default). */
    timeout: gatewayDuration.default('5s'),
  })
  .superRefine((rule, ctx) => {
    if (rule.jwksUri === undefined && rule.jwks === undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwksUri'], message: 'a jwtRule needs jwksUri or jwks (the keys its tokens are verified with)' });
    }
    if (rule.jwksUri !== undefined && rule.jwks !== undefined) ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'set jwksUri or jwks, not both' });
    const algorithms = rule.algorithms ?? ASYMMETRIC_JWT_ALGORITHMS;
    const hmac = algorithms.filter((alg) => HMAC_JWT_ALGORITHMS.includes(alg));
    if (hmac.length > 0 && hmac.length < algorithms.length) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'HMAC algorithms (HS*) cannot be mixed with asymmetric ones: a public key would be accepted as an HMAC secret' });
    }
    if (hmac.length > 0 && rule.jwksUri !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'HMAC algorithms (HS*) need their secret inline in jwks, never fetched from jwksUri' });
    }
    if (rule.jwks !== undefined) checkInlineJwks(rule.jwks, algorithms, ctx);
  });
export type JWTRule = z.infer<typeof JWTRule>;

/**
 * API keys (a gateway's partners, scripts): each key of the referenced
 * Secrets' data is a client id, its value that client's key. A request that
 * carries a key must carry one of these; the client id becomes its request
 * principal ("api-key/<client id>"), which AuthorizationPolicy reads.
 */
export const ApiKeyAuth = z
  .strictObject({
    /** Secrets in the policy's namespace. */
    credentialRefs: z
      .array(z.strictObject({ group: z.literal('').optional(), kind: z.literal('Secret').optional(), name: z.string().min(1).max(253) }))
      .min(1)
      .max(16),
    /** Where keys are looked for; neither: the `x-api-key` header. A header's `prefix` ("ApiKey ") is stripped. */
    fromHeaders: z.array(JWTHeader).max(8).optional(),
    fromParams: z.array(z.string().min(1).max(256)).max(8).optional(),
    /** The client id is sent on in this header (whatever a client sent under that name is removed first). */
    clientIdHeader: outputHeaderName.optional(),
    /** false (default): the key is removed from the request once checked, so the app never sees it. */
    forwardOriginalKey: z.boolean().default(false),
  });
export type ApiKeyAuth = z.infer<typeof ApiKeyAuth>;

export const RequestAuthenticationTargetReference = z.strictObject({
  /** Left out: the kind's own group ("" for Service, gateway.networking.k8s.io for Gateway). */
  group: z.string().optional(),
  kind: z.enum(['Service', 'Gateway']),
  name: z.string().min(1),
});

export const RequestAuthenticationSpec = z
  .strictObject({
    /** The Gateways, and the sidecars of the workloads behind the Services, that verify tokens; or selector; or neither: every workload and Gateway of the namespace. */
    targetRefs: z.array(RequestAuthenticationTargetReference).min(1).max(16).optional(),
    selector: z.strictObject({ matchLabels: labels }).optional(),
    jwtRules: z.array(JWTRule).max(16).default([]),
    apiKeys: ApiKeyAuth.optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.targetRefs !== undefined && spec.selector !== undefined) ctx.addIssue({ code: 'custom', path: ['selector'], message: 'use targetRefs or selector, not both' });
  });
export type RequestAuthenticationSpec = z.infer<typeof RequestAuthenticationSpec>;

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
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'BackendTrafficPolicy', plural: 'backendtrafficpolicies', namespaced: true, spec: BackendTrafficPolicySpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'FaultInjection', plural: 'faultinjections', namespaced: true, spec: FaultInjectionSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'GraphQLApi', plural: 'graphqlapis', namespaced: true, spec: GraphQLApiSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'ApiPortal', plural: 'apiportals', namespaced: true, spec: ApiPortalSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'Transformation', plural: 'transformations', namespaced: true, spec: TransformationSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'RateLimitPolicy', plural: 'ratelimitpolicies', namespaced: true, spec: RateLimitPolicySpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'RequestAuthentication', plural: 'requestauthentications', namespaced: true, spec: RequestAuthenticationSpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', namespaced: true, spec: AuthorizationPolicySpec },
  { group: 'weft.dev', versions: ['v1alpha1'], kind: 'PeerAuthentication', plural: 'peerauthentications', namespaced: true, spec: PeerAuthenticationSpec },
  {
    group: 'gateway.networking.k8s.io',
    versions: ['v1', 'v1beta1'],
    kind: 'HTTPRoute',
    plural: 'httproutes',
    namespaced: true,
    spec: HTTPRouteSpec,
  },
  { group: 'gateway.networking.k8s.io', versions: ['v1'], kind: 'GRPCRoute', plural: 'grpcroutes', namespaced: true, spec: GRPCRouteSpec },
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
  { group: 'gateway.networking.k8s.io', versions: ['v1alpha2'], kind: 'TCPRoute', plural: 'tcproutes', namespaced: true, spec: TCPRouteSpec },
  { group: 'gateway.networking.k8s.io', versions: ['v1alpha3', 'v1alpha2'], kind: 'TLSRoute', plural: 'tlsroutes', namespaced: true, spec: TLSRouteSpec },
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
export type BackendTrafficPolicy = Resource<BackendTrafficPolicySpec>;
export type FaultInjection = Resource<FaultInjectionSpec>;
export type RateLimitPolicy = Resource<RateLimitPolicySpec>;
export type GraphQLApi = Resource<GraphQLApiSpec>;
export type ApiPortal = Resource<ApiPortalSpec>;
export type Transformation = Resource<TransformationSpec>;
export type RequestAuthentication = Resource<RequestAuthenticationSpec>;
export type AuthorizationPolicy = Resource<AuthorizationPolicySpec>;
export { AuthorizationPolicySpec };
export type PeerAuthentication = Resource<PeerAuthenticationSpec>;
export { PeerAuthenticationSpec };
export type HTTPRoute = Resource<HTTPRouteSpec>;
export type TCPRoute = Resource<TCPRouteSpec>;
export type TLSRoute = Resource<TLSRouteSpec>;
export type GRPCRoute = Resource<GRPCRouteSpec>;
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
