// ApiPortal filter: the proxy serves a developer portal under the rule's path: an index of the APIs, a page per API, the catalog as JSON, each OpenAPI document and GraphQL schema.
//
// Pages are rendered here from the snapshot (server-side, no script), with
// every value escaped, and served with a strict Content-Security-Policy:
// the portal faces the internet, and what it shows comes from config.
//
//   <base>/                        the index
//   <base>/apis.json               every API, as JSON
//   <base>/apis/<name>/            one API: base URLs, operations, authentication
//   <base>/apis/<name>/openapi.json
//   <base>/apis/<name>/schema.graphql
import type { OutgoingHttpHeaders } from 'node:http';
import type { HttpFilter, HttpMatch, SnapshotPortal, SnapshotPortalApi } from '../../../api/snapshot.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { filterOf } from '../filters.ts';

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

export const apiPortal: Layer<{ filters: readonly HttpFilter[]; match?: HttpMatch }, HttpExchange> = (target, next) => {
  const filter = filterOf(target.filters, 'Portal');
  if (!filter) return next;
  const portal = filter.portal;
  // The pages live under the rule's path: a prefix (or exact path) is their base; any other match serves them from /.
  const path = target.match?.path;
  const base = path && path.type !== 'RegularExpression' ? path.value.replace(/\/+$/, '') : '';
  const pages = renderPages(portal, base);
  return async (ex) => {
    if (ex.method !== 'GET' && ex.method !== 'HEAD') return send(ex, 405, 'text/plain; charset=utf-8', 'the portal is read with GET\n', { allow: 'GET, HEAD' });
    const page = pages.get(ex.pathname.startsWith(base) ? ex.pathname.slice(base.length) || '/' : ex.pathname);
    if (!page) return send(ex, 404, 'text/html; charset=utf-8', layout(portal, base, 'Not found', '<p>No such page. <a href="' + escape(`${base}/`) + '">All APIs</a>.</p>'));
    return send(ex, 200, page.type, page.body);
  };
};

interface Page {
  type: string;
  body: string;
}

/** Every page, rendered once per snapshot (they change only with the config). */
function renderPages(portal: SnapshotPortal, base: string): Map<string, Page> {
  const pages = new Map<string, Page>();
  const html = (body: string): Page => ({ type: 'text/html; charset=utf-8', body });
  const index = html(layout(portal, base, portal.title, indexBody(portal, base)));
  pages.set('/', index);
  const catalog = {
    title: portal.title,
    ...(portal.description ? { description: portal.description } : {}),
    apis: portal.apis.map((api) => ({
      name: api.name,
      title: api.title,
      ...(api.description ? { description: api.description } : {}),
      baseUrls: api.baseUrls,
      operations: api.operations,
      authentication: api.authentication,
      ...(api.openapi ? { openapi: `${base}/apis/${api.name}/openapi.json` } : {}),
      ...(api.graphql ? { graphql: { schema: `${base}/apis/${api.name}/schema.graphql`, paths: api.graphql.paths } } : {}),
    })),
  };
  pages.set('/apis.json', { type: 'application/json; charset=utf-8', body: JSON.stringify(catalog) });
  for (const api of portal.apis) {
    const page = html(layout(portal, base, api.title, apiBody(api, base)));
    pages.set(`/apis/${api.name}`, page);
    pages.set(`/apis/${api.name}/`, page);
    if (api.openapi) pages.set(`/apis/${api.name}/openapi.json`, { type: 'application/json; charset=utf-8', body: api.openapi });
    if (api.graphql) pages.set(`/apis/${api.name}/schema.graphql`, { type: 'text/plain; charset=utf-8', body: api.graphql.schema });
  }
  return pages;
}

