// Authorization layer: AuthorizationPolicies compiled once per snapshot, evaluated per request (403) or connection (closed), with AUDIT and DENY decisions written to the audit log; CUSTOM policies ask an external service first (ext-authz.ts).
import { ErrorCodes, REASON_HEADER } from '../../../api/errors.ts';
import { compileAuthorization, compileCustomAuthorization, type AuthzDecision, type AuthzEvaluator, type AuthzRequest } from '../../../api/authorization.ts';
import type { SnapshotAuthorization, SnapshotAuthzCustomPolicy } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import type { AuditRecord, AuditSink } from '../../audit-log.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange, HttpExchange, TcpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import type { SideCallContext } from '../side-call/index.ts';
import { extAuthzChecker, type ExtAuthzVerdict } from './ext-authz.ts';

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
  /** Where CUSTOM policies' checks are sent; absent, every check fails (failOpen or statusOnError). */
  extAuthz?: SideCallContext | undefined;
}

/** The CUSTOM half of a compiled authorization: the policies a request matches, and how their providers are asked. */
interface CustomGuard {
  matching: (request: AuthzRequest) => SnapshotAuthzCustomPolicy[];
  check: ReturnType<typeof extAuthzChecker>;
}

function customGuard(authorization: SnapshotAuthorization, context: AuthorizationContext): CustomGuard | undefined {
  const matching = compileCustomAuthorization(authorization);
  const providers = (authorization.custom ?? []).flatMap((policy) => (policy.provider ? [policy.provider] : []));
  return matching && { matching, check: extAuthzChecker(context.extAuthz, providers) };
}

/** Inbound HTTP: the target carries the workload's policies. */
export function authorizeHttp(context: AuthorizationContext): Layer<AuthorizationTarget, HttpExchange> {
  return (target, next) => (target.authorization ? httpGuard(compileAuthorization(target.authorization), customGuard(target.authorization, context), context, next) : next);
}

/** Inbound TCP (CONNECT): a denied connection is refused before the app is dialled, and the caller's connection closed. */
export function authorizeTcp(context: AuthorizationContext): Layer<AuthorizationTarget, TcpExchange> {
  return (target, next) => (target.authorization ? tcpGuard(compileAuthorization(target.authorization, true), compileCustomAuthorization(target.authorization, true), context, next) : next);
}

/**
 * A gateway's policies apply to every virtual host: compiled once here, and
 * the returned layers wrap each host's stack (they ignore their target).
 */
export function gatewayAuthorization(authorization: SnapshotAuthorization | undefined, context: AuthorizationContext): { http: Layer<unknown, HttpExchange>; tcp: Layer<unknown, TcpExchange> } {
  if (!authorization) return { http: (_target, next) => next, tcp: (_target, next) => next };
  const http = compileAuthorization(authorization);
  const custom = customGuard(authorization, context);
  const tcp = compileAuthorization(authorization, true);
  const tcpCustom = compileCustomAuthorization(authorization, true);
  return { http: (_target, next) => httpGuard(http, custom, context, next), tcp: (_target, next) => tcpGuard(tcp, tcpCustom, context, next) };
}

function httpGuard(evaluate: AuthzEvaluator, custom: CustomGuard | undefined, context: AuthorizationContext, next: Step<HttpExchange>): Step<HttpExchange> {
  const decide = (ex: HttpExchange, request: AuthzRequest): Promise<void> => {
    const decision = evaluate(request);
    audit(decision, request, ex, context);
    if (!decision.allowed) return Promise.reject(proxyError(ErrorCodes.RBAC_DENIED, `RBAC: access denied (${decision.why})`, 403));
    return next(ex);
  };
  if (!custom) return (ex) => decide(ex, httpRequestOf(ex));
  return async (ex) => {
    const request = httpRequestOf(ex);
    // CUSTOM first (Istio's order): each matching policy's provider must allow; then AUDIT, DENY and ALLOW as always.
    for (const policy of custom.matching(request)) {
      const verdict: ExtAuthzVerdict = policy.provider
        ? await custom.check(ex, policy.provider)
        : { allowed: false, why: `its extensionProvider is not defined`, status: 403, headers: {}, body: Buffer.from('RBAC: access denied\n') };
      if (!verdict.allowed) {
        auditCustom(policy.name, verdict.why, request, ex, context);
        return answerDenied(ex, policy.name, verdict);
      }
    }
    return decide(ex, request);
  };
}

/** The provider's answer to a denied request, passed to the caller as it gave it (status, body, the headers it may pass), marked with weft-reason. */
function answerDenied(ex: HttpExchange, policy: string, verdict: Extract<ExtAuthzVerdict, { allowed: false }>): void {
  const why = `denied by CUSTOM policy ${policy}: ${verdict.why}`;
  // A gRPC caller understands only gRPC statuses: the proxy's own answer, mapped from the status.
  if (ex.grpc) throw proxyError(ErrorCodes.EXT_AUTHZ_DENIED, why, verdict.status);
  ex.proxyReason = ErrorCodes.EXT_AUTHZ_DENIED;
  ex.proxyReasonText = why;
  ex.res.writeHead(verdict.status, { ...verdict.headers, 'content-length': String(verdict.body.length), [REASON_HEADER]: ErrorCodes.EXT_AUTHZ_DENIED });
  if (ex.method === 'HEAD') ex.res.end();
  else ex.res.end(verdict.body);
}

function tcpGuard(evaluate: AuthzEvaluator, custom: ((request: AuthzRequest) => SnapshotAuthzCustomPolicy[]) | undefined, context: AuthorizationContext, next: Step<TcpExchange>): Step<TcpExchange> {
  return (ex) => {
    const request: AuthzRequest = { peerIdentity: ex.peerIdentity, sourceIp: socketAddress(ex.socket), port: ex.targetPort };
    // An HTTP check cannot judge an opaque connection: one a CUSTOM policy matches is refused.
    const customPolicy = custom?.(request)[0];
    if (customPolicy) {
      const why = `CUSTOM policy ${customPolicy.name} matches, and its HTTP check cannot judge an opaque TCP connection`;
      auditCustom(customPolicy.name, why, request, ex, context);
      return Promise.reject(proxyError(ErrorCodes.RBAC_DENIED, `RBAC: access denied (${why})`, 403));
    }
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

/** A CUSTOM policy's denial, in the audit log like the others'. */
function auditCustom(policy: string, why: string, request: AuthzRequest, ex: Exchange, context: AuthorizationContext): void {
  context.audit.write({ ...auditBase(request, ex, context), policy, action: 'CUSTOM', decision: 'deny', why } satisfies AuditRecord);
}

function auditBase(request: AuthzRequest, ex: Exchange, context: AuthorizationContext) {
  return {
    time: new Date(context.clock.now()).toISOString(),
    principal: ex.peerIdentity ?? null,
    ...(request.http?.requestPrincipal !== undefined ? { requestPrincipal: request.http.requestPrincipal } : {}),
    sourceIp: request.sourceIp ?? null,
    ...(request.http ? { method: request.http.method, host: request.http.host, path: request.http.path } : {}),
    port: request.port,
    at: context.at,
    proxy: context.proxy,
  };
}

/** One line per AUDIT policy that matched, and one per denial (by a DENY policy, for want of a matching ALLOW, or by the mesh default). */
function audit(decision: AuthzDecision, request: AuthzRequest, ex: Exchange, context: AuthorizationContext): void {
  if (decision.audited.length === 0 && decision.allowed) return;
  const base = auditBase(request, ex, context);
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
