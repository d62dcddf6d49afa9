// Services as the mesh sees them: port protocols, host names, and the endpoints their selectors pick.
import type { Service, ServicePort, Workload } from '../api/resources.ts';
import type { PortProtocol, SnapshotEndpoint } from '../api/snapshot.ts';
import { spiffeId } from '../api/identity.ts';
import { compareStrings } from './hash.ts';

export const CLUSTER_DOMAIN = 'cluster.local';

// TLS carried through unchanged can't be parsed as HTTP, so it travels as bytes.
const APP_PROTOCOLS: Record<string, PortProtocol> = {
  http: 'http',
  'kubernetes.io/ws': 'http',
  http2: 'http2',
  'kubernetes.io/h2c': 'http2',
  grpc: 'grpc',
  tcp: 'tcp',
  https: 'tcp',
  tls: 'tcp',
  'kubernetes.io/wss': 'tcp',
};

// Istio's convention: the port name is "<protocol>" or "<protocol>-<suffix>".
const NAME_PREFIXES: Record<string, PortProtocol> = {
  http: 'http',
  http2: 'http2',
  grpc: 'grpc',
  tcp: 'tcp',
  https: 'tcp',
  tls: 'tcp',
};

/**
 * The protocol of a Service port: from `appProtocol` when weft knows it, else
 * from the port name's prefix, else HTTP (the mesh's default, as most mesh
 * traffic is HTTP and a wrong guess there fails loudly, not silently).
 */
export function portProtocol(port: { name?: string | undefined; appProtocol?: string | undefined }): PortProtocol {
  const fromAppProtocol = port.appProtocol ? APP_PROTOCOLS[port.appProtocol.toLowerCase()] : undefined;
  if (fromAppProtocol) return fromAppProtocol;
  const prefix = port.name?.toLowerCase().split('-')[0];
  const fromName = prefix ? NAME_PREFIXES[prefix] : undefined;
  return fromName ?? 'http';
}

/**
 * The ports the mesh carries: TCP ones only (UDP and SCTP are not proxied),
 * the first of each port number (a later duplicate would be ambiguous).
 */
export function meshPorts(service: Service): ServicePort[] {
  const seen = new Set<number>();
  const ports: ServicePort[] = [];
  for (const port of service.spec.ports ?? []) {
    if ((port.protocol ?? 'TCP') !== 'TCP' || seen.has(port.port)) continue;
    seen.add(port.port);
    ports.push(port);
  }
  return ports;
}

export function serviceNamespace(service: { metadata: { namespace?: string | undefined } }): string {
  return service.metadata.namespace ?? 'default';
}

/** Host names (no port) that reach the service from a proxy in `nodeNamespace`. */
export function serviceHosts(service: Service, nodeNamespace: string, clusterDomain: string): string[] {
  const name = service.metadata.name.toLowerCase();
  const ns = serviceNamespace(service).toLowerCase();
  const hosts = [`${name}.${ns}`, `${name}.${ns}.svc`, `${name}.${ns}.svc.${clusterDomain.toLowerCase()}`];
  if (serviceNamespace(service) === nodeNamespace) hosts.unshift(name);
  return hosts;
}

/**
 * Workloads with an address (the only ones a selector can pick), by
 * namespace and by each `label=value` they carry, sorted by name: a selector
 * then reads the workloads of its first label only, instead of every workload
 * of the namespace for every Service (2,000 workloads × 200 Services was most
 * of a compile).
 */
export interface EndpointWorkloads {
  byLabel: Map<string, Workload[]>;
}

function labelKey(namespace: string, key: string, value: string): string {
  return `${namespace}\u0000${key}\u0000${value}`;
}

export function indexEndpointWorkloads(workloads: readonly Workload[]): EndpointWorkloads {
  const sorted = workloads.filter((w) => w.spec?.address).sort((a, b) => compareStrings(a.metadata.name, b.metadata.name));
  const byLabel = new Map<string, Workload[]>();
  for (const workload of sorted) {
    const ns = serviceNamespace(workload);
    for (const [key, value] of Object.entries(workload.metadata.labels ?? {})) {
      const k = labelKey(ns, key, value);
      let list = byLabel.get(k);
      if (!list) byLabel.set(k, (list = []));
      list.push(workload);
    }
  }
  return { byLabel };
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  for (const [key, value] of Object.entries(selector)) if (labels?.[key] !== value) return false;
  return true;
}

/**
 * The endpoints of one Service port, sorted by id. As in Kubernetes, a
 * Service without a selector (or with an empty one) has none; a named
 * targetPort the workload doesn't declare leaves that workload out.
 */
export function serviceEndpoints(service: Service, port: ServicePort, endpointWorkloads: EndpointWorkloads, trustDomain: string): SnapshotEndpoint[] {
  const selector = service.spec.selector;
  const first = selector ? Object.entries(selector)[0] : undefined;
  if (!selector || !first) return [];
  const ns = serviceNamespace(service);
  const endpoints: SnapshotEndpoint[] = [];
  for (const workload of endpointWorkloads.byLabel.get(labelKey(ns, first[0], first[1])) ?? []) {
    if (!selects(selector, workload.metadata.labels)) continue;
    const target = port.targetPort;
    let endpointPort: number | undefined;
    if (typeof target === 'number') endpointPort = target;
    else if (typeof target === 'string') endpointPort = (workload.spec.ports ?? []).find((p) => p.name === target)?.port;
    else endpointPort = port.port;
    if (endpointPort === undefined) continue;
    const endpoint: SnapshotEndpoint = {
      id: `${ns}/${workload.metadata.name}`,
      address: workload.spec.address!,
      port: endpointPort,
      labels: { ...(workload.metadata.labels ?? {}) },
    };
    if (workload.spec.locality) endpoint.locality = { ...workload.spec.locality };
    if (workload.spec.tunnelPort !== undefined) {
      endpoint.tunnelPort = workload.spec.tunnelPort;
      const identity = workloadIdentity(trustDomain, ns, workload.spec.serviceAccount ?? 'default');
      if (identity !== undefined) endpoint.identity = identity;
    }
    endpoints.push(endpoint);
  }
  // Workloads come sorted by name (one namespace per label key), so ids are already in order.
  return endpoints;
}

/** The SPIFFE ID a workload's proxy holds; undefined when a part cannot be in one (the endpoint then gets no mesh traffic). */
export function workloadIdentity(trustDomain: string, namespace: string, serviceAccount: string): string | undefined {
  try {
    return spiffeId(trustDomain, namespace, serviceAccount);
  } catch {
    return undefined;
  }
}
