// Kubernetes-style resource endpoints: get, list (label selectors), watch, put (CAS), post, delete, and the status subresource.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, isWeftError } from '../../api/errors.ts';
import { groupOf, objectKey, type Resource } from '../../api/meta.ts';
import { KINDS, apiVersionOf, type KindInfo } from '../../api/resources.ts';
import { validateResource } from '../../api/validate.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Store, StoredResource, WatchEvent } from '../store/types.ts';
import { methodNotAllowed, notFound, parseJson, readBody, sendError, sendJson } from './http.ts';
import { requireNamespace, seesNamespace, type ApiGrant } from './auth.ts';
import { ApiError, errorAnswer } from './status.ts';

export interface ResourcePath {
  info: KindInfo;
  /** The version named in the path; objects are answered with this apiVersion. */
  apiVersion: string;
  namespace?: string | undefined;
  name?: string | undefined;
  subresource?: 'status' | undefined;
}

/**
 * Parses /api/v1/... and /apis/{group}/{version}/... paths. Returns undefined
 * for paths outside those prefixes, throws NotFound for unknown kinds and
 * wrong scopes.
 */
export function parseResourcePath(pathname: string): ResourcePath | undefined {
  let segments: string[];
  try {
    segments = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw notFound(`bad path ${pathname}`);
  }
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 2) {
    group = '';
    version = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === 'apis' && segments.length >= 3) {
    group = segments[1]!;
    version = segments[2]!;
    rest = segments.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  // "namespaces/x" alone is the Namespace x; "namespaces/x/<plural>/..." scopes another kind to it.
  if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && rest[2] === 'status')) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, subresource, ...extra] = rest;
  if (!plural) throw notFound(`no resource kind in ${pathname}`);
  const info = KINDS.find((k) => k.group === group && k.plural === plural);
  if (!info) throw notFound(`the server does not know ${plural} in ${group ? `${group}/${version}` : version}`);
  if (!info.versions.includes(version)) throw notFound(`${info.kind} is served as ${info.versions.map((v) => apiVersionOf(info, v)).join(', ')}, not ${group ? `${group}/${version}` : version}`);
  if (extra.length || (subresource !== undefined && subresource !== 'status')) throw notFound(`no such path ${pathname}`);
  if (!info.namespaced && namespace !== undefined) throw notFound(`${info.kind} is cluster-scoped: use ${group ? `/apis/${group}/${version}` : `/api/${version}`}/${plural}`);
  if (info.namespaced && namespace === undefined && name !== undefined) {
    throw notFound(`${info.kind} is namespaced: use .../namespaces/{namespace}/${plural}/${name}`);
  }
  return { info, apiVersion: apiVersionOf(info, version), namespace, name, subresource: subresource as 'status' | undefined };
}

export interface ResourceHandlerOptions {
  store: Store;
  logger: Logger;
  /** What the caller's API token may do (undefined: the API asks for none). */
  grant?: ApiGrant | undefined;
}

type LabelRequirement = { key: string; op: '=' | '!=' | 'exists' | '!exists'; value?: string };

export function parseLabelSelector(selector: string | null): LabelRequirement[] {
  if (!selector) return [];
  const requirements: LabelRequirement[] = [];
  for (const raw of selector.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const match = /^([^!=\s]+)\s*(==|=|!=)\s*([^!=\s]*)$/.exec(part);
    if (match) {
      requirements.push({ key: match[1]!, op: match[2] === '!=' ? '!=' : '=', value: match[3]! });
    } else if (/^![^!=\s]+$/.test(part)) {
      requirements.push({ key: part.slice(1), op: '!exists' });
    } else if (/^[^!=\s()]+$/.test(part)) {
      requirements.push({ key: part, op: 'exists' });
    } else {
      throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `cannot parse labelSelector "${selector}": use k=v, k!=v, k or !k, separated by commas`);
    }
  }
  return requirements;
}

