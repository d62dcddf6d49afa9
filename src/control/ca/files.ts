// Keeps the CA in the control plane's data dir: ca.crt, ca.key (mode 0600), and the chain and extra roots when there are any.
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Clock } from '../../telemetry/clock.ts';
import { CertificateAuthority } from './authority.ts';
import type { CaPersistence, RetiringRoot } from './rotating.ts';

export const CA_FILES = {
  cert: 'ca.crt',
  key: 'ca.key',
  /** The certificates above an operator-supplied intermediate. */
  chain: 'ca-chain.crt',
  /** Roots trusted besides the CA's own, during a rotation overlap. */
  extraTrust: 'trust-extra.crt',
  /** `weft ca rotate`: the old roots still trusted, each until its overlap ends, and when the rotation was (JSON). */
  retiring: 'ca-retiring.json',
} as const;

const KEY_MODE = 0o600;
const DIR_MODE = 0o700;

/** Writes the CA into `dir` (created 0700 if missing). Each file is replaced atomically; the key is never readable by others, even briefly. */
export async function saveCa(dir: string, ca: CertificateAuthority): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const { certPem, keyPem, chainPem } = ca.toPem();
  // The key first: a cert without its key is unusable, but a key without its cert is simply regenerated over.
  await writeAtomically(join(dir, CA_FILES.key), keyPem, KEY_MODE);
  await writeAtomically(join(dir, CA_FILES.cert), certPem, 0o644);
  await writeOrRemove(join(dir, CA_FILES.chain), chainPem);
  await writeOrRemove(join(dir, CA_FILES.extraTrust), ca.extraTrustAnchors().join(''));
}

/** The CA saved in `dir`, or undefined when there is none. Refuses a key file others can read. */
export async function loadCa(dir: string, options: { clock: Clock }): Promise<CertificateAuthority | undefined> {
  const certPath = join(dir, CA_FILES.cert);
  const keyPath = join(dir, CA_FILES.key);
  const [certPem, keyPem] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) {
    throw new WeftError(ErrorCodes.CA_INVALID, `${dir} holds ${certPem === undefined ? CA_FILES.key : CA_FILES.cert} without ${certPem === undefined ? CA_FILES.cert : CA_FILES.key}`);
  }
  await checkKeyMode(keyPath);
  const chainPem = await readIfExists(join(dir, CA_FILES.chain));
  const extraTrustPem = await readIfExists(join(dir, CA_FILES.extraTrust));
  return CertificateAuthority.load({
    certPem,
    keyPem,
    clock: options.clock,
    ...(chainPem ? { chainPem } : {}),
    ...(extraTrustPem ? { extraTrustPem } : {}),
  });
}

/**
 * The control plane's CA at start: the one in `dir`, or a new root saved
 * there. A saved root of another trust domain is an error rather than
 * something to replace silently: every proxy's identity hangs on it.
 */
export async function loadOrCreateCa(
  dir: string,
  options: { trustDomain: string; clock: Clock; validityDays?: number },
): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const existing = await loadCa(dir, { clock: options.clock });
  if (existing) {
    if (existing.trustDomain !== undefined && existing.trustDomain !== options.trustDomain) {
      throw new WeftError(
        ErrorCodes.CA_INVALID,
        `the CA in ${dir} is for trust domain ${existing.trustDomain}, but the mesh's trust domain is ${options.trustDomain}; rotate the root to change it`,
      );
    }
    return { ca: existing, created: false };
  }
  const ca = await CertificateAuthority.generate({
    trustDomain: options.trustDomain,
    clock: options.clock,
    ...(options.validityDays !== undefined ? { validityDays: options.validityDays } : {}),
  });
  await saveCa(dir, ca);
  return { ca, created: true };
}

interface RetiringFile {
  rotatedAt?: string;
  roots: { certPem: string; trustedUntil: string }[];
}

/** The rotation state saved in `dir` (none in a data dir that never rotated: a single-root dir loads as before). */
export async function loadRetiring(dir: string): Promise<{ retiring: RetiringRoot[]; rotatedAt?: number }> {
  const path = join(dir, CA_FILES.retiring);
  const text = await readIfExists(path);
  if (text === undefined) return { retiring: [] };
  let parsed: RetiringFile;
  try {
    parsed = JSON.parse(text) as RetiringFile;
  } catch (e) {
    throw new WeftError(ErrorCodes.CA_INVALID, `${path} is not JSON: ${(e as Error).message}`);
  }
  const retiring: RetiringRoot[] = [];
  for (const root of Array.isArray(parsed?.roots) ? parsed.roots : []) {
    const trustedUntil = Date.parse(root?.trustedUntil);
    if (typeof root?.certPem !== 'string' || Number.isNaN(trustedUntil)) throw new WeftError(ErrorCodes.CA_INVALID, `${path} has a root without certPem or trustedUntil`);
    retiring.push({ certPem: root.certPem, trustedUntil });
  }
  const rotatedAt = parsed.rotatedAt ? Date.parse(parsed.rotatedAt) : NaN;
  return Number.isNaN(rotatedAt) ? { retiring } : { retiring, rotatedAt };
}

export async function saveRetiring(dir: string, retiring: readonly RetiringRoot[], rotatedAt: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const file: RetiringFile = {
    rotatedAt: new Date(rotatedAt).toISOString(),
    roots: retiring.map((r) => ({ certPem: r.certPem, trustedUntil: new Date(r.trustedUntil).toISOString() })),
  };
  await writeAtomically(join(dir, CA_FILES.retiring), `${JSON.stringify(file, null, 2)}\n`, 0o644);
}

/**
 * A rotation kept in the data dir. The retiring roots are written first: a
 * crash before the new key and certificate land leaves the old CA signing
 * and trusting its own root, which is harmless.
 * `saveKey` false (an operator's CA, which lives in the operator's files):
 * only the retiring roots are kept here.
 */
export function dataDirPersistence(dir: string, options: { saveKey: boolean }): CaPersistence {
  return {
    save: async (authority, retiring, rotatedAt) => {
      await saveRetiring(dir, retiring, rotatedAt);
      if (options.saveKey) await saveCa(dir, authority);
    },
  };
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // Created with its final mode (flag wx: never through an existing file or link), then chmod in case the umask narrowed it oddly.
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}

async function writeOrRemove(path: string, content: string): Promise<void> {
  if (content) await writeAtomically(path, content, 0o644);
  else await rm(path, { force: true });
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function checkKeyMode(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  const { mode } = await stat(path);
  if ((mode & 0o077) !== 0) {
    throw new WeftError(ErrorCodes.CA_INVALID, `${path} is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
}
