// The dashboard's client of the control-plane API: the same paths the CLI uses, plus /weft/v1/kinds, apply with dry run, delete, topology.
import type { Resource } from '../api/meta.ts';
import type { TopologyTraffic } from '../api/topology.ts';

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
