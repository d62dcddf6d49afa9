// The mesh CA kept in the store for every replica to sign with: the certificate in the clear, the private key sealed with the operator's key.
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { ErrorCodes, isWeftError, WeftError } from '../../api/errors.ts';
import { objectKey } from '../../api/meta.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Store } from '../store/types.ts';
import { CertificateAuthority } from './authority.ts';
import type { CaPersistence, RetiringRoot } from './rotating.ts';

/** Not a kind of the API: the REST API and the compiler never list it. */
export const SHARED_CA_API_VERSION = 'internal.weft.dev/v1';
export const SHARED_CA_KIND = 'SharedCertificateAuthority';
const SHARED_CA_NAME = 'mesh-root';

/** The sealed private key: AES-256-GCM under a key scrypt derives from the operator's secret and a per-object salt. */
interface SealedKey {
  cipher: 'aes-256-gcm';
  kdf: 'scrypt';
  /** base64 */
  salt: string;
  iv: string;
  tag: string;
  data: string;
}

interface SharedCaSpec {
  certPem: string;
  chainPem?: string;
  sealedKey: SealedKey;
  /** After `weft ca rotate`: the old roots still trusted, each until its overlap ends (absent in a record that never rotated). */
  retiring?: { certPem: string; trustedUntil: string }[];
  rotatedAt?: string;
}

/** The operator's secret must be worth a key: short passphrases are refused rather than weakly stretched. */
const MIN_SECRET_BYTES = 16;
const SCRYPT_PARAMS = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export interface SharedCaOptions {
  store: Store;
  /** The operator's secret (the contents of --ca-encryption-key-file, or $WEFT_CA_ENCRYPTION_KEY). */
  secret: Buffer;
  /** Trust domain of a root generated here. */
  trustDomain: string;
  clock: Clock;
  logger: Logger;
}

/**
 * Loads the CA that another replica (or an earlier start) put in the store,
 * or generates one and stores it with create-only CAS; when two replicas
 * start at once, the loser loads the winner's, so all sign under one root.
 * The key never reaches the store unsealed, and a wrong secret is an error
 * that says so (never a silent new root, which would split the mesh).
 */
export async function loadOrCreateSharedCa(options: SharedCaOptions): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const { store, secret, clock } = options;
  if (secret.length < MIN_SECRET_BYTES) {
    throw new WeftError(ErrorCodes.CA_INVALID, `the CA encryption key must be at least ${MIN_SECRET_BYTES} bytes (got ${secret.length}); make one with: openssl rand -base64 32`);
  }
  const existing = await store.get(sharedCaKey());
  if (existing) return { ca: await openShared(existing.spec as SharedCaSpec, secret, clock), created: false };

  const ca = await CertificateAuthority.generate({ trustDomain: options.trustDomain, clock });
  const { certPem, keyPem, chainPem } = ca.toPem();
  const spec: SharedCaSpec = { certPem, sealedKey: await seal(keyPem, secret) };
  if (chainPem) spec.chainPem = chainPem;
  try {
    await store.put({ apiVersion: SHARED_CA_API_VERSION, kind: SHARED_CA_KIND, metadata: { name: SHARED_CA_NAME }, spec: spec as unknown as Record<string, unknown> }, { expectedResourceVersion: '0' });
  } catch (error) {
    if (!isWeftError(error, ErrorCodes.ALREADY_EXISTS) && !isWeftError(error, ErrorCodes.CONFLICT)) throw error;
    // Another replica stored its root first: use that one.
    const winner = await store.get(sharedCaKey());
    if (!winner) throw new WeftError(ErrorCodes.CA_INVALID, 'the shared CA was created and deleted while this replica started; start it again');
    return { ca: await openShared(winner.spec as SharedCaSpec, secret, clock), created: false };
  }
  options.logger.info({ trustDomain: options.trustDomain }, 'generated the mesh root CA and stored it, key sealed, for every replica');
  return { ca, created: true };
}

export interface SharedCaState {
  authority: CertificateAuthority;
  retiring: RetiringRoot[];
  rotatedAt?: number;
  /** Writes rotations with CAS on the record, and re-reads it when another replica rotated. */
  persistence: CaPersistence;
}

/**
 * loadOrCreateSharedCa plus the rotation state of the record, and the
 * persistence that rotates it: every write is a CAS on the resourceVersion
 * this replica last saw, so two replicas rotating at once cannot both win;
 * reload() is cheap (one get) unless the record changed.
 */
