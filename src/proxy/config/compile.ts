// Compiles a validated snapshot into what the request path reads: host lookup, per-port stacks, inbound stacks, upstream ports.
import { defaultServicePort } from '../../api/route-match.ts';
import type { PortProtocol, ProxySnapshot, SnapshotEndpoint, SnapshotService, SnapshotServicePort, SnapshotUpstream } from '../../api/snapshot.ts';
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { buildInboundHttp, buildInboundTcp } from '../inbound/stack.ts';
import type { AppContext } from '../layers/forward/index.ts';
import { endpointPoolId, hostPort } from '../transport/pools.ts';
import { buildEndpointHttp, buildEndpointTcp, buildOutboundHttp, buildOutboundTcp, jwksCache, rateLimiterRegistry, type OutboundContext } from '../outbound/stack.ts';
import type { Step } from '../stack.ts';
import { compileGatewayConfig, type GatewayConfig } from '../gateway/config.ts';
import { NO_AUDIT_LOG, type AuditSink } from '../audit-log.ts';
import type { AuthorizationContext } from '../layers/authorization/index.ts';

export type ConfigSource = 'control-plane' | 'disk' | 'none';

/** One service port as the outbound side reaches it. */
export interface ServicePortEntry {
  service: SnapshotService;
  port: SnapshotServicePort;
  routeKey: string;
  http: Step<HttpExchange>;
  tcp: Step<TcpExchange>;
}

/** One endpoint as the outbound side reaches it by its own address (pod-IP traffic): no route, no filters. */
export interface EndpointEntry {
  endpoint: SnapshotEndpoint;
  /** hostPort(address, port): the key in `ActiveConfig.endpoints`, and the name metrics use. */
  routeKey: string;
  port: { port: number; protocol: PortProtocol };
  http: Step<HttpExchange>;
  tcp: Step<TcpExchange>;
}

export interface HostEntry {
  ports: Map<number, ServicePortEntry>;
  /** Used when the authority names no port: port 80 if the service has it, else its only port. */
  defaultPort: ServicePortEntry | undefined;
}

export interface ActiveConfig {
  /** Undefined before the first snapshot. */
  snapshot: ProxySnapshot | undefined;
  version: string;
  source: ConfigSource;
  appliedAt: number;
  hosts: Map<string, HostEntry>;
  /** By route key ("ns/name:port"). */
  servicePorts: Map<string, ServicePortEntry>;
  upstreams: Map<number, { upstream: SnapshotUpstream; entry: ServicePortEntry }>;
  /** Every endpoint of every backend, by hostPort(address, port). */
  endpoints: Map<string, EndpointEntry>;
  inboundHttp: Step<HttpExchange>;
  inboundTcp: Step<TcpExchange>;
  /** Pool ids (endpointPoolId) the snapshot's endpoints are reached through, to keep their pools. */
  peers: Set<string>;
  backendKeys: Set<string>;
  /** Gateway proxies: the Gateway's listeners, when the snapshot has one. */
  gateway: GatewayConfig | undefined;
}

export interface CompileContext {
  outbound: Omit<OutboundContext, 'backends'>;
  app: AppContext;
  /** Declared → actual app ports. */
  appPorts: ReadonlyMap<number, number>;
  /** "<ns>/<workload or instance>", for inbound metrics. */
  localName: string;
  /** Inbound ports before any snapshot: the declared app ports. */
  declaredPorts: readonly number[];
  /** Where AUDIT and DENY decisions of AuthorizationPolicies are written; nowhere when absent (the policies are enforced either way). */
  audit?: AuditSink | undefined;
}

/**
 * Runs every layer factory for the snapshot. Throws a WeftError
 * (WEFT_ERR_SNAPSHOT_INVALID) when a part cannot be compiled, e.g. a bad regex.
 */
