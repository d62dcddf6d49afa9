// The CA the control plane serves: the signing authority plus older roots still trusted until their overlap ends (root rotation).
import { X509Certificate } from 'node:crypto';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { CertificateAuthority, type SignedCertificate, type SignOptions } from './authority.ts';

export const DEFAULT_ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;

/** A root that no longer signs but stays in the trust bundle until `trustedUntil`, so that certificates it signed keep working. */
export interface RetiringRoot {
  certPem: string;
  /** Epoch milliseconds. */
  trustedUntil: number;
}

/** Where the CA came from, which decides how it is rotated and where a rotation is kept. */
export type CaSource = 'operator' | 'store' | 'data-dir' | 'memory';

/** One root (or the signing CA) as `weft status`, `weft check` and GET /weft/v1/ca show it. */
export interface CaCertificateInfo {
  /** SHA-256 fingerprint, colon-separated hex (as node:crypto and `openssl x509 -fingerprint -sha256` print it). */
  fingerprint: string;
  subject: string;
  notAfter: string;
  /** signing: the CA that signs new certificates; trusted: a root of the bundle; retiring: an old root trusted until trustedUntil. */
  role: 'signing' | 'trusted' | 'retiring';
  trustedUntil?: string;
}

export interface CaState {
  source: CaSource;
  trustDomain?: string;
  /** Fingerprint of the CA certificate that signs workload certificates now (snapshots carry it as mesh.signingCa). */
  signingCa: string;
  /** The signing CA first, then every root of the trust bundle. */
  certificates: CaCertificateInfo[];
  rotatedAt?: string;
  /** The roots proxies trust (PEM), as snapshots carry them: what `weft ca bundle` prints for `weft proxy --ca-bundle`. */
  trustBundle?: string[];
}

/** Where a rotation is written: files in the data dir, the shared store record (CAS), or nowhere (memory, operator CA without a data dir). */
export interface CaPersistence {
  /** Stores the new state; WEFT_ERR_CONFLICT when another replica rotated first. */
  save(authority: CertificateAuthority, retiring: RetiringRoot[], rotatedAt: number): Promise<void>;
  /** The stored state when it changed since the last load or save (several replicas: another one rotated), else undefined. */
  reload?(): Promise<{ authority: CertificateAuthority; retiring: RetiringRoot[]; rotatedAt?: number } | undefined>;
}

export interface RotateOptions {
  /** How long the old roots stay trusted; 24 h by default. */
  overlapMs?: number;
  /** The new CA (an operator's intermediate, or a root); absent: a new root is generated (not for an operator CA). */
  next?: CertificateAuthority;
}

export interface MeshCaOptions {
  authority: CertificateAuthority;
  retiring?: RetiringRoot[];
  rotatedAt?: number;
  source: CaSource;
  persistence?: CaPersistence;
  clock: Clock;
  logger: Logger;
}

export class MeshCa {
  readonly source: CaSource;
  private authority: CertificateAuthority;
  private retiring: RetiringRoot[];
  private rotatedAt: number | undefined;
  private readonly persistence: CaPersistence | undefined;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly listeners = new Set<() => void>();
  private expiryTimer: Timer | undefined;
  private rotating: Promise<CaState> | undefined;
  private closed = false;

  constructor(options: MeshCaOptions) {
    this.source = options.source;
    this.authority = options.authority;
    this.retiring = options.retiring ?? [];
    this.rotatedAt = options.rotatedAt;
    this.persistence = options.persistence;
    this.clock = options.clock;
    this.logger = options.logger;
    this.armExpiry();
  }

  get current(): CertificateAuthority {
    return this.authority;
  }

  get trustDomain(): string | undefined {
    return this.authority.trustDomain;
  }

  /** Fingerprint of the CA certificate that signs new workload certificates. */
  get signingFingerprint(): string {
    return fingerprintOf(this.authority.certPem);
  }

  /** The signing CA's roots, then the retiring roots whose overlap has not ended. */
  trustBundle(): string[] {
    const bundle = this.authority.trustBundle();
    const now = this.clock.now();
    for (const root of this.retiring) if (root.trustedUntil > now && !bundle.includes(root.certPem)) bundle.push(root.certPem);
    return bundle;
  }

  /** Retiring roots still trusted now. */
  retiringRoots(): RetiringRoot[] {
    const now = this.clock.now();
    return this.retiring.filter((root) => root.trustedUntil > now).map((root) => ({ ...root }));
  }

  signCsr(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    return this.authority.signCsr(csrPem, options);
  }

  /** Called after every change of the bundle or the signing CA: a rotation, a reload, the end of an overlap. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  describe(): CaState {
    const signingPem = this.authority.certPem;
    const signing = new X509Certificate(signingPem);
    const now = this.clock.now();
    const certificates: CaCertificateInfo[] = [{ fingerprint: signing.fingerprint256, subject: signing.subject, notAfter: signing.validToDate.toISOString(), role: 'signing' }];
    for (const pem of this.authority.trustBundle()) {
      if (pem === signingPem) continue;
      const cert = new X509Certificate(pem);
      certificates.push({ fingerprint: cert.fingerprint256, subject: cert.subject, notAfter: cert.validToDate.toISOString(), role: 'trusted' });
    }
    for (const root of this.retiring) {
      if (root.trustedUntil <= now) continue;
      const cert = new X509Certificate(root.certPem);
      if (certificates.some((c) => c.fingerprint === cert.fingerprint256)) continue;
      certificates.push({
        fingerprint: cert.fingerprint256,
        subject: cert.subject,
        notAfter: cert.validToDate.toISOString(),
        role: 'retiring',
        trustedUntil: new Date(root.trustedUntil).toISOString(),
      });
    }
    const state: CaState = { source: this.source, signingCa: signing.fingerprint256, certificates };
    if (this.authority.trustDomain !== undefined) state.trustDomain = this.authority.trustDomain;
    if (this.rotatedAt !== undefined) state.rotatedAt = new Date(this.rotatedAt).toISOString();
    state.trustBundle = this.trustBundle();
    return state;
  }

  /**
   * Replaces the signing CA: the new one signs from now on, and every root
   * the old one trusted stays in the bundle until the overlap ends. The new
   * state is persisted before it is used, so a crash never leaves a CA in
   * memory that the store or data dir does not know.
   */
  rotate(options: RotateOptions = {}): Promise<CaState> {
    // One rotation at a time: two at once would both retire the same root and lose one of the new ones.
    if (this.rotating) return Promise.reject(new WeftError(ErrorCodes.CONFLICT, 'a rotation is already under way'));
    this.rotating = this.doRotate(options).finally(() => {
      this.rotating = undefined;
    });
    return this.rotating;
  }

