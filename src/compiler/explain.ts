// `weft explain`: replays a hypothetical request against one proxy's compiled snapshot with the proxy's own matchers, and says what would happen and why.
//
// Pure: snapshot + request (+ the calling proxy's live state, when the caller
// could read it) in, a trace out. The matching itself (route rules, SNI
// rules, gateway hostnames, default ports, path rewrites, Locations,
// grpc-timeout) is the code the proxy runs, from src/api/route-match.ts and
// src/api/http-filters.ts; this file only walks the snapshot in the order
// the proxy's layers do (outbound/stack.ts) and writes down each decision.
import { ErrorCodes, WeftError } from '../api/errors.ts';
import type {
  ExplainBackend,
  ExplainEndpoint,
  ExplainEntry,
  ExplainFilter,
  ExplainRateLimit,
  ExplainRequest,
  ExplainRisk,
  ExplainRuleCheck,
  ExplainTrace,
  LiveBackendState,
  LiveProxyState,
} from '../api/explain.ts';
import { hostMatches, normalHost } from '../api/hostnames.ts';
import { normalizePath } from '../api/path-normalize.ts';
import { compileLocation, compilePathModifier, grpcTimeoutMs } from '../api/http-filters.ts';
import { compileMatch, compileMatchConditions, defaultServicePort, firstHostMatch, routesBySni, tcpRuleOf, type MatchableRequest } from '../api/route-match.ts';
import {
  baseBackendKey,
  gatewayWorkloadName,
  type HeaderModifier,
  type HttpFilter,
  type HttpRouteRule,
  type ProxySnapshot,
  type RequestRedirect,
  type RouteTable,
  type SnapshotBackend,
  type SnapshotRateLimit,
  type WeightedBackend,
} from '../api/snapshot.ts';

/** Attempts the proxy makes when a connection is refused and the rule has no retry policy (outbound/stack.ts CONNECT_ATTEMPTS). */
const CONNECT_ATTEMPTS = 2;
/** The rate limit layer cuts header values to this length before keying a bucket. */
const MAX_KEY_VALUE_LENGTH = 256;

interface ParsedRequest {
  scheme: 'http' | 'https' | 'tcp' | 'tls';
  method: string;
  host: string;
  port: number | undefined;
  /** Origin-form target, as the proxy's exchange holds it. */
  path: string;
  headers: Record<string, string>;
  sni: string | undefined;
  match: MatchableRequest;
}

function parseRequest(request: ExplainRequest): ParsedRequest {
  const text = request.url.trim();
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/i.exec(text);
  if (!m) throw new WeftError(ErrorCodes.INVALID, `url: "${request.url}" is not an absolute URL (http://host[:port]/path, https://, tcp:// or tls://)`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'tcp' && scheme !== 'tls') {
    throw new WeftError(ErrorCodes.INVALID, `url: scheme "${scheme}" is not one of http, https, tcp, tls`);
  }
  const authority = m[2]!.slice(m[2]!.lastIndexOf('@') + 1);
  const am = /^(\[[^\]]+\]|[^:]*)(?::(\d{1,5}))?$/.exec(authority);
  if (!am || am[1] === '') throw new WeftError(ErrorCodes.INVALID, `url: "${authority}" is not a host with an optional port`);
  const host = normalHost(am[1]!.replace(/^\[|\]$/g, ''));
  const port = am[2] !== undefined ? Number(am[2]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) throw new WeftError(ErrorCodes.INVALID, `url: port ${port} is out of range`);
  let path = m[3] || '/';
  if (path.startsWith('?')) path = `/${path}`;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
  headers.host ??= authority;
  const method = (request.method || 'GET').toUpperCase();
  const q = path.indexOf('?');
  const pathname = q === -1 ? path : path.slice(0, q);
  const queryParams = new URLSearchParams(q === -1 ? '' : path.slice(q + 1));
  const sni = request.sni ?? (scheme === 'https' || scheme === 'tls' ? host : undefined);
  return { scheme, method, host, port, path, headers, sni, match: { method, pathname, queryParams, req: { headers } } };
}

/** Who sends the request: the workload whose sidecar it leaves through, or the Gateway it enters at. */
export interface ExplainSource {
  kind: 'workload' | 'gateway';
  /** "<ns>/<name>". */
  name: string;
}

