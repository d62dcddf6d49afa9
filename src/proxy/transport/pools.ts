// Keep-alive HTTP/1.1 connection pools, one per peer address, kept across snapshots while the peer is still in use.
import { Pool } from 'undici';
import type { Logger } from '../../telemetry/logger.ts';

export interface PoolSettings {
  /** Connections per peer; requests queue beyond it. */
  connections: number;
  /** Idle keep-alive, capped by what the peer advertises. */
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = { connections: 64, keepAliveTimeoutMs: 60_000, connectTimeoutMs: 5_000 };

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class Pools {
  private readonly pools = new Map<string, Pool>();
  private readonly settings: PoolSettings;
  private readonly logger: Logger;

  constructor(settings: PoolSettings, logger: Logger) {
    this.settings = settings;
    this.logger = logger;
  }

  /** The pool for host:port, opened on first use. `key` must be hostPort(host, port). */
  get(key: string): Pool {
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(`http://${key}`, {
        connections: this.settings.connections,
        // One request at a time per connection: no head-of-line blocking behind a slow response.
        pipelining: 1,
        keepAliveTimeout: this.settings.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.settings.keepAliveTimeoutMs,
        connect: { timeout: this.settings.connectTimeoutMs },
        // Route timeouts govern how long a request may take; a stream may stay quiet for long.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      pool.on('connectionError', (_origin, _targets, error) => this.logger.debug({ peer: key, err: error }, 'peer connection failed'));
      this.pools.set(key, pool);
    }
    return pool;
  }

  get size(): number {
    return this.pools.size;
  }

  /** Closes, gracefully, the pools of peers no longer in `keep`; their in-flight requests finish first. */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      pool.close().catch((error: unknown) => this.logger.debug({ peer: key, err: error }, 'closing a pool failed'));
    }
  }

  /** Closes every pool at once, failing what is still in flight. */
  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((pool) => pool.destroy().catch(() => {})));
  }
}
