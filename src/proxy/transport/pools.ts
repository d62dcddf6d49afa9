// Keep-alive HTTP/1.1 connection pools, one per peer address (mTLS ones per address and expected identity), kept across snapshots while in use.
import type { Socket } from 'node:net';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { SnapshotEndpoint } from '../../api/snapshot.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { DEFAULT_H2_SETTINGS, H2Sessions, type Lease } from './h2.ts';
import { dialTcp, Http1Pool, type Dial } from './http1-client.ts';
import type { TunnelTls } from './mtls.ts';
import type { TunnelDialer } from './tcp.ts';

export interface PoolSettings {
  /** Connections per peer; requests queue beyond it. */
  connections: number;
  /** Idle keep-alive, capped by what the peer advertises. */
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
  /** A connection is closed after this many requests (BackendTrafficPolicy connection.maxRequestsPerConnection). */
  maxRequestsPerConnection?: number;
  /** HTTP/2 sessions (tunnel and h2c): PING a session silent this long, and replace it when the answer takes longer than pingTimeoutMs. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = { connections: 64, keepAliveTimeoutMs: 60_000, connectTimeoutMs: 5_000 };

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The id of the mTLS pool to a peer's tunnel at `key` (hostPort) that must present `identity`. */
export function tunnelPoolId(key: string, identity: string | undefined): string {
  return `${key} ${identity ?? '-'}`;
}

/** The id of the pool an endpoint is reached through: its proxy's tunnel (mTLS), or its own address. */
export function endpointPoolId(endpoint: SnapshotEndpoint): string {
  return endpointWire(endpoint).poolId;
}

/** How an endpoint is reached, as strings the request path would otherwise build on every request. */
export interface EndpointWire {
  /** hostPort of its proxy's tunnel, or of the endpoint itself. */
  readonly peer: string;
  /** endpointPoolId. */
  readonly poolId: string;
  /** "<endpoint id> at <peer>", for error messages. */
  readonly where: string;
  /** The endpoint's port as the weft-target-port header carries it. */
  readonly portHeader: string;
}

/** Per endpoint object: a snapshot's endpoints live until the next snapshot, and with them these strings. */
const wires = new WeakMap<SnapshotEndpoint, EndpointWire>();

export function endpointWire(endpoint: SnapshotEndpoint): EndpointWire {
  let wire = wires.get(endpoint);
  if (wire === undefined) {
    const tunnelled = endpoint.tunnelPort !== undefined;
    const peer = hostPort(endpoint.address, tunnelled ? endpoint.tunnelPort! : endpoint.port);
    wire = { peer, poolId: tunnelled ? tunnelPoolId(peer, endpoint.identity) : peer, where: `${endpoint.id} at ${peer}`, portHeader: String(endpoint.port) };
    wires.set(endpoint, wire);
  }
  return wire;
}

export class Pools implements TunnelDialer {
  /** HTTP/1.1 pools (http1-client.ts): requests, mirror copies and health-check probes. */
  private readonly http1Pools = new Map<string, Http1Pool>();
  private readonly settings: PoolSettings;
  private readonly logger: Logger;
  private readonly tls: TunnelTls | undefined;
  /** Per-peer settings (BackendTrafficPolicy), by pool id. */
  private readonly overrides = new Map<string, Partial<PoolSettings>>();
  /** HTTP/2 sessions, by the same ids as the HTTP/1.1 pools: h2c to apps, h2 on peers' tunnels. */
  readonly h2: H2Sessions;

  /** With `tls`, the pools can also reach peer proxies' tunnels (tunnel()). */
  constructor(settings: PoolSettings, logger: Logger, tls?: TunnelTls) {
    this.settings = settings;
    this.logger = logger;
    this.tls = tls;
    const h2Settings = {
      ...DEFAULT_H2_SETTINGS,
      connectTimeoutMs: settings.connectTimeoutMs,
      ...(settings.pingIntervalMs !== undefined ? { pingIntervalMs: settings.pingIntervalMs } : {}),
      ...(settings.pingTimeoutMs !== undefined ? { pingTimeoutMs: settings.pingTimeoutMs } : {}),
    };
    const sessions = tls?.metrics.sessions;
    this.h2 = new H2Sessions(h2Settings, logger, sessions ? (event, reason) => sessions.labels(event, reason).inc() : undefined);
  }

  /** A stream's share of an h2c session to host:port (`key` = hostPort(host, port)). */
  h2Plain(key: string): Promise<Lease> {
    return this.h2.lease(key, key, undefined);
  }