/** Evaluates `request` against `snapshot`, the one the control plane compiles for `source`. Throws WEFT_ERR_INVALID for a request it cannot read. */
export function explainRequest(snapshot: ProxySnapshot, request: ExplainRequest, source: ExplainSource): ExplainTrace {
  const req = parseRequest(request);
  const trace: ExplainTrace = {
    request: { method: req.method, url: request.url, host: req.host, port: req.port ?? 0, path: req.path, headers: req.headers },
    from: { kind: source.kind, name: source.name, snapshotVersion: snapshot.version },
    verdict: { outcome: 'forwarded', summary: '' },
    risks: [],
    rules: [],
    backends: [],
    live: request.live ? { used: true, source: request.live.proxy ?? 'the calling proxy', why: `read at ${request.live.readAt}` } : { used: false, why: request.liveUnavailable ?? 'no live state was given' },
    notes: [],
  };
  if (req.sni !== undefined) trace.request.sni = req.sni;
  if (request.sourceIp !== undefined) trace.request.sourceIp = request.sourceIp;
  // The proxy normalises the path where it makes the exchange, before routing and authorization (MeshConfig pathNormalization).
  if (req.scheme === 'http' || req.scheme === 'https') {
    const mode = snapshot.mesh.pathNormalization ?? 'BASE';
    const normalized = normalizePath(req.path, mode);
    if (!normalized.ok) {
      trace.verdict = { outcome: 'bad-request', status: 400, reason: ErrorCodes.INVALID_PATH, summary: `the proxy cannot normalise the path: ${normalized.why}` };
      return trace;
    }
    if (normalized.path !== req.path) {
      trace.notes.push(`The path ${req.path} is normalised to ${normalized.path} (pathNormalization ${mode}) before routing and authorization.`);
      req.path = normalized.path;
      const q = normalized.path.indexOf('?');
      req.match = { ...req.match, pathname: q === -1 ? normalized.path : normalized.path.slice(0, q) };
      trace.request.path = normalized.path;
    }
  }
  const table = source.kind === 'gateway' ? enterGateway(snapshot, req, trace) : enterSidecar(snapshot, req, source, trace);
  if (!table) return trace;
  // An app's https:// goes through its sidecar as a CONNECT tunnel with TLS inside: opaque, routed by port (and SNI), never by HTTP rules.
  const appTls = source.kind === 'workload' && req.scheme === 'https';
  if (appTls) trace.notes.push('https:// from an app is a CONNECT tunnel with TLS inside: the sidecar cannot see the request, only the SNI.');
  const opaque = appTls || req.scheme === 'tcp' || req.scheme === 'tls' || trace.entry?.protocol === 'TCP' || trace.entry?.protocol === 'TLS';
  const rule = opaque ? pickL4Rule(table, req, trace) : pickHttpRule(table, req, trace, source);
  if (!rule) return trace;
  if (opaque) {
    explainBackends(rule, req, snapshot, request.live, trace);
    trace.retry = { attempts: CONNECT_ATTEMPTS, budgets: [], summary: `a refused connection is tried once more on another endpoint (${CONNECT_ATTEMPTS} attempts in all)` };
    finishVerdict(trace, `the connection goes to ${describeBackends(trace.backends)}`);
    return trace;
  }
  explainHttpRule(rule, req, snapshot, source, request.live, trace);
  return trace;
}

// ---- where the request enters ------------------------------------------------

function enterSidecar(snapshot: ProxySnapshot, req: ParsedRequest, source: ExplainSource, trace: ExplainTrace): RouteTable | undefined {
  const service = snapshot.services.find((s) => s.hosts.includes(req.host));
  if (!service) {
    // Traffic to an endpoint's own address goes to it past every route (pod-IP traffic).
    const port = req.port ?? 80;
    for (const backend of Object.values(snapshot.backends)) {
      const endpoint = backend.endpoints.find((e) => e.address.toLowerCase() === req.host && e.port === port);
      if (!endpoint) continue;
      trace.entry = { kind: 'endpoint', summary: `${req.host}:${port} is the address of endpoint ${endpoint.id}`, host: req.host, port, protocol: backend.protocol, steps: [`no mesh service is called ${req.host}; it is the address of ${endpoint.id}`] };
      trace.notes.push('A request to an endpoint address goes straight to that endpoint: no route, no filters, no balancing (as any mesh treats pod-IP traffic).');
      trace.verdict = { outcome: 'forwarded', summary: `sent straight to endpoint ${endpoint.id}, past every route` };
      return undefined;
    }
    const short = req.host.split('.')[0];
    const alike = snapshot.services.filter((s) => s.name === short).map((s) => `${s.name}.${s.namespace}`);
    trace.verdict = {
      outcome: 'no-route',
      status: 502,
      reason: ErrorCodes.NO_ROUTE,
      summary: `${req.host} is no mesh service the sidecar of ${source.name} knows: it answers 502 at once (registry only)${alike.length ? `; did you mean ${alike.join(' or ')}?` : ''}`,
    };
    trace.notes.push(`Names this sidecar resolves: a service's "name.namespace", "name.namespace.svc", "name.namespace.svc.<cluster domain>", and "name" alone in its own namespace.`);
    return undefined;
  }
  const ports = new Map(service.ports.map((p) => [p.port, p]));
  const port = req.port === undefined ? defaultServicePort(ports) : ports.get(req.port);
  if (!port) {
    const list = service.ports.map((p) => p.port).join(', ');
    const what = req.port === undefined ? 'no port was given and the service has no port 80 and more than one port' : `the service has no port ${req.port}`;
    trace.verdict = { outcome: 'no-route', status: 502, reason: ErrorCodes.NO_ROUTE, summary: `${req.host}: ${what} (ports: ${list})` };
    return undefined;
  }
  const table = snapshot.routes[port.routeKey];
  trace.entry = {
    kind: 'service-port',
    summary: `${req.host}:${port.port} is service ${service.namespace}/${service.name} port ${port.port}${port.name ? ` (${port.name})` : ''}, ${port.protocol}`,
    host: req.host,
    port: port.port,
    protocol: port.protocol,
    routeKey: port.routeKey,
    service: { namespace: service.namespace, name: service.name },
    steps: [`${req.host} is a name of ${service.namespace}/${service.name}`, req.port === undefined ? `no port given: port ${port.port} (80 if it has it, else its only port)` : `port ${port.port}`],
  };
  trace.request.port = port.port;
  if (!table) {
    trace.verdict = { outcome: 'no-route', status: 502, reason: ErrorCodes.NO_ROUTE, summary: `the snapshot has no route table ${port.routeKey}` };
    return undefined;
  }
  return table;
}

