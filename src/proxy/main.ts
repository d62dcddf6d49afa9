// Starts one proxy in this process: workload identity, discovery client, listeners, admin server, drain on close.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import { isLoopbackHost } from '../api/loopback.ts';
import type { LiveProxyState } from '../api/explain.ts';
import type { NodeInfo, ProxyMode, ProxySnapshot } from '../api/snapshot.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { MetricsRegistry } from '../telemetry/metrics.ts';
import { startAdmin, type AdminState, type RunningAdmin } from './admin.ts';
import { readSnapshotFile } from './config/disk.ts';
import { ConfigManager } from './config/manager.ts';
import { DiscoveryClient, parseControlPlanes } from './discovery.ts';
import { withoutPrivateKeys } from './gateway/config.ts';
import { GatewayListeners } from './gateway/listener.ts';
import { controlPlaneIssuer } from './identity/client.ts';
import { checkTokenTransport } from './identity/control-plane-tls.ts';
import { IdentityManager, type RenewFunction } from './identity/manager.ts';
import { TunnelListener } from './inbound/listener.ts';
import { BalancerRegistry } from './layers/balancer/balancers.ts';
import { healthProbe } from './layers/health-check/probe.ts';
import { createProxyMetrics, registerProxyHealth, SWEEP_EVERY_MS } from './metrics.ts';
import { TelemetryPusher } from './telemetry.ts';
import { ProxyTap } from './tap.ts';
import { AccessLog } from './access-log.ts';
import { OtlpExporter } from './tracing/exporter.ts';
import { attribute } from './tracing/otlp.ts';
import { Tracer } from './tracing/tracer.ts';
import { QuotaClient, RateLimiterRegistry } from './layers/rate-limit/index.ts';
import { JwksCache } from './layers/request-authn/jwks.ts';
import { OutboundListener } from './outbound/listener.ts';
import { UpstreamListeners } from './outbound/upstreams.ts';
import { AppReadiness } from './readiness.ts';
import { ErrorResponder } from './respond.ts';
import { NO_AUDIT_LOG, openAuditLog, type AuditSink } from './audit-log.ts';
import { Activity } from './transport/activity.ts';
import { DEFAULT_LISTENER_LIMITS, gatewayLimits, liveLimits, type ListenerLimits } from './transport/hardening.ts';
import { UPGRADE_CLOSE_LINGER_MS } from './transport/upgrade.ts';
import { DEFAULT_POOL_SETTINGS, endpointPoolId, Pools } from './transport/pools.ts';
import { createTunnelMetrics, TunnelTls } from './transport/mtls.ts';

export interface ProxyOptions {
  /** 'node': one of the workloads a node proxy hosts (see node.ts), registered as such. */
  mode: ProxyMode;
  /** The control planes' stream addresses, comma-separated: http://a:15010,b:15010 (see parseControlPlanes). */
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
  /** HTTP/2 tunnel session health: PING after this long without input, replace the session when unanswered within the timeout. Defaults 10 s and 5 s. */
  tunnelPingIntervalMs?: number;
  tunnelPingTimeoutMs?: number;
  /** Control-plane reconnect backoff. Default 100 ms doubling to 2 s, with jitter. */
  reconnectBackoff?: { initialMs: number; maxMs: number };
  /** Where metrics go; a registry of its own when absent. */
  metrics?: MetricsRegistry;
  /** The bootstrap token: the control plane's CA signs this proxy's certificate only for it. */
  token?: string;
  /**
   * The mesh trust bundle (PEM roots) to verify https:// control planes with
   * (`--ca-bundle`); with it, a control plane address without a scheme is https.
   */
  controlPlaneCa?: readonly string[] | undefined;
  /** Send the bootstrap token over http:// to another host (refused by default: it would cross the network in cleartext). */
  insecurePlaintextControlPlane?: boolean | undefined;
  /**
   * Where certificates come from instead of the control plane's CA (tests,
   * or a certificate source of the operator's): CSR in, certificate out.
   */
  issueCertificate?: RenewFunction;
  /** Mode gateway: the Gateway served and where its ports listen. */
  gateway?: GatewayProxyOptions;
  /** Protocol detection on ports with no declared protocol: a client silent this long is treated as opaque TCP. Default: MeshConfig's protocolDetectionTimeout, else 1000. */
  detectTimeoutMs?: number;
  /** An upgraded connection (WebSocket) silent both ways this long is closed. Default 1 h (DEFAULT_UPGRADE_IDLE_TIMEOUT_MS); 0: never. */
  upgradeIdleTimeoutMs?: number;
  /** What clients may send every listener (transport/hardening.ts); each field left out keeps its default. */
  limits?: Partial<ListenerLimits>;
  /** false: no admin listener of its own (a node proxy serves one admin for all its workloads, from `state`). Default true. */
  admin?: boolean;
  /** false: no request/TCP metrics (the overhead benchmark's baseline); health metrics stay. Default true. */
  requestMetrics?: boolean;
  /** Where AuthorizationPolicy AUDIT and DENY decisions are written: "stdout", "stderr", "none", a file path, or a sink. Default none (the CLI's default is stderr). */
  auditLog?: string | AuditSink;
  /** How often per-edge metric deltas are pushed to the control plane. Default 5000 (DEFAULT_TELEMETRY_INTERVAL_MS). */
  telemetryIntervalMs?: number;
  /** Request series of an edge unused this long are dropped. Default 5 minutes. */
  idleSeriesMs?: number;
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
  /** Bind the Gateway ports with SO_REUSEPORT, shared with the other workers of the same gateway. */
  reusePort?: boolean;
}

