// GET /weft/v1/proxies/<ns>/<instance>/{config,backends}: a proxy's running config and live backend state, read from its admin listener for clients that cannot reach it (the dashboard).
//
// The control plane asks the admin address the proxy announced on its
// stream (ProxyStatus.admin), on a fixed path only: it relays what the proxy
// says about itself, never an arbitrary URL. A proxy whose admin listener
// binds 127.0.0.1 on another host cannot be read this way; the answer then
// says so (502) and the CLI, run on that host, can.
import type { ServerResponse } from 'node:http';
import { ErrorCodes } from '../../api/errors.ts';
import { DEBUG_BACKENDS_PATH } from '../../api/explain.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import { notFound, sendText } from './http.ts';
import { ApiError } from './status.ts';

export const PROXY_ADMIN_PREFIX = '/weft/v1/proxies/';

const ADMIN_PATHS = { config: '/config', backends: DEBUG_BACKENDS_PATH } as const;
export type ProxyAdminView = keyof typeof ADMIN_PATHS;

const ADMIN_TIMEOUT_MS = 3000;

/** /weft/v1/proxies/default/frontend-0/config → {id: "default/frontend-0", view: "config"}; anything else undefined. */
export function parseProxyAdminPath(pathname: string): { id: string; view: ProxyAdminView } | undefined {
  if (!pathname.startsWith(PROXY_ADMIN_PREFIX)) return undefined;
  const parts = pathname.slice(PROXY_ADMIN_PREFIX.length).split('/').map(decodeURIComponent);
  if (parts.length !== 3 || !parts[0] || !parts[1]) return undefined;
  const view = parts[2];
  if (view !== 'config' && view !== 'backends') return undefined;
  return { id: `${parts[0]}/${parts[1]}`, view };
}

export async function handleProxyAdmin(res: ServerResponse, target: { id: string; view: ProxyAdminView }, proxies: ProxyStatus[], query: URLSearchParams): Promise<void> {
  const proxy = proxies.find((p) => p.id === target.id);
  if (!proxy) throw notFound(`no proxy ${target.id} is known to this control plane`);
  if (!proxy.admin) throw notFound(`proxy ${target.id} announced no admin listener`);
  let path: string = ADMIN_PATHS[target.view];
  const workload = query.get('workload');
  if (target.view === 'backends' && workload) path += `?workload=${encodeURIComponent(workload)}`;
  const url = `http://${proxy.admin}${path}`;
  let response: Response;
  let body: string;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS), headers: { accept: 'application/json' } });
    body = await response.text();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new ApiError(502, 'BadGateway', ErrorCodes.UPSTREAM_CONNECT, `could not read ${url} (${cause}): the proxy's admin listener is not reachable from the control plane`);
  }
  if (!response.ok) {
    throw new ApiError(response.status === 404 ? 404 : 502, response.status === 404 ? 'NotFound' : 'BadGateway', response.status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.UPSTREAM_CONNECT, `${url} answered ${response.status}: ${body.trim()}`);
  }
  res.setHeader('cache-control', 'no-store');
  sendText(res, 200, body, 'application/json; charset=utf-8');
}
