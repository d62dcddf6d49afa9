// Starts one proxy in this process: workload identity, discovery client, listeners, admin server, drain on close.
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import type { NodeInfo, ProxyMode, ProxySnapshot } from '../api/snapshot.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { MetricsRegistry } from '../telemetry/metrics.ts';
import { startAdmin, type RunningAdmin } from './admin.ts';
import { readSnapshotFile } from './config/disk.ts';
import { ConfigManager } from './config/manager.ts';
import { DiscoveryClient } from './discovery.ts';
import { withoutPrivateKeys } from './gateway/config.ts';
import { GatewayListeners } from './gateway/listener.ts';
import { controlPlaneIssuer } from './identity/client.ts';
import { IdentityManager, type RenewFunction } from './identity/manager.ts';
import { TunnelListener } from './inbound/listener.ts';
import { BalancerRegistry } from './layers/balancer/balancers.ts';
import { createProxyMetrics } from './metrics.ts';
import { OutboundListener } from './outbound/listener.ts';
import { UpstreamListeners } from './outbound/upstreams.ts';
import { AppReadiness } from './readiness.ts';
import { ErrorResponder } from './respond.ts';
import { Activity } from './transport/activity.ts';
import { DEFAULT_POOL_SETTINGS, Pools } from './transport/pools.ts';
import { createTunnelMetrics, TunnelTls } from './transport/mtls.ts';

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
  host?: string; // listen address for outbound/admin/upstream ports; default 127.0.0.1
  /** Address other proxies use to reach this one's tunnel port; default 127.0.0.1. */
  address?: string;
  /** Where the tunnel listener binds; default 127.0.0.1 when `address` is loopback, else every interface. */
  tunnelHost?: string;
  outboundPort?: number; // default 15001; 0 = any
  tunnelPort?: number; // default 15008; 0 = any
  adminPort?: number; // default 15020; 0 = any
  /** Where the last good snapshot is kept; none when absent. */
  dataDir?: string;
  /** SIGTERM grace: how long in-flight requests may take to finish. Default 5000. */
  drainMs?: number;
  /** How often the app's ports are probed for readiness. Default 1000. */
  readinessIntervalMs?: number;
  /** Connect timeout to endpoints, peers and the app. Default 5000. */
  connectTimeoutMs?: number;
  /** Keep-alive connections per peer (and per app port). Default 64. */
  maxConnectionsPerPeer?: number;
  /** Control-plane reconnect backoff. Default 100 ms doubling to 2 s, with jitter. */
  reconnectBackoff?: { initialMs: number; maxMs: number };
  /** Where metrics go; a registry of its own when absent. */
  metrics?: MetricsRegistry;
  /** The bootstrap token: the control plane's CA signs this proxy's certificate only for it. */
  token?: string;
  /**
   * Where certificates come from instead of the control plane's CA (tests,
   * or a certificate source of the operator's): CSR in, certificate out.
   */
  issueCertificate?: RenewFunction;
  /** Mode gateway: the Gateway served and where its ports listen. */
  gateway?: GatewayProxyOptions;
  logger: Logger;
  clock: Clock;
}

export interface GatewayProxyOptions {
  /** "<namespace>/<name>" of the Gateway. */
  name: string;
  /** Where the Gateway's ports listen; default the proxy's `host`. */
  host?: string;
  /** Gateway port → local port (0 = any), bound at start and kept. */
  portMap?: ReadonlyMap<number, number>;
  /** Gateway ports not in the map bind their own number ('same', the default) or any free port ('ephemeral'). */
  unmapped?: 'same' | 'ephemeral';
  /** Told the port map whenever a port is bound or released after start. */
  onPortsChanged?: (ports: Record<string, number>) => void;
}

export interface RunningProxy {
  /** "<namespace>/<instance>", as the control plane lists it. */
  id: string;
  /** Resolves with the SPIFFE ID once the first workload certificate is installed (rejects if the proxy stops first). */
  identityReady: Promise<string>;
  ports: { outbound: number; tunnel: number; admin: number };
  /** Gateway mode: Gateway port → the local port it listens on, as bound now. */
  gatewayPorts(): Record<string, number>;
  /** Stops accepting, finishes in-flight requests (up to drainMs), closes everything. */
  close(): Promise<void>;
}

