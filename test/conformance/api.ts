// A small client of the control plane's REST API for the conformance harness: apply, get, delete, proxies.
import { kindOf } from '../../src/api/resources.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import type { K8sObject, ObjectName } from './model.ts';

/** Versions the cases use for each kind, when an object names only kind + name (before.delete). */
const DEFAULT_API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  Service: 'v1',
  Secret: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  Workload: 'weft.dev/v1alpha1',
  Gateway: 'gateway.networking.k8s.io/v1',
  GatewayClass: 'gateway.networking.k8s.io/v1',
  HTTPRoute: 'gateway.networking.k8s.io/v1',
  GRPCRoute: 'gateway.networking.k8s.io/v1',
  ReferenceGrant: 'gateway.networking.k8s.io/v1beta1',
};

const CLUSTER_SCOPED = new Set(['Namespace', 'GatewayClass']);

/** Kubernetes' plural: lower-case kind + "s" ("es" after s, "ies" after a consonant + y). */
function pluralOf(kind: string): string {
  const lower = kind.toLowerCase();
  if (lower.endsWith('s')) return `${lower}es`;
  if (/[^aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}

/** The REST path of one object, from weft's kind registry when it knows the kind, else by Kubernetes' conventions. */
export function objectPath(ref: ObjectName): string {
  const apiVersion = ref.apiVersion ?? DEFAULT_API_VERSIONS[ref.kind] ?? 'v1';
  const info = kindOf(apiVersion, ref.kind);
  const plural = info?.plural ?? pluralOf(ref.kind);
  const namespaced = info ? info.namespaced : !CLUSTER_SCOPED.has(ref.kind);
  const prefix = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const scope = namespaced ? `/namespaces/${encodeURIComponent(ref.namespace ?? 'default')}` : '';
  return `${prefix}${scope}/${plural}/${encodeURIComponent(ref.name)}`;
}

export function nameOf(object: K8sObject): ObjectName {
  const ref: ObjectName = { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name };
  if (object.metadata.namespace !== undefined) ref.namespace = object.metadata.namespace;
  return ref;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: string;
  constructor(message: string, status: number, body: string) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The API's error body ({message, details.causes[]}) as one line. */
function describeError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: string; details?: { causes?: { object?: string; field?: string; message?: string }[] } };
    const causes = (parsed.details?.causes ?? []).slice(0, 5).map((c) => `${c.object ?? ''}${c.field ? ` ${c.field}` : ''}: ${c.message ?? ''}`);
    return [parsed.message ?? body.slice(0, 300), ...causes].join('; ');
  } catch {
    return body.slice(0, 300);
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

export class ControlPlaneApi {
  readonly base: string;

  constructor(base: string) {
    this.base = base.replace(/\/$/, '');
  }

  private async call(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const init: RequestInit = { method, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    const res = await fetch(`${this.base}${path}`, init);
    return { status: res.status, text: await res.text() };
  }

  /** Creates or updates every object in one request; throws with the API's reasons when any is rejected. */
  async apply(items: readonly K8sObject[]): Promise<void> {
    if (items.length === 0) return;
    const { status, text } = await this.call('POST', '/weft/v1/apply', { items });
    if (status !== 200) throw new ApiError(`apply rejected (${status}): ${describeError(text)}`, status, text);
  }

  /** A proxy bootstrap token for `workload` in `namespace` (the control plane runs in local mode). */
  async createToken(namespace: string, workload: string): Promise<string> {
    const { status, text } = await this.call('POST', '/weft/v1/tokens', { namespace, workload });
    if (status !== 201) throw new ApiError(`POST /weft/v1/tokens (${status}): ${describeError(text)}`, status, text);
    return (JSON.parse(text) as { token: string }).token;
  }

  /** Deletes one object; a missing one is not an error. */
  async delete(ref: ObjectName): Promise<void> {
    const { status, text } = await this.call('DELETE', objectPath(ref));
    if (status !== 200 && status !== 404) throw new ApiError(`DELETE ${objectPath(ref)} (${status}): ${describeError(text)}`, status, text);
  }

  /** The object as stored (with status), or undefined when it does not exist. */
  async get(ref: ObjectName): Promise<K8sObject & { status?: unknown } | undefined> {
    const { status, text } = await this.call('GET', objectPath(ref));
    if (status === 404) return undefined;
    if (status !== 200) throw new ApiError(`GET ${objectPath(ref)} (${status}): ${describeError(text)}`, status, text);
    return JSON.parse(text) as K8sObject & { status?: unknown };
  }

  async list(path: string): Promise<K8sObject[]> {
    const { status, text } = await this.call('GET', path);
    if (status !== 200) throw new ApiError(`GET ${path} (${status}): ${describeError(text)}`, status, text);
    return ((JSON.parse(text) as { items?: K8sObject[] }).items ?? []);
  }

  async proxies(): Promise<ProxyStatus[]> {
    const { status, text } = await this.call('GET', '/weft/v1/proxies');
    if (status !== 200) throw new ApiError(`GET /weft/v1/proxies (${status})`, status, text);
    return JSON.parse(text) as ProxyStatus[];
  }
}