export function matchesLabels(labels: Record<string, string> | undefined, requirements: readonly LabelRequirement[]): boolean {
  for (const r of requirements) {
    const value = labels?.[r.key];
    if (r.op === '=' && value !== r.value) return false;
    if (r.op === '!=' && value === r.value) return false;
    if (r.op === 'exists' && value === undefined) return false;
    if (r.op === '!exists' && value !== undefined) return false;
  }
  return true;
}

function asVersion<T extends Resource>(object: T, apiVersion: string): T {
  return object.apiVersion === apiVersion ? object : { ...object, apiVersion };
}

function keyFor(path: ResourcePath, name: string): string {
  return objectKey({ apiVersion: path.apiVersion, kind: path.info.kind, namespace: path.namespace, name });
}

export async function handleResource(req: IncomingMessage, res: ServerResponse, url: URL, path: ResourcePath, options: ResourceHandlerOptions): Promise<void> {
  const { store } = options;
  const { info } = path;
  const method = req.method ?? 'GET';
  const errorDetails = { name: path.name, kind: info.plural };
  const { grant } = options;
  // A namespaced token: its namespaces' objects; cluster-scoped ones are read, never changed.
  const reads = method === 'GET' || method === 'HEAD';
  const visible = (o: StoredResource) => !info.namespaced || seesNamespace(grant, o.metadata.namespace ?? '');
  try {
    if (!info.namespaced && !reads) requireNamespace(grant, undefined, `${method} ${info.kind}${path.name ? ` ${path.name}` : ''}`);
    if (info.namespaced && path.namespace !== undefined) requireNamespace(grant, path.namespace, `${reads ? 'read' : 'change'} ${info.plural} in namespace ${path.namespace}`);
    if (path.name === undefined) {
      if (method === 'GET') {
        const watch = url.searchParams.get('watch');
        if (watch === 'true' || watch === '1') return await watchCollection(req, res, url, path, options, visible);
        return await listCollection(res, url, path, store, visible);
      }
      if (method === 'POST') return await create(req, res, path, store, grant);
      throw methodNotAllowed(method, ['GET', 'POST']);
    }
    const key = keyFor(path, path.name);
    if (path.subresource === 'status') {
      if (method === 'GET') return await getOne(res, key, path, store);
      if (method === 'PUT') return await putStatus(req, res, key, path, store);
      throw methodNotAllowed(method, ['GET', 'PUT']);
    }
    if (method === 'GET') return await getOne(res, key, path, store);
    if (method === 'PUT') return await putOne(req, res, path, store);
    if (method === 'DELETE') {
      const deleted = await store.delete(key);
      if (!deleted) throw notFound(`${info.kind} ${displayOf(path)} not found`);
      return sendJson(res, 200, asVersion(deleted, path.apiVersion));
    }
    throw methodNotAllowed(method, ['GET', 'PUT', 'DELETE']);
  } catch (error) {
    sendError(res, error, errorDetails);
  }
}

function displayOf(path: ResourcePath): string {
  return path.namespace ? `${path.namespace}/${path.name}` : (path.name ?? '');
}

async function getOne(res: ServerResponse, key: string, path: ResourcePath, store: Store): Promise<void> {
  const object = await store.get(key);
  if (!object) throw notFound(`${path.info.kind} ${displayOf(path)} not found`);
  sendJson(res, 200, asVersion(object, path.apiVersion));
}

/** `visible`: what the caller's token sees (a list across namespaces shows only its own). */
async function listCollection(res: ServerResponse, url: URL, path: ResourcePath, store: Store, visible: (o: StoredResource) => boolean): Promise<void> {
  const selector = parseLabelSelector(url.searchParams.get('labelSelector'));
  const { items, revision } = await store.list({ group: path.info.group || 'core', kind: path.info.kind, namespace: path.namespace });
  sendJson(res, 200, {
    apiVersion: path.apiVersion,
    kind: `${path.info.kind}List`,
    metadata: { resourceVersion: String(revision) },
    items: items.filter((o) => visible(o) && matchesLabels(o.metadata.labels, selector)).map((o) => asVersion(o, path.apiVersion)),
  });
}

