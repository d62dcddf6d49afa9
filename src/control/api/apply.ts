// POST /weft/v1/apply: validate every object first, write nothing if any is invalid, then create or update each one (or, with ?dryRun=All, say what would change).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes } from '../../api/errors.ts';
import { groupOf, objectKey, type Resource } from '../../api/meta.ts';
import { KINDS } from '../../api/resources.ts';
import { validateResource } from '../../api/validate.ts';
import { parseResources } from '../../api/yaml.ts';
import { sameJson } from '../store/canonical.ts';
import type { Store, StoredResource } from '../store/types.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { requireNamespace, type ApiGrant } from './auth.ts';
import { createOrUpdate } from './resources.ts';
import { ApiError, type StatusCause } from './status.ts';

export const APPLY_PATH = '/weft/v1/apply';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  object: StoredResource;
  action: ApplyAction;
}

/** One field that an apply changes: a dotted path under spec or metadata.labels/annotations; absent sides are undefined. */
export interface FieldChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

/** What `?dryRun=All` answers per object: the object as it would be stored, the stored one it replaces, and the fields that change. */
export interface DryRunResult {
  action: ApplyAction;
  object: Resource;
  before?: StoredResource;
  changes: FieldChange[];
}

/**
 * Accepts `{items: [...]}` (or one object) as JSON, or multi-document YAML
 * when the content type says yaml. `?namespace=` is the namespace of objects
 * that name none (default "default").
 */
export async function handleApply(req: IncomingMessage, res: ServerResponse, url: URL, store: Store, grant?: ApiGrant): Promise<void> {
  const text = await readBody(req);
  const defaultNamespace = url.searchParams.get('namespace') || undefined;
  const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
  const { resources, causes } = /yaml/.test(contentType) ? fromYaml(text, defaultNamespace) : fromJson(text, defaultNamespace);
  if (causes.length) {
    const objects = new Set(causes.map((c) => c.object)).size;
    throw new ApiError(
      422,
      'Invalid',
      ErrorCodes.INVALID,
      `${causes.length} problem${causes.length === 1 ? '' : 's'} in ${objects} object${objects === 1 ? '' : 's'}; nothing was applied`,
      causes,
    );
  }
  // A namespaced token applies all of it or none: every object must be in one of its namespaces.
  const refused: StatusCause[] = [];
  resources.forEach((resource, item) => {
    const namespaced = KINDS.find((k) => k.kind === resource.kind && k.group === groupOf(resource.apiVersion))?.namespaced ?? true;
    const name = `${resource.kind} ${resource.metadata.namespace ? `${resource.metadata.namespace}/` : ''}${resource.metadata.name}`;
    try {
      requireNamespace(grant, namespaced ? resource.metadata.namespace : undefined, `apply ${name}`);
    } catch (error) {
      refused.push({ object: name, item, message: (error as Error).message });
    }
  });
  if (refused.length) throw new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, `${refused[0]!.message}${refused.length > 1 ? ` (and ${refused.length - 1} more)` : ''}; nothing was applied`, refused);
  if (isDryRun(url)) {
    const results: DryRunResult[] = [];
    for (const resource of resources) results.push(await planOne(store, resource));
    return sendJson(res, 200, { dryRun: true, results });
  }
  const results: ApplyResult[] = [];
  for (const resource of resources) results.push(await applyOne(store, resource));
  sendJson(res, 200, { results });
}

/** Kubernetes spells it `dryRun=All`; anything else there is a mistake worth refusing rather than applying for real. */
function isDryRun(url: URL): boolean {
  const value = url.searchParams.get('dryRun');
  if (value === null) return false;
  if (value === 'All') return true;
  throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `dryRun must be "All", got "${value}"`);
}

function withoutStatus(resource: Resource): Resource {
  const { status: _status, ...desired } = resource;
  return desired;
}

function keyOfResource(resource: Resource): string {
  return objectKey({ apiVersion: resource.apiVersion, kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name });
}

function isUnchanged(existing: StoredResource, desired: Resource): boolean {
  return (
    sameJson(existing.spec, desired.spec) &&
    sameJson(existing.metadata.labels ?? {}, desired.metadata.labels ?? {}) &&
    sameJson(existing.metadata.annotations ?? {}, desired.metadata.annotations ?? {})
  );
}

/**
 * What applyOne would do, without writing: the same unchanged test and the
 * same compare-and-swap check, and the object as the store would keep it.
 */