function enterGateway(snapshot: ProxySnapshot, req: ParsedRequest, trace: ExplainTrace): RouteTable | undefined {
  const gateway = snapshot.gateway;
  const portNumber = req.port ?? (req.scheme === 'https' || req.scheme === 'tls' ? 443 : 80);
  trace.request.port = portNumber;
  if (!gateway) {
    trace.verdict = { outcome: 'no-route', summary: 'the Gateway does not exist, is not weft\'s (gatewayClassName), or has no listener that can be served' };
    return undefined;
  }
  const port = gateway.ports.find((p) => p.port === portNumber);
  if (!port) {
    trace.verdict = {
      outcome: 'no-route',
      summary: `Gateway ${gateway.namespace}/${gateway.name} has no listener on port ${portNumber} (ports: ${gateway.ports.map((p) => `${p.port} ${p.protocol}`).join(', ') || 'none'}): the connection is refused`,
    };
    return undefined;
  }
  const entry: ExplainEntry = {
    kind: 'gateway-listener',
    summary: '',
    host: req.host,
    port: portNumber,
    protocol: port.protocol,
    gateway: { namespace: gateway.namespace, name: gateway.name, port: portNumber },
    steps: [],
  };
  trace.entry = entry;
  const l4 = port.protocol === 'TCP' || port.protocol === 'TLS';
  if ((port.protocol === 'HTTPS' || port.protocol === 'TLS') && req.scheme !== 'https' && req.scheme !== 'tls') {
    trace.notes.push(`Port ${portNumber} is ${port.protocol}: the client must open TLS (use an https:// or tls:// URL to say which SNI it sends).`);
  }
  // A TLS port is routed by the ClientHello's SNI, an HTTP(S) port by the request's Host; a TCP port has one listener for everything.
  const name = port.protocol === 'TLS' ? req.sni : req.host;
  if (port.protocol === 'TLS' && name === undefined) {
    trace.verdict = { outcome: 'no-route', summary: `port ${portNumber} routes by SNI and the client sends none: the connection is closed (no_sni)` };
    return undefined;
  }
  const host = name === undefined ? req.host : normalHost(name);
  for (const listener of port.listeners) {
    const ok = listener.hostname === undefined || hostMatches(listener.hostname, host);
    entry.steps.push(`listener ${listener.name} (hostname ${listener.hostname ?? 'any'}): ${ok ? 'takes' : 'does not take'} ${host}`);
    if (ok) break;
  }
  const listener = firstHostMatch(port.listeners, host);
  if (!listener) {
    if (l4) trace.verdict = { outcome: 'no-route', summary: `no listener on port ${portNumber} serves ${host}: the connection is closed (unknown_sni)` };
    else trace.verdict = { outcome: 'no-route', status: 404, reason: ErrorCodes.NO_ROUTE, summary: `no listener on port ${portNumber} serves ${host} (hostname mismatch)` };
    return undefined;
  }
  entry.gateway!.listener = listener.name;
  if (port.protocol === 'HTTPS' && req.sni !== undefined && normalHost(req.sni) !== host) {
    const byConnection = firstHostMatch(port.listeners, normalHost(req.sni));
    entry.gateway!.sni = req.sni;
    if (byConnection && byConnection !== listener) {
      trace.verdict = {
        outcome: 'no-route',
        status: 421,
        reason: ErrorCodes.MISDIRECTED_REQUEST,
        summary: `${host} is served by listener ${listener.name}, but the TLS connection was opened for ${req.sni} (listener ${byConnection.name}): 421, retry on a new connection`,
      };
      return undefined;
    }
  }
  for (const vhost of listener.hosts) {
    const ok = hostMatches(vhost.hostname, host);
    entry.steps.push(`  routes for ${vhost.hostname}: ${ok ? 'take' : 'do not take'} ${host}`);
    if (ok) break;
  }
  const vhost = firstHostMatch(listener.hosts, host);
  if (!vhost) {
    const names = listener.hosts.map((h) => h.hostname).join(', ') || 'none: no route is attached to it';
    if (l4) trace.verdict = { outcome: 'no-route', summary: `no route of listener ${listener.name} serves ${host} (route hostnames: ${names}): the connection is closed` };
    else trace.verdict = { outcome: 'no-route', status: 404, reason: ErrorCodes.NO_ROUTE, summary: `no route of listener ${listener.name} serves ${host} (route hostnames: ${names})` };
    return undefined;
  }
  entry.gateway!.virtualHost = vhost.hostname;
  entry.routeKey = vhost.routeKey;
  entry.summary = `Gateway ${gateway.namespace}/${gateway.name} port ${portNumber} (${port.protocol}), listener ${listener.name}, routes for ${vhost.hostname}`;
  const table = snapshot.routes[vhost.routeKey];
  if (!table) trace.verdict = { outcome: 'no-route', status: 404, reason: ErrorCodes.NO_ROUTE, summary: `the snapshot has no route table ${vhost.routeKey}` };
  return table;
}

// ---- which rule -------------------------------------------------------------

function routeOf(ruleId: string): { namespace: string; name: string } | undefined {
  const parts = ruleId.split('/');
  return parts.length >= 3 ? { namespace: parts[0]!, name: parts[1]! } : undefined;
}

function ownership(ruleId: string, trace: ExplainTrace, source: ExplainSource): string {
  const route = routeOf(ruleId);
  const service = trace.entry?.service;
  if (!route || !service || source.kind !== 'workload') return '';
  const callerNs = source.name.split('/')[0];
  if (route.namespace === service.namespace) return route.namespace === callerNs ? '' : ' (a producer route: in the service\'s namespace, for every caller)';
  if (route.namespace === callerNs) return ' (a consumer route: in the caller\'s namespace, it overrides the producer\'s routes for callers here)';
  return '';
}

