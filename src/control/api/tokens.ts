// POST /weft/v1/tokens: creates a proxy bootstrap token (what `weft token create` calls): for holders of an API token, or loopback callers in local mode.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ErrorCodes } from '../../api/errors.ts';
import { dnsLabel, dnsSubdomain } from '../../api/meta.ts';
import type { TokenAuthority } from '../ca/tokens.ts';
import { isLoopback } from './auth.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { ApiError } from './status.ts';

export const TOKENS_PATH = '/weft/v1/tokens';

export interface TokenPolicy {
  tokens: TokenAuthority;
  /**
   * Local mode (`weft up`, `weft control-plane --insecure-local-tokens`): any
   * caller on this host may create tokens. Without it, and without API
   * tokens, the API hands out none.
   */
  localMode: boolean;
  /** The API asks for tokens (--api-token-file): a caller that got here holds one and may create bootstrap tokens from any host. */
  callersHoldApiTokens?: boolean;
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

export async function handleCreateToken(req: IncomingMessage, res: ServerResponse, policy: TokenPolicy, now: () => number): Promise<void> {
  if (policy.callersHoldApiTokens !== true) {
    if (!policy.localMode) {
      throw new ApiError(
        403,
        'Forbidden',
        ErrorCodes.FORBIDDEN,
        'this control plane creates bootstrap tokens only for holders of an API token (run it with --api-token-file) or, with --insecure-local-tokens, for anyone on its own host',
      );
    }
    if (!isLoopback(req.socket.remoteAddress)) {
      throw new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, 'bootstrap tokens are created only for callers on the control plane\'s own host');
    }
  }
  const parsed = TokenRequest.safeParse(parseJson(await readBody(req, 16 * 1024)));
  if (!parsed.success) {
    const causes = parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message }));
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, 'a token request is {namespace, workload?, host?, ttlMs?}', causes);
  }
  const request = parsed.data;
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
