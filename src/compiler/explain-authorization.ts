// `weft explain`, authorization part: which RequestAuthentications read the request's token and which AuthorizationPolicies would allow or deny it, at the gateway it enters and at the workloads it reaches.
import { compileAuthorization, compileCustomAuthorization, type AuthzRequest } from '../api/authorization.ts';
import { ErrorCodes } from '../api/errors.ts';
import type { ExplainAuthentication, ExplainAuthorization, ExplainTrace, ExplainVerdict } from '../api/explain.ts';
import { gatewayWorkloadName, type ProxySnapshot, type SnapshotApiKeyRule, type SnapshotAuthorization, type SnapshotJwtRule } from '../api/snapshot.ts';
import { indexAuthorizationPolicies, workloadAuthorization } from './authorization.ts';
import { readTokens, type TokenReading, type TokenRequest } from './explain-authentication.ts';
import { inboundRequestAuthentication } from './request-authentication.ts';
import type { ExplainSource } from './explain.ts';
import { serviceNamespace } from './services.ts';
import type { CompilerInput } from './types.ts';

/**
 * Adds `trace.authorization` and, when a policy denies the request, turns a
 * "forwarded" verdict into "denied" (403 WEFT_ERR_RBAC_DENIED) naming the
 * policy. The caller's identity is the one its proxy would present: the
 * source workload's (or the gateway's) service account. Its address is the
 * request's `sourceIp`: the client's at a gateway, the calling instance's at
 * a sidecar's destinations. Where it is not known (not given, or the
 * workloads behind a gateway, which see the gateway's address), ipBlocks and
 * source.ip never match and their `not` forms always do; a note says so when
 * a policy there uses them.
 *
 * Before each proxy's policies, its RequestAuthentication rules read the
 * request's tokens (`trace.authentication`): decoded, never verified. A token
 * whose issuer, expiry (judged at `now`, epoch ms, when given) or audience
 * the proxy refuses whatever its signature turns the verdict into 401
 * WEFT_ERR_JWT_INVALID; otherwise requestPrincipals and JWT conditions are
 * evaluated with its unverified principal and claims, marked as such.
 */