function send(ex: HttpExchange, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  const headers: Headers = { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-cache', ...SECURITY_HEADERS, ...extra };
  // The rule's ResponseHeaderModifier applies to these answers as to a backend's.
  if (ex.responseEdits) for (const edit of ex.responseEdits) edit(headers);
  ex.res.writeHead(status, headers as OutgoingHttpHeaders);
  if (ex.method === 'HEAD') ex.res.end();
  else ex.res.end(body);
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function layout(portal: SnapshotPortal, base: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title === portal.title ? title : `${title} · ${portal.title}`)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:14px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:960px;margin:0 auto;padding:24px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:0 0 16px}
h1{font-size:1.6em;margin:0 0 8px}h2{font-size:1.2em;margin:24px 0 8px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e9ee;vertical-align:top}
code,pre{font:14px/1.4 ui-monospace,monospace;background:#eef1f5;border-radius:4px}code{padding:1px 4px}pre{padding:12px;overflow:auto}
.muted{color:#5b6575}.tag{display:inline-block;font-size:12px;padding:1px 6px;border-radius:10px;background:#e3ecfa;color:#1f4f9c;margin-right:4px}
</style></head>
<body><header><a href="${escape(`${base}/`)}">${escape(portal.title)}</a></header><main>
${body}
</main></body></html>
`;
}

function indexBody(portal: SnapshotPortal, base: string): string {
  const apis = portal.apis
    .map(
      (api) => `<div class="card" data-api="${escape(api.name)}"><h2><a href="${escape(`${base}/apis/${api.name}/`)}">${escape(api.title)}</a></h2>
${api.description ? `<p>${escape(api.description)}</p>` : ''}<p>${api.graphql ? '<span class="tag">GraphQL</span>' : ''}${api.openapi ? '<span class="tag">OpenAPI</span>' : ''}${api.operations.length ? `<span class="tag">${api.operations.length} operation${api.operations.length === 1 ? '' : 's'}</span>` : ''}</p>
${api.baseUrls.length ? `<p class="muted">${api.baseUrls.map((u) => `<code>${escape(u)}</code>`).join(' ')}</p>` : ''}</div>`,
    )
    .join('\n');
  return `<h1>${escape(portal.title)}</h1>
${portal.description ? `<p>${escape(portal.description)}</p>` : ''}
<p class="muted">Also as JSON: <a href="${escape(`${base}/apis.json`)}">apis.json</a></p>
${apis}`;
}

function apiBody(api: SnapshotPortalApi, base: string): string {
  const operations = api.operations
    .map((op) => `<tr><td>${op.methods.length ? op.methods.map((m) => `<code>${escape(m)}</code>`).join(' ') : '<span class="muted">any</span>'}</td><td><code>${escape(op.path)}</code>${op.pathType === 'PathPrefix' && op.path !== '/' ? ' <span class="muted">and below</span>' : op.pathType === 'PathPrefix' ? ' <span class="muted">every path</span>' : op.pathType === 'RegularExpression' ? ' <span class="muted">(regular expression)</span>' : ''}</td></tr>`)
    .join('\n');
  return `<h1>${escape(api.title)}</h1>
${api.description ? `<p>${escape(api.description)}</p>` : ''}
<div class="card"><h2>Base URL</h2>${api.baseUrls.length ? api.baseUrls.map((u) => `<p><code>${escape(u)}</code></p>`).join('') : '<p class="muted">Not served by a Gateway listener yet.</p>'}</div>
<div class="card" data-section="authentication"><h2>Authentication</h2>${api.authentication.length ? `<ul>${api.authentication.map((a) => `<li>${escape(a)}</li>`).join('')}</ul>` : '<p class="muted">None: the API takes anonymous calls.</p>'}</div>
${api.operations.length ? `<div class="card" data-section="operations"><h2>Operations</h2><table><thead><tr><th>Method</th><th>Path</th></tr></thead><tbody>\n${operations}\n</tbody></table></div>` : ''}
${api.openapi ? openApiCard(api, base) : ''}
${api.graphql ? `<div class="card" data-section="graphql"><h2>GraphQL</h2><p>POST <code>{"query": ...}</code> to ${api.graphql.paths.map((p) => `<code>${escape(p)}</code>`).join(', ') || 'its endpoint'}. <a href="${escape(`${base}/apis/${api.name}/schema.graphql`)}">schema.graphql</a></p><pre>${escape(api.graphql.schema.trim())}</pre></div>` : ''}`;
}

const OPENAPI_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The OpenAPI document's operations as a table (method, path, summary), and a link to the whole document. */
function openApiCard(api: SnapshotPortalApi, base: string): string {
  let doc: { info?: { title?: unknown; version?: unknown }; paths?: Record<string, Record<string, { summary?: unknown; description?: unknown; operationId?: unknown }>> };
  try {
    doc = JSON.parse(api.openapi!) as typeof doc;
  } catch {
    doc = {};
  }
  const rows: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (typeof item !== 'object' || item === null) continue;
    for (const method of OPENAPI_METHODS) {
      const operation = item[method];
      if (typeof operation !== 'object' || operation === null) continue;
      const summary = typeof operation.summary === 'string' ? operation.summary : typeof operation.description === 'string' ? operation.description : '';
      rows.push(`<tr><td><code>${escape(method.toUpperCase())}</code></td><td><code>${escape(path)}</code></td><td>${escape(summary)}</td></tr>`);
    }
  }
  const version = typeof doc.info?.version === 'string' ? ` <span class="muted">version ${escape(doc.info.version)}</span>` : '';
  const table = rows.length > 0 ? `<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th></tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>` : '<p class="muted">The document lists no operations.</p>';
  return `<div class="card" data-section="openapi"><h2>OpenAPI${version}</h2>${table}<p><a href="${escape(`${base}/apis/${api.name}/openapi.json`)}">openapi.json</a></p></div>`;
}