export async function planOne(store: Store, resource: Resource): Promise<DryRunResult> {
  const desired = withoutStatus(resource);
  const existing = await store.get(keyOfResource(desired));
  if (!existing) {
    if (desired.metadata.resourceVersion && desired.metadata.resourceVersion !== '0') {
      throw new ApiError(409, 'Conflict', ErrorCodes.CONFLICT, `${desired.kind} ${desired.metadata.name} does not exist, but resourceVersion ${desired.metadata.resourceVersion} was asked for`);
    }
    const object: Resource = { ...desired, metadata: { ...desired.metadata, generation: 1 } };
    return { action: 'created', object, changes: fieldChanges(undefined, desired) };
  }
  if (isUnchanged(existing, desired)) return { action: 'unchanged', object: existing, before: existing, changes: [] };
  if (desired.metadata.resourceVersion && desired.metadata.resourceVersion !== existing.metadata.resourceVersion) {
    throw new ApiError(
      409,
      'Conflict',
      ErrorCodes.CONFLICT,
      `${desired.kind} ${desired.metadata.name} changed since resourceVersion ${desired.metadata.resourceVersion} (it is now ${existing.metadata.resourceVersion})`,
    );
  }
  const object: Resource = {
    ...desired,
    metadata: {
      ...desired.metadata,
      uid: existing.metadata.uid,
      creationTimestamp: existing.metadata.creationTimestamp,
      resourceVersion: existing.metadata.resourceVersion,
      generation: sameJson(existing.spec, desired.spec) ? existing.metadata.generation : existing.metadata.generation + 1,
    },
  };
  if (existing.status !== undefined) object.status = existing.status;
  return { action: 'configured', object, before: existing, changes: fieldChanges(existing, desired) };
}

/** The leaves under spec, labels and annotations that differ, in document order. */
export function fieldChanges(before: Resource | undefined, after: Resource): FieldChange[] {
  const changes: FieldChange[] = [];
  walk('spec', before?.spec, after.spec, changes);
  walk('metadata.labels', before?.metadata.labels, after.metadata.labels, changes);
  walk('metadata.annotations', before?.metadata.annotations, after.metadata.annotations, changes);
  return changes;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function walk(path: string, before: unknown, after: unknown, out: FieldChange[]): void {
  if (sameJson(before, after)) return;
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = [...Object.keys(before), ...Object.keys(after).filter((k) => !(k in before))];
    for (const key of keys) walk(/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, before[key], after[key], out);
    return;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    before.forEach((value, i) => walk(`${path}[${i}]`, value, after[i], out));
    return;
  }
  const change: FieldChange = { path };
  if (before !== undefined) change.before = before;
  if (after !== undefined) change.after = after;
  out.push(change);
}

/** Writes one object unless its spec, labels and annotations are already what is asked. */
export async function applyOne(store: Store, resource: Resource): Promise<ApplyResult> {
  const desired = withoutStatus(resource);
  const key = keyOfResource(desired);
  const existing = await store.get(key);
  if (existing && isUnchanged(existing, desired)) return { object: existing, action: 'unchanged' };
  if (desired.metadata.resourceVersion) {
    const object = await store.put(desired, { expectedResourceVersion: desired.metadata.resourceVersion });
    return { object, action: 'configured' };
  }
  const { stored, created } = await createOrUpdate(store, desired);
  return { object: stored, action: created ? 'created' : 'configured' };
}

function fromYaml(text: string, defaultNamespace: string | undefined): { resources: Resource[]; causes: StatusCause[] } {
  const parsed = parseResources(text, 'request', defaultNamespace);
  return {
    resources: parsed.resources,
    causes: parsed.issues.map((i) => ({ object: i.object, field: i.path, message: i.message, line: i.line || undefined, column: i.line ? i.column : undefined })),
  };
}

function fromJson(text: string, defaultNamespace: string | undefined): { resources: Resource[]; causes: StatusCause[] } {
  const body = parseJson(text) as { items?: unknown; kind?: unknown } | null;
  let items: unknown[];
  if (body && typeof body === 'object' && Array.isArray(body.items)) items = body.items;
  else if (body && typeof body === 'object' && typeof body.kind === 'string') items = [body];
  else throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, 'apply takes {"items": [...]} or one object');
  const resources: Resource[] = [];
  const causes: StatusCause[] = [];
  items.forEach((item, index) => {
    const result = validateResource(item, defaultNamespace);
    if (result.ok) resources.push(result.resource);
    else for (const issue of result.issues) causes.push({ object: result.object, item: index, field: issue.path, message: issue.message });
  });
  return { resources, causes };
}
