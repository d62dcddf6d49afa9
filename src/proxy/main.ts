// Starts one proxy in this process: discovery client, listeners, admin server, drain on close.
import type { Logger } from '../telemetry/logger.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { ProxyMode } from '../api/snapshot.ts';

export interface ProxyOptions {
  mode: ProxyMode; // only 'sidecar' for now
  /** The control plane's stream URL, e.g. http://127.0.0.1:15010. */
  controlPlane: string;
  namespace: string;
  /** The template Workload this sidecar serves; absent for a proxy with no app. */
  workload?: string;
  /** Instance name to register as; default "<workload>-<random>". */
  instance?: string;
  /** The app's ports: declared port (what Services target) → actual port on 127.0.0.1. */
  appPorts: { declared: number; actual: number }[];
  host?: string; // listen address for outbound/admin; default 127.0.0.1
  /** Address other proxies use to reach this one's tunnel port; default 127.0.0.1. */
  address?: string;
  outboundPort?: number; // default 15001; 0 = any
  tunnelPort?: number; // default 15008; 0 = any
  adminPort?: number; // default 15020; 0 = any
  /** Where the last good snapshot is kept; none when absent. */
  dataDir?: string;
  /** SIGTERM grace: how long in-flight requests may take to finish. Default 5000. */
  drainMs?: number;
  logger: Logger;
  clock: Clock;
}

export interface RunningProxy {
  ports: { outbound: number; tunnel: number; admin: number };
  /** Stops accepting, finishes in-flight requests (up to drainMs), closes everything. */
  close(): Promise<void>;
}

export async function startProxy(_options: ProxyOptions): Promise<RunningProxy> {
  throw new Error('startProxy: not implemented yet');
}