function pickHttpRule(table: RouteTable, req: ParsedRequest, trace: ExplainTrace, source: ExplainSource): HttpRouteRule | undefined {
  let chosen: HttpRouteRule | undefined;
  table.rules.forEach((rule, index) => {
    const conditions = compileMatchConditions(rule.match, `routes["${table.key}"].rules[${index}] (${rule.id}).match`).map((c) => ({ describe: c.describe, ok: c.test(req.match) }));
    const failed = conditions.filter((c) => !c.ok);
    const what = conditions.length ? conditions.map((c) => c.describe).join(', ') : 'every request';
    let check: ExplainRuleCheck;
    if (failed.length > 0) {
      check = { index, id: rule.id, result: 'no-match', conditions, why: `needs ${failed.map((c) => c.describe).join(' and ')}${mismatchDetail(failed.map((c) => c.describe), req)}` };
    } else if (chosen) {
      check = { index, id: rule.id, result: 'shadowed', conditions, why: `matches too (${what}), but rule ${chosen.id} comes first in precedence order` };
    } else {
      chosen = rule;
      check = { index, id: rule.id, result: 'matched', conditions, why: `matches: ${what}${ownership(rule.id, trace, source)}` };
    }
    trace.rules.push(check);
  });
  if (!chosen) {
    trace.verdict = {
      outcome: 'no-route',
      status: 404,
      reason: ErrorCodes.NO_ROUTE,
      summary: table.rules.length === 0 ? `${table.key} has no route rule` : `no rule of ${table.key} matches ${req.method} ${req.match.pathname}`,
    };
  }
  return chosen;
}

/** What the request has where a failed condition looks: "the request's path is /x", "it has no header x-env". */
function mismatchDetail(failed: string[], req: ParsedRequest): string {
  const details = new Set<string>();
  for (const f of failed) {
    if (f.startsWith('path ')) details.add(`path is ${req.match.pathname}`);
    else if (f.startsWith('method ')) details.add(`method is ${req.method}`);
    else if (f.startsWith('header ')) {
      const name = f.split(' ')[1]!;
      const value = req.headers[name];
      details.add(value === undefined ? `no ${name} header` : `${name}: ${value}`);
    } else if (f.startsWith('query ')) {
      const name = f.split(' ')[1]!;
      const value = req.match.queryParams.get(name);
      details.add(value === null ? `no query parameter ${name}` : `${name}=${value}`);
    }
  }
  return details.size ? ` (the request has ${[...details].join(', ')})` : '';
}

function pickL4Rule(table: RouteTable, req: ParsedRequest, trace: ExplainTrace): HttpRouteRule | undefined {
  if (routesBySni(table)) {
    const host = req.sni === undefined ? undefined : normalHost(req.sni);
    let chosen: HttpRouteRule | undefined;
    for (const [index, rule] of table.rules.entries()) {
      if (rule.sni === undefined) continue;
      const ok = host !== undefined && hostMatches(rule.sni, host);
      const conditions = [{ describe: `SNI ${rule.sni}`, ok }];
      if (ok && !chosen) {
        chosen = rule;
        trace.rules.push({ index, id: rule.id, result: 'matched', conditions, why: `the ClientHello names ${host}` });
      } else {
        trace.rules.push({ index, id: rule.id, result: ok ? 'shadowed' : 'no-match', conditions, why: ok ? `matches too, but ${chosen!.id} is more specific` : host === undefined ? 'the client sends no SNI' : `${host} is not ${rule.sni}` });
      }
    }
    const fallbackIndex = table.rules.findIndex((rule) => rule.sni === undefined);
    if (fallbackIndex >= 0) {
      const fallback = table.rules[fallbackIndex]!;
      trace.rules.push({ index: fallbackIndex, id: fallback.id, result: chosen ? 'not-checked' : 'matched', conditions: [], why: chosen ? 'a TCPRoute takes connections no TLSRoute takes' : 'no TLSRoute takes this SNI: the TCPRoute takes the connection' });
      chosen ??= fallback;
    }
    if (!chosen) {
      trace.verdict = {
        outcome: 'no-route',
        status: 502,
        reason: ErrorCodes.NO_ROUTE,
        summary: host === undefined ? `${table.key} routes TLS by SNI and the client sends none` : `no TLSRoute of ${table.key} serves ${host}: the connection is refused`,
      };
    }
    return chosen;
  }
  const rule = tcpRuleOf(table);
  table.rules.forEach((r, index) =>
    trace.rules.push({ index, id: r.id, result: r === rule ? 'matched' : 'not-checked', conditions: [], why: r === rule ? 'an opaque connection takes the catch-all rule (else the first)' : 'opaque connections have no request to match' }),
  );
  if (!rule) trace.verdict = { outcome: 'no-route', status: 502, reason: ErrorCodes.NO_ROUTE, summary: `${table.key} has no route rule` };
  return rule;
}

// ---- what the rule does ----------------------------------------------------------

function describeModifier(modifier: HeaderModifier): string {
  const parts = [
    ...(modifier.set ?? []).map((h) => `set ${h.name}: ${h.value}`),
    ...(modifier.add ?? []).map((h) => `add ${h.name}: ${h.value}`),
    ...(modifier.remove ?? []).map((name) => `remove ${name}`),
  ];
  return parts.join('; ') || 'no change';
}

