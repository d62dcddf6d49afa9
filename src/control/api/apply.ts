// POST /weft/v1/apply: validate every object first, write nothing if any is invalid, then create or update each one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes } from '../../api/errors.ts';
import { objectKey, type Resource } from '../../api/meta.ts';
import { validateResource } from '../../api/validate.ts';
import { parseResources } from '../../api/yaml.ts';
import { sameJson } from '../store/canonical.ts';
import type { Store, StoredResource } from '../store/types.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { createOrUpdate } from './resources.ts';
import { ApiError, type StatusCause } from './status.ts';

export const APPLY_PATH = '/weft/v1/apply';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  object: StoredResource;
  action: ApplyAction;
}

/**
 * Accepts `{items: [...]}` (or one object) as JSON, or multi-document YAML
 * when the content type says yaml. `?namespace=` is the namespace of objects
 * that name none (default "default").
 */
export async function handleApply(req: IncomingMessage, res: ServerResponse, url: URL, store: Store): Promise<void> {
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
  const results: ApplyResult[] = [];
  for (const resource of resources) results.push(await applyOne(store, resource));
  sendJson(res, 200, { results });
}

/** Writes one object unless its spec, labels and annotations are already what is asked. */
export async function applyOne(store: Store, resource: Resource): Promise<ApplyResult> {
  const { status: _status, ...desired } = resource;
  const key = objectKey({ apiVersion: desired.apiVersion, kind: desired.kind, namespace: desired.metadata.namespace, name: desired.metadata.name });
  const existing = await store.get(key);
  if (
    existing &&
    sameJson(existing.spec, desired.spec) &&
    sameJson(existing.metadata.labels ?? {}, desired.metadata.labels ?? {}) &&
    sameJson(existing.metadata.annotations ?? {}, desired.metadata.annotations ?? {})
  ) {
    return { object: existing, action: 'unchanged' };
  }
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
