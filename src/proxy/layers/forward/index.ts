// Terminal layers: send the exchange to the chosen endpoint (through its proxy's tunnel, or straight), or to the local app.
import type { SnapshotEndpoint } from '../../../api/snapshot.ts';
import type { HttpExchange, TcpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { sendHttp } from '../../transport/http.ts';
import { hostPort, type Pools } from '../../transport/pools.ts';
import { connectDirect, connectThroughTunnel } from '../../transport/tcp.ts';
import { SOURCE_HEADER, TARGET_PORT_HEADER } from '../mesh-headers/index.ts';

export interface ForwardContext {
  pools: Pools;
  /** "<namespace>/<workload>" of this proxy: sent to peers as weft-source. */
  source: string;
  connectTimeoutMs: number;
}

/** The peer (tunnel) or direct address an endpoint is reached at. */
export function peerKey(endpoint: SnapshotEndpoint): string {
  return endpoint.tunnelPort !== undefined ? hostPort(endpoint.address, endpoint.tunnelPort) : hostPort(endpoint.address, endpoint.port);
}

export function forwardHttp(context: ForwardContext): Layer<unknown, HttpExchange> {
  const source = context.source;
  return () => (ex) => {
    const endpoint = ex.endpoint!;
    const key = peerKey(endpoint);
    if (endpoint.tunnelPort !== undefined) {
      ex.headers[TARGET_PORT_HEADER] = String(endpoint.port);
      ex.headers[SOURCE_HEADER] = source;
      return sendHttp(ex, context.pools.tunnel(key, endpoint.identity), ex.headers, `${endpoint.id} at ${key}`, true);
    }
    if (ex.avoid !== undefined) {
      // A retry that moved from a tunnelled endpoint to a direct one: the app must not see mesh headers.
      delete ex.headers[TARGET_PORT_HEADER];
      delete ex.headers[SOURCE_HEADER];
    }
    return sendHttp(ex, context.pools.get(key), ex.headers, `${endpoint.id} at ${key}`);
  };
}

export function forwardTcp(context: ForwardContext): Layer<unknown, TcpExchange> {
  const headers = { [SOURCE_HEADER]: context.source };
  return () => async (ex) => {
    const endpoint = ex.endpoint!;
    const upstream =
      endpoint.tunnelPort !== undefined
        ? await connectThroughTunnel(context.pools, { ...endpoint, tunnelPort: endpoint.tunnelPort }, endpoint.port, headers, context.connectTimeoutMs)
        : await connectDirect(endpoint.address, endpoint.port, context.connectTimeoutMs);
    ex.onConnected(upstream);
  };
}

export interface AppContext {
  /** Pools to the app, keyed by hostPort("127.0.0.1", port). */
  pools: Pools;
  connectTimeoutMs: number;
}

export function forwardHttpToApp(context: AppContext): Layer<unknown, HttpExchange> {
  return () => (ex) => {
    const key = hostPort('127.0.0.1', ex.appPort);
    return sendHttp(ex, context.pools.get(key), ex.headers, `the app at ${key}`);
  };
}

export function forwardTcpToApp(context: AppContext): Layer<unknown, TcpExchange> {
  return () => async (ex) => {
    ex.onConnected(await connectDirect('127.0.0.1', ex.appPort, context.connectTimeoutMs));
  };
}