function explainFilters(filters: readonly HttpFilter[], scope: string, rule: HttpRouteRule, req: ParsedRequest, trace: ExplainTrace): ExplainFilter[] {
  // In the order the proxy's stack runs them (outbound/stack.ts), whatever the order in the route.
  const order: HttpFilter['type'][] = ['CORS', 'RequestHeaderModifier', 'URLRewrite', 'ResponseHeaderModifier', 'RequestRedirect', 'FaultInjection', 'Transformation', 'GraphQL', 'Portal', 'RequestMirror'];
  const sorted = [...filters].sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
  return sorted.map((filter): ExplainFilter => {
    switch (filter.type) {
      case 'RequestHeaderModifier':
        return { type: filter.type, scope, describe: `request headers: ${describeModifier(filter.modifier)}`, config: filter.modifier };
      case 'ResponseHeaderModifier':
        return { type: filter.type, scope, describe: `response headers: ${describeModifier(filter.modifier)}`, config: filter.modifier };
      case 'URLRewrite': {
        const parts: string[] = [];
        if (filter.rewrite.hostname) parts.push(`Host becomes ${filter.rewrite.hostname}`);
        if (filter.rewrite.path) parts.push(`path becomes ${compilePathModifier(filter.rewrite.path, rule.match)(req.path)}`);
        return { type: filter.type, scope, describe: `URL rewrite (${filter.rewrite.path ? `${filter.rewrite.path.type} "${filter.rewrite.path.value}"` : 'hostname only'})`, effect: parts.join('; '), config: filter.rewrite };
      }
      case 'RequestRedirect': {
        const locate = compileLocation(filter.redirect, rule.match);
        const port = trace.request.port;
        const location = locate({ scheme: req.scheme === 'https' ? 'https' : 'http', headers: req.headers, req: { headers: req.headers }, addressedPort: port, targetPort: port, path: req.path });
        return { type: filter.type, scope, describe: `redirect ${filter.redirect.statusCode}`, effect: `Location: ${location}`, config: filter.redirect };
      }
      case 'RequestMirror':
        return {
          type: filter.type,
          scope,
          describe: filter.mirror.backend ? `mirror ${filter.mirror.percent} % of requests to ${filter.mirror.backend} (responses discarded)` : 'mirror to a backend that could not be resolved: nothing is mirrored',
          config: filter.mirror,
        };
      case 'CORS': {
        const cors = filter.cors;
        const origin = req.headers.origin;
        const preflight = req.method === 'OPTIONS' && origin !== undefined && req.headers['access-control-request-method'] !== undefined;
        return {
          type: filter.type,
          scope,
          describe: `CORS: origins ${cors.allowOrigins.join(', ')}; methods ${cors.allowMethods.join(', ') || 'none'}`,
          effect: preflight ? 'this is a preflight: the proxy answers it itself' : origin === undefined ? 'the request has no Origin: CORS does not apply' : `Origin ${origin}: CORS headers on the response when it is allowed`,
          config: cors,
        };
      }
      case 'FaultInjection': {
        const fault = filter.fault;
        const applies = fault.headers ? compileMatch({ headers: fault.headers }, `FaultInjection ${fault.name}.headers`)(req.match) : true;
        const parts: string[] = [];
        if (fault.delay) parts.push(`delay ${fault.delay.ms} ms for ${fault.delay.percent} %`);
        if (fault.abort) parts.push(`abort with ${fault.abort.httpStatus ?? `grpc-status ${fault.abort.grpcStatus}`} for ${fault.abort.percent} %`);
        return {
          type: filter.type,
          scope,
          describe: `FaultInjection ${fault.name}: ${parts.join(', ') || 'nothing'}`,
          effect: fault.headers ? (applies ? 'the request has the headers it applies to' : 'the request lacks the headers it applies to: no fault') : 'applies to every request',
          config: fault,
        };
      }
      case 'Portal':
        return {
          type: filter.type,
          scope,
          describe: `ApiPortal ${filter.portal.name}: the proxy serves its pages`,
          effect: `publishes ${filter.portal.apis.map((a) => a.name).join(', ')}`,
          config: { name: filter.portal.name, apis: filter.portal.apis.map((a) => a.name) },
        };
      case 'Transformation': {
        const t = filter.transformation;
        const sides = (['request', 'response'] as const).flatMap((side) => {
          const edits = t[side];
          if (!edits) return [];
          const parts = [
            ...(edits.headers ? [...edits.headers.remove.map((n) => `remove ${n}`), ...edits.headers.set.map((h) => `set ${h.name}`), ...edits.headers.add.map((h) => `add ${h.name}`)] : []),
            ...(edits.body ? ['json' in edits.body ? 'a new JSON body' : `a new ${edits.body.contentType} body`] : []),
          ];
          return [`${side}: ${parts.join(', ')}`];
        });
        return {
          type: filter.type,
          scope,
          describe: `Transformation ${t.name}: ${sides.join('; ')}`,
          effect: t.extract.length > 0 ? `extracts ${t.extract.map((e) => e.name).join(', ')} from the request` : 'rewrites from the exchange itself',
          config: t,
        };
      }
      case 'GraphQL': {
        const api = filter.graphql;
        const calls = Object.entries(api.resolvers).map(([field, r]) => `${field} → ${r.method} http://${r.host}${r.path}`);
        return {
          type: filter.type,
          scope,
          describe: `GraphQLApi ${api.name}: the proxy answers GraphQL itself`,
          effect: calls.length > 0 ? `resolvers call ${calls.join('; ')}` : 'no field calls a service',
          config: { name: api.name, resolvers: api.resolvers, maxDepth: api.maxDepth, introspection: api.introspection, timeoutMs: api.timeoutMs },
        };
      }
    }
  });
}

/** The parts of this request's bucket key, as the rate limit layer builds them, and the key itself (undefined when a part is unknowable here). */
function rateLimitKey(limit: SnapshotRateLimit, rule: HttpRouteRule, req: ParsedRequest, sourceIdentity: string): { parts: string[]; key: string | undefined } {
  const parts: string[] = [];
  const values: string[] = [];
  let known = true;
  for (const d of limit.descriptors) {
    switch (d.type) {
      case 'Route': {
        const value = rule.id.split('/').slice(0, 2).join('/');
        parts.push(`Route ${value}`);
        values.push(value);
        break;
      }
      case 'Service': {
        const value = [...new Set(rule.backends.map((b) => baseBackendKey(b.backend ?? '')))].join(',');
        parts.push(`Service ${value}`);
        values.push(value);
        break;
      }
      case 'SourceIdentity':
        parts.push(`SourceIdentity ${sourceIdentity}`);
        values.push(sourceIdentity);
        break;
      case 'ClientIP':
        parts.push('ClientIP (the caller\'s address)');
        known = false;
        break;
      case 'RequestPrincipal':
        parts.push('RequestPrincipal (the verified token\'s or API key\'s principal)');
        known = false;
        break;
      case 'Header': {
        const value = (req.headers[d.header] ?? '').slice(0, MAX_KEY_VALUE_LENGTH);
        parts.push(`Header ${d.header}=${value}`);
        values.push(value);
        break;
      }
    }
  }
  return { parts, key: known ? values.join('\u0000') : undefined };
}

