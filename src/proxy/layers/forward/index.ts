// Terminal layers: send the exchange to the chosen endpoint (through its proxy's tunnel, or straight), or to the local app.
import type { PortProtocol, SnapshotEndpoint } from '../../../api/snapshot.ts';
import type { HttpExchange, HttpVersion, TcpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import { sendHttp2 } from '../../transport/h2.ts';
import { dropMeshHeaders } from '../../transport/headers.ts';
import { sendHttp } from '../../transport/http.ts';
import { endpointWire, hostPort, type Pools } from '../../transport/pools.ts';
import { connectDirect, openTunnelStream } from '../../transport/tcp.ts';
import { sendUpgrade } from '../../transport/upgrade.ts';
import { APP_PROTOCOL_HEADER, SOURCE_HEADER, TARGET_PORT_HEADER } from '../mesh-headers/index.ts';

export interface ForwardContext {
  pools: Pools;
  /** "<namespace>/<workload>" of this proxy: sent to peers as weft-source. */
  source: string;
  connectTimeoutMs: number;
}

/**
 * The protocol spoken to an app: HTTP/2 (h2c) when its Service port says
 * http2 or grpc; otherwise HTTP/1.1, except for gRPC calls, which exist only
 * over HTTP/2 (Istio's protocol sniffing reaches the same answer for them).
 * An undeclared port is 'http' in the snapshot, so a browser's HTTP/2 request
 * still reaches an HTTP/1.1-only app as HTTP/1.1.
 */
export function appProtocolFor(declared: PortProtocol | undefined, ex: HttpExchange): HttpVersion {
  if (declared === 'http2' || declared === 'grpc') return 'h2';
  // gRPC-Web (application/grpc-web*) is made for HTTP/1.1 and stays there.
  return ex.grpc && !String(ex.req.headers['content-type']).startsWith('application/grpc-web') ? 'h2' : 'http1';
}

/**
 * Whether forwardHttp sends the exchange as a stream on a shared HTTP/2
 * session (many requests per connection) rather than on a connection of its
 * own for the time of the request: between proxies the client's framing is
 * kept, to an app its port's protocol decides. An Upgrade always gets its own.
 */
export function sendsAsHttp2(ex: HttpExchange, endpoint: SnapshotEndpoint): boolean {
  if (ex.upgrade) return false;
  if (endpoint.tunnelPort !== undefined && ex.downstream === 'h2') return true;
  return appProtocolFor(ex.backend?.protocol, ex) === 'h2';
}

export function forwardHttp(context: ForwardContext): Layer<unknown, HttpExchange> {
  const source = context.source;
  return () => (ex) => {
    ex.attempts++;
    const endpoint = ex.endpoint!;
    const wire = endpointWire(endpoint);
    const where = wire.where;
    const app = appProtocolFor(ex.backend?.protocol, ex);
    if (endpoint.tunnelPort !== undefined) {
      ex.headers[TARGET_PORT_HEADER] = wire.portHeader;
      ex.headers[SOURCE_HEADER] = source;
      ex.headers[APP_PROTOCOL_HEADER] = app;
      // An Upgrade (WebSocket) gets a tunnel connection of its own, since it keeps it once switched.
      const tunnelPort = endpoint.tunnelPort;
      if (ex.upgrade) return sendUpgrade(ex, () => context.pools.dialTunnel(endpoint.address, tunnelPort, endpoint.identity, context.connectTimeoutMs), ex.headers, where, true);
      // Between proxies the client's own framing is kept: HTTP/2 as streams on a shared h2 tunnel connection, HTTP/1.1 on the pooled connections.
      if (ex.downstream === 'h2' || app === 'h2') return sendHttp2(ex, context.pools.h2Tunnel(endpoint.address, endpoint.tunnelPort, endpoint.identity), ex.headers, where, true);
      return sendHttp(ex, context.pools.http1Tunnel(endpoint.address, tunnelPort, endpoint.identity, wire.poolId), ex.headers, where, true);
    }
    if (ex.avoid !== undefined) {
      // A retry that moved from a tunnelled endpoint to a direct one: the app must not see mesh headers.
      dropMeshHeaders(ex.headers);
    }
    if (ex.upgrade) return sendUpgrade(ex, () => connectDirect(endpoint.address, endpoint.port, context.connectTimeoutMs), ex.headers, where);
    if (app === 'h2') return sendHttp2(ex, context.pools.h2Plain(wire.peer), ex.headers, where);
    return sendHttp(ex, context.pools.http1Plain(endpoint.address, endpoint.port, wire.peer), ex.headers, where);
  };
}

export function forwardTcp(context: ForwardContext): Layer<unknown, TcpExchange> {
  const headers = { [SOURCE_HEADER]: context.source };
  return () => async (ex) => {
    const endpoint = ex.endpoint!;
    // Through a peer's tunnel, a TCP connection is a CONNECT stream on a shared HTTP/2 session (no handshake of its own).
    const upstream =
      endpoint.tunnelPort !== undefined
        ? await openTunnelStream(context.pools, { ...endpoint, tunnelPort: endpoint.tunnelPort }, endpoint.port, headers, context.connectTimeoutMs)
        : await connectDirect(endpoint.address, endpoint.port, context.connectTimeoutMs);
    ex.onConnected(upstream);
  };
}

export interface AppContext {
  /** Pools to the app, keyed by hostPort("127.0.0.1", port). */
  pools: Pools;
  connectTimeoutMs: number;
}

/** Inbound: HTTP/2 (h2c) or HTTP/1.1 to the app, as the calling proxy said (weft-app-protocol), else as appProtocolFor decides without a declaration. */
export function forwardHttpToApp(context: AppContext): Layer<unknown, HttpExchange> {
  return () => {
    // An app has a handful of ports: their strings are made once, not per request.
    const apps = new Map<number, { key: string; where: string }>();
    return (ex) => {
      ex.attempts++;
      let app = apps.get(ex.appPort);
      if (app === undefined) {
        const key = hostPort('127.0.0.1', ex.appPort);
        app = { key, where: `the app at ${key}` };
        apps.set(ex.appPort, app);
      }
      const where = app.where;
      if (ex.upgrade) return sendUpgrade(ex, () => connectDirect('127.0.0.1', ex.appPort, context.connectTimeoutMs), ex.headers, where);
      if ((ex.appProtocol ?? appProtocolFor(undefined, ex)) === 'h2') return sendHttp2(ex, context.pools.h2Plain(app.key), ex.headers, where);
      return sendHttp(ex, context.pools.http1Plain('127.0.0.1', ex.appPort, app.key), ex.headers, where);
    };
  };
}

export function forwardTcpToApp(context: AppContext): Layer<unknown, TcpExchange> {
  return () => async (ex) => {
    ex.onConnected(await connectDirect('127.0.0.1', ex.appPort, context.connectTimeoutMs));
  };
}