export interface RunningProxy {
  /** "<namespace>/<instance>", as the control plane lists it. */
  id: string;
  /** Resolves with the SPIFFE ID once the first workload certificate is installed (rejects if the proxy stops first). */
  identityReady: Promise<string>;
  /** `admin` is 0 when the proxy runs without an admin listener. */
  ports: { outbound: number; tunnel: number; admin: number };
  /** What its admin /ready and /config answer, for a node proxy's admin to gather. */
  state: Pick<AdminState, 'ready' | 'config'> & { backends(): LiveProxyState };
  /** Gateway mode: Gateway port → the local port it listens on, as bound now. */
  gatewayPorts(): Record<string, number>;
  /** How many `weft tap`s this proxy serves now (proxy/tap.ts). */
  tapsRunning(): number;
  /** Stops accepting, finishes in-flight requests (up to drainMs), closes everything. */
  close(): Promise<void>;
}

/** The instrumentation scope version spans carry: weft's own (package.json), read once. */
const WEFT_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Idle client keep-alive: long enough that callers (and peer pools, which honour the hint) rarely race a close. */
const KEEP_ALIVE_MS = 65_000;

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const { clock, namespace } = options;
  const host = options.host ?? '127.0.0.1';
  const address = options.address ?? '127.0.0.1';
  const tunnelHost = options.tunnelHost ?? (isLoopbackHost(address) ? '127.0.0.1' : '0.0.0.0');
  const instance = options.instance ?? `${options.workload ?? 'proxy'}-${randomBytes(3).toString('hex')}`;
  const id = `${namespace}/${instance}`;
  const logger = options.logger.child({ proxy: id });
  const tap = new ProxyTap({ clock, proxy: id, source: `${namespace}/${options.workload ?? options.gateway?.name.split('/').pop() ?? instance}` });
  const metrics = createProxyMetrics(options.metrics ?? new MetricsRegistry(), {
    tap,
    ...(options.requestMetrics !== undefined ? { requestMetrics: options.requestMetrics } : {}),
    ...(options.idleSeriesMs !== undefined ? { idleSeriesMs: options.idleSeriesMs } : {}),
  });
  const localWorkload = options.workload ?? options.gateway?.name.split('/').pop() ?? instance;
  metrics.setLocal({ namespace, workload: localWorkload });
  const drainMs = options.drainMs ?? 5000;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_POOL_SETTINGS.connectTimeoutMs;
  const poolSettings = {
    ...DEFAULT_POOL_SETTINGS,
    connectTimeoutMs,
    connections: options.maxConnectionsPerPeer ?? DEFAULT_POOL_SETTINGS.connections,
    ...(options.tunnelPingIntervalMs !== undefined ? { pingIntervalMs: options.tunnelPingIntervalMs } : {}),
    ...(options.tunnelPingTimeoutMs !== undefined ? { pingTimeoutMs: options.tunnelPingTimeoutMs } : {}),
  };
  const controlPlanes = parseControlPlanes(options.controlPlane, options.controlPlaneCa?.length ? 'https' : 'http');
  const controlPlaneTls = options.controlPlaneCa?.length
    ? { roots: () => [...new Set([...(options.controlPlaneCa ?? []), ...(identity.trustBundle ?? [])])] }
    : undefined;
  checkTokenTransport(controlPlanes, options.token !== undefined, options.insecurePlaintextControlPlane === true);
  const appPorts = new Map(options.appPorts.map((p) => [p.declared, p.actual] as const));
  const declaredPorts = [...appPorts.keys()].sort((a, b) => a - b);

  const renew: RenewFunction | undefined =
    options.issueCertificate ??
    (options.token
      ? controlPlaneIssuer({ urls: controlPlanes, controlPlaneTls, token: options.token, namespace, workload: options.workload, proxy: id, timeoutMs: connectTimeoutMs })
      : undefined);
  const identity = new IdentityManager({
    renew: renew ?? (() => Promise.reject(new WeftError(ErrorCodes.UNAUTHORIZED, 'no bootstrap token'))),
    clock,
    logger,
  });
  const certificateExpiry = metrics.registry.gauge('weft_certificate_expiry_timestamp_seconds', 'When the workload certificate in use expires, in seconds since the epoch.');
  identity.onChange((current) => {
    certificateExpiry.labels().set(Math.floor(current.notAfter / 1000));
    metrics.setLocal({ namespace, workload: localWorkload, principal: current.spiffeId });
  });
  const tunnelMetrics = createTunnelMetrics(metrics.registry);

  const activity = new Activity(metrics.activeConnections);
  // Defaults, then MeshConfig limits (from the snapshot in force), then this proxy's --limit flags.
  const meshLimits = () => manager.current.snapshot?.mesh.limits;
  const limits = liveLimits(DEFAULT_LISTENER_LIMITS, meshLimits, options.limits);
  const peerPools = new Pools(poolSettings, logger, new TunnelTls({ identity, metrics: tunnelMetrics, clock }));
  const appPools = new Pools(poolSettings, logger);
  // BackendTrafficPolicy state per backend; health checks probe the way requests go, pools take per-peer settings.
  const balancers = new BalancerRegistry({
    clock,
    probe: healthProbe({ pools: peerPools, source: `${namespace}/${options.workload ?? instance}` }),
    configurePeer: (endpoint, settings) => peerPools.configure(endpointPoolId(endpoint), settings),
  });
  // Rate limit buckets live as long as the proxy; Global limits lease their shares from the control plane.
  const quota = new QuotaClient({ urls: controlPlanes, controlPlaneTls, proxy: id, namespace, workload: options.workload, token: options.token, clock, logger });
  const rateLimits = new RateLimiterRegistry(quota);
  // RequestAuthentication key sets by URI, shared by every snapshot and listener (inbound and gateway).
  const jwks = new JwksCache({ clock, logger });
  const audit = typeof options.auditLog === 'string' ? openAuditLog(options.auditLog) : (options.auditLog ?? NO_AUDIT_LOG);
  let outbound: OutboundListener | undefined;
  const upstreams = new UpstreamListeners(
    host,
    (port, socket) => (outbound ? outbound.acceptUpstream(port, socket) : socket.destroy()),
    logger,
    (server) => outbound?.limitConnections(server),
  );
  const manager = new ConfigManager({
    compile: {
      outbound: {
        balancers,
        clock,
        rateLimits,
        jwks,
        forward: { pools: peerPools, source: `${namespace}/${options.workload ?? instance}`, connectTimeoutMs },
      },
      app: { pools: appPools, connectTimeoutMs },
      appPorts,
      localName: `${namespace}/${options.workload ?? instance}`,
      declaredPorts,
      audit,
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
  // Tracing and the access log read their settings from the snapshot's mesh part; they export and write off the request path.
  const spanExporter = new OtlpExporter({
    resource: [
      attribute('service.name', localWorkload),
      attribute('service.namespace', namespace),
      attribute('service.instance.id', instance),
      attribute('weft.proxy', id),
      attribute('weft.proxy.mode', options.mode),
    ],
    registry: metrics.registry,
    clock,
    logger,
    version: WEFT_VERSION,
  });
  const tracer = new Tracer({ mesh: () => manager.current.snapshot?.mesh, clock, exporter: spanExporter });
  const accessLog = new AccessLog({ mesh: () => manager.current.snapshot?.mesh, clock, registry: metrics.registry, logger, local: `${namespace}/${localWorkload}` });

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
      ...(options.detectTimeoutMs !== undefined ? { detectTimeoutMs: options.detectTimeoutMs } : {}),
      keepAliveTimeoutMs: KEEP_ALIVE_MS,
      upgradeIdleTimeoutMs: options.upgradeIdleTimeoutMs,
      limits,
      tracer,
      accessLog,
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
      upgradeIdleTimeoutMs: options.upgradeIdleTimeoutMs,
      limits,
      tracer,
      accessLog,
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
        upgradeIdleTimeoutMs: options.upgradeIdleTimeoutMs,
        limits: liveLimits(gatewayLimits(undefined), meshLimits, options.limits),
        tracer,
        accessLog,
        ...(options.gateway.onPortsChanged ? { onPortsChanged: options.gateway.onPortsChanged } : {}),
        ...(options.gateway.reusePort ? { reusePort: true } : {}),
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
      // The bundle first, so that this proxy trusts a new root before it (or anyone) renews under it.
      identity.setTrustBundle(bundle, snapshot?.mesh.signingCa);
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
    urls: controlPlanes,
    controlPlaneTls,
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
    onTap: (message, reply) => tap.handle(message, reply),
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

  const state: RunningProxy['state'] = {
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
      controlPlane: { url: discovery.url ?? null, all: controlPlanes, connected: discovery.connected },
      appReady: readiness.ready,
      identity: identity.current ? { spiffeId: identity.current.spiffeId, expiresAt: new Date(identity.current.notAfter).toISOString(), serialNumber: identity.current.serialNumber } : null,
      upstreamPorts: upstreams.ports,
      ...(gatewayListeners ? { gatewayPorts: gatewayListeners.ports } : {}),
      snapshot: withoutPrivateKeys(manager.current.snapshot) ?? null,
    }),
    backends: () => ({ proxy: id, readAt: new Date(clock.now()).toISOString(), backends: balancers.describe(), rateLimits: rateLimits.describe(clock.monotonic()) }),
  };
  try {
    if (options.admin !== false) {
      admin = await startAdmin(host, options.adminPort ?? 15020, { ...state, metrics: () => metrics.registry.render() });
      node.adminPort = admin.port;
      node.adminHost = host;
    }
  } catch (error) {
    outbound.stop();
    tunnel.stop();
    gatewayListeners?.stop();
    upstreams.closeAll();
    throw error;
  }

  // Health gauges once per registry: a node proxy's workloads share the node's.
  const stopHealth =
    options.admin !== false
      ? registerProxyHealth(
          metrics.registry,
          { config: () => ({ version: manager.current.version, appliedAt: manager.hasSnapshot ? manager.current.appliedAt : 0, source: manager.current.source }), now: () => clock.now() },
          monitorEventLoopDelay({ resolution: 20 }),
        )
      : () => {};
  const telemetry = new TelemetryPusher({ metrics, clock, intervalMs: options.telemetryIntervalMs, send: (report) => discovery.sendTelemetry(report) });
  const sweeper = clock.setInterval(() => metrics.sweep(), SWEEP_EVERY_MS).unref();

  reportReady();
  readiness.start();
  discovery.start();
  if (metrics.enabled) telemetry.start();
  quota.start();
  const identityReady = (renew ? identity.start() : identity.whenReady()).then((current) => current.spiffeId);
  // Nobody may be waiting; a stop before the first certificate is not an error to report.
  identityReady.catch(() => {});
  if (!renew) logger.warn('no bootstrap token (--token-file or WEFT_TOKEN): this proxy gets no workload certificate, so it can neither call nor serve mesh workloads');
  logger.info({ outbound: outbound.port, tunnel: tunnel.port, admin: admin?.port, controlPlanes }, 'proxy started');

  const listeners = { outbound, tunnel, admin };
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    activity.beginDrain();
    identity.stop();
    telemetry.stop();
    tap.stopAll();
    sweeper.cancel();
    stopHealth();
    quota.stop();
    jwks.close();
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
    // Upgraded connections (WebSocket) get a FIN each way rather than a reset.
    await activity.endUpgraded(UPGRADE_CLOSE_LINGER_MS, clock);
    activity.destroyAll();
    balancers.close();
    accessLog.close();
    await spanExporter.close().catch(() => {});
    await Promise.all([peerPools.destroy(), appPools.destroy(), discovery.close(), typeof options.auditLog === 'string' ? audit.close() : Promise.resolve()]);
    await new Promise<void>((resolve) => {
      if (!listeners.admin) return resolve();
      listeners.admin.server.close(() => resolve());
      listeners.admin.server.closeAllConnections();
    });
    logger.info('proxy stopped');
  };

  return {
    id,
    identityReady,
    ports: { outbound: outbound.port, tunnel: tunnel.port, admin: admin?.port ?? 0 },
    state,
    gatewayPorts: () => gatewayListeners?.ports ?? {},
    tapsRunning: () => tap.running,
    close: () => (closing ??= close()),
  };
}
