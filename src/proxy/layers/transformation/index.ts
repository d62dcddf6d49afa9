// Transformation filters (weft.dev ExtensionRef): rewrite request and response headers and bodies from templates.
//
// Templates are parsed once per snapshot (api/template.ts: the control plane
// checked them). Per request, the layer reads the request body only when a
// template reads it or the body is replaced, runs the extractors, edits the
// request, and hands the transport a ResponseRewrite for the response side,
// which holds the upstream's body only when a template reads or replaces it.
// Responses the proxy makes itself (errors, rate limits) are not rewritten.
import { ErrorCodes } from '../../../api/errors.ts';
import { INVALID_FIELD_VALUE_CHAR } from '../../../api/http-syntax.ts';
import type { HttpFilter, SnapshotTransformSide, SnapshotTransformation } from '../../../api/snapshot.ts';
import {
  atPath,
  jsonTemplateRefs,
  parseJsonTemplate,
  parseTemplate,
  renderJson,
  renderText,
  templateRefs,
  type JsonTemplate,
  type TemplatePart,
  type TemplateRef,
} from '../../../api/template.ts';
import { proxyError } from '../../errors.ts';
import type { Headers, HttpExchange, ResponseRewrite } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { readWholeBody } from '../body-buffer/index.ts';
import { filtersOf } from '../filters.ts';

interface CompiledHeaders {
  set: { name: string; value: TemplatePart[] }[];
  add: { name: string; value: TemplatePart[] }[];
  remove: string[];
}

type CompiledBody = { json: JsonTemplate; contentType: string } | { text: TemplatePart[]; contentType: string };

interface CompiledSide {
  headers: CompiledHeaders | undefined;
  body: CompiledBody | undefined;
  /** Whether a template of this side reads the body it sees (request.body / response.body). */
  readsBody: boolean;
}

interface CompiledTransformation {
  name: string;
  extract: { name: string; value: TemplatePart[]; regex: RegExp | undefined; group: number }[];
  request: CompiledSide | undefined;
  response: CompiledSide | undefined;
  maxBodyBytes: number;
  /** A request template or an extractor reads the request body: it must be JSON. */
  readsRequestBody: boolean;
  /** The request is read whole: its body is read, or replaced. */
  holdsRequestBody: boolean;
  /** Response templates read request headers: they are kept as they arrived. */
  responseReadsRequestHeaders: boolean;
}

/** What the templates of one exchange read. */
interface Values {
  ex: HttpExchange;
  requestHeaders: Headers;
  requestBody: unknown;
  extracted: Map<string, string | undefined>;
  status?: number;
  responseHeaders?: Headers;
  responseBody?: unknown;
}

const JSON_TYPE = 'application/json';

export function transformation(): Layer<{ filters: readonly HttpFilter[] }, HttpExchange> {
  return (target, next) => {
    const list = filtersOf(target.filters, 'Transformation').map((f) => compile(f.transformation));
    if (list.length === 0) return next;
    return async (ex) => {
      // gRPC messages are framed protobuf, not text or JSON: a Transformation leaves them alone.
      if (!ex.grpc && !ex.upgrade) for (const t of list) await transformRequest(ex, t);
      return next(ex);
    };
  };
}

function compile(t: SnapshotTransformation): CompiledTransformation {
  const extract = t.extract.map((e) => {
    const regex = e.regex === undefined ? undefined : new RegExp(e.regex);
    const groups = regex ? new RegExp(`${e.regex}|`).exec('')!.length - 1 : 0;
    return { name: e.name, value: parseTemplate(e.value), regex, group: e.group ?? (groups > 0 ? 1 : 0) };
  });
  const request = t.request ? compileSide(t.request, 'request.body') : undefined;
  const response = t.response ? compileSide(t.response, 'response.body') : undefined;
  const readsRequestBody = extract.some((e) => templateRefs(e.value).some((r) => r.source === 'request.body')) || request?.readsBody === true;
  return {
    name: t.name,
    extract,
    request,
    response,
    maxBodyBytes: t.maxBodyBytes,
    readsRequestBody,
    holdsRequestBody: readsRequestBody || request?.body !== undefined,
    responseReadsRequestHeaders: response !== undefined && sideRefs(t.response!).some((r) => r.source === 'request.header'),
  };
}

