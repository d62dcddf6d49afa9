// Transformation templates: `{{ request.header.x-user }}` placeholders in header values and bodies, parsed once for the schema, the compiler and the proxy.
//
// One small, closed language rather than a general template engine: a
// placeholder names one value of the exchange and nothing else (no
// expressions, loops or calls), so a template can neither run code nor loop,
// and the control plane can check every name it uses before a proxy sees it.
// This file is zod-free and imports nothing: the proxy loads it.

/** Where a placeholder's value comes from. */
export type TemplateSource =
  | 'request.method'
  | 'request.path'
  | 'request.query'
  | 'request.header'
  | 'request.body'
  | 'response.status'
  | 'response.header'
  | 'response.body'
  | 'extract'
  | 'principal'
  | 'claims'
  /** The element a JSON template's `$each` is at (only inside its `$to`). */
  | 'item';

/** One placeholder: its source and, below it, a key (header, query parameter, extractor) or a dot path (bodies, claims). */
export interface TemplateRef {
  source: TemplateSource;
  /** Header names lower-case; body and claim paths split at dots (a numeric segment indexes an array). */
  path: string[];
}

/** A parsed template: literal text and placeholders, in order. */
export type TemplatePart = string | TemplateRef;

/** Sources taking one key (`request.header.<name>`), a dot path (`request.body.a.b`, the whole body without one), or nothing. */
const KEYED: ReadonlySet<TemplateSource> = new Set(['request.query', 'request.header', 'response.header', 'extract']);
const PATHED: ReadonlySet<TemplateSource> = new Set(['request.body', 'response.body', 'claims', 'item']);
const BARE: ReadonlySet<TemplateSource> = new Set(['request.method', 'request.path', 'response.status', 'principal']);

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const SEGMENT = /^[A-Za-z0-9_$-]+$/;
const HEADER_TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

export class TemplateError extends Error {}

/** Parses `text`; throws a TemplateError naming the first placeholder it cannot read. */
export function parseTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(parseRef(match[1]!));
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  const stray = parts.find((p): p is string => typeof p === 'string' && (p.includes('{{') || p.includes('}}')));
  if (stray !== undefined) throw new TemplateError(`an unclosed or nested placeholder in "${stray.length > 60 ? `${stray.slice(0, 60)}…` : stray}"`);
  return parts;
}

function parseRef(expression: string): TemplateRef {
  const known = [...BARE, ...KEYED, ...PATHED].sort((a, b) => b.length - a.length);
  const source = known.find((s) => expression === s || expression.startsWith(`${s}.`));
  if (source === undefined) {
    throw new TemplateError(`"{{ ${expression} }}" names no value; a placeholder is one of ${[...BARE].join(', ')}, ${[...KEYED].map((s) => `${s}.<name>`).join(', ')}, ${[...PATHED].map((s) => `${s}[.<path>]`).join(', ')}`);
  }
  const rest = expression.slice(source.length + 1);
  if (BARE.has(source)) {
    if (rest !== '') throw new TemplateError(`"{{ ${expression} }}": ${source} takes nothing after it`);
    return { source, path: [] };
  }
  if (KEYED.has(source)) {
    const header = source.endsWith('.header');
    if (rest === '' || !(header ? HEADER_TOKEN : SEGMENT).test(rest)) throw new TemplateError(`"{{ ${expression} }}": ${source} needs a ${header ? 'header name' : 'name'} after it`);
    return { source, path: [header ? rest.toLowerCase() : rest] };
  }
  const path = rest === '' ? [] : rest.split('.');
  if (path.some((segment) => !SEGMENT.test(segment))) throw new TemplateError(`"{{ ${expression} }}": a path is names or indexes separated by dots`);
  return { source, path };
}

/** The placeholders of a parsed template. */
export function templateRefs(parts: readonly TemplatePart[]): TemplateRef[] {
  return parts.filter((p): p is TemplateRef => typeof p !== 'string');
}

/**
 * A JSON body template: any JSON value whose strings may hold placeholders.
 * A string that is exactly one placeholder takes the value itself (a number,
 * an object, null when missing); other strings are rendered as text. An
 * object `{$each: "{{ <a list> }}", $to: <template>}` is the list with each
 * element rendered by `$to`, where `{{ item[.path] }}` is that element (the
 * innermost one, when they nest): a projection, not a loop, since it runs
 * once per element of a list the body already holds.
 */
export type JsonTemplate =
  | { kind: 'literal'; value: unknown }
  | { kind: 'value'; ref: TemplateRef }
  | { kind: 'text'; parts: TemplatePart[] }
  | { kind: 'array'; items: JsonTemplate[] }
  | { kind: 'object'; entries: [string, JsonTemplate][] }
  | { kind: 'each'; list: TemplateRef; to: JsonTemplate };

