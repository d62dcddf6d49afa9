// What every proxy listener (outbound, tunnel, gateway) is handed: the live config and the shared services around it.
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ActiveConfig } from './config/compile.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ErrorResponder } from './respond.ts';
import type { Activity } from './transport/activity.ts';

export interface ListenerContext {
  /** The config in force now; read per connection or request, swapped atomically by the config manager. */
  config: () => ActiveConfig;
  /** Tracks connections and requests so that drain can wait for them. */
  activity: Activity;
  /** The one place this direction turns errors into responses. */
  responder: ErrorResponder;
  metrics: ProxyMetrics;
  clock: Clock;
  logger: Logger;
  keepAliveTimeoutMs: number;
  /** How long an upgraded connection (WebSocket) may stay silent both ways; transport/upgrade.ts's default when absent. */
  upgradeIdleTimeoutMs?: number | undefined;
}