function compileSide(side: SnapshotTransformSide, bodySource: 'request.body' | 'response.body'): CompiledSide {
  const headers = side.headers && {
    set: side.headers.set.map((h) => ({ name: h.name, value: parseTemplate(h.value) })),
    add: side.headers.add.map((h) => ({ name: h.name, value: parseTemplate(h.value) })),
    remove: side.headers.remove,
  };
  const body: CompiledBody | undefined =
    side.body === undefined ? undefined : 'json' in side.body ? { json: parseJsonTemplate(side.body.json), contentType: JSON_TYPE } : { text: parseTemplate(side.body.text), contentType: side.body.contentType };
  return { headers, body, readsBody: sideRefs(side).some((r) => r.source === bodySource) };
}

function sideRefs(side: SnapshotTransformSide): TemplateRef[] {
  const headers = side.headers ? [...side.headers.set, ...side.headers.add].flatMap((h) => templateRefs(parseTemplate(h.value))) : [];
  const body = side.body === undefined ? [] : 'json' in side.body ? jsonTemplateRefs(parseJsonTemplate(side.body.json)) : templateRefs(parseTemplate(side.body.text));
  return [...headers, ...body];
}

async function transformRequest(ex: HttpExchange, t: CompiledTransformation): Promise<void> {
  const values: Values = { ex, requestHeaders: ex.headers, requestBody: undefined, extracted: new Map() };
  if (t.holdsRequestBody) {
    const raw = await readWholeBody(ex, t.maxBodyBytes, () =>
      proxyError(ErrorCodes.TRANSFORMATION, `the request body is over the Transformation ${t.name}'s maxBodyBytes (${t.maxBodyBytes})`, 413),
    );
    ex.bufferedBody = raw;
    if (raw.length > 0 && t.readsRequestBody) {
      values.requestBody = parseJson(raw, () => proxyError(ErrorCodes.TRANSFORMATION, `the request body is not JSON, and the Transformation ${t.name} reads it`, 400));
    }
  }
  for (const e of t.extract) {
    const text = renderText(e.value, (ref) => lookup(ref, values));
    const match = e.regex ? e.regex.exec(text) : undefined;
    // An extractor that finds nothing is missing (null in a JSON template, "" in text, a set header removed).
    const found = e.regex ? match?.[e.group] : text;
    values.extracted.set(e.name, found === '' ? undefined : found);
  }
  if (t.response) {
    // Response templates read the request's headers as the client sent them, not as this transformation leaves them.
    if (t.responseReadsRequestHeaders) values.requestHeaders = { ...ex.headers };
    // A body the proxy reads must come uncompressed.
    if (t.response.readsBody) delete ex.headers['accept-encoding'];
    const rewrite = responseRewrite(ex, t, t.response, values);
    ex.responseRewrite = ex.responseRewrite ? chain(ex.responseRewrite, rewrite) : rewrite;
  }
  const side = t.request;
  if (!side) return;
  const read = (ref: TemplateRef) => lookup(ref, values);
  if (side.headers) editHeaders(ex.headers, side.headers, read);
  if (side.body) {
    const body = renderBody(side.body, read);
    ex.bufferedBody = body;
    ex.headers['content-length'] = String(body.length);
    delete ex.headers['transfer-encoding'];
    ex.headers['content-type'] = side.body.contentType;
  }
}

/** What a field value may not hold (the shared HTTP grammar), everywhere in a value. */
const NOT_IN_FIELD_VALUE = new RegExp(INVALID_FIELD_VALUE_CHAR.source, 'g');

/** A rendered header value without what the wire cannot carry: a value taken from a body must not split a header. */
function headerValue(parts: readonly TemplatePart[], read: (ref: TemplateRef) => unknown): string {
  return renderText(parts, read).replace(NOT_IN_FIELD_VALUE, '');
}

/**
 * Remove, then set (a value that renders empty removes the header, so a
 * client's own never outlives a failed extraction), then add. Removed headers
 * are deleted, not left undefined: response heads go to writeHead as they are.
 */