/** Parses a JSON body template; throws a TemplateError whose message starts with the JSON path of the bad part. */
export function parseJsonTemplate(value: unknown, at = '', inEach = false): JsonTemplate {
  const where = at || '(the body)';
  if (typeof value === 'string') {
    let parts: TemplatePart[];
    try {
      parts = parseTemplate(value);
    } catch (error) {
      throw new TemplateError(`${where}: ${(error as Error).message}`);
    }
    const stray = inEach ? undefined : templateRefs(parts).find((r) => r.source === 'item');
    if (stray) throw new TemplateError(`${where}: "{{ ${refName(stray)} }}" is only known inside a $each's $to`);
    if (parts.length === 1 && typeof parts[0] !== 'string') return { kind: 'value', ref: parts[0]! };
    return parts.some((p) => typeof p !== 'string') ? { kind: 'text', parts } : { kind: 'literal', value };
  }
  if (Array.isArray(value)) return { kind: 'array', items: value.map((item, i) => parseJsonTemplate(item, `${at}[${i}]`, inEach)) };
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.includes('$each')) {
      if (keys.length !== 2 || !keys.includes('$to')) throw new TemplateError(`${where}: a $each object has exactly two keys, $each and $to`);
      const list = (value as { $each: unknown }).$each;
      const parsed = typeof list === 'string' ? parseJsonTemplate(list, `${at ? `${at}.` : ''}$each`, inEach) : undefined;
      if (parsed?.kind !== 'value') throw new TemplateError(`${where}.$each: must be one placeholder naming a list, such as "{{ response.body.items }}"`);
      return { kind: 'each', list: parsed.ref, to: parseJsonTemplate((value as { $to: unknown }).$to, `${at ? `${at}.` : ''}$to`, true) };
    }
    return { kind: 'object', entries: Object.entries(value).map(([key, item]) => [key, parseJsonTemplate(item, at ? `${at}.${key}` : key, inEach)]) };
  }
  return { kind: 'literal', value };
}

/** Every placeholder of a JSON body template. */
export function jsonTemplateRefs(template: JsonTemplate): TemplateRef[] {
  switch (template.kind) {
    case 'literal':
      return [];
    case 'value':
      return [template.ref];
    case 'text':
      return templateRefs(template.parts);
    case 'array':
      return template.items.flatMap(jsonTemplateRefs);
    case 'object':
      return template.entries.flatMap(([, item]) => jsonTemplateRefs(item));
    case 'each':
      // `item` inside $to is the element, not a value of the exchange.
      return [template.list, ...jsonTemplateRefs(template.to).filter((r) => r.source !== 'item')];
  }
}

/** How a placeholder reads in messages: "request.header.x-user". */
export function refName(ref: TemplateRef): string {
  return ref.path.length ? `${ref.source}.${ref.path.join('.')}` : ref.source;
}

/** A value as text: strings as they are, numbers and booleans printed, objects as JSON, nothing as "". */
export function valueText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

/** Follows a dot path into parsed JSON: object keys, array indexes; undefined where it leads nowhere. */
export function atPath(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return undefined;
      current = current[Number(segment)];
    } else {
      if (!Object.hasOwn(current, segment)) return undefined;
      current = (current as Record<string, unknown>)[segment];
    }
  }
  return current;
}

/** Renders a parsed template as text; `lookup` gives each placeholder's value. */
export function renderText(parts: readonly TemplatePart[], lookup: (ref: TemplateRef) => unknown): string {
  let out = '';
  for (const part of parts) out += typeof part === 'string' ? part : valueText(lookup(part));
  return out;
}

/** Renders a JSON body template to a value (JSON.stringify makes the body). */
export function renderJson(template: JsonTemplate, lookup: (ref: TemplateRef) => unknown): unknown {
  switch (template.kind) {
    case 'literal':
      return template.value;
    case 'value':
      return lookup(template.ref) ?? null;
    case 'text':
      return renderText(template.parts, lookup);
    case 'array':
      return template.items.map((item) => renderJson(item, lookup));
    case 'object': {
      const out: Record<string, unknown> = {};
      // Defined, not assigned: a key named __proto__ must stay a key.
      for (const [key, item] of template.entries) Object.defineProperty(out, key, { value: renderJson(item, lookup), enumerable: true, writable: true, configurable: true });
      return out;
    }
    case 'each': {
      const list = lookup(template.list);
      if (!Array.isArray(list)) return null;
      return list.map((element: unknown) => renderJson(template.to, (ref) => (ref.source === 'item' ? atPath(element, ref.path) : lookup(ref))));
    }
  }
}
