// Authorization layer: AuthorizationPolicies compiled once per snapshot, evaluated per request (403) or connection (closed), with AUDIT and DENY decisions written to the audit log.
import { ErrorCodes } from '../../../api/errors.ts';
import { compileAuthorization, type AuthzDecision, type AuthzEvaluator, type AuthzRequest } from '../../../api/authorization.ts';
import type { SnapshotAuthorization } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import type { AuditRecord, AuditSink } from '../../audit-log.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange, HttpExchange, TcpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';

export interface AuthorizationTarget {
  /** The policies this proxy enforces; absent: nothing to enforce (the layer is left out). */
  authorization?: SnapshotAuthorization | undefined;
}

export interface AuthorizationContext {
  audit: AuditSink;
  clock: Clock;
  /** Where the decisions are made, for the audit log. */
  at: 'inbound' | 'gateway';
  /** "ns/workload" or "ns/gateway", for the audit log. */
  proxy: string;
}

/** Inbound HTTP: the target carries the workload's policies. */
export function authorizeHttp(context: AuthorizationContext): Layer<AuthorizationTarget, HttpExchange> {
  return (target, next) => (target.authorization ? httpGuard(compileAuthorization(target.authorization), context, next) : next);
}

/** Inbound TCP (CONNECT): a denied connection is refused before the app is dialled, and the caller's connection closed. */
export function authorizeTcp(context: AuthorizationContext): Layer<AuthorizationTarget, TcpExchange> {
  return (target, next) => (target.authorization ? tcpGuard(compileAuthorization(target.authorization, true), context, next) : next);
}

/**
 * A gateway's policies apply to every virtual host: compiled once here, and
 * the returned layers wrap each host's stack (they ignore their target).
 */
export function gatewayAuthorization(authorization: SnapshotAuthorization | undefined, context: AuthorizationContext): { http: Layer<unknown, HttpExchange>; tcp: Layer<unknown, TcpExchange> } {
  if (!authorization) return { http: (_target, next) => next, tcp: (_target, next) => next };
  const http = compileAuthorization(authorization);
  const tcp = compileAuthorization(authorization, true);
  return { http: (_target, next) => httpGuard(http, context, next), tcp: (_target, next) => tcpGuard(tcp, context, next) };
}

function httpGuard(evaluate: AuthzEvaluator, context: AuthorizationContext, next: Step<HttpExchange>): Step<HttpExchange> {
  return (ex) => {
    const request = httpRequestOf(ex);
    const decision = evaluate(request);
    audit(decision, request, ex, context);
    if (!decision.allowed) return Promise.reject(proxyError(ErrorCodes.RBAC_DENIED, `RBAC: access denied (${decision.why})`, 403));
    return next(ex);
  };
}

function tcpGuard(evaluate: AuthzEvaluator, context: AuthorizationContext, next: Step<TcpExchange>): Step<TcpExchange> {
  return (ex) => {
    const request: AuthzRequest = { peerIdentity: ex.peerIdentity, sourceIp: socketAddress(ex.socket), port: ex.targetPort };
    const decision = evaluate(request);
    audit(decision, request, ex, context);
    if (!decision.allowed) return Promise.reject(proxyError(ErrorCodes.RBAC_DENIED, `RBAC: access denied (${decision.why})`, 403));
    return next(ex);
  };
}

function httpRequestOf(ex: HttpExchange): AuthzRequest {
  const headers = ex.headers;
  const host = headers.host;
  return {
    peerIdentity: ex.peerIdentity,
    sourceIp: ex.req.socket?.remoteAddress,
    port: ex.targetPort,
    http: {
      method: ex.method,
      host: typeof host === 'string' ? host : '',
      path: ex.pathname,
      header: (name) => {
        const value = headers[name];
        return Array.isArray(value) ? value.join(', ') : value;
      },
      requestPrincipal: ex.requestPrincipal,
      jwtClaims: ex.jwtClaims,
      jwtAudiences: ex.jwtAudiences,
    },
  };
}

/** The peer's address: a socket's, or an HTTP/2 stream's session socket's (CONNECT streams on a shared tunnel). */
function socketAddress(socket: unknown): string | undefined {
  const direct = (socket as { remoteAddress?: string }).remoteAddress;
  if (direct !== undefined) return direct;
  return (socket as { session?: { socket?: { remoteAddress?: string } } }).session?.socket?.remoteAddress;
}

/** One line per AUDIT policy that matched, and one per denial (by a DENY policy, for want of a matching ALLOW, or by the mesh default). */
function audit(decision: AuthzDecision, request: AuthzRequest, ex: Exchange, context: AuthorizationContext): void {
  if (decision.audited.length === 0 && decision.allowed) return;
  const base = {
    time: new Date(context.clock.now()).toISOString(),
    principal: ex.peerIdentity ?? null,
    ...(request.http?.requestPrincipal !== undefined ? { requestPrincipal: request.http.requestPrincipal } : {}),
    sourceIp: request.sourceIp ?? null,
    ...(request.http ? { method: request.http.method, host: request.http.host, path: request.http.path } : {}),
    port: request.port,
    at: context.at,
    proxy: context.proxy,
  };
  const outcome = decision.allowed ? 'allow' : 'deny';
  for (const policy of decision.audited) {
    context.audit.write({ ...base, policy, action: 'AUDIT', decision: outcome, why: decision.why } satisfies AuditRecord);
  }
  if (!decision.allowed) {
    const record: AuditRecord = { ...base, action: decision.action ?? 'DEFAULT', decision: 'deny', why: decision.why };
    if (decision.policy !== undefined) record.policy = decision.policy;
    context.audit.write(record);
  }
}
