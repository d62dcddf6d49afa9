// The probes active health checks send: HTTP GET or TCP connect, straight to an endpoint or through its proxy's mesh tunnel.
import type { SnapshotEndpoint } from '../../../api/snapshot.ts';
import type { Pools } from '../../transport/pools.ts';
import { requestStatus } from '../../transport/http1-client.ts';
import { hostPort } from '../../transport/pools.ts';
import { connectDirect, connectThroughTunnel } from '../../transport/tcp.ts';
import { SOURCE_HEADER, TARGET_PORT_HEADER } from '../mesh-headers/index.ts';
import type { HealthCheckConfig, HealthProbe } from './checker.ts';

export interface ProbeContext {
  /** The proxy's peer pools (mTLS to tunnels, plaintext to endpoints outside the mesh). */
  pools: Pools;
  /** "<namespace>/<workload>" of this proxy: sent to peers as weft-source. */
  source: string;
}

/** A probe that reaches endpoints the way requests do: tunnelled endpoints through their proxy, others directly. */
export function healthProbe(context: ProbeContext): HealthProbe {
  return (endpoint, config) => (config.type === 'tcp' ? tcpProbe(context, endpoint, config) : httpProbe(context, endpoint, config));
}

async function tcpProbe(context: ProbeContext, endpoint: SnapshotEndpoint, config: HealthCheckConfig): Promise<boolean> {
  try {
    const socket =
      endpoint.tunnelPort !== undefined
        ? await connectThroughTunnel(context.pools, { ...endpoint, tunnelPort: endpoint.tunnelPort }, endpoint.port, { [SOURCE_HEADER]: context.source }, config.timeoutMs)
        : await connectDirect(endpoint.address, endpoint.port, config.timeoutMs);
    socket.destroy();
    return true;
  } catch {
    return false;
  }
}

async function httpProbe(context: ProbeContext, endpoint: SnapshotEndpoint, config: HealthCheckConfig): Promise<boolean> {
  const tunnelled = endpoint.tunnelPort !== undefined;
  const headers: Record<string, string> = { host: hostPort(endpoint.address, endpoint.port), 'user-agent': 'weft-health-check' };
  if (tunnelled) {
    headers[TARGET_PORT_HEADER] = String(endpoint.port);
    headers[SOURCE_HEADER] = context.source;
  }
  try {
    const status = await requestStatus(context.pools.http1For(endpoint), { path: config.path ?? '/', method: 'GET', headers, body: null }, config.timeoutMs);
    return (config.expectedStatuses ?? [200]).includes(status);
  } catch {
    return false;
  }
}
