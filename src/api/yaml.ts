// Parses multi-document YAML into validated objects; errors name the file, line, object and field path.
import { LineCounter, parseAllDocuments, isNode, type Document } from 'yaml';
import type { Resource } from './meta.ts';
import { describeObject, validateResource, type FieldIssue } from './validate.ts';

export interface SourceIssue {
  file: string;
  line: number; // 1-based; 0 when unknown
  column: number;
  object: string; // "HTTPRoute default/reviews", or "(document 2)"
  path: string;
  message: string;
}

export function formatSourceIssue(i: SourceIssue): string {
  const where = i.line ? `${i.file}:${i.line}:${i.column}` : i.file;
  return `${where}: ${i.object}: ${i.path}: ${i.message}`;
}

export interface ParsedDocuments {
  resources: Resource[];
  issues: SourceIssue[];
}

function locate(doc: Document, lines: LineCounter, segments: readonly (string | number)[]): { line: number; column: number } {
  // Walk up the path until a node exists: a missing field is reported where its parent is.
  for (let n = segments.length; n >= 0; n--) {
    const node = doc.getIn(segments.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return { line: 0, column: 0 };
}

/** Parses every document in `text`; empty documents are skipped; a List's items are expanded. */
export function parseResources(text: string, file: string, defaultNamespace?: string): ParsedDocuments {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const resources: Resource[] = [];
  const issues: SourceIssue[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, index) => {
    for (const err of doc.errors) {
      const pos = lines.linePos(err.pos[0]);
      issues.push({ file, line: pos.line, column: pos.col, object: `(document ${index + 1})`, path: '(syntax)', message: err.message.split('\n')[0] ?? err.message });
    }
    if (doc.errors.length) return;
    const raw: unknown = doc.toJS();
    if (raw === null || raw === undefined) return;
    const items: { value: unknown; prefix: (string | number)[] }[] =
      typeof raw === 'object' && !Array.isArray(raw) && (raw as { kind?: unknown }).kind === 'List' && Array.isArray((raw as { items?: unknown }).items)
        ? ((raw as { items: unknown[] }).items.map((value, i) => ({ value, prefix: ['items', i] })))
        : [{ value: raw, prefix: [] }];
    for (const { value, prefix } of items) {
      const result = validateResource(value, defaultNamespace);
      if (result.ok) {
        resources.push(result.resource);
        continue;
      }
      const object = value && typeof value === 'object' ? describeObject(value) : `(document ${index + 1})`;
      for (const issue of result.issues) issues.push(toSourceIssue(doc, lines, file, object, prefix, issue));
    }
  });
  return { resources, issues };
}

function toSourceIssue(doc: Document, lines: LineCounter, file: string, object: string, prefix: (string | number)[], issue: FieldIssue): SourceIssue {
  const { line, column } = locate(doc, lines, [...prefix, ...issue.segments]);
  return { file, line, column, object, path: issue.path, message: issue.message };
}

/** One YAML (or JSON, which YAML reads too) document's value; throws with yaml's message when it does not parse. */
export function parseYamlValue(text: string): unknown {
  const documents = parseAllDocuments(text);
  const docs = Array.isArray(documents) ? documents : [documents];
  if (docs.length !== 1) throw new Error(`expected one document, found ${docs.length}`);
  const doc = docs[0]!;
  if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
  return doc.toJSON() as unknown;
}
