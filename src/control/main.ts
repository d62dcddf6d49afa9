// Starts a whole control plane in this process: store, index, compiler cache, config stream, CA later, REST API.
import type { Logger } from '../telemetry/logger.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { Store } from './store/types.ts';

export interface ControlPlaneOptions {
  /** SQLite under this directory; when absent the memory store is used. */
  dataDir?: string;
  /** Use this store instead of opening one (tests, etcd later). */
  store?: Store;
  apiHost?: string; // default 127.0.0.1
  apiPort?: number; // default 15000; 0 = any
  streamHost?: string; // default 127.0.0.1
  streamPort?: number; // default 15010; 0 = any
  /** How long a registered endpoint outlives its proxy's last heartbeat. Default 10 s. */
  leaseTtlMs?: number;
  /** Changes closer together than this are pushed as one snapshot. Default 50 ms. */
  debounceMs?: number;
  logger: Logger;
  clock: Clock;
}

export interface RunningControlPlane {
  apiUrl: string; // http://127.0.0.1:<port>
  streamUrl: string; // http://127.0.0.1:<port>
  store: Store;
  close(): Promise<void>;
}

export async function startControlPlane(_options: ControlPlaneOptions): Promise<RunningControlPlane> {
  throw new Error('startControlPlane: not implemented yet');
}