function explainRateLimits(rule: HttpRouteRule, req: ParsedRequest, source: ExplainSource, live: LiveProxyState | undefined): ExplainRateLimit[] {
  const [ns, name] = source.name.split('/');
  const sourceIdentity = source.kind === 'gateway' ? `${ns}/${gatewayWorkloadName(name ?? '')}` : source.name;
  return (rule.rateLimits ?? []).map((limit) => {
    const { parts, key } = rateLimitKey(limit, rule, req, sourceIdentity);
    const out: ExplainRateLimit = { id: limit.id, policy: limit.policy, scope: limit.scope, requests: limit.requests, intervalMs: limit.intervalMs, burst: limit.burst, key: parts };
    const state = live?.rateLimits.find((r) => r.id === limit.id);
    if (state && key !== undefined) {
      const bucket = state.buckets.find((b) => b.key === key);
      if (bucket) {
        out.tokensLeft = bucket.tokens;
        out.exhausted = bucket.tokens < 1;
      }
    }
    return out;
  });
}

function explainHttpRule(rule: HttpRouteRule, req: ParsedRequest, snapshot: ProxySnapshot, source: ExplainSource, live: LiveProxyState | undefined, trace: ExplainTrace): void {
  const filters = explainFilters(rule.filters, 'rule', rule, req, trace);
  const rateLimits = explainRateLimits(rule, req, source, live);
  const faults = rule.filters.flatMap((f) => (f.type === 'FaultInjection' ? [f.fault] : []));
  trace.rule = { id: rule.id, filters, rateLimits, faults };
  if (rule.sessionPersistence) {
    trace.rule.sessionPersistence = rule.sessionPersistence;
    const sp = rule.sessionPersistence;
    const carries = sp.type === 'Header' ? req.headers[sp.name.toLowerCase()] !== undefined : (req.headers.cookie ?? '').split(';').some((c) => c.trim().startsWith(`${sp.name}=`));
    filters.push({
      type: 'SessionPersistence',
      scope: 'rule',
      describe: `session persistence by ${sp.type.toLowerCase()} ${sp.name}${sp.absoluteTimeoutMs ? `, ends after ${sp.absoluteTimeoutMs} ms` : ''}${sp.idleTimeoutMs ? `, or ${sp.idleTimeoutMs} ms idle` : ''}`,
      effect: carries ? `the request brings a ${sp.type.toLowerCase()} ${sp.name}: while valid, it goes back to the backend and endpoint it names` : `no ${sp.name} yet: the answer starts a session pinned to the endpoint that serves it`,
      config: sp,
    });
  }

  // Timeouts and retries: what applies whatever happens below.
  const grpcMs = grpcTimeoutMs(req.headers['grpc-timeout']);
  const requestMs = rule.timeouts?.requestMs;
  const effective = requestMs !== undefined && grpcMs !== undefined ? Math.min(requestMs, grpcMs) : (requestMs ?? grpcMs);
  trace.timeouts = {
    ...(requestMs !== undefined ? { requestMs } : {}),
    ...(rule.timeouts?.backendRequestMs !== undefined ? { backendRequestMs: rule.timeouts.backendRequestMs } : {}),
    ...(grpcMs !== undefined ? { grpcTimeoutMs: grpcMs } : {}),
    ...(effective !== undefined ? { effectiveMs: effective } : {}),
    summary:
      [
        effective !== undefined ? `gives up after ${effective} ms with 504 ${ErrorCodes.TIMEOUT}${grpcMs !== undefined && (requestMs === undefined || grpcMs < requestMs) ? ' (the caller\'s grpc-timeout)' : ''}` : 'no request timeout',
        rule.timeouts?.backendRequestMs !== undefined ? `each attempt at most ${rule.timeouts.backendRequestMs} ms` : undefined,
      ]
        .filter(Boolean)
        .join('; '),
  };
  const retry = rule.retry;
  trace.retry = {
    ...(retry ? { policy: retry } : {}),
    attempts: retry ? 1 + retry.attempts : CONNECT_ATTEMPTS,
    budgets: [],
    summary: retry
      ? `up to ${retry.attempts} retr${retry.attempts === 1 ? 'y' : 'ies'} on ${retry.codes.length ? retry.codes.join(', ') : 'no status'} and connect failures, backoff from ${retry.backoffMs} ms doubling`
      : `no retry policy: a refused connection is tried once more on another endpoint (${CONNECT_ATTEMPTS} attempts in all)`,
  };

  // The proxy's order: rate limits, CORS preflight, redirect, faults, then backends (outbound/stack.ts ruleStack).
  const exhausted = rateLimits.find((l) => l.exhausted);
  if (exhausted) {
    trace.verdict = { outcome: 'denied', status: 429, reason: ErrorCodes.RATE_LIMITED, summary: `denied by policy: rate limit ${exhausted.policy} (${exhausted.requests} per ${exhausted.intervalMs} ms) has no token left for this request's key` };
  } else {
    for (const limit of rateLimits) {
      if (limit.exhausted === undefined) trace.risks.push({ reason: ErrorCodes.RATE_LIMITED, status: 429, why: `rate limit ${limit.policy}: ${limit.requests} per ${limit.intervalMs} ms, burst ${limit.burst}, per ${limit.key.join(' + ') || 'target'}${trace.live.used ? '' : ' (its bucket was not read)'}` });
      else trace.risks.push({ reason: ErrorCodes.RATE_LIMITED, status: 429, why: `rate limit ${limit.policy}: ${limit.tokensLeft} token(s) left for this key` });
    }
  }
  const preflight = filters.find((f) => f.type === 'CORS' && f.effect?.startsWith('this is a preflight'));
  const redirect = filters.find((f) => f.type === 'RequestRedirect');
  const faultAbort = blockingFault(rule.filters, req);
  explainBackends(rule, req, snapshot, live, trace);
  for (const b of trace.backends) {
    if (b.traffic?.retryBudget) trace.retry.budgets.push({ backend: b.key ?? '?', ...b.traffic.retryBudget });
  }
  if (trace.verdict.outcome === 'denied') return;
  if (preflight) {
    trace.verdict = { outcome: 'preflight', status: 200, summary: 'a CORS preflight: the proxy answers it itself, nothing reaches a backend' };
    return;
  }
  if (redirect) {
    const { statusCode } = redirect.config as RequestRedirect;
    trace.verdict = { outcome: 'redirected', status: statusCode, summary: `the proxy answers ${statusCode}, ${redirect.effect}` };
    return;
  }
  for (const fault of rule.filters.flatMap((f) => (f.type === 'FaultInjection' ? [f.fault] : []))) {
    const applies = fault.headers ? compileMatch({ headers: fault.headers }, `FaultInjection ${fault.name}.headers`)(req.match) : true;
    if (!applies) continue;
    if (fault.delay && fault.delay.percent > 0) trace.risks.push({ percent: fault.delay.percent, why: `FaultInjection ${fault.name} delays ${fault.delay.percent} % of such requests by ${fault.delay.ms} ms` });
    if (fault.abort && fault.abort.percent > 0 && fault !== faultAbort) {
      trace.risks.push({ reason: ErrorCodes.FAULT_INJECTED, status: fault.abort.httpStatus ?? 500, percent: fault.abort.percent, why: `FaultInjection ${fault.name} aborts ${fault.abort.percent} % of such requests` });
    }
  }
  if (!faultAbort) {
    const portal = rule.filters.find((f) => f.type === 'Portal');
    if (portal) {
      trace.verdict = { outcome: 'portal', status: 200, summary: `the proxy serves the pages of ApiPortal ${portal.portal.name}` };
      return;
    }
    const graphql = rule.filters.find((f) => f.type === 'GraphQL');
    if (graphql) {
      const api = graphql.graphql;
      const services = [...new Set(Object.values(api.resolvers).map((r) => r.backend))];
      trace.verdict = {
        outcome: 'graphql',
        status: 200,
        summary: `the proxy answers it as GraphQLApi ${api.name}${services.length > 0 ? `, calling ${services.join(', ')} for the fields the query asks for` : ''}`,
      };
      return;
    }
  }
  if (faultAbort) {
    const grpc = (req.headers['content-type'] ?? '').startsWith('application/grpc');
    const abort = faultAbort.abort!;
    trace.verdict = {
      outcome: 'denied',
      status: grpc && abort.grpcStatus !== undefined ? 200 : (abort.httpStatus ?? 500),
      reason: ErrorCodes.FAULT_INJECTED,
      summary: `denied by policy: FaultInjection ${faultAbort.name} aborts 100 % of such requests${grpc && abort.grpcStatus !== undefined ? ` (grpc-status ${abort.grpcStatus})` : ` with ${abort.httpStatus ?? 500}`}`,
    };
    return;
  }
  finishVerdict(trace, `forwarded to ${describeBackends(trace.backends)}`);
}

