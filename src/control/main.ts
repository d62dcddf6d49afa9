// Starts a whole control plane in this process: store, index, CA and bootstrap tokens, compiler cache, config stream, REST API.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
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
import { LastGoodVersions } from './last-good.ts';
import { LeaderElection } from './leader.ts';
import { StreamServer } from './stream-server.ts';
import { StreamIdentity } from './ca/stream-identity.ts';
import { MeshView } from './mesh-view.ts';
import { PeerClient } from './peers.ts';
import { advertisedHost, ReplicaRegistry } from './replicas.ts';
import type { TapLine } from '../api/tap.ts';
import type { ApiTokens } from './api/auth.ts';
import { ApiServer } from './api/server.ts';
import { TelemetryAggregator } from './telemetry/aggregator.ts';
import type { CompilerFunctions } from './compiler-functions.ts';
import { explainFromConfig } from './explain.ts';
import { TapHub } from './api/tap.ts';
import type { CompilerInput } from '../compiler/types.ts';
import type { MeshConfig } from '../api/resources.ts';
import { CertificateAuthority, DEFAULT_CERT_TTL_MS } from './ca/authority.ts';
import { dataDirPersistence, loadOrCreateCa, loadRetiring } from './ca/files.ts';
import { openSharedCa } from './ca/shared.ts';
import { MeshCa } from './ca/rotating.ts';
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
  etcd?: {
    endpoints: string[];
    prefix?: string;
    /** TLS to etcd (PEM buffers): the CA of etcd's certificate, and a client certificate and key when etcd asks for one. */
    tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
    /** etcd user and password, when etcd has auth enabled. */
    auth?: { username: string; password: string };
  };
  apiHost?: string; // default 127.0.0.1
  /** Bearer tokens the REST API asks for; absent = the API is open to whoever reaches apiHost. */
  apiTokens?: ApiTokens;
  /** The REST API serves HTTPS with this certificate and key (PEM); absent = plain HTTP. */
  apiTls?: { cert: Buffer; key: Buffer };
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
  /**
   * Keep the CA in the store, its key sealed with this secret: the first
   * replica generates it, every other replica (and restart) loads it. For
   * several replicas on one etcd.
   */
  caEncryptionKey?: Buffer;
  /** This replica's name in the leader election and in other replicas' views (default host-pid-random). */
  replicaName?: string;
  /**
   * The host other replicas reach this one's stream port at (on etcd, where
   * replicas ask each other for their proxies). Default: the stream host,
   * or this host's first non-loopback address when that binds every interface.
   */
  advertiseHost?: string;
  /** Trust domain of a newly generated root. Default: the stored MeshConfig's, else cluster.local. */
  trustDomain?: string;
  /** Lifetime of workload certificates. Default 24 h. */
  certTtlMs?: number;
  /** Local mode: callers on this host may create bootstrap tokens through the API without authenticating. */
  localTokens?: boolean;
  /**
   * The stream port also takes cleartext HTTP/2 from other hosts (it always
   * serves TLS, with a certificate of the mesh CA, and cleartext to this host).
   * Off by default: a proxy's bootstrap token would cross the network in the clear.
   */
  plaintextStreamFromAnyHost?: boolean;
  logger: Logger;
  clock: Clock;
}

export interface RunningControlPlane {
  apiUrl: string; // http://127.0.0.1:<port>
  streamUrl: string; // http://127.0.0.1:<port>
  /** The same port over TLS (https://), for proxies on other hosts; they verify it with the trust bundle. */
  streamTlsUrl: string;
  store: Store;
  /** Creates (and verifies, revokes) the bootstrap tokens proxies present. */
  tokens: TokenAuthority;
  /** The CA's roots, as every snapshot carries them (changes across `weft ca rotate`). */
  readonly trustBundle: string[];
  /** The CA: signing root, retiring roots, rotation. */
  ca: MeshCa;
  close(): Promise<void>;
}