  /** Takes the persisted state when another replica changed it; resolves true when something changed. */
  async refresh(): Promise<boolean> {
    if (!this.persistence?.reload || this.closed) return false;
    const stored = await this.persistence.reload();
    if (!stored || this.closed) return false;
    const before = this.signingFingerprint;
    this.install(stored.authority, stored.retiring, stored.rotatedAt);
    this.logger.info({ signingCa: this.signingFingerprint, previous: before }, 'reloaded the mesh CA that another replica rotated');
    return true;
  }

  close(): void {
    this.closed = true;
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    this.listeners.clear();
  }

  private async doRotate(options: RotateOptions): Promise<CaState> {
    const overlapMs = options.overlapMs ?? DEFAULT_ROTATION_OVERLAP_MS;
    if (!Number.isFinite(overlapMs) || overlapMs < 0) throw new WeftError(ErrorCodes.INVALID, `the overlap must be a duration of 0 or more, got ${overlapMs}`);
    // A replica that lags behind another's rotation would retire the wrong root.
    await this.refresh();
    let next = options.next;
    if (!next) {
      if (this.source === 'operator') {
        throw new WeftError(ErrorCodes.INVALID, "this control plane signs with the operator's CA (--ca-cert/--ca-key): give the new one with weft ca rotate --ca-cert FILE --ca-key FILE");
      }
      const trustDomain = this.authority.trustDomain;
      if (trustDomain === undefined) throw new WeftError(ErrorCodes.CA_INVALID, 'the current CA names no trust domain, so a new root cannot be generated for it; supply one with --ca-cert/--ca-key');
      next = await CertificateAuthority.generate({ trustDomain, clock: this.clock });
    }
    if (next.trustDomain !== undefined && this.authority.trustDomain !== undefined && next.trustDomain !== this.authority.trustDomain) {
      throw new WeftError(ErrorCodes.CA_INVALID, `the new CA is for trust domain ${next.trustDomain}, but the mesh's certificates are in ${this.authority.trustDomain}`);
    }
    if (next.certPem === this.authority.certPem) throw new WeftError(ErrorCodes.INVALID, 'the new CA is the one already signing');
    const now = this.clock.now();
    const keep = next.trustBundle();
    const retiring: RetiringRoot[] = [];
    const add = (certPem: string, trustedUntil: number) => {
      if (keep.includes(certPem) || trustedUntil <= now) return;
      const existing = retiring.find((r) => r.certPem === certPem);
      if (existing) existing.trustedUntil = Math.max(existing.trustedUntil, trustedUntil);
      else retiring.push({ certPem, trustedUntil });
    };
    // An old root is not trusted past its own expiry; one already retiring keeps the later of its two deadlines.
    for (const root of this.retiring) add(root.certPem, root.trustedUntil);
    for (const root of this.authority.trustBundle()) add(root, Math.min(now + overlapMs, new X509Certificate(root).validToDate.getTime()));
    await this.persistence?.save(next, retiring, now);
    const previous = this.signingFingerprint;
    this.install(next, retiring, now);
    this.logger.info({ signingCa: this.signingFingerprint, previous, overlapMs, retiring: retiring.length }, 'rotated the mesh CA');
    return this.describe();
  }

  private install(authority: CertificateAuthority, retiring: RetiringRoot[], rotatedAt: number | undefined): void {
    this.authority = authority;
    this.retiring = retiring;
    this.rotatedAt = rotatedAt;
    this.armExpiry();
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ err: error }, 'CA change listener failed');
      }
    }
  }

  /** Wakes up when the next overlap ends, so that the root leaves the bundle (and the snapshots) on time. */
  private armExpiry(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    if (this.closed) return;
    const now = this.clock.now();
    const ends = this.retiring.map((r) => r.trustedUntil).filter((t) => t > now);
    if (ends.length === 0) return;
    // Timers are 32-bit: a far deadline is reached in steps.
    const delay = Math.min(Math.min(...ends) - now, 2 ** 31 - 1);
    this.expiryTimer = this.clock
      .setTimeout(() => {
        this.expiryTimer = undefined;
        const at = this.clock.now();
        const ended = this.retiring.filter((r) => r.trustedUntil <= at);
        if (ended.length > 0) {
          this.retiring = this.retiring.filter((r) => r.trustedUntil > at);
          this.logger.info({ dropped: ended.map((r) => fingerprintOf(r.certPem)) }, 'the rotation overlap ended: the old root leaves the trust bundle');
          this.notify();
        }
        this.armExpiry();
      }, delay + 1)
      .unref();
  }
}

export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
