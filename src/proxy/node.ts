// The per-node proxy: one process hosting every workload of its host, each with its own identity, config stream, outbound and tunnel listeners; one admin for all.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import { MetricsRegistry } from '../telemetry/metrics.ts';
import { startAdmin, type RunningAdmin } from './admin.ts';
import type { RenewFunction } from './identity/manager.ts';
import { startProxy, type ProxyOptions, type RunningProxy } from './main.ts';
import { openAuditLog } from './audit-log.ts';

/** One workload the node proxy serves: what a sidecar would be told about its own. */
export interface HostedWorkload {
  namespace: string;
  /** The template Workload. */
  workload: string;
  /** Instance name to register as; default "<workload>-<random>". */
  instance?: string;
  /** The app's ports: declared port → actual port on 127.0.0.1. */
  appPorts: { declared: number; actual: number }[];
  /** This workload's bootstrap token: the control plane signs only this workload's identity for it. */
  token?: string;
  /** Certificates from elsewhere (tests): CSR in, certificate out. */
  issueCertificate?: RenewFunction;
}

/** What the node's workloads share: the control plane, addresses, timeouts, logger, clock. Ports are per workload (any free one) except the admin's. */
export type NodeProxyOptions = Omit<
  ProxyOptions,
  'mode' | 'namespace' | 'workload' | 'instance' | 'appPorts' | 'token' | 'issueCertificate' | 'gateway' | 'admin' | 'outboundPort' | 'tunnelPort' | 'metrics'
> & {
  /** The node's name, for logs and the admin; default the host name. */
  name?: string;
  workloads: HostedWorkload[];
  metrics?: MetricsRegistry;
};

/** One hosted workload, running: its proxy part and where it listens. */
export interface RunningHostedWorkload {
  namespace: string;
  workload: string;
  /** "<namespace>/<instance>", as the control plane lists it. */
  id: string;
  proxy: RunningProxy;
}

export interface RunningNodeProxy {
  name: string;
  workloads: RunningHostedWorkload[];
  ports: { admin: number };
  /** Drains every workload at once, then closes the admin. */
  close(): Promise<void>;
}

/**
 * Starts one proxy part per hosted workload — the sidecar's own wiring
 * (startProxy) with mode 'node' and no admin of its own — in this process,
 * sharing one metrics registry, then one admin for the node.
 *
 * Why a part per workload: each workload's requests must leave with that
 * workload's client certificate and be served with its server certificate,
 * and its config (routes, upstream ports) is compiled for it. So each has its
 * own IdentityManager (with its own token), peer pools, outbound listener,
 * upstream ports, tunnel listener and config stream; nothing that carries an
 * identity is shared. Each tunnel listener has its own port: like ztunnel,
 * which tells the called workload by the destination address (each pod has
 * its own IP), the node tells it by the address, and on one loopback address
 * the port is what differs.
 */
export async function startNodeProxy(options: NodeProxyOptions): Promise<RunningNodeProxy> {
  const { workloads, name: givenName, adminPort, metrics: givenMetrics, ...shared } = options;
  const name = givenName ?? hostname();
  if (workloads.length === 0) throw new WeftError(ErrorCodes.INVALID, 'a node proxy needs at least one workload to host');
  const seen = new Set<string>();
  for (const w of workloads) {
    const key = `${w.namespace}/${w.instance ?? w.workload}`;
    if (seen.has(key)) throw new WeftError(ErrorCodes.INVALID, `${key} is hosted twice; give each replica its own instance name`);
    seen.add(key);
  }
  const registry = givenMetrics ?? new MetricsRegistry();
  // One audit stream for the node: its workloads' lines interleave whole, never from several handles on one file.
  const audit = typeof shared.auditLog === 'string' ? openAuditLog(shared.auditLog) : shared.auditLog;
  if (audit !== undefined) shared.auditLog = audit;
  const logger = options.logger.child({ node: name });

  const settled = await Promise.allSettled(
    workloads.map(async (w): Promise<RunningHostedWorkload> => {
      const proxy = await startProxy({
        ...shared,
        mode: 'node',
        namespace: w.namespace,
        workload: w.workload,
        ...(w.instance !== undefined ? { instance: w.instance } : {}),
        appPorts: w.appPorts,
        ...(w.token !== undefined ? { token: w.token } : {}),
        ...(w.issueCertificate !== undefined ? { issueCertificate: w.issueCertificate } : {}),
        // Each workload's last good snapshot apart: they are compiled for different workloads.
        ...(shared.dataDir !== undefined ? { dataDir: join(shared.dataDir, `${w.namespace}.${w.instance ?? w.workload}`) } : {}),
        outboundPort: 0,
        tunnelPort: 0,
        admin: false,
        metrics: registry,
        logger,
      });
      return { namespace: w.namespace, workload: w.workload, id: proxy.id, proxy };
    }),
  );
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((w) => w.proxy.close()));
    await audit?.close();
    throw failed.reason;
  }

  let admin: RunningAdmin;
  try {
    admin = await startAdmin(shared.host ?? '127.0.0.1', adminPort ?? 15020, {
      // The node is ready when every workload it hosts is: a supervisor restarts the node, not one workload.
      ready: () => {
        const waiting = started.flatMap((w) => {
          const { ready, why } = w.proxy.state.ready();
          return ready ? [] : [`${w.id}: ${why ?? 'not ready'}`];
        });
        return waiting.length === 0 ? { ready: true } : { ready: false, why: waiting.join('; ') };
      },
      config: () => ({ node: name, mode: 'node', workloads: Object.fromEntries(started.map((w) => [w.id, w.proxy.state.config()])) }),
      metrics: () => registry.render(),
      // Each hosted workload has its own balancers and buckets: /debug/backends?workload=<ns>/<name> picks one.
      backends: (workload) => started.find((w) => `${w.namespace}/${w.workload}` === workload)?.proxy.state.backends(),
    });
  } catch (error) {
    await Promise.all(started.map((w) => w.proxy.close()));
    await audit?.close();
    throw error;
  }
  logger.info({ admin: admin.port, workloads: started.map((w) => ({ id: w.id, outbound: w.proxy.ports.outbound, tunnel: w.proxy.ports.tunnel })) }, 'node proxy started');

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(started.map((w) => w.proxy.close()));
    await audit?.close();
    await new Promise<void>((resolve) => {
      admin.server.close(() => resolve());
      admin.server.closeAllConnections();
    });
    logger.info('node proxy stopped');
  };
  return { name, workloads: started, ports: { admin: admin.port }, close: () => (closing ??= close()) };
}
