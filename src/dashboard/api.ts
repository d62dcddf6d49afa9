// The dashboard's client of the control-plane API: the same paths the CLI uses, plus /weft/v1/kinds, apply with dry run, delete, topology.
import type { Resource } from '../api/meta.ts';
import type { ExplainRequest, ExplainTrace, LiveProxyState } from '../api/explain.ts';
import type { ReplicaStatus } from '../api/stream.ts';
import type { TapLine } from '../api/tap.ts';
import type { ServiceTraffic, TopologyTraffic } from '../api/topology.ts';

export interface KindEntry {
  group: string;
  versions: string[];
  kind: string;
  plural: string;
  namespaced: boolean;
}

export interface StatusCause {
  field?: string;
  message: string;
  object?: string;
  item?: number;
  line?: number;
  column?: number;
}

/** A Kubernetes Status object: the API's error answer. */
export interface ApiStatus {
  message: string;
  reason?: string;
  code: number;
  weftCode?: string;
  details?: { causes?: StatusCause[] };
}

export class ApiFailure extends Error {
  readonly status: ApiStatus;
  constructor(status: ApiStatus) {
    super(status.message);
    this.name = 'ApiFailure';
    this.status = status;
  }
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface FieldChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

export interface DryRunResult {
  action: ApplyAction;
  object: Resource;
  before?: Resource;
  changes: FieldChange[];
}

export interface ApplyResult {
  action: ApplyAction;
  object: Resource;
}

async function request<T>(method: string, path: string, body?: string, contentType?: string): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: { accept: 'application/json', ...(contentType ? { 'content-type': contentType } : {}) },
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const status = parsed && typeof parsed === 'object' && typeof (parsed as ApiStatus).message === 'string' ? (parsed as ApiStatus) : undefined;
    throw new ApiFailure(status ?? { message: `${method} ${path}: ${response.status} ${response.statusText}`, code: response.status });
  }
  return parsed as T;
}

export function kinds(): Promise<KindEntry[]> {
  return request<{ kinds: KindEntry[] }>('GET', '/weft/v1/kinds').then((r) => r.kinds);
}

