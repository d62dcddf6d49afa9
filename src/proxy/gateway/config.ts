// Compiles a snapshot's Gateway into what the gateway listeners read: per port its listeners, their certificates and virtual hosts.
import { createSecureContext, type SecureContext } from 'node:tls';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { firstHostMatch } from '../../api/route-match.ts';
import type { ProxySnapshot, SnapshotApiKeyRule, SnapshotGatewayListener, SnapshotJwtRule } from '../../api/snapshot.ts';
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { buildOutboundTcp, jwksCache, type OutboundContext } from '../outbound/stack.ts';
import { gatewayRequestAuthentication } from '../layers/request-authn/index.ts';
import type { Step } from '../stack.ts';
import { buildGatewayHttp } from './stack.ts';
import { gatewayAuthorization, type AuthorizationContext } from '../layers/authorization/index.ts';
import { NO_AUDIT_LOG } from '../audit-log.ts';
import { array, check, num, object, oneOf, optional, str } from '../config/shape.ts';
import { API_KEY_RULE } from '../config/validate.ts';

export interface GatewayVirtualHost {
  hostname: string;
  routeKey: string;
  http: Step<HttpExchange>;
  /** TCP and TLS (passthrough) ports: the connection's way to its backends (weighted, with connect retries). */
  tcp?: Step<TcpExchange>;
}

export interface GatewayListenerConfig {
  name: string;
  /** Absent: every host. */
  hostname: string | undefined;
  hosts: GatewayVirtualHost[];
  /** HTTPS listeners whose certificates could be loaded. */
  secureContext: SecureContext | undefined;
}

export interface GatewayPortConfig {
  port: number;
  protocol: 'HTTP' | 'HTTPS' | 'TCP' | 'TLS';
  /** Most specific hostname first. */
  listeners: GatewayListenerConfig[];
  /** For handshakes that name no server: the catch-all listener's certificates (PEM), else the first listener's. */
  defaultCertificates: { cert: string[]; key: string[] } | undefined;
}

export interface GatewayConfig {
  namespace: string;
  name: string;
  ports: Map<number, GatewayPortConfig>;
  /** Listeners left out (a certificate Node cannot load), for the log. */
  problems: string[];
}

/** The listener of a port a host name belongs to: the first (most specific) whose hostname matches it. */
export function listenerFor(port: GatewayPortConfig, host: string): GatewayListenerConfig | undefined {
  return firstHostMatch(port.listeners, host);
}

/** The virtual host of a listener a host name belongs to. */
export function virtualHostFor(listener: GatewayListenerConfig, host: string): GatewayVirtualHost | undefined {
  return firstHostMatch(listener.hosts, host);
}