/** A FaultInjection that aborts every request it applies to, when this request is one. */
function blockingFault(filters: readonly HttpFilter[], req: ParsedRequest) {
  for (const f of filters) {
    if (f.type !== 'FaultInjection' || !f.fault.abort || f.fault.abort.percent < 100) continue;
    const applies = f.fault.headers ? compileMatch({ headers: f.fault.headers }, `FaultInjection ${f.fault.name}.headers`)(req.match) : true;
    if (applies) return f.fault;
  }
  return undefined;
}

// ---- backends and endpoints -------------------------------------------------------

function explainBackends(rule: HttpRouteRule, req: ParsedRequest, snapshot: ProxySnapshot, live: LiveProxyState | undefined, trace: ExplainTrace): void {
  const total = rule.backends.reduce((sum, b) => sum + (b.weight > 0 ? b.weight : 0), 0);
  trace.backends = rule.backends.map((wb) => explainBackend(wb, total, rule, req, snapshot, live, trace));
}

function explainBackend(wb: WeightedBackend, total: number, rule: HttpRouteRule, req: ParsedRequest, snapshot: ProxySnapshot, live: LiveProxyState | undefined, trace: ExplainTrace): ExplainBackend {
  const percent = total > 0 && wb.weight > 0 ? Math.round((wb.weight / total) * 10000) / 100 : 0;
  const backend: SnapshotBackend | undefined = wb.backend === undefined ? undefined : snapshot.backends[wb.backend];
  const out: ExplainBackend = { weight: wb.weight, percent, filters: [], endpoints: [] };
  if (wb.backend !== undefined) out.key = wb.backend;
  if (!backend) {
    out.problem = `the backendRef could not be resolved${wb.backend ? ` (${wb.backend} does not exist)` : ''}: 500 ${ErrorCodes.BACKEND_NOT_FOUND}`;
    return out;
  }
  out.service = { namespace: backend.namespace, name: backend.service, port: backend.port };
  out.protocol = backend.protocol;
  out.lb = backend.lb;
  if (backend.variant) out.variant = backend.variant;
  if (backend.traffic) out.traffic = backend.traffic;
  if (wb.filters.length) out.filters = explainFilters(wb.filters, backend.key, rule, req, trace);
  const liveBackend: LiveBackendState | undefined = live?.backends.find((b) => b.key === backend.key);
  out.endpoints = backend.endpoints.map((e): ExplainEndpoint => {
    const endpoint: ExplainEndpoint = { id: e.id, address: e.address, port: e.port, registered: true, available: true, state: 'ready (registered with the control plane)' };
    if (e.tunnelPort !== undefined) endpoint.tunnelPort = e.tunnelPort;
    if (e.identity !== undefined) endpoint.identity = e.identity;
    if (e.locality) endpoint.locality = e.locality;
    const state = liveBackend?.endpoints.find((s) => s.id === e.id);
    if (state) {
      endpoint.live = {
        ejections: state.ejections,
        healthy: state.healthy,
        inFlight: state.inFlight,
        consecutive5xx: state.consecutive5xx,
        consecutiveGatewayErrors: state.consecutiveGatewayErrors,
        consecutiveConnectFailures: state.consecutiveConnectFailures,
      };
      if (state.ejectedForMs > 0) endpoint.live.ejectedForMs = state.ejectedForMs;
      const why: string[] = [];
      if (state.ejectedForMs > 0) why.push(`ejected by outlier detection for ${Math.ceil(state.ejectedForMs / 1000)} s more (ejection ${state.ejections})`);
      if (!state.healthy) why.push('failing its active health check');
      endpoint.available = why.length === 0;
      endpoint.state = why.length ? why.join(', ') : `ready, ${state.inFlight} in flight`;
    }
    return endpoint;
  });
  const breaker = backend.traffic?.circuitBreaker;
  if (breaker && (breaker.maxRequests !== undefined || breaker.maxPendingRequests !== undefined || breaker.maxConnections !== undefined || breaker.maxRetries !== undefined)) {
    const cb: NonNullable<ExplainBackend['circuitBreaker']> = { ...breaker, open: false };
    if (liveBackend) {
      cb.live = { requests: liveBackend.requests, pending: liveBackend.pending, retries: liveBackend.retries };
      cb.open = breaker.maxRequests !== undefined && liveBackend.requests >= breaker.maxRequests;
    }
    out.circuitBreaker = cb;
  }
  if (wb.weight <= 0) out.problem = 'weight 0: never chosen';
  else if (backend.endpoints.length === 0) out.problem = `no ready endpoint: no instance of ${backend.namespace}/${backend.service} is registered and ready; 503 ${ErrorCodes.NO_HEALTHY_UPSTREAM}`;
  else if (out.circuitBreaker?.open) out.problem = `circuit breaker open: ${liveBackend!.requests} requests in flight, its limit maxRequests is ${breaker!.maxRequests}; 503 ${ErrorCodes.CIRCUIT_OPEN}`;
  else if (liveBackend && out.endpoints.every((e) => !e.available)) {
    trace.risks.push({ why: `every endpoint of ${backend.key} is ejected or failing health checks: the balancer sends to all of them anyway (panic mode), expect failures` });
  } else if (liveBackend && out.endpoints.some((e) => !e.available)) {
    const unavailable = out.endpoints.filter((e) => !e.available).map((e) => e.id);
    trace.risks.push({ why: `${backend.key}: ${unavailable.join(', ')} ${unavailable.length === 1 ? 'is' : 'are'} out of rotation; the other endpoints take the traffic` });
  }
  if (breaker?.maxPendingRequests !== undefined && liveBackend && liveBackend.pending >= breaker.maxPendingRequests && breaker.maxConnections !== undefined) {
    trace.risks.push({ reason: ErrorCodes.CIRCUIT_OPEN, status: 503, why: `${backend.key}: ${liveBackend.pending} requests wait for a connection, the limit maxPendingRequests: a request that must wait is refused` });
  }
  return out;
}