function editHeaders(headers: Headers, edits: CompiledHeaders, read: (ref: TemplateRef) => unknown): void {
  // Every value is rendered before any edit, so that templates read the headers as they came.
  const set = edits.set.map((h) => [h.name, headerValue(h.value, read)] as const);
  const add = edits.add.map((h) => [h.name, headerValue(h.value, read)] as const);
  for (const name of edits.remove) delete headers[name];
  for (const [name, value] of set) {
    if (value === '') delete headers[name];
    else headers[name] = value;
  }
  for (const [name, value] of add) {
    if (value === '') continue;
    const previous = headers[name];
    headers[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  }
}

function renderBody(body: CompiledBody, read: (ref: TemplateRef) => unknown): Buffer {
  return Buffer.from('json' in body ? JSON.stringify(renderJson(body.json, read) ?? null) : renderText(body.text, read), 'utf8');
}

function responseRewrite(ex: HttpExchange, t: CompiledTransformation, side: CompiledSide, values: Values): ResponseRewrite {
  const holds = side.body !== undefined || side.readsBody;
  return {
    limitBytes: t.maxBodyBytes,
    head(status, headers) {
      values.status = status;
      values.responseHeaders = { ...headers };
      const bodiless = ex.method === 'HEAD' || status === 204 || status === 304 || status < 200;
      if (holds && !bodiless) {
        // A compressed body cannot be read: such a response passes as it came.
        const encoding = headers['content-encoding'];
        return !(side.readsBody && encoding !== undefined && encoding !== 'identity');
      }
      if (side.headers) editHeaders(headers, side.headers, (ref) => lookup(ref, values));
      return false;
    },
    body(_status, headers, raw) {
      if (side.readsBody && raw.length > 0) {
        try {
          values.responseBody = JSON.parse(raw.toString('utf8'));
        } catch {
          // Not JSON (an error page, say): passed on as it came, rather than rewritten from nothing.
          return raw;
        }
      }
      const read = (ref: TemplateRef) => lookup(ref, values);
      if (side.headers) editHeaders(headers, side.headers, read);
      if (!side.body) return raw;
      // A new body is a new representation: the upstream's encoding and validator no longer describe it.
      headers['content-type'] = side.body.contentType;
      delete headers['content-encoding'];
      delete headers.etag;
      return renderBody(side.body, read);
    },
  };
}

/** Two rewrites of one response: the inner (installed later, as a backendRef's is after its rule's) sees it first. */
function chain(outer: ResponseRewrite, inner: ResponseRewrite): ResponseRewrite {
  let innerHolds = false;
  let outerHolds = false;
  return {
    limitBytes: Math.min(outer.limitBytes, inner.limitBytes),
    head(status, headers) {
      innerHolds = inner.head(status, headers);
      outerHolds = outer.head(status, headers);
      return innerHolds || outerHolds;
    },
    body(status, headers, body) {
      const once = innerHolds ? inner.body(status, headers, body) : body;
      return outerHolds ? outer.body(status, headers, once) : once;
    },
  };
}

function lookup(ref: TemplateRef, values: Values): unknown {
  const ex = values.ex;
  const key = ref.path[0]!;
  switch (ref.source) {
    case 'request.method':
      return ex.method;
    case 'request.path':
      return ex.pathname;
    case 'request.query':
      return ex.queryParams.get(key) ?? undefined;
    case 'request.header':
      return headerText(values.requestHeaders[key]);
    case 'request.body':
      return atPath(values.requestBody, ref.path);
    case 'response.status':
      return values.status;
    case 'response.header':
      return headerText(values.responseHeaders?.[key]);
    case 'response.body':
      return atPath(values.responseBody, ref.path);
    case 'extract':
      return values.extracted.get(key);
    case 'principal':
      return ex.requestPrincipal;
    case 'claims':
      return atPath(ex.jwtClaims, ref.path);
    case 'item':
      // renderJson answers it inside a $each; the control plane refuses it anywhere else.
      return undefined;
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function parseJson(raw: Buffer, invalid: () => Error): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalid();
  }
}
