// Starts one proxy in this process: discovery client, listeners, admin server, drain on close.
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import type { NodeInfo, ProxyMode } from '../api/snapshot.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { MetricsRegistry } from '../telemetry/metrics.ts';
import { startAdmin, type RunningAdmin } from './admin.ts';
import { readSnapshotFile } from './config/disk.ts';
import { ConfigManager } from './config/manager.ts';
import { DiscoveryClient } from './discovery.ts';
import { TunnelListener } from './inbound/listener.ts';
import { BalancerRegistry } from './layers/balancer/balancers.ts';
import { createProxyMetrics } from './metrics.ts';
import { OutboundListener } from './outbound/listener.ts';
import { UpstreamListeners } from './outbound/upstreams.ts';
import { AppReadiness } from './readiness.ts';
import { ErrorResponder } from './respond.ts';
import { Activity } from './transport/activity.ts';
import { DEFAULT_POOL_SETTINGS, Pools } from './transport/pools.ts';

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
  logger: Logger;
  clock: Clock;
}

export interface RunningProxy {
  /** "<namespace>/<instance>", as the control plane lists it. */
  id: string;
  ports: { outbound: number; tunnel: number; admin: number };
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

  const activity = new Activity(metrics.activeConnections);
  const peerPools = new Pools(poolSettings, logger);
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
    });
  } catch (error) {
    outbound?.stop();
    tunnel?.stop();
    throw error;
  }

  if (options.dataDir !== undefined) {
    try {
      const saved = await readSnapshotFile(options.dataDir);
      if (saved !== undefined) await manager.apply(saved, 'disk');
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
  const discovery = new DiscoveryClient({
    url: options.controlPlane,
    node,
    runningVersion: () => manager.current.version || undefined,
    apply: async (snapshot, version) => {
      if (snapshot?.version !== version) {
        throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `the message says version ${version} but the snapshot is ${String(snapshot?.version)}`);
      }
      if (manager.hasSnapshot && manager.current.version === version) {
        // Already running it (from disk): the control plane has now confirmed it.
        manager.current.source = 'control-plane';
        return;
      }
      await manager.apply(snapshot, 'control-plane');
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
      if (!activity.draining) discovery.setReady(ready);
    },
  });

  try {
    admin = await startAdmin(host, options.adminPort ?? 15020, {
      ready: () => {
        if (activity.draining) return { ready: false, why: 'draining' };
        if (!manager.hasSnapshot) return { ready: false, why: 'no config yet' };
        return { ready: true };
      },
      config: () => ({
        id,
        source: manager.current.source,
        version: manager.current.version || null,
        appliedAt: manager.hasSnapshot ? new Date(manager.current.appliedAt).toISOString() : null,
        controlPlane: { url: options.controlPlane, connected: discovery.connected },
        appReady: readiness.ready,
        upstreamPorts: upstreams.ports,
        snapshot: manager.current.snapshot ?? null,
      }),
      metrics: () => metrics.registry.render(),
    });
  } catch (error) {
    outbound.stop();
    tunnel.stop();
    upstreams.closeAll();
    throw error;
  }

  discovery.setReady(readiness.ready);
  readiness.start();
  discovery.start();
  logger.info({ outbound: outbound.port, tunnel: tunnel.port, admin: admin.port, controlPlane: options.controlPlane }, 'proxy started');

  const listeners = { outbound, tunnel, admin };
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    activity.beginDrain();
    listeners.outbound.stop();
    listeners.tunnel.stop();
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
    ports: { outbound: outbound.port, tunnel: tunnel.port, admin: admin.port },
    close: () => (closing ??= close()),
  };
}

function isLoopback(address: string): boolean {
  if (address === 'localhost' || address === '::1') return true;
  return isIP(address) === 4 && address.startsWith('127.');
}
