// A template Workload's upstream ports: the Service port each local port forwards to.
import type { Service, Workload } from '../api/resources.ts';
import { servicePortKey, type SnapshotUpstream } from '../api/snapshot.ts';
import { meshPorts, serviceNamespace } from './services.ts';

export interface UpstreamResolution {
  /** Sorted by localPort. */
  upstreams: SnapshotUpstream[];
  /** Upstreams naming a Service or port that doesn't exist. */
  unresolved: string[];
  /** Upstreams left out because an earlier one already uses their localPort. */
  duplicates: string[];
}

/**
 * "name" is a Service in the workload's namespace; "name.ns" (optionally
 * followed by ".svc" or ".svc.<clusterDomain>") one in namespace ns.
 */
export function parseUpstreamService(text: string, workloadNs: string, clusterDomain: string): { namespace: string; name: string } {
  let host = text.toLowerCase();
  for (const suffix of [`.svc.${clusterDomain}`, '.svc']) {
    if (host.endsWith(suffix)) {
      host = host.slice(0, -suffix.length);
      break;
    }
  }
  const dot = host.indexOf('.');
  if (dot === -1) return { namespace: workloadNs, name: host };
  return { namespace: host.slice(dot + 1), name: host.slice(0, dot) };
}

export function resolveUpstreams(template: Workload, services: ReadonlyMap<string, Service>, clusterDomain: string): UpstreamResolution {
  const ns = serviceNamespace(template);
  const upstreams: SnapshotUpstream[] = [];
  const unresolved: string[] = [];
  const duplicates: string[] = [];
  const usedLocalPorts = new Map<number, number>();
  (template.spec.upstreams ?? []).forEach((upstream, index) => {
    const where = `upstreams[${index}]`;
    const target = parseUpstreamService(upstream.service, ns, clusterDomain);
    const serviceKey = `${target.namespace}/${target.name}`;
    const service = services.get(serviceKey);
    if (!service) {
      unresolved.push(`${where}: Service ${serviceKey} does not exist`);
      return;
    }
    if (!meshPorts(service).some((p) => p.port === upstream.port)) {
      unresolved.push(`${where}: Service ${serviceKey} has no TCP port ${upstream.port}`);
      return;
    }
    const earlier = usedLocalPorts.get(upstream.localPort);
    if (earlier !== undefined) {
      duplicates.push(`${where}: localPort ${upstream.localPort} is already used by upstreams[${earlier}]`);
      return;
    }
    usedLocalPorts.set(upstream.localPort, index);
    upstreams.push({
      localPort: upstream.localPort,
      routeKey: servicePortKey(target.namespace, target.name, upstream.port),
      host: `${target.name}.${target.namespace}:${upstream.port}`,
    });
  });
  upstreams.sort((a, b) => a.localPort - b.localPort);
  return { upstreams, unresolved, duplicates };
}