export async function openSharedCa(options: SharedCaOptions): Promise<SharedCaState> {
  const { store, secret, clock } = options;
  const { ca } = await loadOrCreateSharedCa(options);
  const record = await store.get(sharedCaKey());
  let seenVersion = record?.metadata.resourceVersion ?? '0';
  const spec = record?.spec as SharedCaSpec | undefined;
  // The record may have been rotated between the two reads: take it whole from the second one.
  const authority = spec && spec.certPem !== ca.certPem ? await openShared(spec, secret, clock) : ca;
  const persistence: CaPersistence = {
    save: async (next, retiring, rotatedAt) => {
      const { certPem, keyPem, chainPem } = next.toPem();
      const nextSpec: SharedCaSpec = {
        certPem,
        sealedKey: await seal(keyPem, secret),
        retiring: retiring.map((r) => ({ certPem: r.certPem, trustedUntil: new Date(r.trustedUntil).toISOString() })),
        rotatedAt: new Date(rotatedAt).toISOString(),
      };
      if (chainPem) nextSpec.chainPem = chainPem;
      try {
        const stored = await store.put(
          { apiVersion: SHARED_CA_API_VERSION, kind: SHARED_CA_KIND, metadata: { name: SHARED_CA_NAME }, spec: nextSpec as unknown as Record<string, unknown> },
          { expectedResourceVersion: seenVersion },
        );
        seenVersion = stored.metadata.resourceVersion;
      } catch (error) {
        if (isWeftError(error, ErrorCodes.CONFLICT) || isWeftError(error, ErrorCodes.ALREADY_EXISTS)) {
          throw new WeftError(ErrorCodes.CONFLICT, 'another replica rotated the shared CA at the same time; look at weft status and rotate again if still needed');
        }
        throw error;
      }
    },
    reload: async () => {
      const current = await store.get(sharedCaKey());
      if (!current || current.metadata.resourceVersion === seenVersion) return undefined;
      const currentSpec = current.spec as SharedCaSpec;
      const reloaded = { authority: await openShared(currentSpec, secret, clock), ...retiringOf(currentSpec) };
      seenVersion = current.metadata.resourceVersion;
      return reloaded;
    },
  };
  return { authority, ...retiringOf(spec), persistence };
}

function retiringOf(spec: SharedCaSpec | undefined): { retiring: RetiringRoot[]; rotatedAt?: number } {
  const retiring: RetiringRoot[] = [];
  for (const root of Array.isArray(spec?.retiring) ? spec.retiring : []) {
    const trustedUntil = Date.parse(root?.trustedUntil);
    if (typeof root?.certPem === 'string' && !Number.isNaN(trustedUntil)) retiring.push({ certPem: root.certPem, trustedUntil });
  }
  const rotatedAt = spec?.rotatedAt ? Date.parse(spec.rotatedAt) : NaN;
  return Number.isNaN(rotatedAt) ? { retiring } : { retiring, rotatedAt };
}

export function sharedCaKey(): string {
  return objectKey({ apiVersion: SHARED_CA_API_VERSION, kind: SHARED_CA_KIND, name: SHARED_CA_NAME });
}

async function openShared(spec: SharedCaSpec, secret: Buffer, clock: Clock): Promise<CertificateAuthority> {
  if (typeof spec?.certPem !== 'string' || typeof spec.sealedKey?.data !== 'string') {
    throw new WeftError(ErrorCodes.CA_INVALID, 'the shared CA in the store is malformed (certPem or sealedKey missing)');
  }
  const keyPem = await unseal(spec.sealedKey, secret);
  return CertificateAuthority.load({ certPem: spec.certPem, keyPem, clock, ...(spec.chainPem ? { chainPem: spec.chainPem } : {}) });
}

function deriveKey(secret: Buffer, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(secret, salt, 32, SCRYPT_PARAMS, (error, key) => (error ? reject(error) : resolve(key))));
}

export async function seal(plaintext: string, secret: Buffer): Promise<SealedKey> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(secret, salt), iv);
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { cipher: 'aes-256-gcm', kdf: 'scrypt', salt: salt.toString('base64'), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

export async function unseal(sealed: SealedKey, secret: Buffer): Promise<string> {
  if (sealed.cipher !== 'aes-256-gcm' || sealed.kdf !== 'scrypt') {
    throw new WeftError(ErrorCodes.CA_INVALID, `the shared CA key is sealed with ${sealed.cipher}/${sealed.kdf}, which this version does not know`);
  }
  const decipher = createDecipheriv('aes-256-gcm', await deriveKey(secret, Buffer.from(sealed.salt, 'base64')), Buffer.from(sealed.iv, 'base64'));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new WeftError(ErrorCodes.CA_INVALID, 'the CA encryption key does not open the shared CA in the store (a different key than the replica that created it?)');
  }
}
