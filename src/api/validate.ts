// Validates one object against its kind's schema and reports every problem with its field path.
import type { z } from 'zod';
import { displayName, type Resource } from './meta.ts';
import { DEFAULT_NAMESPACE, ResourceEnvelope, kindOf, KINDS } from './resources.ts';

export interface FieldIssue {
  /** Dotted path into the object, e.g. "spec.rules[0].matches[0].path.type". */
  path: string;
  /** The same path as keys and indexes, for locating it in a source document. */
  segments: (string | number)[];
  message: string;
}

export type ValidationResult = { ok: true; resource: Resource } | { ok: false; object: string; issues: FieldIssue[] };

export function formatPath(segments: readonly (string | number | symbol)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${String(s)}` : String(s);
  }
  return out || '(object)';
}

function zodIssues(error: z.ZodError, prefix: (string | number)[]): FieldIssue[] {
  return error.issues.map((issue) => {
    const segments = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    return { path: formatPath(segments), segments, message: issue.message };
  });
}

/** Describes an object for error messages: "HTTPRoute default/reviews". */
export function describeObject(raw: unknown): string {
  if (!raw || typeof raw !== 'object') return '(not an object)';
  const o = raw as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const kind = typeof o.kind === 'string' ? o.kind : '(no kind)';
  const name = typeof o.metadata?.name === 'string' ? o.metadata.name : '(no name)';
  const ns = typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : undefined;
  return `${kind} ${displayName({ namespace: ns, name })}`;
}

/**
 * Checks the envelope, the kind, the scope and the spec; fills defaults
 * (namespace "default" for namespaced kinds, schema defaults in spec).
 */
export function validateResource(raw: unknown, defaultNamespace = DEFAULT_NAMESPACE): ValidationResult {
  const object = describeObject(raw);
  const envelope = ResourceEnvelope.safeParse(raw);
  if (!envelope.success) return { ok: false, object, issues: zodIssues(envelope.error, []) };
  const env = envelope.data;
  const info = kindOf(env.apiVersion, env.kind);
  if (!info) {
    const known = KINDS.map((k) => `${k.group ? k.group + '/' : ''}${k.versions[0]} ${k.kind}`).join(', ');
    return {
      ok: false,
      object,
      issues: [{ path: 'kind', segments: ['kind'], message: `unknown kind "${env.kind}" in "${env.apiVersion}"; weft knows ${known}` }],
    };
  }
  const metadata = { ...env.metadata };
  if (info.namespaced) metadata.namespace ??= defaultNamespace;
  else if (metadata.namespace !== undefined) {
    return {
      ok: false,
      object,
      issues: [{ path: 'metadata.namespace', segments: ['metadata', 'namespace'], message: `${info.kind} is cluster-scoped and takes no namespace` }],
    };
  }
  let specSource: unknown = env.spec ?? {};
  if (info.topLevelFields) {
    // Secret-like kinds: their top-level content is the spec (an object re-applied from the store brings it as spec).
    const fields: Record<string, unknown> = env.spec && typeof env.spec === 'object' ? { ...(env.spec as Record<string, unknown>) } : {};
    for (const field of info.topLevelFields) if ((env as Record<string, unknown>)[field] !== undefined) fields[field] = (env as Record<string, unknown>)[field];
    specSource = fields;
  }
  const spec = info.spec.safeParse(specSource);
  if (!spec.success) return { ok: false, object, issues: zodIssues(spec.error, info.topLevelFields ? [] : ['spec']) };
  const resource: Resource = { apiVersion: env.apiVersion, kind: env.kind, metadata, spec: spec.data };
  if (env.status !== undefined) resource.status = env.status;
  return { ok: true, resource };
}
