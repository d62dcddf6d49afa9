// GET /weft/v1/ca (the CA's roots, expiry and overlap) and POST /weft/v1/ca/rotate (`weft ca rotate`; loopback callers in local mode only).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ErrorCodes, isWeftError, WeftError } from '../../api/errors.ts';
import type { Clock } from '../../telemetry/clock.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import type { MeshCa } from '../ca/rotating.ts';
import { requirePrivilegedCaller, type PrivilegedCallers } from './auth.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { ApiError } from './status.ts';

export const CA_PATH = '/weft/v1/ca';
export const CA_ROTATE_PATH = '/weft/v1/ca/rotate';

/** Rotating (and above all installing a CA someone hands over) is for the callers `requirePrivilegedCaller` lets through. */
export interface CaPolicy extends PrivilegedCallers {
  ca: MeshCa;
  clock: Clock;
}

const RotateRequest = z.strictObject({
  /** How long the old roots stay trusted, in milliseconds; 24 h by default. */
  overlapMs: z.number().int().nonnegative().optional(),
  /** An operator's new CA (certificate, optionally followed by its chain up to the root) and its key; absent: a new root is generated. */
  certPem: z.string().min(1).max(64 * 1024).optional(),
  keyPem: z.string().min(1).max(16 * 1024).optional(),
  chainPem: z.string().max(64 * 1024).optional(),
});

export function handleCaState(res: ServerResponse, policy: CaPolicy): void {
  sendJson(res, 200, policy.ca.describe(), { 'cache-control': 'no-store' });
}

export async function handleCaRotate(req: IncomingMessage, res: ServerResponse, policy: CaPolicy): Promise<void> {
  requirePrivilegedCaller(req, policy, 'rotates its CA', 'or restart it with the new --ca-cert/--ca-key');
  const parsed = RotateRequest.safeParse(parseJson(await readBody(req, 256 * 1024)));
  if (!parsed.success) {
    const causes = parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message }));
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, 'a rotation request is {overlapMs?, certPem?, keyPem?, chainPem?}', causes);
  }
  const request = parsed.data;
  if ((request.certPem === undefined) !== (request.keyPem === undefined)) {
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, 'give the new CA certificate and its key together (--ca-cert and --ca-key), or neither for a generated root');
  }
  try {
    const next =
      request.certPem !== undefined && request.keyPem !== undefined
        ? await CertificateAuthority.load({ certPem: request.certPem, keyPem: request.keyPem, clock: policy.clock, ...(request.chainPem ? { chainPem: request.chainPem } : {}) })
        : undefined;
    const state = await policy.ca.rotate({ ...(request.overlapMs !== undefined ? { overlapMs: request.overlapMs } : {}), ...(next ? { next } : {}) });
    sendJson(res, 200, state, { 'cache-control': 'no-store' });
  } catch (error) {
    if (isWeftError(error, ErrorCodes.CONFLICT)) throw new ApiError(409, 'Conflict', ErrorCodes.CONFLICT, (error as Error).message);
    if (error instanceof WeftError && (error.code === ErrorCodes.CA_INVALID || error.code === ErrorCodes.INVALID)) {
      throw new ApiError(422, 'Invalid', error.code, error.message);
    }
    throw error;
  }
}