export const DEFAULT_API_PORT = 15000;
export const DEFAULT_STREAM_PORT = 15010;
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** How often a replica sharing its CA through the store looks for another replica's rotation. */
const SHARED_CA_REFRESH_MS = 5_000;
/** How long a replica waits for another's answer when it shows the whole mesh. */
const PEER_TIMEOUT_MS = 3_000;

const realCompiler: CompilerFunctions = { compile, snapshotInputKey, checkSnapshot, computeStatuses };

async function openStore(options: ControlPlaneOptions): Promise<Store> {
  const { clock, logger } = options;
  if (options.etcd) {
    if (options.dataDir) throw new WeftError(ErrorCodes.INVALID, 'choose one store: a data dir (SQLite) or etcd, not both');
    // Loaded only when asked for: the etcd client brings gRPC with it.
    const { EtcdStore } = await import('./store/etcd.ts');
    const { endpoints, prefix, tls, auth } = options.etcd;
    return EtcdStore.open({ endpoints, prefix, tls, auth, clock, logger });
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
    // Before the first list: a route or policy that cannot be compiled is replaced by its last good version.
    const lastGood = new LastGoodVersions({ index, store, logger });
    cleanup.push(() => lastGood.stop());
    await index.start();

    const ca = await openCa(options, store, index.input().meshConfig?.spec?.trustDomain);
    cleanup.push(() => ca.close());
    // What every snapshot says about the CA; replaced whole when the CA rotates or an overlap ends.
    let trust = Object.freeze({ bundle: Object.freeze(ca.trustBundle()), signingCa: ca.signingFingerprint });
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
    const withTrust = new WeakMap<CompilerInput, { trust: typeof trust; full: CompilerInput }>();
    const compileWithTrust: CompilerFunctions['compile'] = (input, node) => {
      let entry = withTrust.get(input);
      if (entry?.trust !== trust) {
        entry = { trust, full: Object.freeze({ ...input, trustBundle: trust.bundle, signingCa: trust.signingCa }) };
        withTrust.set(input, entry);
      }
      return compiler.compile(entry.full, node);
    };
    const cache = new SnapshotCache({ index, compiler: { ...compiler, compile: compileWithTrust }, logger, clock, debounceMs: options.debounceMs });
    cleanup.push(() => cache.close());
    // A rotation (here or, through the store, on another replica) or the end of an overlap reaches every proxy in its snapshot.
    ca.onChange(() => {
      trust = Object.freeze({ bundle: Object.freeze(ca.trustBundle()), signingCa: ca.signingFingerprint });
      cache.requestPass();
    });
    if (ca.source === 'store') {
      // Other replicas' rotations: one get of the record per interval, a reload only when it changed.
      const refresher = clock.setInterval(() => {
        ca.refresh().catch((error: unknown) => logger.warn({ err: error }, 'cannot re-read the shared CA; keeping the current one'));
      }, SHARED_CA_REFRESH_MS);
      cleanup.push(() => refresher.cancel());
    }
    const statusWriter = new StatusWriter({ store, index, computeStatuses: compiler.computeStatuses, clock, logger });
    cleanup.push(() => statusWriter.close());
    // Statuses are written by one replica, the elected leader; the others compile and serve but never race it.
    const replicaName = options.replicaName ?? `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
    const election = new LeaderElection({
      store,
      identity: replicaName,
      ttlMs: leaseTtlMs,
      sole: store.kind !== 'etcd',
      clock,
      logger,
      // A new leader writes whatever the old one left unwritten: the next pass goes through its status writer.
      onChange: (leading) => {
        if (leading) cache.requestPass();
      },
    });
    cleanup.push(() => election.close());
    cache.onPass((input) => {
      if (!election.isLeader) return;
      statusWriter.schedule(input);
      void lastGood.reconcile();
    });
    await election.start();
    // Objects written while no control plane ran still need their statuses.
    cache.requestPass();

    // Proxies push per-edge metric deltas on their config stream; the API serves the merged window.
    const telemetry = new TelemetryAggregator(clock);
    // `weft tap`: asked of the proxies over their streams (control/api/tap.ts); the hub needs the stream server, which needs the hub.
    let tapHub: TapHub | undefined;
    // TLS on the stream port: a certificate of the mesh CA for the control plane's own SPIFFE ID.
    const streamIdentity = await StreamIdentity.start({
      ca,
      // The CA signs only in its own trust domain (an operator CA may have none: then the mesh's).
      trustDomain: () => ca.trustDomain ?? ((index.input().meshConfig as MeshConfig | undefined)?.spec?.trustDomain ?? 'cluster.local'),
      ttlMs: options.certTtlMs ?? DEFAULT_CERT_TTL_MS,
      clock,
      logger,
    });
    cleanup.push(() => streamIdentity.stop());
    // `weft status`, `top`, `tap` and the dashboard see the whole mesh from any replica (mesh-view.ts): on etcd,
    // where replicas share the store, each records where it is and asks the others for what their proxies report.
    let view: MeshView | undefined;
    const peerClient = store.kind === 'etcd' ? new PeerClient({ credentials: { get current() { return streamIdentity.current; }, roots: () => trust.bundle }, timeoutMs: PEER_TIMEOUT_MS }) : undefined;
    if (peerClient) cleanup.push(() => peerClient.close());
    const stream = await StreamServer.start({
      tls: streamIdentity,
      peers: peerClient ? { roots: () => trust.bundle, handle: (request, path, headers) => view?.answerPeer(request, path, headers) } : undefined,
      plaintextFromAnyHost: options.plaintextStreamFromAnyHost,
      onTelemetry: (proxy, report) => telemetry.record(proxy, report),
      onTap: (proxy, message) => tapHub?.onProxyMessage(proxy, message),
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
    // New roots (a rotation, or the end of its overlap) check the next replicas' client certificates.
    ca.onChange(() => stream.refreshTls());
    let registry: ReplicaRegistry | undefined;
    const advertised = options.advertiseHost ?? advertisedHost(options.streamHost ?? '127.0.0.1');
    const self = { name: replicaName, stream: advertised === undefined ? (stream.secureUrl ?? stream.url) : `https://${advertised.includes(':') ? `[${advertised}]` : advertised}:${stream.port}` };
    if (peerClient) {
      if (advertised === undefined) {
        logger.warn({ streamHost: options.streamHost }, 'no address to give other replicas for this one (--advertise-address): they will not see its proxies');
      } else {
        registry = await ReplicaRegistry.start({ store, index, self, ttlMs: leaseTtlMs, clock, logger });
        cleanup.push(() => registry?.close());
      }
    }
    view = new MeshView({
      self,
      peers: registry ? () => registry.peers() : undefined,
      client: peerClient,
      localProxies: () => stream.proxies(),
      telemetry,
      clock,
      logger,
    });
    const meshView = view;
    tapHub = new TapHub({
      logger,
      proxies: () => meshView.proxies(),
      input: () => index.input(),
      send: (proxy, message) => stream.sendTo(proxy, message),
      self: replicaName,
      peerTap: peerClient && registry
        ? (replica, query, onLine, onEnd) => {
            const peer = registry.peers().find((p) => p.name === replica);
            if (!peer) {
              onEnd(new Error(`control-plane replica ${replica} is gone`));
              return () => {};
            }
            return peerClient.streamLines(peer, `tap?${query}`, (line) => onLine(line as TapLine), onEnd);
          }
        : undefined,
    });
    meshView.attachTap(tapHub);

    const api = await ApiServer.start({
      apiTokens: options.apiTokens,
      tls: options.apiTls,
      tap: tapHub,
      store,
      logger,
      host: options.apiHost ?? '127.0.0.1',
      port: options.apiPort ?? DEFAULT_API_PORT,
      proxies: () => meshView.proxies(),
      refreshProxies: registry ? () => meshView.refresh() : undefined,
      topology: (window) => meshView.topology(window),
      serviceTraffic: (namespace, name, window) => meshView.service(namespace, name, window),
      tokens: { tokens, localMode: options.localTokens === true, callersHoldApiTokens: options.apiTokens !== undefined },
      ca: { ca, localMode: options.localTokens === true, callersHoldApiTokens: options.apiTokens !== undefined, clock },
      explain: (request) => explainFromConfig(request, { input: () => index.input(), compile: compileWithTrust, proxies: () => meshView.proxies(), now: () => clock.now() }),
      now: () => clock.now(),
      status: async (visible, everyNamespace) => ({
        store: store.kind,
        revision: await store.revision(),
        indexRevision: index.revision,
        proxies: meshView.proxies().filter((p) => visible(p.namespace)),
        replicas: meshView.replicas(),
        // What spans every namespace (object counts, snapshot keys, failed compiles naming objects) only for callers that see them all.
        ...(everyNamespace ? { objects: index.counts(), snapshots: cache.status(), compileErrors: cache.recentErrors() } : {}),
        statusWrites: statusWriter.writeCount,
        leader: { self: election.isLeader, holder: (await LeaderElection.holder(store)) ?? null },
        ca: { ...ca.describe(), workloadCertTtlMs: options.certTtlMs ?? DEFAULT_CERT_TTL_MS },
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
      streamTlsUrl: stream.secureUrl!,
      store,
      tokens,
      get trustBundle() {
        return [...trust.bundle];
      },
      ca,
      close: () => (closing ??= closeAll().then(() => logger.info('control plane stopped'))),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The CA this control plane signs with: the operator's, else the one shared
 * through the store (with a CA encryption key), else the one saved in the
 * data dir (created there on first start). Without a data dir a root
 * is generated in memory: it lasts as long as the process, so replicas on
 * etcd must be given one CA to share (--ca-cert/--ca-key).
 * Each comes with what a rotation left (older roots still trusted) and where
 * the next rotation is written.
 */
async function openCa(options: ControlPlaneOptions, store: Store, storedTrustDomain: string | undefined): Promise<MeshCa> {
  const { clock, logger } = options;
  const trustDomain = options.trustDomain ?? storedTrustDomain ?? 'cluster.local';
  const caDir = options.dataDir ? join(options.dataDir, 'ca') : undefined;
  if (options.ca) {
    const ca = await CertificateAuthority.load({ certPem: options.ca.certPem, keyPem: options.ca.keyPem, clock, ...(options.ca.chainPem ? { chainPem: options.ca.chainPem } : {}) });
    if (ca.trustDomain !== undefined && ca.trustDomain !== trustDomain) {
      logger.warn({ caTrustDomain: ca.trustDomain, meshTrustDomain: trustDomain }, "the supplied CA names another trust domain than the mesh's; it will refuse to sign the mesh's identities");
    }
    // The operator's files stay the operator's: a rotation keeps only its retiring roots in the data dir.
    const rotation = caDir ? await loadRetiring(caDir) : { retiring: [] };
    return new MeshCa({ authority: ca, ...rotation, source: 'operator', clock, logger, ...(caDir ? { persistence: dataDirPersistence(caDir, { saveKey: false }) } : {}) });
  }
  if (options.caEncryptionKey) {
    const shared = await openSharedCa({ store, secret: options.caEncryptionKey, trustDomain, clock, logger });
    return new MeshCa({ ...shared, source: 'store', clock, logger });
  }
  if (caDir) {
    const { ca, created } = await loadOrCreateCa(caDir, { trustDomain, clock });
    if (created) logger.info({ trustDomain, dir: caDir }, 'generated the mesh root CA');
    return new MeshCa({ authority: ca, ...(await loadRetiring(caDir)), source: 'data-dir', persistence: dataDirPersistence(caDir, { saveKey: true }), clock, logger });
  }
  if (options.etcd) logger.warn('no CA encryption key and no --ca-cert/--ca-key: this replica generates its own root in memory; give every replica the same CA (--ca-encryption-key-file shares one through etcd)');
  return new MeshCa({ authority: await CertificateAuthority.generate({ trustDomain, clock }), source: 'memory', clock, logger });
}
