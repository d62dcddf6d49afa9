// External authorization over HTTP (CUSTOM AuthorizationPolicies, Istio's envoyExtAuthzHttp): one side call per request a CUSTOM policy matches.
//
// The check is the request: the same method, the path with the provider's
// pathPrefix in front, its Host, its Authorization header, the headers the
// provider lists and its fixed ones (as Envoy's ext_authz sends), and the
// body when the provider asks for it (read whole, up to its limit). A 2xx
// answer allows: the headers the provider names are copied onto the request,
// and others onto the caller's response.
// Any other answer is the caller's: its status, its body and the headers the
// provider names (a 302 to a login page, a 401 with WWW-Authenticate). A
// check that cannot be made (no endpoint, refused, over its timeout) allows
// when the provider fails open, else answers statusOnError.
import { ErrorCodes } from '../../../api/errors.ts';
import type { SnapshotExtAuthz } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { Headers, HttpExchange, OutgoingHeaders } from '../../exchange.ts';
import { readWholeBody } from '../body-buffer/index.ts';
import type { Step } from '../../stack.ts';
import { sendSideCall, sideCallSteps, type SideCallContext } from '../side-call/index.ts';

/** The largest check answer read (a denial's body goes to the caller). */
const MAX_CHECK_ANSWER_BYTES = 64 * 1024;


export type ExtAuthzVerdict =
  | { allowed: true; why: string }
  | { allowed: false; why: string; status: number; headers: Headers; body: Buffer };

/** A checker for one snapshot: the steps to each of `providers` are built here, when the snapshot is applied. */
export function extAuthzChecker(context: SideCallContext | undefined, providers: readonly SnapshotExtAuthz[]): (ex: HttpExchange, provider: SnapshotExtAuthz) => Promise<ExtAuthzVerdict> {
  const steps = context ? sideCallSteps(providers.map((p) => p.backend), context) : new Map<string, Step<HttpExchange>>();
  return async (ex, provider) => {
    const step = steps.get(provider.backend);
    if (!step || !context) return failed(provider, `the provider's Service port ${provider.backend} is not known to this proxy`);
    const headers: Headers = { host: provider.host };
    for (const name of ['authorization', ...provider.includeRequestHeaders]) {
      const value = ex.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    Object.assign(headers, provider.additionalHeaders);
    let body: Buffer | null = null;
    if (provider.maxRequestBytes !== undefined) {
      // Kept as the request's body, so that it still goes upstream once allowed.
      const limit = provider.maxRequestBytes;
      body = ex.bufferedBody = await readWholeBody(ex, limit, () => proxyError(ErrorCodes.EXT_AUTHZ_DENIED, `the request body is over what extension provider ${provider.name} checks (${limit} bytes)`, 413));
      const type = ex.headers['content-type'];
      if (type !== undefined) headers['content-type'] = type;
    }
    headers['content-length'] = String(body?.length ?? 0);
    let answer;
    try {
      answer = await sendSideCall(step, ex, { method: ex.method, path: `${provider.pathPrefix}${ex.path}`, headers, body, timeoutMs: provider.timeoutMs, limitBytes: MAX_CHECK_ANSWER_BYTES }, context.clock);
    } catch (error) {
      return failed(provider, (error as Error).message);
    }
    if (answer.status >= 200 && answer.status <= 299) {
      for (const name of provider.headersToUpstreamOnAllow) {
        const value = answer.headers[name];
        if (value !== undefined) ex.headers[name] = Array.isArray(value) ? value : String(value);
      }
      const downstream = picked(answer.headers, provider.headersToDownstreamOnAllow);
      if (Object.keys(downstream).length > 0) ex.addResponseEdit((out) => Object.assign(out, downstream));
      return { allowed: true, why: `allowed by extension provider ${provider.name} (${answer.status})` };
    }
    return { allowed: false, why: `denied by extension provider ${provider.name} (${answer.status})`, status: answer.status, headers: picked(answer.headers, provider.headersToDownstreamOnDeny), body: answer.body };
  };
}

/** The headers of `names` an answer has. */
function picked(answered: OutgoingHeaders, names: readonly string[]): Headers {
  const out: Headers = {};
  for (const name of names) {
    const value = answered[name];
    if (value !== undefined) out[name] = Array.isArray(value) ? value : String(value);
  }
  return out;
}

/** A check that could not be made: failOpen allows; otherwise statusOnError with the reason. */
function failed(provider: SnapshotExtAuthz, reason: string): ExtAuthzVerdict {
  const why = `extension provider ${provider.name} could not be asked: ${reason}`;
  if (provider.failOpen) return { allowed: true, why: `${why}; allowed (failOpen)` };
  return { allowed: false, why, status: provider.statusOnError, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: Buffer.from(`${why}\n`) };
}