function describeBackends(backends: readonly ExplainBackend[]): string {
  const used = backends.filter((b) => b.weight > 0);
  if (used.length === 0) return 'no backend';
  return used.map((b) => `${b.key ?? '(unresolved)'}${used.length > 1 ? ` (${b.percent} %)` : ''}`).join(', ');
}

/** The verdict once the request reaches the backends: what every chosen backend's problem says, else forwarded with risks for the failing shares. */
function finishVerdict(trace: ExplainTrace, forwarded: string): void {
  const used = trace.backends.filter((b) => b.weight > 0);
  if (used.length === 0) {
    trace.verdict = {
      outcome: 'backend-not-found',
      status: 500,
      reason: ErrorCodes.BACKEND_NOT_FOUND,
      summary: trace.backends.length === 0 ? 'the rule has no backends: the proxy answers 500' : 'every backend of the rule has weight 0: the proxy answers 500',
    };
    return;
  }
  const failing = used.filter((b) => b.problem !== undefined);
  const verdictOf = (b: ExplainBackend): ExplainRisk & { outcome: ExplainTrace['verdict']['outcome'] } => {
    if (!b.service) return { outcome: 'backend-not-found', status: 500, reason: ErrorCodes.BACKEND_NOT_FOUND, why: b.problem! };
    if (b.endpoints.length === 0) return { outcome: 'no-healthy-endpoint', status: 503, reason: ErrorCodes.NO_HEALTHY_UPSTREAM, why: b.problem! };
    return { outcome: 'circuit-open', status: 503, reason: ErrorCodes.CIRCUIT_OPEN, why: b.problem! };
  };
  if (failing.length === used.length) {
    const first = verdictOf(failing[0]!);
    trace.verdict = { outcome: first.outcome, status: first.status!, reason: first.reason!, summary: `${failing[0]!.key ?? 'the backend'}: ${first.why}` };
    for (const other of failing.slice(1)) {
      const v = verdictOf(other);
      trace.risks.push({ reason: v.reason!, status: v.status!, percent: other.percent, why: `${other.key ?? '(unresolved)'}: ${v.why}` });
    }
    return;
  }
  for (const b of failing) {
    const v = verdictOf(b);
    trace.risks.push({ reason: v.reason!, status: v.status!, percent: b.percent, why: `${b.key ?? '(unresolved)'} (${b.percent} % of requests): ${v.why}` });
  }
  trace.verdict = { outcome: 'forwarded', summary: forwarded };
}