export function compileConfig(snapshot: ProxySnapshot | undefined, source: ConfigSource, appliedAt: number, context: CompileContext): ActiveConfig {
  const outbound: OutboundContext = { ...context.outbound, backends: snapshot?.backends ?? {} };
  const hosts = new Map<string, HostEntry>();
  const servicePorts = new Map<string, ServicePortEntry>();
  for (const service of snapshot?.services ?? []) {
    const ports = new Map<number, ServicePortEntry>();
    for (const port of service.ports) {
      const table = snapshot!.routes[port.routeKey]!;
      const entry: ServicePortEntry = {
        service,
        port,
        routeKey: port.routeKey,
        http: buildOutboundHttp(table, outbound),
        tcp: buildOutboundTcp(table, outbound),
      };
      ports.set(port.port, entry);
      servicePorts.set(port.routeKey, entry);
    }
    const defaultPort = defaultServicePort(ports);
    const hostEntry: HostEntry = { ports, defaultPort };
    for (const host of service.hosts) hosts.set(host.toLowerCase(), hostEntry);
  }

  const upstreams = new Map<number, { upstream: SnapshotUpstream; entry: ServicePortEntry }>();
  for (const upstream of snapshot?.upstreams ?? []) {
    const entry = servicePorts.get(upstream.routeKey);
    if (entry) upstreams.set(upstream.localPort, { upstream, entry });
  }

  const endpoints = new Map<string, EndpointEntry>();
  for (const backend of Object.values(snapshot?.backends ?? {})) {
    for (const endpoint of backend.endpoints) {
      const key = hostPort(endpoint.address.toLowerCase(), endpoint.port);
      // An endpoint several Services select keeps one entry; HTTP wins over TCP, so that requests to it are served as requests.
      const existing = endpoints.get(key);
      if (existing && (existing.port.protocol !== 'tcp' || backend.protocol === 'tcp')) continue;
      endpoints.set(key, {
        endpoint,
        routeKey: key,
        port: { port: endpoint.port, protocol: backend.protocol },
        http: buildEndpointHttp(endpoint, outbound),
        tcp: buildEndpointTcp(endpoint, outbound),
      });
    }
  }

  const inboundPorts = {
    ports: snapshot?.inbound.ports ?? context.declaredPorts,
    appPorts: context.appPorts,
    name: context.localName,
    rateLimits: snapshot?.inbound.rateLimits,
    authorization: snapshot?.inbound.authorization,
    requestAuthentication: snapshot?.inbound.requestAuthentication,
    apiKeys: snapshot?.inbound.apiKeys,
  };
  const audit = context.audit ?? NO_AUDIT_LOG;
  // CUSTOM policies' checks go out as this snapshot's other requests do: its backends, the proxy's balancers and pools.
  const inboundAuthz: AuthorizationContext = { audit, clock: context.outbound.clock, at: 'inbound', proxy: context.localName, extAuthz: outbound };
  const gatewayAuthz: AuthorizationContext | undefined = snapshot?.gateway
    ? { audit, clock: context.outbound.clock, at: 'gateway', proxy: `${snapshot.gateway.namespace}/${snapshot.gateway.name}`, extAuthz: outbound }
    : undefined;
  const peers = new Set<string>();
  const backendKeys = new Set<string>();
  for (const [key, backend] of Object.entries(snapshot?.backends ?? {})) {
    backendKeys.add(key);
    for (const endpoint of backend.endpoints) peers.add(endpointPoolId(endpoint));
  }
  return {
    snapshot,
    version: snapshot?.version ?? '',
    source,
    appliedAt,
    hosts,
    servicePorts,
    upstreams,
    endpoints,
    inboundHttp: buildInboundHttp(inboundPorts, context.app, {
      registry: rateLimiterRegistry(context.outbound),
      clock: context.outbound.clock,
      source: context.outbound.forward.source,
    }, inboundAuthz, { jwks: jwksCache(context.outbound), clock: context.outbound.clock }),
    inboundTcp: buildInboundTcp(inboundPorts, context.app, inboundAuthz),
    peers,
    backendKeys,
    gateway: compileGatewayConfig(snapshot, outbound, gatewayAuthz),
  };
}