/**
 * Streams `{type, object}` lines. Without a resourceVersion (or with "0") it
 * starts with an ADDED event per existing object, as Kubernetes does. With a
 * label selector, an object that stops matching is reported DELETED.
 */
async function watchCollection(req: IncomingMessage, res: ServerResponse, url: URL, path: ResourcePath, options: ResourceHandlerOptions, visible: (o: StoredResource) => boolean): Promise<void> {
  const { store, logger } = options;
  const selector = parseLabelSelector(url.searchParams.get('labelSelector'));
  const rv = url.searchParams.get('resourceVersion');
  const group = path.info.group || 'core';
  let from: number;
  let initial: StoredResource[] = [];
  if (rv === null || rv === '' || rv === '0') {
    const listed = await store.list({ group, kind: path.info.kind, namespace: path.namespace });
    from = listed.revision;
    initial = listed.items.filter((o) => visible(o) && matchesLabels(o.metadata.labels, selector));
  } else {
    from = Number(rv);
    if (!Number.isSafeInteger(from) || from < 0) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `resourceVersion must be a number, got "${rv}"`);
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.flushHeaders();
  const write = (type: string, object: unknown) => {
    if (!res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
  };
  for (const object of initial) write('ADDED', asVersion(object, path.apiVersion));
  const inScope = (o: StoredResource) =>
    groupOf(o.apiVersion) === path.info.group && o.kind === path.info.kind && (path.namespace === undefined || o.metadata.namespace === path.namespace) && visible(o);
  const onEvent = (event: WatchEvent) => {
    const object = event.object;
    if (!inScope(object)) return;
    const now = event.type === 'put' && matchesLabels(object.metadata.labels, selector);
    const before = event.type === 'delete' ? matchesLabels(object.metadata.labels, selector) : !!event.previous && matchesLabels(event.previous.metadata.labels, selector);
    const type = event.type === 'delete' ? (before ? 'DELETED' : undefined) : now ? (before ? 'MODIFIED' : 'ADDED') : before ? 'DELETED' : undefined;
    if (type) write(type, asVersion(object, path.apiVersion));
  };
  const onError = (error: Error) => {
    const gone = isWeftError(error, ErrorCodes.CONFLICT);
    const answer = errorAnswer(gone ? new ApiError(410, 'Expired', ErrorCodes.CONFLICT, error.message) : error);
    write('ERROR', answer.body);
    res.end();
  };
  const stop = store.watch(from, onEvent, onError);
  const cleanup = () => {
    stop();
    logger.debug({ kind: path.info.kind }, 'watch ended');
  };
  res.on('close', cleanup);
  req.on('close', () => {
    if (!res.writableEnded) res.end();
  });
}

/** Reads and checks a body for `path`: kind and group must match, the path's namespace fills a missing one. */
async function readObject(req: IncomingMessage, path: ResourcePath): Promise<Resource> {
  const raw = parseJson(await readBody(req));
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, 'request body must be a JSON object');
  const body = raw as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  if (body.kind !== undefined && body.kind !== path.info.kind) {
    throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `the body is a ${String(body.kind)}, the path is for ${path.info.kind}`);
  }
  if (typeof body.apiVersion === 'string' && groupOf(body.apiVersion) !== path.info.group) {
    throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `the body's apiVersion ${body.apiVersion} is not in group "${path.info.group}"`);
  }
  if (path.name !== undefined && body.metadata && typeof body.metadata === 'object' && body.metadata.name !== undefined && body.metadata.name !== path.name) {
    throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `the name in the body (${String(body.metadata.name)}) does not match the name in the path (${path.name})`);
  }
  if (path.namespace !== undefined && body.metadata?.namespace !== undefined && body.metadata.namespace !== path.namespace) {
    throw new ApiError(
      400,
      'BadRequest',
      ErrorCodes.BAD_REQUEST,
      `the namespace in the body (${String(body.metadata.namespace)}) does not match the namespace in the path (${path.namespace})`,
    );
  }
  const filled = {
    ...body,
    apiVersion: body.apiVersion ?? path.apiVersion,
    kind: body.kind ?? path.info.kind,
    metadata: { ...(body.metadata ?? {}), ...(path.name !== undefined && body.metadata?.name === undefined ? { name: path.name } : {}) },
  };
  const result = validateResource(filled, path.namespace);
  if (!result.ok) {
    throw new ApiError(
      422,
      'Invalid',
      ErrorCodes.INVALID,
      `${result.object} is invalid: ${result.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      result.issues.map((i) => ({ field: i.path, message: i.message, object: result.object })),
    );
  }
  return result.resource;
}

/** The user writes spec and metadata; status belongs to the control plane (see the status subresource). */
function withoutStatus(resource: Resource): Resource {
  const { status: _status, ...rest } = resource;
  return rest;
}

async function putOne(req: IncomingMessage, res: ServerResponse, path: ResourcePath, store: Store): Promise<void> {
  const resource = withoutStatus(await readObject(req, path));
  const expected = resource.metadata.resourceVersion;
  if (expected) {
    const stored = await store.put(resource, { expectedResourceVersion: expected });
    return sendJson(res, 200, asVersion(stored, path.apiVersion));
  }
  const { stored, created } = await createOrUpdate(store, resource);
  sendJson(res, created ? 201 : 200, asVersion(stored, path.apiVersion));
}

/** Create-or-update without losing a race: the write is conditional on what was read, and retried if someone else wrote in between. */
export async function createOrUpdate(store: Store, resource: Resource): Promise<{ stored: StoredResource; created: boolean }> {
  const key = objectKey({ apiVersion: resource.apiVersion, kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name });
  for (let attempt = 0; ; attempt++) {
    const existing = await store.get(key);
    try {
      const stored = await store.put(resource, { expectedResourceVersion: existing ? existing.metadata.resourceVersion : '0' });
      return { stored, created: !existing };
    } catch (error) {
      const raced = isWeftError(error, ErrorCodes.CONFLICT) || isWeftError(error, ErrorCodes.ALREADY_EXISTS) || isWeftError(error, ErrorCodes.NOT_FOUND);
      if (!raced || attempt >= 4) throw error;
    }
  }
}

async function create(req: IncomingMessage, res: ServerResponse, path: ResourcePath, store: Store, grant: ApiGrant | undefined): Promise<void> {
  const resource = withoutStatus(await readObject(req, path));
  // Posted to the collection of every namespace: the body says which.
  if (path.info.namespaced) requireNamespace(grant, resource.metadata.namespace, `create ${path.info.kind} ${resource.metadata.namespace}/${resource.metadata.name}`);
  try {
    const stored = await store.put(resource, { expectedResourceVersion: '0' });
    sendJson(res, 201, asVersion(stored, path.apiVersion));
  } catch (error) {
    if (isWeftError(error, ErrorCodes.ALREADY_EXISTS)) {
      throw new ApiError(409, 'AlreadyExists', ErrorCodes.ALREADY_EXISTS, `${path.info.kind} ${resource.metadata.namespace ? `${resource.metadata.namespace}/` : ''}${resource.metadata.name} already exists`);
    }
    throw error;
  }
}

async function putStatus(req: IncomingMessage, res: ServerResponse, key: string, path: ResourcePath, store: Store): Promise<void> {
  const raw = parseJson(await readBody(req)) as { status?: unknown; metadata?: { resourceVersion?: unknown } } | null;
  if (!raw || typeof raw !== 'object') throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, 'request body must be a JSON object');
  const current = await store.get(key);
  if (!current) throw notFound(`${path.info.kind} ${displayOf(path)} not found`);
  const expected = typeof raw.metadata?.resourceVersion === 'string' && raw.metadata.resourceVersion ? raw.metadata.resourceVersion : undefined;
  const update: Resource = { apiVersion: current.apiVersion, kind: current.kind, metadata: current.metadata, spec: current.spec, status: raw.status };
  const stored = await store.put(update, expected ? { statusOnly: true, expectedResourceVersion: expected } : { statusOnly: true });
  sendJson(res, 200, asVersion(stored, path.apiVersion));
}
