// Checks a snapshot the proxy is given (from the control plane or from disk) before compiling it: shape and references.
import { z } from 'zod';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { ProxySnapshot } from '../../api/snapshot.ts';
import { HTTP_TOKEN } from '../../api/http-syntax.ts';

const port = z.number().int().min(1).max(65535);
const stringMatch = z.object({ type: z.enum(['Exact', 'RegularExpression']), value: z.string() });
const headerModifier = z.object({
  set: z.array(z.object({ name: z.string().min(1), value: z.string() })).optional(),
  add: z.array(z.object({ name: z.string().min(1), value: z.string() })).optional(),
  remove: z.array(z.string().min(1)).optional(),
});
const pathModifier = z.object({ type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']), value: z.string() });
const hostname = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
// A filter type this proxy does not know fails the snapshot: serving a rule without its filter would do what the user did not ask.
const filter = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('RequestHeaderModifier'), modifier: headerModifier }),
  z.looseObject({ type: z.literal('ResponseHeaderModifier'), modifier: headerModifier }),
  z.looseObject({
    type: z.literal('RequestRedirect'),
    redirect: z.looseObject({
      scheme: z.enum(['http', 'https']).optional(),
      hostname: hostname.optional(),
      port: port.optional(),
      path: pathModifier.optional(),
      statusCode: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]),
    }),
  }),
  z.looseObject({ type: z.literal('URLRewrite'), rewrite: z.looseObject({ hostname: hostname.optional(), path: pathModifier.optional() }) }),
  z.looseObject({ type: z.literal('RequestMirror'), mirror: z.looseObject({ backend: z.string().optional(), percent: z.number().min(0).max(100) }) }),
  z.looseObject({
    type: z.literal('CORS'),
    cors: z.looseObject({
      allowOrigins: z.array(z.string()),
      allowCredentials: z.boolean(),
      allowMethods: z.array(z.string()),
      allowHeaders: z.array(z.string()),
      exposeHeaders: z.array(z.string()),
      maxAgeSeconds: z.number().int().min(0),
    }),
  }),
  z.looseObject({
    type: z.literal('FaultInjection'),
    fault: z.looseObject({
      name: z.string(),
      delay: z.looseObject({ ms: z.number().min(0), percent: z.number().min(0).max(100) }).optional(),
      abort: z
        .looseObject({ httpStatus: z.number().int().min(200).max(599).optional(), grpcStatus: z.number().int().min(0).max(16).optional(), percent: z.number().min(0).max(100) })
        .optional(),
      headers: z.array(stringMatch.extend({ name: z.string().min(1) })).optional(),
    }),
  }),
]);
const protocol = z.enum(['http', 'http2', 'grpc', 'tcp']);
const rateLimits = z
  .array(
    z.looseObject({
      id: z.string().min(1),
      policy: z.string(),
      requests: z.number().positive(),
      intervalMs: z.number().positive(),
      burst: z.number().min(1),
      descriptors: z.array(z.looseObject({ type: z.enum(['Route', 'Service', 'SourceIdentity', 'ClientIP', 'Header']), header: z.string().min(1).optional() })),
      scope: z.enum(['Local', 'Global']),
      maxKeys: z.number().int().min(1),
    }),
  )
  .optional();

// Loose objects: a newer control plane may add fields this proxy does not read yet.
const SnapshotSchema = z.looseObject({
  version: z.string().min(1),
  node: z.looseObject({ mode: z.enum(['sidecar', 'node', 'gateway']), namespace: z.string(), workload: z.string().optional() }),
  mesh: z.looseObject({ trustDomain: z.string(), clusterDomain: z.string() }),
  services: z.array(
    z.looseObject({
      namespace: z.string().min(1),
      name: z.string().min(1),
      hosts: z.array(z.string().min(1)),
      ports: z.array(z.looseObject({ port, name: z.string().optional(), protocol, routeKey: z.string() })),
    }),
  ),
  routes: z.record(
    z.string(),
    z.looseObject({
      key: z.string(),
      rules: z.array(
        z.looseObject({
          id: z.string(),
          match: z.looseObject({
            path: z.object({ type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']), value: z.string() }).optional(),
            headers: z.array(stringMatch.extend({ name: z.string().min(1) })).optional(),
            queryParams: z.array(stringMatch.extend({ name: z.string().min(1) })).optional(),
            method: z.string().optional(),
          }),
          filters: z.array(filter),
          backends: z.array(z.looseObject({ backend: z.string().optional(), weight: z.number().int().min(0), filters: z.array(filter) })),
          timeouts: z
            .looseObject({ requestMs: z.number().positive().optional(), backendRequestMs: z.number().positive().optional() })
            .optional(),
          retry: z
            .looseObject({ codes: z.array(z.number().int().min(100).max(599)), attempts: z.number().int().min(0), backoffMs: z.number().min(0) })
            .optional(),
          rateLimits,
          sessionPersistence: z
            .looseObject({
              type: z.enum(['Cookie', 'Header']),
              name: z.string().regex(HTTP_TOKEN),
              absoluteTimeoutMs: z.number().positive().optional(),
              idleTimeoutMs: z.number().positive().optional(),
              cookieLifetime: z.enum(['Permanent', 'Session']).optional(),
            })
            .optional(),
        }),
      ),
    }),
  ),
  backends: z.record(
    z.string(),
    z.looseObject({
      key: z.string(),
      namespace: z.string(),
      service: z.string(),
      port,
      protocol,
      lb: z.enum(['round-robin', 'least-request', 'random', 'consistent-hash']),
      endpoints: z.array(
        z.looseObject({
          id: z.string().min(1),
          address: z.string().min(1),
          port,
          tunnelPort: port.optional(),
          labels: z.record(z.string(), z.string()),
        }),
      ),
    }),
  ),
  inbound: z.looseObject({ ports: z.array(port), rateLimits }),
  upstreams: z.array(z.looseObject({ localPort: port, routeKey: z.string(), host: z.string().min(1) })),
});

function invalid(message: string): WeftError {
  return new WeftError(ErrorCodes.SNAPSHOT_INVALID, message);
}

/** The snapshot, typed, or a WEFT_ERR_SNAPSHOT_INVALID naming every problem found. */
export function validateSnapshot(input: unknown): ProxySnapshot {
  const parsed = SnapshotSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
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
