// The control plane's REST API on node:http: resources, apply, proxies, status, events, topology, health, and the dashboard at /.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { KINDS } from '../../api/resources.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import { SERVICE_TRAFFIC_PREFIX, TOPOLOGY_PATH, type ServiceTraffic, type TopologyTraffic } from '../../api/topology.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Store } from '../store/types.ts';
import { APPLY_PATH, handleApply } from './apply.ts';
import { credentialOf, handleSession, needsToken, onlyReads, reachesAll, readOnlyRefused, requireNamespace, seesNamespace, SESSION_PATH, unauthorized, type ApiGrant, type ApiTokens } from './auth.ts';
import { EVENTS_PATH, handleEvents } from './events.ts';
import { handleExplain } from './explain.ts';
import { EXPLAIN_PATH, type ExplainRequest, type ExplainTrace } from '../../api/explain.ts';
import { methodNotAllowed, notFound, sendError, sendJson, sendText } from './http.ts';
import { indexPage } from './index-page.ts';
import { handleResource, parseResourcePath } from './resources.ts';
import { DEFAULT_DASHBOARD_DIR, staticFiles, type StaticFiles } from './static.ts';
import { handleCreateToken, TOKENS_PATH, type TokenPolicy } from './tokens.ts';
import { TAP_PATH, type TapHub } from './tap.ts';
import { CA_PATH, CA_ROTATE_PATH, handleCaRotate, handleCaState, type CaPolicy } from './ca.ts';
import { handleProxyAdmin, parseProxyAdminPath } from './proxy-admin.ts';

export const PROXIES_PATH = '/weft/v1/proxies';
export const STATUS_PATH = '/weft/v1/status';
/** The kinds this server knows, with their plurals and scope: what a client needs to build resource paths. */
export const KINDS_PATH = '/weft/v1/kinds';

/** /api/v1/services/<ns>/<name> (two names exactly: Kubernetes paths name no such thing) → the Service whose traffic is asked for. */
function serviceTrafficTarget(pathname: string): { namespace: string; name: string } | undefined {
  if (!pathname.startsWith(SERVICE_TRAFFIC_PREFIX)) return undefined;
  const parts = pathname.slice(SERVICE_TRAFFIC_PREFIX.length).split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  return { namespace: decodeURIComponent(parts[0]), name: decodeURIComponent(parts[1]) };
}

/** The part of the traffic a namespaced token sees: its namespaces' services, and the edges and routes that start or end in them. */
function trafficOfNamespaces(traffic: TopologyTraffic, visible: (namespace: string) => boolean): TopologyTraffic {
  const touches = (e: { source: { namespace: string }; destination: { namespace: string } }) => visible(e.source.namespace) || visible(e.destination.namespace);
  return {
    ...traffic,
    services: traffic.services.filter((s) => visible(s.namespace)),
    edges: traffic.edges.filter(touches),
    ...(traffic.routes ? { routes: traffic.routes.filter(touches) } : {}),
  };
}

/** What GET /api/v1/topology answers while nothing collects traffic metrics. */
function noTrafficYet(window: string): TopologyTraffic {
  return {
    available: false,
    reason: 'no traffic data yet: this control plane does not collect metrics',
    window,
    generatedAt: new Date().toISOString(),
    services: [],
    edges: [],
  };
}

export interface ApiServerOptions {
  store: Store;
  logger: Logger;
  host: string;
  port: number;
  proxies: () => ProxyStatus[];
  /** Asks other control-plane replicas for their proxies before `proxies` is read (mesh-view.ts); absent with one control plane. */
  refreshProxies?: (() => Promise<void>) | undefined;
  /** The body of GET /weft/v1/status, with the proxies of the namespaces the caller sees (and, when it sees them all, what spans them). */
  status: (visible: (namespace: string) => boolean, everyNamespace: boolean) => Promise<unknown>;
  /** Bootstrap tokens for proxies (POST /weft/v1/tokens); absent = the path does not exist. */
  tokens?: TokenPolicy;
  /** The mesh CA (GET /weft/v1/ca, POST /weft/v1/ca/rotate); absent = the paths do not exist. */
  ca?: CaPolicy | undefined;
  now?: () => number;
  /**
   * Traffic per service and edge over `window` ("5m"), for GET /api/v1/topology.
   * The seam for the metrics work: without it the answer says no data yet.
   */
  topology?: ((window: string) => Promise<TopologyTraffic>) | undefined;
  /** One Service's traffic, for GET /api/v1/services/<ns>/<name>?window=; without it that path is a resource path as before. */
  serviceTraffic?: ((namespace: string, name: string, window: string) => Promise<ServiceTraffic>) | undefined;
  /** `weft explain`: the trace of a hypothetical request (POST /weft/v1/explain); absent = the path does not exist. */
  explain?: ((request: ExplainRequest) => ExplainTrace) | undefined;
  /** `weft tap` (GET /api/v1/tap, NDJSON); absent = the path does not exist. */
  tap?: TapHub | undefined;
  /** The tokens the API asks for (--api-token-file); absent = the API is open to whoever reaches it. */
  apiTokens?: ApiTokens | undefined;
  /** Serve HTTPS with this certificate (PEM, chain after the leaf) and key; absent = plain HTTP. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** The built dashboard; default dist/dashboard in this checkout. Without an index.html there, / is a page of links. */
  dashboardDir?: string | undefined;
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly options: ApiServerOptions;
  private readonly dashboard: StaticFiles;
  private boundPort = 0;

