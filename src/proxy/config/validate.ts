// Checks a snapshot the proxy is given (from the control plane or from disk) before compiling it: shape and references.
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { ProxySnapshot } from '../../api/snapshot.ts';
import { HTTP_TOKEN } from '../../api/http-syntax.ts';
import { array, bool, check, num, object, oneOf, optional, record, str, tagged, type Shape } from './shape.ts';

/** A RequestAuthentication's apiKeys (inbound and gateway): digests of keys, each naming a client. */
export const API_KEY_RULE = object({
  id: str(),
  keys: record(str({ min: 1 })),
  fromHeaders: array(object({ name: str({ min: 1, pattern: HTTP_TOKEN }), prefix: str() })),
  fromParams: array(str({ min: 1 })),
  clientIdHeader: optional(str({ min: 1, pattern: HTTP_TOKEN })),
  forwardOriginalKey: bool,
});

const port = num({ int: true, min: 1, max: 65535 });
const percent = num({ min: 0, max: 100 });
const nonEmpty = str({ min: 1 });
const namedStringMatch = object({ type: oneOf(['Exact', 'RegularExpression']), value: str(), name: nonEmpty });
const headerModifier = object({
  set: optional(array(object({ name: nonEmpty, value: str() }))),
  add: optional(array(object({ name: nonEmpty, value: str() }))),
  remove: optional(array(nonEmpty)),
});
const pathModifier = object({ type: oneOf(['ReplaceFullPath', 'ReplacePrefixMatch']), value: str() });
const namedValue = object({ name: str({ min: 1, pattern: HTTP_TOKEN }), value: str() });
/** A Transformation's new body: `json` (any JSON value, null included) or `text` with its content type. */
const transformBody: Shape = (value, path, issues) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) issues.push({ path, message: 'expected an object' });
  else if (!Object.hasOwn(value, 'json')) object({ text: str(), contentType: nonEmpty })(value, path, issues);
};
const transformSide = optional(
  object({
    headers: optional(object({ set: array(namedValue), add: array(namedValue), remove: array(nonEmpty) })),
    body: optional(transformBody),
  }),
);
const hostname = str({ pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/ });
// A filter type this proxy does not know fails the snapshot: serving a rule without its filter would do what the user did not ask.
const filter = tagged('type', {
  RequestHeaderModifier: object({ modifier: headerModifier }),
  ResponseHeaderModifier: object({ modifier: headerModifier }),
  RequestRedirect: object({
    redirect: object({
      scheme: optional(oneOf(['http', 'https'])),
      hostname: optional(hostname),
      port: optional(port),
      path: optional(pathModifier),
      statusCode: oneOf([301, 302, 303, 307, 308]),
    }),
  }),
  URLRewrite: object({ rewrite: object({ hostname: optional(hostname), path: optional(pathModifier) }) }),
  RequestMirror: object({ mirror: object({ backend: optional(str()), percent }) }),
  CORS: object({
    cors: object({
      allowOrigins: array(str()),
      allowCredentials: bool,
      allowMethods: array(str()),
      allowHeaders: array(str()),
      exposeHeaders: array(str()),
      maxAgeSeconds: num({ int: true, min: 0 }),
    }),
  }),
  FaultInjection: object({
    fault: object({
      name: str(),
      delay: optional(object({ ms: num({ min: 0 }), percent })),
      abort: optional(object({ httpStatus: optional(num({ int: true, min: 200, max: 599 })), grpcStatus: optional(num({ int: true, min: 0, max: 16 })), percent })),
      headers: optional(array(namedStringMatch)),
    }),
  }),
  GraphQL: object({
    graphql: object({
      name: str(),
      schema: nonEmpty,
      resolvers: record(
        object({
          backend: nonEmpty,
          host: nonEmpty,
          method: oneOf(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
          path: str({ min: 1, pattern: /^\// }),
          body: optional(str()),
          forwardHeaders: array(str({ min: 1, pattern: HTTP_TOKEN })),
          resultPath: optional(array(str({ min: 1 }))),
        }),
      ),
      maxDepth: num({ int: true, min: 1 }),
      introspection: bool,
      timeoutMs: num({ positive: true }),
    }),
  }),
  Transformation: object({
    transformation: object({
      name: str(),
      extract: array(object({ name: nonEmpty, value: str(), regex: optional(nonEmpty), group: optional(num({ int: true, min: 0 })) })),
      request: transformSide,
      response: transformSide,
      maxBodyBytes: num({ int: true, positive: true }),
    }),
  }),
  Portal: object({
    portal: object({
      name: str(),
      title: str(),
      description: optional(str()),
      apis: array(
        object({
          name: nonEmpty,
          title: str(),
          description: optional(str()),
          baseUrls: array(str()),
          operations: array(object({ methods: array(str()), path: str(), pathType: oneOf(['Exact', 'PathPrefix', 'RegularExpression']) })),
          authentication: array(str()),
          graphql: optional(object({ schema: str(), paths: array(str()) })),
          openapi: optional(str()),
        }),
      ),
    }),
  }),
});
const protocol = oneOf(['http', 'http2', 'grpc', 'tcp']);
const rateLimits = optional(
  array(
    object({
      id: nonEmpty,
      policy: str(),
      requests: num({ positive: true }),
      intervalMs: num({ positive: true }),
      burst: num({ min: 1 }),
      descriptors: array(object({ type: oneOf(['Route', 'Service', 'SourceIdentity', 'ClientIP', 'Header', 'RequestPrincipal']), header: optional(nonEmpty) })),
      scope: oneOf(['Local', 'Global']),
      maxKeys: num({ int: true, min: 1 }),
    }),
  ),
);

// Extra fields pass everywhere: a newer control plane may add fields this proxy does not read yet.
const SnapshotShape: Shape = object({
  version: nonEmpty,
  node: object({ mode: oneOf(['sidecar', 'node', 'gateway']), namespace: str(), workload: optional(str()) }),
  mesh: object({ trustDomain: str(), clusterDomain: str() }),
  services: array(
    object({
      namespace: nonEmpty,
      name: nonEmpty,
      hosts: array(nonEmpty),
      ports: array(object({ port, name: optional(str()), protocol, routeKey: str() })),
    }),
  ),
  routes: record(
    object({
      key: str(),
      rules: array(
        object({
          id: str(),
          match: object({
            path: optional(object({ type: oneOf(['Exact', 'PathPrefix', 'RegularExpression']), value: str() })),
            headers: optional(array(namedStringMatch)),
            queryParams: optional(array(namedStringMatch)),
            method: optional(str()),
          }),
          filters: array(filter),
          backends: array(object({ backend: optional(str()), weight: num({ int: true, min: 0 }), filters: array(filter) })),
          timeouts: optional(object({ requestMs: optional(num({ positive: true })), backendRequestMs: optional(num({ positive: true })) })),
          retry: optional(object({ codes: array(num({ int: true, min: 100, max: 599 })), attempts: num({ int: true, min: 0 }), backoffMs: num({ min: 0 }) })),
          rateLimits,
          sessionPersistence: optional(
            object({
              type: oneOf(['Cookie', 'Header']),
              name: str({ pattern: HTTP_TOKEN }),
              absoluteTimeoutMs: optional(num({ positive: true })),
              idleTimeoutMs: optional(num({ positive: true })),
              cookieLifetime: optional(oneOf(['Permanent', 'Session'])),
            }),
          ),
        }),
      ),
    }),
  ),
  backends: record(
    object({
      key: str(),
      namespace: str(),
      service: str(),
      port,
      protocol,
      lb: oneOf(['round-robin', 'least-request', 'random', 'consistent-hash']),
      endpoints: array(
        object({
          id: nonEmpty,
          address: nonEmpty,
          port,
          tunnelPort: optional(port),
          labels: record(str()),
        }),
      ),
    }),
  ),
  inbound: object({ ports: array(port), rateLimits, apiKeys: optional(array(API_KEY_RULE)) }),
  upstreams: array(object({ localPort: port, routeKey: str(), host: nonEmpty })),
});

function invalid(message: string): WeftError {
  return new WeftError(ErrorCodes.SNAPSHOT_INVALID, message);
}

/** The snapshot, typed, or a WEFT_ERR_SNAPSHOT_INVALID naming every problem found. */
export function validateSnapshot(input: unknown): ProxySnapshot {
  const issues = check(SnapshotShape, input);
  if (issues.length > 0) {
    const problems = issues.slice(0, 10).map((issue) => `${issue.path || '(root)'}: ${issue.message}`);
    throw invalid(`malformed snapshot: ${problems.join('; ')}`);
  }
  // Validated; the original object is kept so that unknown fields survive a round trip to disk.
  const snapshot = input as ProxySnapshot;
  const problems: string[] = [];
  for (const [key, backend] of Object.entries(snapshot.backends)) {
    if (backend.key !== key) problems.push(`backends["${key}"] has key "${backend.key}"`);
    const ids = new Set<string>();
    for (const endpoint of backend.endpoints) {
      if (ids.has(endpoint.id)) problems.push(`backends["${key}"] lists endpoint ${endpoint.id} twice`);
      ids.add(endpoint.id);
    }
  }
  for (const [key, table] of Object.entries(snapshot.routes)) {
    if (table.key !== key) problems.push(`routes["${key}"] has key "${table.key}"`);
    for (const rule of table.rules) {
      for (const wb of rule.backends) {
        if (wb.backend !== undefined && !Object.hasOwn(snapshot.backends, wb.backend)) {
          problems.push(`routes["${key}"] rule ${rule.id} sends to backend ${wb.backend}, which is not in backends`);
        }
      }
      for (const f of [...rule.filters, ...rule.backends.flatMap((wb) => wb.filters)]) {
        if (f.type === 'RequestMirror' && f.mirror.backend !== undefined && !Object.hasOwn(snapshot.backends, f.mirror.backend)) {
          problems.push(`routes["${key}"] rule ${rule.id} mirrors to backend ${f.mirror.backend}, which is not in backends`);
        }
      }
    }
  }
  for (const service of snapshot.services) {
    for (const p of service.ports) {
      if (!Object.hasOwn(snapshot.routes, p.routeKey)) problems.push(`service ${service.namespace}/${service.name} port ${p.port}: no route table ${p.routeKey}`);
    }
  }
  const localPorts = new Set<number>();
  for (const upstream of snapshot.upstreams) {
    if (localPorts.has(upstream.localPort)) problems.push(`upstream localPort ${upstream.localPort} is used twice`);
    localPorts.add(upstream.localPort);
    if (!snapshot.services.some((s) => s.ports.some((p) => p.routeKey === upstream.routeKey))) {
      problems.push(`upstream on localPort ${upstream.localPort} goes to ${upstream.routeKey}, which is no service port`);
    }
  }
  if (problems.length > 0) throw invalid(problems.slice(0, 10).join('; '));
  return snapshot;
}