export function explainAuthorization(trace: ExplainTrace, input: CompilerInput, snapshot: ProxySnapshot, source: ExplainSource, now?: number): void {
  if (trace.verdict.outcome !== 'forwarded' && trace.verdict.outcome !== 'denied') return;
  const results: ExplainAuthorization[] = [];
  const authentications: ExplainAuthentication[] = [];
  // What stops the request, in the order the proxies would: a gateway's authentication, its authorization, then each destination's.
  const stops: ExplainVerdict[] = [];
  const http = trace.entry?.protocol !== 'TCP' && trace.entry?.protocol !== 'TLS' && trace.entry?.protocol !== 'tcp' && !/^(tcp|tls):/i.test(trace.request.url);
  const q = trace.request.path.indexOf('?');
  const request = (peerIdentity: string | undefined, sourceIp: string | undefined, port: number, token: TokenReading['principal']): AuthzRequest => ({
    peerIdentity,
    sourceIp,
    port,
    ...(http
      ? {
          http: {
            method: trace.request.method,
            host: trace.request.headers.host ?? trace.request.host,
            path: q === -1 ? trace.request.path : trace.request.path.slice(0, q),
            header: (name: string) => trace.request.headers[name],
            ...(token ? { requestPrincipal: token.requestPrincipal, jwtClaims: token.claims, jwtAudiences: token.audiences } : {}),
          },
        }
      : {}),
  });
  /** Where a policy on addresses was evaluated without the caller's address: said in a note. */
  const addressUnknownAt: string[] = [];
  // What reaches the destinations: a gateway removes the tokens it verified unless its rule forwards them.
  let forwarded: TokenRequest = { headers: trace.request.headers, path: trace.request.path };
  const authenticate = (at: string, rules: readonly SnapshotJwtRule[] | undefined, keyRules: readonly SnapshotApiKeyRule[] | undefined, request: TokenRequest): TokenReading | undefined => {
    if (!http) return undefined;
    const reading = readTokens(at, rules ?? [], request, now, keyRules ?? []);
    if (!reading) return undefined;
    authentications.push(reading.authentication);
    if (reading.refusal) stops.push(reading.refusal);
    return reading;
  };
  const evaluate = (at: string, authorization: SnapshotAuthorization | undefined, principal: string | undefined, sourceIp: string | undefined, port: number, token: TokenReading['principal']) => {
    // An API key's client is checked; a token's principal is what the token claims.
    const unverified = token ? (token.checked ? { requestPrincipal: token.requestPrincipal } : { unverifiedRequestPrincipal: token.requestPrincipal }) : {};
    if (!authorization) {
      results.push({ at, ...(principal ? { principal } : {}), allowed: true, why: 'no AuthorizationPolicy applies', audited: [], ...unverified });
      return;
    }
    if (sourceIp === undefined && usesAddresses(authorization)) addressUnknownAt.push(at);
    const asked = request(principal, sourceIp, port, token);
    const decision = compileAuthorization(authorization, !http)(asked);
    const result: ExplainAuthorization = { at, allowed: decision.allowed, why: decision.why, audited: decision.audited, ...unverified };
    const external = compileCustomAuthorization(authorization, !http)?.(asked) ?? [];
    if (external.length > 0) {
      result.externalChecks = external.map((p) => ({ policy: p.name, ...(p.provider ? { provider: p.provider.name } : {}) }));
      result.why = `${external.map((p) => (p.provider ? `extension provider ${p.provider.name} decides first (CUSTOM policy ${p.name}; explain cannot ask it)` : `CUSTOM policy ${p.name} denies: its provider is not defined`)).join('; ')}; then: ${result.why}`;
      if (external.some((p) => !p.provider) || !http) result.allowed = false;
    }
    if (principal) result.principal = principal;
    if (decision.policy !== undefined) result.policy = decision.policy;
    results.push(result);
    if (!result.allowed) stops.push(authorizationStop(result));
  };

  if (source.kind === 'gateway' && snapshot.gateway) {
    const at = `gateway ${source.name}`;
    const reading = authenticate(at, snapshot.gateway.requestAuthentication, snapshot.gateway.apiKeys, forwarded);
    if (reading) forwarded = reading.forwarded;
    evaluate(at, snapshot.gateway.authorization, undefined, trace.request.sourceIp, trace.entry?.port ?? 0, reading?.principal);
  }

  const index = indexAuthorizationPolicies(input);
  const trustDomain = input.meshConfig?.spec?.trustDomain ?? 'cluster.local';
  const caller = callerIdentity(input, source, trustDomain);
  const seen = new Set<string>();
  for (const backend of trace.backends) {
    if (backend.weight <= 0 || !backend.service) continue;
    const { namespace, name, port } = backend.service;
    const service = input.services.find((s) => s.metadata.name === name && serviceNamespace(s) === namespace);
    const selector = service?.spec.selector ?? {};
    if (!service || Object.keys(selector).length === 0) continue;
    const servicePort = service.spec.ports.find((p) => p.port === port);
    const workloadPort = typeof servicePort?.targetPort === 'number' ? servicePort.targetPort : port;
    for (const workload of input.workloads) {
      if (serviceNamespace(workload) !== namespace) continue;
      // An endpoint (a Workload with an address) is served by the proxy of its template, when it names one.
      const templateName = workload.spec?.address ? (workload.metadata.labels?.['weft.dev/workload'] ?? workload.metadata.name) : workload.metadata.name;
      const template = input.workloads.find((w) => !w.spec?.address && w.metadata.name === templateName && serviceNamespace(w) === namespace) ?? workload;
      const labels: Record<string, string> = { ...(workload.metadata.labels ?? {}), 'weft.dev/workload': templateName };
      if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) continue;
      const at = `workload ${namespace}/${template.metadata.name}`;
      if (seen.has(at)) continue;
      seen.add(at);
      const authn = inboundRequestAuthentication(input, template);
      const reading = authenticate(at, authn.jwtRules, authn.apiKeys, forwarded);
      // A sidecar's destinations see the calling instance's address; a gateway's see the gateway's own, which explain does not know.
      const callerAddress = source.kind === 'workload' ? trace.request.sourceIp : undefined;
      evaluate(at, workloadAuthorization(index, input.services, template), caller, callerAddress, workloadPort, reading?.principal);
    }
  }
  if (authentications.length > 0) trace.authentication = authentications;
  if (authentications.some((a) => a.tokens.length > 0)) {
    if (authentications.some((a) => a.tokens.some((t) => t.problem === undefined))) {
      trace.risks.push({ status: 401, reason: ErrorCodes.JWT_INVALID, why: "the token's signature is not checked by explain: a token that does not verify with its issuer's keys is refused" });
    }
    trace.notes.push(
      "explain does not verify JWT signatures (it has no keys): a token's iss, sub, aud and exp are what the token claims, and AuthorizationPolicies were evaluated with its unverified principal. The proxy verifies the signature: a forged or wrongly signed token gets 401 WEFT_ERR_JWT_INVALID.",
    );
  } else if (http && authentications.length === 0 && hasToken(trace.request.headers)) {
    trace.notes.push('No RequestAuthentication applies where this request goes: no proxy reads its token, and AuthorizationPolicies see no request principal.');
  }
  if (results.length === 0) return;
  trace.authorization = results;
  if (addressUnknownAt.length > 0) {
    const where = addressUnknownAt.join(', ');
    trace.notes.push(
      source.kind === 'gateway' && trace.request.sourceIp !== undefined
        ? `Behind the gateway, ${where} sees the gateway's address, which explain does not know: its AuthorizationPolicies on addresses (ipBlocks, source.ip) never match there, and their "not" forms always do.`
        : `An AuthorizationPolicy at ${where} matches on addresses (ipBlocks, source.ip), and explain was not given the caller's address (--source-ip): those never match there, and their "not" forms always do.`,
    );
  }
  const stop = stops[0];
  if (stop && trace.verdict.outcome === 'forwarded') trace.verdict = stop;
}

