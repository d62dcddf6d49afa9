// The control plane's REST API on node:http: resources, apply, proxies, status, health and an index page.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyStatus } from '../../api/stream.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Store } from '../store/types.ts';
import { APPLY_PATH, handleApply } from './apply.ts';
import { methodNotAllowed, notFound, sendError, sendJson, sendText } from './http.ts';
import { indexPage } from './index-page.ts';
import { handleResource, parseResourcePath } from './resources.ts';

export const PROXIES_PATH = '/weft/v1/proxies';
export const STATUS_PATH = '/weft/v1/status';

export interface ApiServerOptions {
  store: Store;
  logger: Logger;
  host: string;
  port: number;
  proxies: () => ProxyStatus[];
  /** The body of GET /weft/v1/status. */
  status: () => Promise<unknown>;
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly options: ApiServerOptions;
  private boundPort = 0;

  private constructor(options: ApiServerOptions) {
    this.options = options;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        options.logger.error({ err: error, method: req.method, url: req.url }, 'API request failed');
        sendError(res, error);
      });
    });
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
    return `http://${host}:${this.boundPort}`;
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
      const resourcePath = parseResourcePath(url.pathname);
      if (resourcePath) return await handleResource(req, res, url, resourcePath, { store, logger });
      switch (url.pathname) {
        case '/':
          if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, ['GET']);
          return sendText(res, 200, indexPage(), 'text/html; charset=utf-8');
        case '/healthz':
          return sendText(res, 200, 'ok\n');
        case APPLY_PATH:
          if (method !== 'POST') throw methodNotAllowed(method, ['POST']);
          return await handleApply(req, res, url, store);
        case PROXIES_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          return sendJson(res, 200, this.options.proxies());
        case STATUS_PATH:
          if (method !== 'GET') throw methodNotAllowed(method, ['GET']);
          return sendJson(res, 200, await this.options.status());
        default:
          throw notFound(`no such path ${url.pathname}`);
      }
    } catch (error) {
      sendError(res, error);
    }
  }
}
