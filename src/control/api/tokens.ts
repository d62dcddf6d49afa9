// POST /weft/v1/tokens: creates a proxy bootstrap token (what `weft token create` calls): for holders of an API token, or loopback callers in local mode.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ErrorCodes } from '../../api/errors.ts';
import { dnsLabel, dnsSubdomain } from '../../api/meta.ts';
import type { TokenAuthority } from '../ca/tokens.ts';
import { requirePrivilegedCaller, type PrivilegedCallers } from './auth.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { ApiError } from './status.ts';

export const TOKENS_PATH = '/weft/v1/tokens';

/** Bootstrap tokens go to the callers `requirePrivilegedCaller` lets through. */
export interface TokenPolicy extends PrivilegedCallers {
  tokens: TokenAuthority;
}

const TokenRequest = z.strictObject({
  namespace: dnsLabel,
  workload: dnsSubdomain.optional(),
  host: z.string().min(1).max(253).optional(),
  /** Lifetime in milliseconds; absent = until revoked. */
  ttlMs: z.number().int().positive().optional(),
});

export interface TokenAnswer {
  token: string;
  namespace: string;
  workload?: string;
  host?: string;
  /** ISO time; absent = no expiry. */
  expiresAt?: string;
}

/** `permit` throws unless the caller may create tokens in the namespace asked for (a namespaced API token). */
export async function handleCreateToken(req: IncomingMessage, res: ServerResponse, policy: TokenPolicy, now: () => number, permit: (namespace: string) => void = () => {}): Promise<void> {
  requirePrivilegedCaller(req, policy, 'creates bootstrap tokens');
  const parsed = TokenRequest.safeParse(parseJson(await readBody(req, 16 * 1024)));
  if (!parsed.success) {
    const causes = parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message }));
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, 'a token request is {namespace, workload?, host?, ttlMs?}', causes);
  }
  const request = parsed.data;
  permit(request.namespace);
  let token: string;
  try {
    token = await policy.tokens.create({
      namespace: request.namespace,
      ...(request.workload !== undefined ? { workload: request.workload } : {}),
      ...(request.host !== undefined ? { host: request.host } : {}),
      ...(request.ttlMs !== undefined ? { ttlMs: request.ttlMs } : {}),
    });
  } catch (error) {
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, (error as Error).message);
  }
  const answer: TokenAnswer = {
    token,
    namespace: request.namespace,
    ...(request.workload !== undefined ? { workload: request.workload } : {}),
    ...(request.host !== undefined ? { host: request.host } : {}),
    ...(request.ttlMs !== undefined ? { expiresAt: new Date(now() + request.ttlMs).toISOString() } : {}),
  };
  // The token is a secret: never cached anywhere on the way.
  sendJson(res, 201, answer, { 'cache-control': 'no-store' });
}
