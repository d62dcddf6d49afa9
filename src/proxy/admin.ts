// The admin listener: /live, /ready, /config, /metrics and /debug/backends, for supervisors, operators, `weft status` and `weft explain`.
import type { Server } from 'node:http';
import { PROMETHEUS_CONTENT_TYPE } from '../telemetry/metrics.ts';
import { listen } from './transport/listen.ts';
import { DEBUG_BACKENDS_PATH, type LiveProxyState } from '../api/explain.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { createServer } = process.getBuiltinModule('node:http');

export interface AdminState {
  /** A snapshot is applied, the listeners are up, and the proxy is not draining. */
  ready(): { ready: boolean; why?: string };
  config(): unknown;
  metrics(): string;
  /**
   * Read-only: what the balancer registry, outlier detection, circuit
   * breakers, health checks and rate limits hold now. `workload`
   * ("<ns>/<name>", from ?workload=) picks one of a node proxy's workloads;
   * undefined answers 404.
   */
  backends?(workload: string | undefined): LiveProxyState | undefined;
}

export interface RunningAdmin {
  server: Server;
  port: number;
}

export async function startAdmin(host: string, port: number, state: AdminState): Promise<RunningAdmin> {
  const server = createServer((req, res) => {
    const [path, query] = (req.url ?? '/').split('?');
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      reply(405, 'text/plain; charset=utf-8', 'use GET\n');
      return;
    }
    switch (path) {
      case '/live':
        reply(200, 'text/plain; charset=utf-8', 'live\n');
        return;
      case '/ready': {
        const { ready, why } = state.ready();
        reply(ready ? 200 : 503, 'text/plain; charset=utf-8', ready ? 'ready\n' : `not ready: ${why ?? 'unknown'}\n`);
        return;
      }
      case '/config':
        reply(200, 'application/json', `${JSON.stringify(state.config(), null, 2)}\n`);
        return;
      case '/metrics':
        reply(200, PROMETHEUS_CONTENT_TYPE, state.metrics());
        return;
      case DEBUG_BACKENDS_PATH: {
        const workload = new URLSearchParams(query ?? '').get('workload') ?? undefined;
        const live = state.backends?.(workload);
        if (live) reply(200, 'application/json', `${JSON.stringify(live, null, 2)}\n`);
        else reply(404, 'text/plain; charset=utf-8', workload ? `this proxy serves no workload ${workload}\n` : 'name the workload: ?workload=<namespace>/<name>\n');
        return;
      }
      default:
        reply(404, 'text/plain; charset=utf-8', `admin paths: /live /ready /config /metrics ${DEBUG_BACKENDS_PATH}\n`);
    }
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  const bound = await listen(server, port, host);
  return { server, port: bound };
}
