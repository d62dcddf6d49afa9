// Starts a whole control plane in this process: store, index, compiler cache, config stream, CA later, REST API.
import { checkSnapshot, compile, snapshotInputKey } from '../compiler/compile.ts';
import { computeStatuses } from '../compiler/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Clock } from '../telemetry/clock.ts';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import type { Store } from './store/types.ts';
import { MemoryStore } from './store/memory.ts';
import { SqliteStore } from './store/sqlite.ts';
import { ResourceIndex } from './index.ts';
import { SnapshotCache } from './cache.ts';
import { StatusWriter } from './status-writer.ts';
import { StreamServer } from './stream-server.ts';
import { ApiServer } from './api/server.ts';
import type { CompilerFunctions } from './compiler-functions.ts';

export interface ControlPlaneOptions {
  /** SQLite under this directory; when absent the memory store is used. */
  dataDir?: string;
  /** Use this store instead of opening one (tests). The caller keeps ownership: close() leaves it open. */
  store?: Store;
  /** Keep the config in etcd (many hosts, several control planes) under `prefix` (default /weft); dataDir must then be absent. */
  etcd?: { endpoints: string[]; prefix?: string };
  apiHost?: string; // default 127.0.0.1
  apiPort?: number; // default 15000; 0 = any
  streamHost?: string; // default 127.0.0.1
  streamPort?: number; // default 15010; 0 = any
  /** How long a registered endpoint outlives its proxy's last heartbeat. Default 10 s. */
  leaseTtlMs?: number;
  /** Changes closer together than this are pushed as one snapshot. Default 50 ms. */
  debounceMs?: number;
  /** Replaces compiler functions (tests: a compiler that fails on demand). */
  compiler?: Partial<CompilerFunctions>;
  logger: Logger;
  clock: Clock;
}

export interface RunningControlPlane {
  apiUrl: string; // http://127.0.0.1:<port>
  streamUrl: string; // http://127.0.0.1:<port>
  store: Store;
  close(): Promise<void>;
}

export const DEFAULT_API_PORT = 15000;
export const DEFAULT_STREAM_PORT = 15010;
export const DEFAULT_LEASE_TTL_MS = 10_000;

const realCompiler: CompilerFunctions = { compile, snapshotInputKey, checkSnapshot, computeStatuses };

async function openStore(options: ControlPlaneOptions): Promise<Store> {
  const { clock, logger } = options;
  if (options.etcd) {
    if (options.dataDir) throw new WeftError(ErrorCodes.INVALID, 'choose one store: a data dir (SQLite) or etcd, not both');
    // Loaded only when asked for: the etcd client brings gRPC with it.
    const { EtcdStore } = await import('./store/etcd.ts');
    return EtcdStore.open({ endpoints: options.etcd.endpoints, prefix: options.etcd.prefix, clock, logger });
  }
  return options.dataDir ? SqliteStore.open({ dataDir: options.dataDir, clock, logger }) : new MemoryStore({ clock, logger });
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const { logger, clock } = options;
  const compiler: CompilerFunctions = { ...realCompiler, ...options.compiler };
  const ownsStore = !options.store;
  const store: Store = options.store ?? (await openStore(options));
  const leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const cleanup: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (error) {
        logger.error({ err: error }, 'control plane shutdown step failed');
      }
    }
    cleanup.length = 0;
  };
  if (ownsStore) cleanup.push(() => store.close());
  try {
    const index = new ResourceIndex({ store, logger, clock });
    cleanup.push(() => index.stop());
    await index.start();

    const cache = new SnapshotCache({ index, compiler, logger, clock, debounceMs: options.debounceMs });
    cleanup.push(() => cache.close());
    const statusWriter = new StatusWriter({ store, index, computeStatuses: compiler.computeStatuses, clock, logger });
    cleanup.push(() => statusWriter.close());
    cache.onPass((input) => statusWriter.schedule(input));
    // Objects written while no control plane ran still need their statuses.
    cache.requestPass();

    const stream = await StreamServer.start({
      cache,
      store,
      index,
      logger,
      clock,
      leaseTtlMs,
      host: options.streamHost ?? '127.0.0.1',
      port: options.streamPort ?? DEFAULT_STREAM_PORT,
    });
    cleanup.push(() => stream.close());

    const api = await ApiServer.start({
      store,
      logger,
      host: options.apiHost ?? '127.0.0.1',
      port: options.apiPort ?? DEFAULT_API_PORT,
      proxies: () => stream.proxies(),
      status: async () => ({
        store: store.kind,
        revision: await store.revision(),
        indexRevision: index.revision,
        objects: index.counts(),
        proxies: stream.proxies(),
        snapshots: cache.status(),
        compileErrors: cache.recentErrors(),
        statusWrites: statusWriter.writeCount,
      }),
    });
    cleanup.push(() => api.close());

    logger.info({ api: api.url, stream: stream.url, store: store.kind, objects: index.counts() }, 'control plane started');
    let closing: Promise<void> | undefined;
    return {
      apiUrl: api.url,
      streamUrl: stream.url,
      store,
      close: () => (closing ??= closeAll().then(() => logger.info('control plane stopped'))),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