/** `/api/v1/namespaces/ns/services/name`, as the server spells resource paths. */
export function resourcePath(kind: KindEntry, namespace: string | undefined, name: string): string {
  const version = kind.versions[0] ?? 'v1';
  let path = kind.group ? `/apis/${kind.group}/${version}` : `/api/${version}`;
  if (kind.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  return `${path}/${kind.plural}/${encodeURIComponent(name)}`;
}

/** Sends YAML to /weft/v1/apply; the server parses it, so errors name lines and field paths. */
export function dryRunApply(yaml: string): Promise<{ results: DryRunResult[] }> {
  return request('POST', '/weft/v1/apply?dryRun=All', yaml, 'application/yaml');
}

export function apply(yaml: string): Promise<{ results: ApplyResult[] }> {
  return request('POST', '/weft/v1/apply', yaml, 'application/yaml');
}

export function remove(kind: KindEntry, namespace: string | undefined, name: string): Promise<unknown> {
  return request('DELETE', resourcePath(kind, namespace, name));
}

/** The traffic seam: GET /api/v1/topology. A server without it (404) counts as "no traffic data yet". */
export async function topology(window: string): Promise<TopologyTraffic | undefined> {
  try {
    const data = await request<TopologyTraffic>('GET', `/api/v1/topology?window=${encodeURIComponent(window)}`);
    return data && data.available ? data : undefined;
  } catch (error) {
    if (error instanceof ApiFailure && error.status.code === 404) return undefined;
    throw error;
  }
}

/** GET /api/v1/services/<ns>/<name>: one Service's traffic with its series; undefined while nothing is collected (or on a server without it). */
export async function serviceTraffic(namespace: string, name: string, window: string): Promise<ServiceTraffic | undefined> {
  try {
    const data = await request<ServiceTraffic>('GET', `/api/v1/services/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}?window=${encodeURIComponent(window)}`);
    return data && typeof data === 'object' && 'inbound' in data ? data : undefined;
  } catch (error) {
    if (error instanceof ApiFailure && error.status.code === 404) return undefined;
    throw error;
  }
}

/** The control-plane replicas and which one leads, from GET /weft/v1/status; empty when the status cannot be read. */
export async function replicas(): Promise<{ replicas: ReplicaStatus[]; leader: string | undefined }> {
  try {
    const status = await request<{ replicas?: ReplicaStatus[]; leader?: { holder?: string | null } }>('GET', '/weft/v1/status');
    return { replicas: Array.isArray(status?.replicas) ? status.replicas : [], leader: status?.leader?.holder ?? undefined };
  } catch {
    return { replicas: [], leader: undefined };
  }
}

/** POST /weft/v1/explain. The browser cannot read a proxy's admin, so the trace is of the configuration alone. */
export function explain(body: ExplainRequest): Promise<ExplainTrace> {
  return request('POST', '/weft/v1/explain', JSON.stringify(body), 'application/json');
}

export interface TapQuery {
  target: string;
  namespace: string;
  pathPrefix?: string;
  method?: string;
  status?: string;
  showHeaders?: string[];
}

/** GET /api/v1/tap (NDJSON): calls `onLine` per line until the server ends the tap or `signal` aborts it. */
export async function tap(query: TapQuery, onLine: (line: TapLine) => void, signal: AbortSignal): Promise<void> {
  const params = new URLSearchParams({ target: query.target, namespace: query.namespace });
  if (query.pathPrefix) params.set('pathPrefix', query.pathPrefix);
  if (query.method) params.set('method', query.method);
  if (query.status) params.set('status', query.status);
  for (const header of query.showHeaders ?? []) params.append('showHeader', header);
  const response = await fetch(`/api/v1/tap?${params.toString()}`, { headers: { accept: 'application/x-ndjson' }, signal });
  if (!response.ok || !response.body) {
    const text = await response.text();
    let status: ApiStatus | undefined;
    try {
      status = JSON.parse(text) as ApiStatus;
    } catch {
      status = undefined;
    }
    throw new ApiFailure(status?.message ? status : { message: `tap: ${response.status} ${response.statusText}`, code: response.status });
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const text = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (text) onLine(JSON.parse(text) as TapLine);
    }
  }
}

/** The path of a proxy's views the control plane relays from its admin listener (src/control/api/proxy-admin.ts). */
function proxyAdminPath(id: string, view: 'config' | 'backends'): string {
  return `/weft/v1/proxies/${id.split('/').map(encodeURIComponent).join('/')}/${view}`;
}

/** The config a proxy runs (its admin /config), as JSON. */
export function proxyConfig(id: string): Promise<unknown> {
  return request('GET', proxyAdminPath(id, 'config'));
}

/** A proxy's balancers as it sees them now: endpoints, ejections, health (its admin /debug/backends). */
export function proxyBackends(id: string, workload?: string): Promise<LiveProxyState> {
  return request('GET', proxyAdminPath(id, 'backends') + (workload ? `?workload=${encodeURIComponent(workload)}` : ''));
}

/** Trades an API token for the session cookie the event stream and every call then carry (POST /weft/v1/session). */
export async function signIn(token: string): Promise<void> {
  await request<unknown>('POST', '/weft/v1/session', JSON.stringify({ token }), 'application/json');
}

/** Whether this control plane's API asks for a token, and whether this browser's session holds one (GET /weft/v1/session). */
export function session(): Promise<{ tokenRequired: boolean; signedIn: boolean }> {
  return request('GET', '/weft/v1/session');
}

/** Clears the session cookie (DELETE /weft/v1/session). */
export async function signOut(): Promise<void> {
  await request<unknown>('DELETE', '/weft/v1/session');
}
