// Starts a whole control plane in this process: store, index, CA and bootstrap tokens, compiler cache, config stream, REST API.
import { join } from 'node:path';
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
import type { CompilerInput } from '../compiler/types.ts';
import type { MeshConfig } from '../api/resources.ts';
import { CertificateAuthority, DEFAULT_CERT_TTL_MS } from './ca/authority.ts';
import { loadOrCreateCa } from './ca/files.ts';
import { CertificateIssuer } from './ca/issuer.ts';
import { TokenAuthority } from './ca/tokens.ts';
import { StoreTokenStorage } from './ca/token-store.ts';
import { templateKey } from './stream-server.ts';

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
  /**
   * An operator's CA (usually an intermediate under the organisation's root;
   * the PEM may carry its chain). Without it: the CA saved under
   * `<dataDir>/ca`, or a new root saved there (kept in memory without a data dir).
   */
  ca?: { certPem: string; keyPem: string; chainPem?: string };
  /** Trust domain of a newly generated root. Default: the stored MeshConfig's, else cluster.local. */
  trustDomain?: string;
  /** Lifetime of workload certificates. Default 24 h. */
  certTtlMs?: number;
  /** Local mode: callers on this host may create bootstrap tokens through the API without authenticating. */
  localTokens?: boolean;
  logger: Logger;
  clock: Clock;
}

export interface RunningControlPlane {
  apiUrl: string; // http://127.0.0.1:<port>
  streamUrl: string; // http://127.0.0.1:<port>
  store: Store;
  /** Creates (and verifies, revokes) the bootstrap tokens proxies present. */
  tokens: TokenAuthority;
  /** The CA's roots, as every snapshot carries them. */
  trustBundle: string[];
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

    const ca = await openCa(options, index.input().meshConfig?.spec?.trustDomain);
    const trustBundle = Object.freeze(ca.trustBundle());
    const tokens = new TokenAuthority({ storage: new StoreTokenStorage(store), clock });
    const issuer = new CertificateIssuer({
      ca,
      tokens,
      template: (namespace, name) => index.get(templateKey(namespace, name)),
      trustDomain: () => ((index.input().meshConfig as MeshConfig | undefined)?.spec?.trustDomain ?? 'cluster.local'),
      certTtlMs: options.certTtlMs ?? DEFAULT_CERT_TTL_MS,
      logger,
    });
    // The trust bundle is part of every snapshot, so it is part of the compiler's input. One augmented
    // input per index input keeps the compiler's per-input preparation shared by every proxy.
    const withTrust = new WeakMap<CompilerInput, CompilerInput>();
    const compileWithTrust: CompilerFunctions['compile'] = (input, node) => {
      let full = withTrust.get(input);
      if (!full) {
        full = Object.freeze({ ...input, trustBundle });
        withTrust.set(input, full);
      }
      return compiler.compile(full, node);
    };
    const cache = new SnapshotCache({ index, compiler: { ...compiler, compile: compileWithTrust }, logger, clock, debounceMs: options.debounceMs });
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
      issuer,
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
      tokens: { tokens, localMode: options.localTokens === true },
      now: () => clock.now(),
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

    logger.info(
      { api: api.url, stream: stream.url, store: store.kind, objects: index.counts(), trustDomain: ca.trustDomain, localTokens: options.localTokens === true },
      'control plane started',
    );
    let closing: Promise<void> | undefined;
    return {
      apiUrl: api.url,
      streamUrl: stream.url,
      store,
      tokens,
      trustBundle: [...trustBundle],
      close: () => (closing ??= closeAll().then(() => logger.info('control plane stopped'))),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The CA this control plane signs with: the operator's, else the one saved
 * in the data dir (created there on first start). Without a data dir a root
 * is generated in memory: it lasts as long as the process, so replicas on
 * etcd must be given one CA to share (--ca-cert/--ca-key).
 */
async function openCa(options: ControlPlaneOptions, storedTrustDomain: string | undefined): Promise<CertificateAuthority> {
  const { clock, logger } = options;
  const trustDomain = options.trustDomain ?? storedTrustDomain ?? 'cluster.local';
  if (options.ca) {
    const ca = await CertificateAuthority.load({ certPem: options.ca.certPem, keyPem: options.ca.keyPem, clock, ...(options.ca.chainPem ? { chainPem: options.ca.chainPem } : {}) });
    if (ca.trustDomain !== undefined && ca.trustDomain !== trustDomain) {
      logger.warn({ caTrustDomain: ca.trustDomain, meshTrustDomain: trustDomain }, "the supplied CA names another trust domain than the mesh's; it will refuse to sign the mesh's identities");
    }
    return ca;
  }
  if (options.dataDir) {
    const { ca, created } = await loadOrCreateCa(join(options.dataDir, 'ca'), { trustDomain, clock });
    if (created) logger.info({ trustDomain, dir: join(options.dataDir, 'ca') }, 'generated the mesh root CA');
    return ca;
  }
  if (options.etcd) logger.warn('no --data-dir and no --ca-cert/--ca-key: this replica generates its own root in memory; give every replica the same CA');
  return CertificateAuthority.generate({ trustDomain, clock });
}