  /** A stream's share of an HTTP/2 session on the mTLS tunnel of the peer at `host`:`port` that must present `identity`. */
  h2Tunnel(host: string, port: number, identity: string | undefined): Promise<Lease> {
    if (!this.tls) return Promise.reject(new WeftError(ErrorCodes.INTERNAL, 'these pools were made without mesh mTLS'));
    const key = hostPort(host, port);
    return this.h2.lease(tunnelPoolId(key, identity), key, this.tls.h2Dialer(host, port, identity));
  }

  /** The plaintext HTTP/1.1 pool to host:port, opened on first use. */
  http1Plain(host: string, port: number, key = hostPort(host, port)): Http1Pool {
    return this.http1Pools.get(key) ?? this.openHttp1(key, dialTcp(host, port));
  }

  /**
   * The HTTP/1.1 pool on the mTLS tunnel of the peer at host:port whose
   * certificate must name `identity`. A peer whose expected identity changes
   * gets a new pool: connections verified as someone else are never reused.
   */
  http1Tunnel(host: string, port: number, identity: string | undefined, id = tunnelPoolId(hostPort(host, port), identity)): Http1Pool {
    const existing = this.http1Pools.get(id);
    if (existing) return existing;
    const tls = this.tls;
    if (!tls) throw new WeftError(ErrorCodes.INTERNAL, 'these pools were made without mesh mTLS');
    return this.openHttp1(id, (timeoutMs) => tls.connect(host, port, identity, timeoutMs));
  }

  private openHttp1(id: string, dial: Dial): Http1Pool {
    const settings = this.settingsFor(id);
    const pool = new Http1Pool(settings, dial, (error) => this.logger.debug({ peer: id, err: error }, 'peer connection failed'));
    this.http1Pools.set(id, pool);
    return pool;
  }

  /** The HTTP/1.1 pool an endpoint is reached through: its proxy's mTLS tunnel when it has one, else straight. */
  http1For(endpoint: SnapshotEndpoint): Http1Pool {
    const id = endpointWire(endpoint).poolId;
    return endpoint.tunnelPort !== undefined ? this.http1Tunnel(endpoint.address, endpoint.tunnelPort, endpoint.identity, id) : this.http1Plain(endpoint.address, endpoint.port, id);
  }

  /** One mTLS connection to a peer's tunnel, outside any pool (CONNECT tunnels are not reused). */
  dialTunnel(host: string, port: number, identity: string | undefined, timeoutMs: number): Promise<Socket> {
    if (!this.tls) return Promise.reject(new WeftError(ErrorCodes.INTERNAL, 'these pools were made without mesh mTLS'));
    return this.tls.connect(host, port, identity, timeoutMs);
  }

  /**
   * Per-peer settings from a BackendTrafficPolicy (pool id as endpointPoolId
   * gives it), or undefined for the defaults. A pool already open with other
   * settings is closed gracefully; the next request opens one with these.
   * The peer's HTTP/2 sessions (h2c, or the tunnel's) get the same bounds.
   */
  configure(id: string, settings: Partial<PoolSettings> | undefined): void {
    // HTTP/2 sessions to the same peer keep to the same bounds: maxConnections sessions, maxRequestsPerConnection streams each.
    this.h2.configure(id, settings ? { maxSessions: settings.connections, maxStreamsPerSession: settings.maxRequestsPerConnection } : undefined);
    const before = JSON.stringify(this.settingsFor(id));
    if (settings) this.overrides.set(id, settings);
    else this.overrides.delete(id);
    if (JSON.stringify(this.settingsFor(id)) === before) return;
    const pool = this.http1Pools.get(id);
    if (!pool) return;
    this.http1Pools.delete(id);
    void pool.close();
  }

  private settingsFor(id: string): PoolSettings {
    const override = this.overrides.get(id);
    return override ? { ...this.settings, ...override } : this.settings;
  }

  /** Closes, gracefully, the pools whose ids (hostPort, or tunnelPoolId) are not in `keep`; their in-flight requests finish first. */
  retain(keep: ReadonlySet<string>): void {
    this.h2.retain(keep);
    for (const [key, pool] of this.http1Pools) {
      if (keep.has(key)) continue;
      this.http1Pools.delete(key);
      void pool.close();
    }
  }

  /** Closes every pool at once, failing what is still in flight. */
  async destroy(): Promise<void> {
    const all = [...this.http1Pools.values()];
    this.http1Pools.clear();
    this.h2.destroy();
    await Promise.all(all.map((pool) => pool.destroy()));
  }
}
