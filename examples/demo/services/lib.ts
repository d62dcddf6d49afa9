// What the demo services share: who they are, JSON answers, calling another service through the mesh.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';

/** Set by `weft up`: the replica's name ("catalog-v1-0") and its Workload. */
export const instance = process.env.WEFT_INSTANCE ?? hostname();
export const workload = process.env.WEFT_WORKLOAD ?? 'local';

export type Handler = (req: IncomingMessage, url: URL, res: ServerResponse) => Promise<void> | void;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-served-by': instance });
  res.end(text);
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text ? JSON.parse(text) : {};
}

export interface CallResult {
  ok: boolean;
  status: number;
  body?: unknown;
  /** Why it failed; `weft-reason` says whether the mesh answered instead of the service. */
  error?: string;
}

/**
 * The trace context headers (W3C and B3). The mesh makes the spans; an app's
 * only part is to copy these from the request it serves to the calls that
 * request causes, so that the proxies can join them into one trace.
 */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

export function traceHeaders(from: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of TRACE_HEADERS) {
    const value = from.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

/**
 * Calls another service by its mesh name. Plain fetch: HTTP_PROXY and
 * NODE_USE_ENV_PROXY=1 (set by weft up) send it through this app's sidecar.
 * `from`: the request being served, whose trace headers the call carries on.
 */
export async function call(url: string, init: RequestInit = {}, from?: IncomingMessage): Promise<CallResult> {
  try {
    const headers = from ? { ...traceHeaders(from), ...(init.headers as Record<string, string> | undefined) } : init.headers;
    const response = await fetch(url, { ...init, ...(headers ? { headers } : {}), signal: AbortSignal.timeout(3000) });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: keep the text (a proxy's own error page, say).
    }
    if (response.ok) return { ok: true, status: response.status, body };
    const reason = response.headers.get('weft-reason');
    return { ok: false, status: response.status, body, error: `${response.status}${reason ? ` (${reason})` : ''}` };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, status: 0, error: cause?.code ?? (error as Error).message };
  }
}

/** Listens on 127.0.0.1:$PORT and stops cleanly on SIGTERM. */
export function serve(name: string, handler: Handler): void {
  const port = Number(process.env.PORT ?? 8080);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    Promise.resolve(handler(req, url, res)).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (error as Error).message, instance });
      else res.destroy();
    });
  });
  server.listen(port, '127.0.0.1', () => console.log(`${name} (${instance}) listening on 127.0.0.1:${port}`));
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
