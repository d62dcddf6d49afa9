// Mesh host names → service ports ("svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.<domain>", with or without a port), and endpoint addresses → endpoints.
import { ErrorCodes } from '../../api/errors.ts';
import type { ActiveConfig, EndpointEntry, ServicePortEntry } from '../config/compile.ts';
import { proxyError } from '../errors.ts';
import { parseAuthority } from '../transport/authority.ts';
import { hostPort } from '../transport/pools.ts';

/** What a request or CONNECT from the app reaches: a service port, or one endpoint named by its own address. */
export type OutboundTarget = ServicePortEntry | EndpointEntry;

/**
 * The service port an authority names, else the endpoint whose address and
 * port it names (port 80 when it gives none): traffic to a pod address goes
 * to that pod, past every route, as in any mesh. Else 502 WEFT_ERR_NO_ROUTE.
 */
export function resolveTarget(config: ActiveConfig, text: string): OutboundTarget {
  const authority = parseAuthority(text);
  if (authority && !config.hosts.has(authority.host)) {
    const endpoint = config.endpoints.get(hostPort(authority.host, authority.port ?? 80));
    if (endpoint) return endpoint;
  }
  return resolveAuthority(config, text);
}

/** A target by its routeKey (what connections pinned to one target remember). */
export function targetByKey(config: ActiveConfig, key: string): OutboundTarget | undefined {
  return config.servicePorts.get(key) ?? config.endpoints.get(key);
}

/** The service port an authority reaches, or a 502 WEFT_ERR_NO_ROUTE (400 when it is not an authority at all). */
export function resolveAuthority(config: ActiveConfig, text: string): ServicePortEntry {
  const authority = parseAuthority(text);
  if (!authority) throw proxyError(ErrorCodes.BAD_REQUEST, `"${text}" is not a host name with an optional port`, 400);
  const host = config.hosts.get(authority.host);
  if (!host) {
    const why = config.snapshot ? 'no mesh service has that name' : 'the proxy has no config yet';
    throw proxyError(ErrorCodes.NO_ROUTE, `${authority.host}: ${why}`, 502);
  }
  const entry = authority.port === undefined ? host.defaultPort : host.ports.get(authority.port);
  if (!entry) {
    const ports = [...host.ports.keys()].join(', ');
    const what = authority.port === undefined ? 'no port was given and the service has no port 80 and more than one port' : `the service has no port ${authority.port}`;
    throw proxyError(ErrorCodes.NO_ROUTE, `${authority.host}: ${what} (ports: ${ports})`, 502);
  }
  return entry;
}