  private constructor(options: ApiServerOptions) {
    this.options = options;
    this.dashboard = staticFiles(options.dashboardDir ?? DEFAULT_DASHBOARD_DIR);
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        options.logger.error({ err: error, method: req.method, url: req.url }, 'API request failed');
        sendError(res, error);
      });
    };
    this.server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, onRequest) : http.createServer(onRequest);
    // Watches are long-lived: no idle timeout on responses; keep-alive between requests as usual.
    this.server.requestTimeout = 60_000;
    this.server.headersTimeout = 30_000;
  }

  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const api = new ApiServer(options);
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', reject);
      api.server.listen(options.port, options.host, () => {
        api.server.off('error', reject);
        resolve();
      });
    });
    api.boundPort = (api.server.address() as AddressInfo).port;
    api.server.on('error', (error) => options.logger.error({ err: error }, 'API server error'));
    return api;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${this.boundPort}`;
  }

  /** Stops accepting and drops every connection, watches included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://weft.invalid');
    const method = req.method ?? 'GET';
    const { store, logger } = this.options;
    try {
      if (url.pathname === SESSION_PATH) return await handleSession(req, res, this.options.apiTokens, this.options.tls !== undefined);
      // What the caller may do: undefined when the API asks for no token (everything).
      let grant: ApiGrant | undefined;
      if (this.options.apiTokens && needsToken(url.pathname)) {
        grant = this.options.apiTokens.grantOf(credentialOf(req));
        if (grant === undefined) throw unauthorized(req);
        if (grant.readOnly && !onlyReads(method, url, { explain: EXPLAIN_PATH, apply: APPLY_PATH })) throw readOnlyRefused(method, url.pathname);
      }
      const visible = (namespace: string) => seesNamespace(grant, namespace);
      // Before the resource paths: /api/v1/ is the core group's, and "topology" is no kind.
      if (url.pathname === TOPOLOGY_PATH) {
        if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
        const window = url.searchParams.get('window') || '5m';
        const topology = this.options.topology ? await this.options.topology(window) : noTrafficYet(window);
        return sendJson(res, 200, reachesAll(grant) ? topology : trafficOfNamespaces(topology, visible), { 'cache-control': 'no-store' });
      }
      if (url.pathname === TAP_PATH && this.options.tap) {
        if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
        await this.options.refreshProxies?.();
        requireNamespace(grant, url.searchParams.get('namespace') || 'default', 'tap');
        return this.options.tap.handle(res, url);
      }
      const trafficOf = this.options.serviceTraffic ? serviceTrafficTarget(url.pathname) : undefined;
      if (trafficOf && this.options.serviceTraffic) {
        if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
        const window = url.searchParams.get('window') || '5m';
        requireNamespace(grant, trafficOf.namespace, `read the traffic of Service ${trafficOf.namespace}/${trafficOf.name}`);
        return sendJson(res, 200, await this.options.serviceTraffic(trafficOf.namespace, trafficOf.name, window), { 'cache-control': 'no-store' });
      }
      const proxyAdmin = parseProxyAdminPath(url.pathname);
      if (proxyAdmin) {
        if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
        await this.options.refreshProxies?.();
        requireNamespace(grant, proxyAdmin.id.split('/')[0], `read proxy ${proxyAdmin.id}`);
        return await handleProxyAdmin(res, proxyAdmin, this.options.proxies(), url.searchParams);
      }
      const resourcePath = parseResourcePath(url.pathname);
      if (resourcePath) return await handleResource(req, res, url, resourcePath, { store, logger, grant });
      switch (url.pathname) {
        case '/healthz':
          return sendText(res, 200, 'ok\n');
        case APPLY_PATH:
          if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
          return await handleApply(req, res, url, store, grant);
        case PROXIES_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          await this.options.refreshProxies?.();
          return sendJson(res, 200, this.options.proxies().filter((p) => visible(p.namespace)));
        case STATUS_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          await this.options.refreshProxies?.();
          return sendJson(res, 200, await this.options.status(visible, reachesAll(grant)));
        case TOKENS_PATH:
          if (!this.options.tokens) throw notFound(`no such path ${url.pathname}`);
          if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
          return await handleCreateToken(req, res, this.options.tokens, this.options.now ?? Date.now, (namespace) => requireNamespace(grant, namespace, `create bootstrap tokens in namespace ${namespace}`));
        case CA_PATH:
          if (!this.options.ca) throw notFound(`no such path ${url.pathname}`);
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          return handleCaState(res, this.options.ca);
        case CA_ROTATE_PATH:
          if (!this.options.ca) throw notFound(`no such path ${url.pathname}`);
          if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
          requireNamespace(grant, undefined, 'rotate the CA');
          return await handleCaRotate(req, res, this.options.ca);
        case EVENTS_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          return handleEvents(req, res, url, { store, logger, proxies: this.options.proxies, refreshProxies: this.options.refreshProxies, visible: reachesAll(grant) ? undefined : visible });
        case EXPLAIN_PATH:
          if (!this.options.explain) throw notFound(`no such path ${url.pathname}`);
          if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
          await this.options.refreshProxies?.();
          return await handleExplain(req, res, this.options.explain, (namespace) => requireNamespace(grant, namespace, `explain requests from namespace ${namespace}`));
        case KINDS_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          return sendJson(res, 200, {
            kinds: KINDS.map(({ group, versions, kind, plural, namespaced }) => ({ group, versions, kind, plural, namespaced })),
          });
      }
      if (url.pathname.startsWith('/weft/') || url.pathname.startsWith('/api/') || url.pathname.startsWith('/apis/')) {
        throw notFound(`no such path ${url.pathname}`);
      }
      // Everything else is the dashboard's.
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, ['GET', 'HEAD']);
      if (await this.dashboard.serve(req, res, url.pathname)) return;
      if (url.pathname === '/') return sendText(res, 200, indexPage(), 'text/html; charset=utf-8');
      throw notFound(`no such path ${url.pathname}`);
    } catch (error) {
      sendError(res, error);
    }
  }
}
