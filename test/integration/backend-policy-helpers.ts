// Helpers for the BackendTrafficPolicy tests: controllable backends (fail, slow, unhealthy), snapshots with policies, concurrent requests.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { BackendTraffic, LoadBalancer, ProxySnapshot, SnapshotEndpoint, SnapshotLocality } from '../../src/api/snapshot.ts';
import { buildSnapshot, endpoint, reversion, viaProxy, type HttpResult, type ServiceSpec } from './proxy-helpers.ts';

export interface ControlledBackend {
  name: string;
  port: number;
  /** Requests served, health checks left out. */
  requests: number;
  /** When the last of them arrived (performance.now()). */
  lastRequestAt: number;
  healthChecks: number;
  connections: number;
  /** Connections open now. */
  openConnections(): number;
  /** Status answered to requests (health checks aside). */
  status: number;
  /** Delay before answering, ms. */
  delayMs: number;
  /** Status answered to GET /healthz. */
  healthStatus: number;
  /** When set, requests answer 503 when this returns true (called with the request count so far). */
  failWhen: ((count: number) => boolean) | undefined;
  endpoint(locality?: SnapshotLocality): SnapshotEndpoint;
  close(): Promise<void>;
}

/** A backend whose answers a test changes as it goes; it answers its name in `x-backend`. */
export async function startControlled(name: string): Promise<ControlledBackend> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const backend: ControlledBackend = {
    name,
    port: 0,
    requests: 0,
    lastRequestAt: 0,
    healthChecks: 0,
    connections: 0,
    openConnections: () => sockets.size,
    status: 200,
    delayMs: 0,
    healthStatus: 200,
    failWhen: undefined,
    endpoint(locality) {
      const ep = endpoint(`default/${name}`, backend.port);
      if (locality) ep.locality = locality;
      return ep;
    },
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/healthz') {
        backend.healthChecks++;
        res.writeHead(backend.healthStatus, { 'x-backend': name });
        res.end();
        return;
      }
      const count = backend.requests++;
      backend.lastRequestAt = performance.now();
      const status = backend.failWhen?.(count) ? 503 : backend.status;
      const answer = () => {
        res.writeHead(status, { 'content-type': 'text/plain', 'x-backend': name });
        res.end(name);
      };
      if (backend.delayMs <= 0) return answer();
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, backend.delayMs);
      timers.add(timer);
    });
  });
  server.on('connection', (socket: Socket) => {
    backend.connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as AddressInfo).port;
  let closed = false;
  backend.close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    return new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  };
  return backend;
}

/** A snapshot with one service "web" on port 80 whose backend carries `traffic`; the caller's locality optional. */
export function policySnapshot(
  endpoints: SnapshotEndpoint[],
  lb: LoadBalancer,
  traffic: Omit<BackendTraffic, 'policy'> | undefined,
  options: { rules?: NonNullable<ServiceSpec['ports'][number]['rules']>; locality?: SnapshotLocality } = {},
): ProxySnapshot {
  const port: ServiceSpec['ports'][number] = { port: 80, endpoints };
  if (options.rules) port.rules = options.rules;
  const snapshot = buildSnapshot({ services: [{ name: 'web', ports: [port] }] });
  const backend = snapshot.backends['default/web:80']!;
  backend.lb = lb;
  if (traffic) backend.traffic = { policy: 'default/test', ...traffic };
  if (options.locality) snapshot.node.locality = options.locality;
  return reversion(snapshot);
}

/** `count` requests, `concurrency` at a time; the results in the order they were sent. */
export async function requestMany(
  port: number,
  count: number,
  concurrency: number,
  target: (i: number) => string,
  headers: (i: number) => Record<string, string> = () => ({}),
): Promise<HttpResult[]> {
  const results: HttpResult[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await viaProxy(port, target(i), { headers: headers(i), timeoutMs: 10_000 });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

/** How many results each backend (x-backend) answered. */
export function tally(results: readonly HttpResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const name = String(r.headers['x-backend'] ?? `status ${r.status}`);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
