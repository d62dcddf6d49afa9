// A typed client of the control-plane REST API (Kubernetes-style paths plus /weft/v1/*), used by every CLI command.
import { EXPLAIN_PATH, type ExplainRequest, type ExplainTrace } from '../api/explain.ts';
import type { Resource } from '../api/meta.ts';
import type { KindInfo } from '../api/resources.ts';
import type { ProxyStatus } from '../api/stream.ts';
import type { CaState } from '../control/ca/rotating.ts';
import { TOPOLOGY_PATH, type TopologyTraffic } from '../api/topology.ts';

/** The API token the CLI sends (`Authorization: Bearer`), from $WEFT_API_TOKEN: for a control plane run with --api-token-file. */
export function apiAuthHeaders(): Record<string, string> {
  const token = process.env.WEFT_API_TOKEN?.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A Kubernetes `Status` object: what the API answers with on errors. */
export interface ApiStatus {
  kind?: 'Status';
  message: string;
  reason?: string;
  code: number;
  details?: { name?: string; kind?: string; causes?: { field?: string; message: string; reason?: string; object?: string }[] };
  /** The WEFT_ERR_* code. */
  weftCode?: string;
}

/** The server answered with an error status. */
export class ApiError extends Error {
  readonly status: ApiStatus;
  constructor(status: ApiStatus) {
    super(status.message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Nothing answered at the server's address (refused, unknown host, timed out). */
export class ServerUnreachableError extends Error {
  readonly server: string;
  readonly reason: string;
  constructor(server: string, reason: string) {
    super(
      `cannot reach the weft control plane at ${server} (${reason}).\n` +
        'Is it running? Start one with "weft up -f mesh.yaml" or "weft control-plane", ' +
        'or point --server or WEFT_SERVER at it.',
    );
    this.name = 'ServerUnreachableError';
    this.server = server;
    this.reason = reason;
  }
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

/** One object of a dry-run apply: what would happen and which fields would change (paths under spec, labels, annotations). */
export interface DryRunResult {
  object: Resource;
  action: 'created' | 'configured' | 'unchanged';
  changes: { path: string; before?: unknown; after?: unknown }[];
}

export interface ApplyResult {
  object: Resource;
  action: ApplyAction;
}

/** GET /weft/v1/status: the control plane's own facts; fields may grow, so only a few are named. */
export interface ServerStatus {
  store?: string;
  revision?: number;
  [field: string]: unknown;
}

export interface ClientOptions {
  /** Per-request bound. Default 30 s. */
  timeoutMs?: number;
}

function isStatus(value: unknown): value is ApiStatus {
  return !!value && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string';
}

function unreachableReason(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timed out';
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'timed out';
    case 'UND_ERR_SOCKET':
      return 'connection closed';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `its TLS certificate is not trusted here (${cause.code}); if your own CA signed it, point NODE_EXTRA_CA_CERTS at that CA's certificate`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `its TLS certificate does not name the host in the URL (${cause.message ?? cause.code})`;
    case 'CERT_HAS_EXPIRED':
      return 'its TLS certificate has expired';
  }
  return error.message === 'fetch failed' ? (cause?.message ?? 'fetch failed') : undefined;
}

export class WeftClient {
  readonly server: string;
  private readonly timeoutMs: number;

  constructor(server: string, options: ClientOptions = {}) {
    this.server = server.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** `/api/v1/namespaces/ns/services/name`; no namespace on a namespaced kind means every namespace. */
  static resourcePath(kind: KindInfo, namespace?: string, name?: string): string {
    const version = kind.versions[0];
    let path = kind.group ? `/apis/${kind.group}/${version}` : `/api/${version}`;
    if (kind.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
    path += `/${kind.plural}`;
    if (name !== undefined) path += `/${encodeURIComponent(name)}`;
    return path;
  }

  /** Lists a kind in one namespace, or in all of them when `namespace` is undefined. */
  async list(kind: KindInfo, namespace?: string): Promise<Resource[]> {
    const body = await this.request<{ items?: Resource[] }>('GET', WeftClient.resourcePath(kind, namespace));
    return body.items ?? [];
  }

  get(kind: KindInfo, name: string, namespace?: string): Promise<Resource> {
    return this.request<Resource>('GET', WeftClient.resourcePath(kind, namespace, name));
  }

  /**
   * Creates or replaces one object. With `metadata.resourceVersion` the write
   * is conditional ("0": only if it does not exist): another writer in between
   * makes it fail with a 409 Conflict, to read again and retry.
   */
  put(kind: KindInfo, object: Resource): Promise<Resource> {
    return this.request<Resource>('PUT', WeftClient.resourcePath(kind, object.metadata.namespace, object.metadata.name), object);
  }

  /** Deletes one object; resolves to what the server returned (the object or a Status). */
  delete(kind: KindInfo, name: string, namespace?: string): Promise<unknown> {
    return this.request<unknown>('DELETE', WeftClient.resourcePath(kind, namespace, name));
  }

  /** Creates or updates every object in one call; a 422 rejects with the causes and applies nothing. */
  async apply(items: readonly Resource[]): Promise<ApplyResult[]> {
    const body = await this.request<{ results?: ApplyResult[] }>('POST', '/weft/v1/apply', { items });
    return body.results ?? [];
  }

  /** `?dryRun=All`: what applying would do to each object (action and changed fields); writes nothing. */
  async applyDryRun(items: readonly Resource[]): Promise<DryRunResult[]> {
    const body = await this.request<{ results?: DryRunResult[] }>('POST', '/weft/v1/apply?dryRun=All', { items });
    return body.results ?? [];
  }

  proxies(): Promise<ProxyStatus[]> {
    return this.request<ProxyStatus[] | { items: ProxyStatus[] }>('GET', '/weft/v1/proxies').then((body) => (Array.isArray(body) ? body : (body.items ?? [])));
  }

  status(): Promise<ServerStatus> {
    return this.request<ServerStatus>('GET', '/weft/v1/status');
  }

  /** GET /api/v1/topology?window=: traffic per service, edge and route (`weft top`, the dashboard). */
  topology(window: string): Promise<TopologyTraffic> {
    return this.request<TopologyTraffic>('GET', `${TOPOLOGY_PATH}?window=${encodeURIComponent(window)}`);
  }

  /** POST /weft/v1/explain: the decision trace of a hypothetical request (`weft explain`). */
  explain(request: ExplainRequest): Promise<ExplainTrace> {
    return this.request<ExplainTrace>('POST', EXPLAIN_PATH, request);
  }

  /** POST /weft/v1/tokens: a new proxy bootstrap token (the control plane keeps only its hash). */
  createToken(request: { namespace: string; workload?: string; host?: string; ttlMs?: number }): Promise<{ token: string; expiresAt?: string }> {
    return this.request<{ token: string; expiresAt?: string }>('POST', '/weft/v1/tokens', request);
  }

  /** GET /weft/v1/ca: the signing CA and the trusted roots, with expiry and overlap ends. */
  caState(): Promise<CaState> {
    return this.request<CaState>('GET', '/weft/v1/ca');
  }

  /** POST /weft/v1/ca/rotate (`weft ca rotate`): a new root (generated, or the operator's certPem/keyPem), old roots trusted for overlapMs. */
  rotateCa(request: { overlapMs?: number; certPem?: string; keyPem?: string; chainPem?: string }): Promise<CaState> {
    return this.request<CaState>('POST', '/weft/v1/ca/rotate', request);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.server + path, {
        method,
        headers: { ...apiAuthHeaders(), accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const reason = unreachableReason(error);
      if (reason) throw new ServerUnreachableError(this.server, reason);
      throw error;
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      throw new ApiError(
        isStatus(parsed)
          ? { ...parsed, code: parsed.code ?? response.status }
          : { message: `${method} ${path}: ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`, code: response.status },
      );
    }
    if (parsed === undefined && text) throw new Error(`${method} ${path}: the server answered with something other than JSON`);
    return parsed as T;
  }
}
