// Endpoints of Services without a selector, from the EndpointSlices that name them (kubernetes.io/service-name).
import { SERVICE_NAME_LABEL, type EndpointSlice, type Service, type ServicePort } from '../api/resources.ts';
import type { SnapshotEndpoint } from '../api/snapshot.ts';
import { compareStrings } from './hash.ts';
import { serviceNamespace } from './services.ts';

/** Slices by "ns/service", the label's value. */
export function indexEndpointSlices(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const byService = new Map<string, EndpointSlice[]>();
  for (const slice of slices) {
    const service = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    const key = `${serviceNamespace(slice)}/${service}`;
    let list = byService.get(key);
    if (!list) byService.set(key, (list = []));
    list.push(slice);
  }
  return byService;
}

/**
 * As Kubernetes does for a Service without a selector: each slice port whose
 * name is the Service port's name gives the endpoint port; every address of
 * every endpoint not marked unready is an endpoint. Such endpoints are
 * outside the mesh (no tunnel). FQDN slices are not resolved.
 */
export function sliceEndpoints(service: Service, port: ServicePort, slicesByService: ReadonlyMap<string, readonly EndpointSlice[]>): SnapshotEndpoint[] {
  const ns = serviceNamespace(service);
  const endpoints = new Map<string, SnapshotEndpoint>();
  for (const slice of slicesByService.get(`${ns}/${service.metadata.name}`) ?? []) {
    if (slice.spec.addressType === 'FQDN') continue;
    const slicePort = (slice.spec.ports ?? []).find((p) => (p.name ?? '') === (port.name ?? '') && (p.protocol ?? 'TCP') === 'TCP');
    const number = slicePort?.port;
    if (number === undefined) continue;
    for (const endpoint of slice.spec.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses) {
        const id = `${ns}/${slice.metadata.name}/${address}`;
        endpoints.set(id, { id, address, port: number, labels: {} });
      }
    }
  }
  return [...endpoints.values()].sort((a, b) => compareStrings(a.id, b.id));
}