function authorizationStop(denied: ExplainAuthorization): ExplainVerdict {
  return {
    outcome: 'denied',
    status: 403,
    reason: ErrorCodes.RBAC_DENIED,
    summary: denied.policy !== undefined && denied.why.startsWith('denied by') ? `denied by policy ${denied.policy} at ${denied.at}` : `denied at ${denied.at}: ${denied.why}`,
  };
}

/** Whether any rule of `authorization` looks at the caller's address. */
function usesAddresses(authorization: SnapshotAuthorization): boolean {
  const text = JSON.stringify(authorization);
  return text.includes('pBlocks') || text.includes('"source.ip"');
}

/** Whether the user passed what looks like a token (an Authorization header with a JWT-shaped credential). */
function hasToken(headers: Record<string, string>): boolean {
  return /^\s*bearer\s+\S+\.\S+\.\S*/i.test(headers.authorization ?? '');
}

/** The SPIFFE ID the sending proxy presents: its workload's service account ("default" when unknown). */
function callerIdentity(input: CompilerInput, source: ExplainSource, trustDomain: string): string {
  const slash = source.name.indexOf('/');
  const namespace = source.name.slice(0, slash);
  const name = source.kind === 'gateway' ? gatewayWorkloadName(source.name.slice(slash + 1)) : source.name.slice(slash + 1);
  const template = input.workloads.find((w) => !w.spec?.address && w.metadata.name === name && serviceNamespace(w) === namespace);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${template?.spec.serviceAccount ?? 'default'}`;
}
