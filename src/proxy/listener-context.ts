// What every proxy listener (outbound, tunnel, gateway) is handed: the live config and the shared services around it.
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { AccessLog } from './access-log.ts';
import type { ActiveConfig } from './config/compile.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ErrorResponder } from './respond.ts';
import type { Tracer } from './tracing/tracer.ts';
import type { Activity } from './transport/activity.ts';
import type { ListenerLimits } from './transport/hardening.ts';

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
  /** Spans and trace headers per request (MeshConfig tracing); none in tests that leave it out. */
  tracer?: Tracer | undefined;
  /** One line per request or TCP connection (MeshConfig accessLog). */
  accessLog?: AccessLog | undefined;
  /** What a client may send (sizes, counts, timeouts, HTTP/2 abuse, connections), fixed or read afresh (transport/hardening.ts liveLimits); its defaults when absent. */
  limits?: ListenerLimits | (() => ListenerLimits) | undefined;
}