/** Idle client keep-alive: long enough that callers (and peer pools, which honour the hint) rarely race a close. */
const KEEP_ALIVE_MS = 65_000;
/** A CONNECT tunnel to an HTTP port that says nothing for this long is spliced as opaque TCP. */
const DETECT_TIMEOUT_MS = 5_000;

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const { clock, namespace } = options;
  const host = options.host ?? '127.0.0.1';
  const address = options.address ?? '127.0.0.1';
  const tunnelHost = options.tunnelHost ?? (isLoopback(address) ? '127.0.0.1' : '0.0.0.0');
  const instance = options.instance ?? `${options.workload ?? 'proxy'}-${randomBytes(3).toString('hex')}`;
  const id = `${namespace}/${instance}`;
  const logger = options.logger.child({ proxy: id });
  const metrics = createProxyMetrics(options.metrics ?? new MetricsRegistry());
  const drainMs = options.drainMs ?? 5000;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_POOL_SETTINGS.connectTimeoutMs;
  const poolSettings = {
    ...DEFAULT_POOL_SETTINGS,
    connectTimeoutMs,
    connections: options.maxConnectionsPerPeer ?? DEFAULT_POOL_SETTINGS.connections,
  };
  const appPorts = new Map(options.appPorts.map((p) => [p.declared, p.actual] as const));
  const declaredPorts = [...appPorts.keys()].sort((a, b) => a - b);

  const renew: RenewFunction | undefined =
    options.issueCertificate ??
    (options.token
      ? controlPlaneIssuer({ url: options.controlPlane, token: options.token, namespace, workload: options.workload, proxy: id, timeoutMs: connectTimeoutMs })
      : undefined);
  const identity = new IdentityManager({
    renew: renew ?? (() => Promise.reject(new WeftError(ErrorCodes.UNAUTHORIZED, 'no bootstrap token'))),
    clock,
    logger,
  });
  const certificateExpiry = metrics.registry.gauge('weft_certificate_expiry_timestamp_seconds', 'When the workload certificate in use expires, in seconds since the epoch.');
  identity.onChange((current) => certificateExpiry.labels().set(Math.floor(current.notAfter / 1000)));
  const tunnelMetrics = createTunnelMetrics(metrics.registry);

  const activity = new Activity(metrics.activeConnections);
  const peerPools = new Pools(poolSettings, logger, new TunnelTls({ identity, metrics: tunnelMetrics, clock }));
  const appPools = new Pools(poolSettings, logger);
  const balancers = new BalancerRegistry();
  let outbound: OutboundListener | undefined;
  const upstreams = new UpstreamListeners(host, (port, socket) => (outbound ? outbound.acceptUpstream(port, socket) : socket.destroy()), logger);
  const manager = new ConfigManager({
    compile: {
      outbound: {
        balancers,
        clock,
        forward: { pools: peerPools, source: `${namespace}/${options.workload ?? instance}`, connectTimeoutMs },
      },
      app: { pools: appPools, connectTimeoutMs },
      appPorts,
      localName: `${namespace}/${options.workload ?? instance}`,
      declaredPorts,
    },
    upstreams,
    peerPools,
    balancers,
    dataDir: options.dataDir,
    metrics,
    logger,
    clock,
  });
  const config = () => manager.current;

  let tunnel: TunnelListener | undefined;
  let admin: RunningAdmin | undefined;
  try {
    outbound = await OutboundListener.start({
      host,
      port: options.outboundPort ?? 15001,
      config,
      activity,
      responder: new ErrorResponder('outbound', metrics, logger),
      metrics,
      clock,
      logger,
      detectTimeoutMs: DETECT_TIMEOUT_MS,
      keepAliveTimeoutMs: KEEP_ALIVE_MS,
    });
    tunnel = await TunnelListener.start({
      host: tunnelHost,
      port: options.tunnelPort ?? 15008,
      config,
      activity,
      responder: new ErrorResponder('inbound', metrics, logger),
      metrics,
      clock,
      keepAliveTimeoutMs: KEEP_ALIVE_MS,
      identity,
      tunnelMetrics,
      logger,
    });
  } catch (error) {
    outbound?.stop();
    tunnel?.stop();
    throw error;
  }

  // Mode gateway: the Gateway's own ports, bound beside the proxy's usual listeners.
  let gatewayListeners: GatewayListeners | undefined;
  if (options.gateway) {
    try {
      gatewayListeners = await GatewayListeners.start({
        host: options.gateway.host ?? host,
        portMap: options.gateway.portMap ?? new Map(),
        unmapped: options.gateway.unmapped ?? 'same',
        config,
        activity,
        responder: new ErrorResponder('outbound', metrics, logger),
        metrics,
        clock,
        logger,
        keepAliveTimeoutMs: KEEP_ALIVE_MS,
        ...(options.gateway.onPortsChanged ? { onPortsChanged: options.gateway.onPortsChanged } : {}),
      });
    } catch (error) {
      outbound?.stop();
      tunnel?.stop();
      throw error;
    }
  }
  // After every applied snapshot: the Gateway may have gained or lost a port.
  const syncGateway = () => void gatewayListeners?.sync();

  // The snapshot's trust bundle is the CA's current one (it changes across a root rotation).
  const adoptTrust = (snapshot: ProxySnapshot | undefined) => {
    const bundle = snapshot?.mesh.trustBundle;
    if (!bundle || bundle.length === 0) return;
    try {
      identity.setTrustBundle(bundle);
    } catch (error) {
      logger.warn({ err: error }, 'the snapshot carries an unreadable trust bundle; keeping the current one');
    }
  };

  if (options.dataDir !== undefined) {
    try {
      const saved = await readSnapshotFile(options.dataDir);
      if (saved !== undefined) adoptTrust((await manager.apply(saved, 'disk')).snapshot);
      syncGateway();
    } catch (error) {
      logger.warn({ err: error, dataDir: options.dataDir }, 'cannot start from the saved snapshot; waiting for the control plane');
    }
  }

  const node: NodeInfo = {
    id,
    mode: options.mode,
    namespace,
    instance,
    address,
    tunnelPort: tunnel.port,
    appPorts: declaredPorts,
  };
  if (options.workload !== undefined) node.workload = options.workload;
  if (options.gateway) node.gateway = options.gateway.name;
  const discovery = new DiscoveryClient({
    url: options.controlPlane,
    node,
    token: options.token,
    runningVersion: () => manager.current.version || undefined,
    apply: async (snapshot, version) => {
      if (snapshot?.version !== version) {
        throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `the message says version ${version} but the snapshot is ${String(snapshot?.version)}`);
      }
      if (manager.hasSnapshot && manager.current.version === version) {
        // Already running it (from disk): the control plane has now confirmed it.
        manager.current.source = 'control-plane';
        adoptTrust(manager.current.snapshot);
        return;
      }
      adoptTrust((await manager.apply(snapshot, 'control-plane')).snapshot);
      syncGateway();
    },
    clock,
    logger,
    metrics,
    ...(options.reconnectBackoff ? { backoff: options.reconnectBackoff } : {}),
  });
  const readiness = new AppReadiness({
    ports: [...appPorts.values()],
    clock,
    intervalMs: options.readinessIntervalMs ?? 1000,
    timeoutMs: Math.min(1000, options.readinessIntervalMs ?? 1000),
    onChange: (ready) => {
      logger.info({ ready }, ready ? 'the app is ready' : 'the app is not ready');
      reportReady();
    },
  });
  // Registered as an endpoint only once peers can reach it: the app answers and the proxy holds its certificate.
  const reportReady = () => {
    if (!activity.draining) discovery.setReady(readiness.ready && identity.ready);
  };
  identity.onChange(() => reportReady());

  try {
    admin = await startAdmin(host, options.adminPort ?? 15020, {
      ready: () => {
        if (activity.draining) return { ready: false, why: 'draining' };
        if (!manager.hasSnapshot) return { ready: false, why: 'no config yet' };
        if (!identity.ready) return { ready: false, why: 'no workload certificate yet' };
        return { ready: true };
      },
      config: () => ({
        id,
        source: manager.current.source,
        version: manager.current.version || null,
        appliedAt: manager.hasSnapshot ? new Date(manager.current.appliedAt).toISOString() : null,
        controlPlane: { url: options.controlPlane, connected: discovery.connected },
        appReady: readiness.ready,
        identity: identity.current ? { spiffeId: identity.current.spiffeId, expiresAt: new Date(identity.current.notAfter).toISOString() } : null,
        upstreamPorts: upstreams.ports,
        ...(gatewayListeners ? { gatewayPorts: gatewayListeners.ports } : {}),
        snapshot: withoutPrivateKeys(manager.current.snapshot) ?? null,
      }),
      metrics: () => metrics.registry.render(),
    });
  } catch (error) {
    outbound.stop();
    tunnel.stop();
    gatewayListeners?.stop();
    upstreams.closeAll();
    throw error;
  }

  reportReady();
  readiness.start();
  discovery.start();
  const identityReady = (renew ? identity.start() : identity.whenReady()).then((current) => current.spiffeId);
  // Nobody may be waiting; a stop before the first certificate is not an error to report.
  identityReady.catch(() => {});
  if (!renew) logger.warn('no bootstrap token (--token-file or WEFT_TOKEN): this proxy gets no workload certificate, so it can neither call nor serve mesh workloads');
  logger.info({ outbound: outbound.port, tunnel: tunnel.port, admin: admin.port, controlPlane: options.controlPlane }, 'proxy started');

  const listeners = { outbound, tunnel, admin };
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    activity.beginDrain();
    identity.stop();
    listeners.outbound.stop();
    listeners.tunnel.stop();
    gatewayListeners?.stop();
    upstreams.closeAll();
    readiness.stop();
    discovery.setReady(false);
    if (activity.inFlight > 0) {
      logger.info({ inFlight: activity.inFlight, drainMs }, 'draining in-flight requests');
      let timer: { cancel(): void } | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = clock.setTimeout(resolve, drainMs);
      });
      await Promise.race([activity.whenIdle(), deadline]);
      timer?.cancel();
      if (activity.inFlight > 0) logger.warn({ inFlight: activity.inFlight }, 'drain time is up; closing what is left');
    }
    activity.destroyAll();
    await Promise.all([peerPools.destroy(), appPools.destroy(), discovery.close()]);
    await new Promise<void>((resolve) => {
      listeners.admin.server.close(() => resolve());
      listeners.admin.server.closeAllConnections();
    });
    logger.info('proxy stopped');
  };

  return {
    id,
    identityReady,
    ports: { outbound: outbound.port, tunnel: tunnel.port, admin: admin.port },
    gatewayPorts: () => gatewayListeners?.ports ?? {},
    close: () => (closing ??= close()),
  };
}

function isLoopback(address: string): boolean {
  if (address === 'localhost' || address === '::1') return true;
  return isIP(address) === 4 && address.startsWith('127.');
}