function secureContextOf(listener: SnapshotGatewayListener, problems: string[]): SecureContext | undefined {
  const certificates = listener.tls?.certificates ?? [];
  if (certificates.length === 0) return undefined;
  try {
    return createSecureContext({ cert: certificates.map((c) => c.certPem), key: certificates.map((c) => c.keyPem) });
  } catch (error) {
    problems.push(`listener ${listener.name}: cannot load its certificate: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

// Loose, as the rest of the snapshot's schema: a newer control plane may add fields.
const GatewayShape = object({
  namespace: str(),
  name: str(),
  ports: array(
    object({
      port: num({ int: true, min: 1, max: 65535 }),
      protocol: oneOf(['HTTP', 'HTTPS', 'TCP', 'TLS']),
      listeners: array(
        object({
          name: str(),
          hostname: optional(str()),
          tls: optional(object({ certificates: array(object({ certPem: str(), keyPem: str() })) })),
          hosts: array(object({ hostname: str(), routeKey: str() })),
        }),
      ),
    }),
  ),
  apiKeys: optional(array(API_KEY_RULE)),
});

/** `authz`: where the Gateway's AuthorizationPolicies write their audit lines; the policies are enforced on every virtual host either way. */
export function compileGatewayConfig(snapshot: ProxySnapshot | undefined, context: OutboundContext, authz?: AuthorizationContext): GatewayConfig | undefined {
  const gateway = snapshot?.gateway;
  if (!snapshot || !gateway) return undefined;
  const issues = check(GatewayShape, gateway, 'gateway');
  if (issues.length > 0) {
    const problems = issues.slice(0, 5).map((issue) => `${issue.path}: ${issue.message}`);
    throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `malformed snapshot: ${problems.join('; ')}`);
  }
  const problems: string[] = [];
  const guard = gatewayAuthorization(gateway.authorization, authz ?? { audit: NO_AUDIT_LOG, clock: context.clock, at: 'gateway', proxy: `${gateway.namespace}/${gateway.name}`, extAuthz: context });
  const authenticate = gatewayRequestAuthentication(gateway, { jwks: jwksCache(context), clock: context.clock });
  const ports = new Map<number, GatewayPortConfig>();
  for (const port of gateway.ports) {
    const listeners: GatewayListenerConfig[] = [];
    for (const listener of port.listeners) {
      const secureContext = port.protocol === 'HTTPS' ? secureContextOf(listener, problems) : undefined;
      // An HTTPS listener without a usable certificate would only fail handshakes: it is left out.
      if (port.protocol === 'HTTPS' && !secureContext) continue;
      listeners.push({
        name: listener.name,
        hostname: listener.hostname,
        secureContext,
        hosts: listener.hosts.map((host) => {
          const table = snapshot.routes[host.routeKey];
          if (!table) throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `gateway listener ${listener.name}: no route table ${host.routeKey}`);
          const vhost: GatewayVirtualHost = { hostname: host.hostname, routeKey: host.routeKey, http: buildGatewayHttp(table, context, guard.http, authenticate) };
          if (port.protocol === 'TCP' || port.protocol === 'TLS') vhost.tcp = guard.tcp(table, buildOutboundTcp(table, context));
          return vhost;
        }),
      });
    }
    if (listeners.length === 0) continue;
    const catchAll = port.listeners.find((l) => l.hostname === undefined && listeners.some((c) => c.name === l.name)) ??
      port.listeners.find((l) => listeners.some((c) => c.name === l.name));
    const certificates = port.protocol === 'HTTPS' ? (catchAll?.tls?.certificates ?? []) : [];
    ports.set(port.port, {
      port: port.port,
      protocol: port.protocol,
      listeners,
      defaultCertificates: certificates.length > 0 ? { cert: certificates.map((c) => c.certPem), key: certificates.map((c) => c.keyPem) } : undefined,
    });
  }
  return { namespace: gateway.namespace, name: gateway.name, ports, problems };
}

/**
 * The snapshot as the admin listener shows it: listeners' private keys and
 * the secrets of inline JWKS (HMAC `k` of kty "oct" keys, private parts of
 * asymmetric ones) are left out; public keys stay, to check which are there.
 */
export function withoutPrivateKeys(snapshot: ProxySnapshot | undefined): ProxySnapshot | undefined {
  if (!snapshot) return snapshot;
  const shown: ProxySnapshot = { ...snapshot };
  if (snapshot.inbound.requestAuthentication) shown.inbound = { ...snapshot.inbound, requestAuthentication: snapshot.inbound.requestAuthentication.map(withoutJwksSecrets) };
  if (snapshot.inbound.apiKeys) shown.inbound = { ...shown.inbound, apiKeys: snapshot.inbound.apiKeys.map(withoutKeyDigests) };
  if (!snapshot.gateway) return shown;
  shown.gateway = {
    ...snapshot.gateway,
    ports: snapshot.gateway.ports.map((port) => ({
      ...port,
      listeners: port.listeners.map((listener) =>
        listener.tls ? { ...listener, tls: { certificates: listener.tls.certificates.map((c) => ({ certPem: c.certPem, keyPem: NOT_SHOWN })) } } : listener,
      ),
    })),
  };
  if (snapshot.gateway.requestAuthentication) shown.gateway.requestAuthentication = snapshot.gateway.requestAuthentication.map(withoutJwksSecrets);
  if (snapshot.gateway.apiKeys) shown.gateway.apiKeys = snapshot.gateway.apiKeys.map(withoutKeyDigests);
  return shown;
}

/** The clients an apiKeys rule knows, without their keys' digests (a short key could be found from its digest). */
function withoutKeyDigests(rule: SnapshotApiKeyRule): SnapshotApiKeyRule {
  return { ...rule, keys: Object.fromEntries(Object.values(rule.keys).map((client, i) => [`${NOT_SHOWN} ${i + 1}`, client])) };
}

const NOT_SHOWN = '(not shown)';
/** JWK members that are secret: an oct key's `k`, RSA and EC/OKP private parts (RFC 7518 §6). */
const SECRET_JWK_MEMBERS = ['k', 'd', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

function withoutJwksSecrets(rule: SnapshotJwtRule): SnapshotJwtRule {
  if (rule.jwks === undefined) return rule;
  let keys: unknown;
  try {
    keys = (JSON.parse(rule.jwks) as { keys?: unknown } | null)?.keys;
  } catch {
    keys = undefined;
  }
  // Not a key set the proxy could read: shown not at all rather than guessed at.
  if (!Array.isArray(keys)) return { ...rule, jwks: NOT_SHOWN };
  const redacted = keys.map((key: unknown) => {
    if (typeof key !== 'object' || key === null) return key;
    const copy: Record<string, unknown> = { ...(key as Record<string, unknown>) };
    for (const member of SECRET_JWK_MEMBERS) if (member in copy) copy[member] = NOT_SHOWN;
    return copy;
  });
  return { ...rule, jwks: JSON.stringify({ keys: redacted }) };
}
