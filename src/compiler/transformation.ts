// Transformation objects → the snapshot's Transformation filter (their templates were checked by the schema, api/resources.ts).
import type { Transformation } from '../api/resources.ts';
import type { SnapshotTransformSide, SnapshotTransformation } from '../api/snapshot.ts';
import { serviceNamespace } from './services.ts';

/** "ns/name" → the filter. A Transformation has no problems of its own past the schema: every template it holds was checked there. */
export type TransformationIndex = ReadonlyMap<string, SnapshotTransformation>;

export function indexTransformations(objects: readonly Transformation[]): Map<string, SnapshotTransformation> {
  const index = new Map<string, SnapshotTransformation>();
  for (const object of objects) {
    const name = `${serviceNamespace(object)}/${object.metadata.name}`;
    const spec = object.spec;
    const compiled: SnapshotTransformation = {
      name,
      extract: spec.extract.map((e) => ({ name: e.name, value: e.value, ...(e.regex !== undefined ? { regex: e.regex } : {}), ...(e.group !== undefined ? { group: e.group } : {}) })),
      maxBodyBytes: spec.maxBodyBytes,
    };
    if (spec.request) compiled.request = side(spec.request);
    if (spec.response) compiled.response = side(spec.response);
    index.set(name, compiled);
  }
  return index;
}

function side(edits: NonNullable<Transformation['spec']['request']>): SnapshotTransformSide {
  const out: SnapshotTransformSide = {};
  if (edits.headers) {
    const lower = (list: readonly { name: string; value: string }[] | undefined) => (list ?? []).map((h) => ({ name: h.name.toLowerCase(), value: h.value }));
    out.headers = { set: lower(edits.headers.set), add: lower(edits.headers.add), remove: (edits.headers.remove ?? []).map((n) => n.toLowerCase()) };
  }
  if (edits.body) out.body = 'json' in edits.body ? { json: edits.body.json } : { text: edits.body.text, contentType: edits.body.contentType };
  return out;
}
