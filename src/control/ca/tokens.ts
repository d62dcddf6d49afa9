// Bootstrap tokens: how a proxy proves which workload it serves before it has a certificate; only their SHA-256 is stored.
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { spiffeId } from '../../api/identity.ts';
import type { Clock } from '../../telemetry/clock.ts';

/** What a token lets its holder be. A workload token names one workload; a host token (or neither) covers a namespace. */
export interface TokenScope {
  namespace: string;
  /** The template Workload the token is for: its proxy may only get that workload's service-account identity. */
  workload?: string;
  /** The host a node proxy runs on; recorded for audit (the scope is then the namespace). */
  host?: string;
}

export interface TokenRecord extends TokenScope {
  /** Epoch milliseconds. */
  createdAt: number;
  /** Epoch milliseconds; absent = no expiry. */
  expiresAt?: number;
}

/** Where token hashes live; the control plane backs it by its store, tests by a Map. Keys are hex SHA-256 of the token. */
export interface TokenStorage {
  get(hash: string): Promise<TokenRecord | undefined>;
  put(hash: string, record: TokenRecord): Promise<void>;
  delete(hash: string): Promise<void>;
}

export class MemoryTokenStorage implements TokenStorage {
  private readonly records = new Map<string, TokenRecord>();
  async get(hash: string): Promise<TokenRecord | undefined> {
    return this.records.get(hash);
  }
  async put(hash: string, record: TokenRecord): Promise<void> {
    this.records.set(hash, record);
  }
  async delete(hash: string): Promise<void> {
    this.records.delete(hash);
  }
  /** For tests: what is stored, to check that no token appears in it. */
  entries(): [string, TokenRecord][] {
    return [...this.records];
  }
}

export interface CreateTokenOptions {
  namespace: string;
  workload?: string;
  host?: string;
  /** Lifetime; absent = the token lasts until revoked (a proxy presents it on every reconnect). */
  ttlMs?: number;
}

const TOKEN_PREFIX = 'weft_';
/** "weft_" then 32 random bytes in base64url (43 characters). */
const TOKEN_FORMAT = /^weft_[A-Za-z0-9_-]{43}$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export class TokenAuthority {
  private readonly storage: TokenStorage;
  private readonly clock: Clock;

  constructor(options: { storage: TokenStorage; clock: Clock }) {
    this.storage = options.storage;
    this.clock = options.clock;
  }

  /** A new token (256 random bits). It is returned once and only its hash is kept. */
  async create(options: CreateTokenOptions): Promise<string> {
    if (!NAME.test(options.namespace)) throw new WeftError(ErrorCodes.INVALID, `namespace ${JSON.stringify(options.namespace)} is not a valid name`);
    if (options.workload !== undefined && options.host !== undefined) throw new WeftError(ErrorCodes.INVALID, 'a token is for a workload or for a host, not both');
    if (options.workload !== undefined && !NAME.test(options.workload)) throw new WeftError(ErrorCodes.INVALID, `workload ${JSON.stringify(options.workload)} is not a valid name`);
    if (options.host !== undefined && !(options.host.length > 0 && options.host.length <= 253)) throw new WeftError(ErrorCodes.INVALID, 'host must be 1-253 characters');
    if (options.ttlMs !== undefined && !(Number.isFinite(options.ttlMs) && options.ttlMs > 0)) throw new WeftError(ErrorCodes.INVALID, `ttlMs must be positive, got ${options.ttlMs}`);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const record: TokenRecord = {
      namespace: options.namespace,
      ...(options.workload !== undefined ? { workload: options.workload } : {}),
      ...(options.host !== undefined ? { host: options.host } : {}),
      createdAt: now,
      ...(options.ttlMs !== undefined ? { expiresAt: now + options.ttlMs } : {}),
    };
    await this.storage.put(tokenHash(token), record);
    return token;
  }

  /** The token's scope, or undefined for an unknown, malformed, revoked or expired token. */
  async verify(token: string): Promise<TokenScope | undefined> {
    if (typeof token !== 'string' || !TOKEN_FORMAT.test(token)) return undefined;
    // Looked up by hash, so no secret is ever compared byte by byte.
    const hash = tokenHash(token);
    const record = await this.storage.get(hash);
    if (!record) return undefined;
    if (record.expiresAt !== undefined && this.clock.now() >= record.expiresAt) {
      await this.storage.delete(hash);
      return undefined;
    }
    return {
      namespace: record.namespace,
      ...(record.workload !== undefined ? { workload: record.workload } : {}),
      ...(record.host !== undefined ? { host: record.host } : {}),
    };
  }

  async revoke(token: string): Promise<void> {
    await this.storage.delete(tokenHash(token));
  }
}

/** The storage key of a token. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface IdentityRequest {
  /** The namespace the proxy says it serves. */
  namespace: string;
  /** The template Workload the proxy says it serves, if any. */
  workload?: string;
  /** That workload's `spec.serviceAccount`, as the control plane's store has it (never as the proxy claims it). */
  serviceAccount: string;
}

/**
 * The SPIFFE ID a token holder may be given, or WEFT_ERR_FORBIDDEN. A token
 * for workload W in namespace N yields only the identity of W's service
 * account in N; a host or namespace token yields any service account's
 * identity in N, for the workload named.
 */
export function authorizeIdentity(scope: TokenScope, request: IdentityRequest, trustDomain: string): string {
  if (scope.namespace !== request.namespace) {
    throw new WeftError(ErrorCodes.FORBIDDEN, `the token is for namespace ${scope.namespace}, not ${request.namespace}`);
  }
  if (scope.workload !== undefined && scope.workload !== request.workload) {
    throw new WeftError(ErrorCodes.FORBIDDEN, `the token is for workload ${scope.namespace}/${scope.workload}, not ${request.workload === undefined ? 'a proxy without a workload' : `${request.namespace}/${request.workload}`}`);
  }
  return spiffeId(trustDomain, request.namespace, request.serviceAccount);
}
