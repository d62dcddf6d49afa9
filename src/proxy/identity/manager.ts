// Keeps the proxy's workload certificate current: first issuance, renewal at half life, retries with backoff, atomic swap.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { generateKeyAndCsr } from './csr.ts';
import { peerSpiffeId } from '../../api/peer-identity.ts';

/** What the CA answers to a CSR (over the config stream, in the control plane's wiring). */
export interface IssuedCertificate {
  certPem: string;
  /** Intermediates between the leaf and the trust bundle ('' under a generated root). */
  chainPem: string;
  /** Epoch milliseconds. */
  notAfter: number;
  /** The roots to trust, when the CA sends them with the certificate. */
  trustBundle?: string[];
}

export type RenewFunction = (csrPem: string) => Promise<IssuedCertificate>;

/** One installed identity; replaced whole, never edited. */
export interface WorkloadIdentity {
  spiffeId: string;
  keyPem: string;
  certPem: string;
  chainPem: string;
  /** Epoch milliseconds. */
  notAfter: number;
  /** When this proxy installed it (clock time), the start of its half life. */
  issuedAt: number;
  /** The certificate's serial number (hex, as node:crypto gives it): what changes at every renewal. */
  serialNumber: string;
}

export interface IdentityManagerOptions {
  /**
   * The identity to ask for (the CA decides what it grants; the manager
   * reports what the certificate says). Absent: ask for nothing in particular
   * the first time, then for what was granted.
   */
  spiffeId?: string;
  renew: RenewFunction;
  clock: Clock;
  logger: Logger;
  /** Roots to trust until the CA sends some. */
  trustBundle?: string[];
  /** Fraction of the lifetime after which to renew; 0.5 by default. */
  renewAtFraction?: number;
  /** Backoff after a failed issuance: starts at initialMs (1 s), doubles, caps at maxMs (30 s). */
  retry?: { initialMs?: number; maxMs?: number };
  /** In [0, 1): spreads retries of many proxies; injected so tests are deterministic. */
  random?: () => number;
  /**
   * After a root rotation (the snapshot names another signing CA than the one
   * that signed this certificate): renew after minMs (1 s) plus up to
   * jitterMs (4 s), so that every proxy has the new bundle before anyone
   * presents a certificate of the new root, and the CA is not hit by all at once.
   */
  signerChange?: { minMs?: number; jitterMs?: number };
}

export type IdentityListener = (identity: WorkloadIdentity) => void;

export class IdentityManager {
  private readonly options: IdentityManagerOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly renewAtFraction: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly random: () => number;
  private identity: WorkloadIdentity | undefined;
  private trust: string[];
  private context: { options: SecureContextOptions; secureContext?: SecureContext } | undefined;
  private timer: Timer | undefined;
  /** Clock time the timer fires at. */
  private timerDueAt = 0;
  /** Fingerprint of the CA that signs new certificates, from the snapshot; undefined from a control plane that does not say. */
  private signingCa: string | undefined;
  private signerCheck: { identity: WorkloadIdentity; signingCa: string; trust: string[]; signed: boolean } | undefined;
  private signerMismatches = 0;
  private readonly signerMinMs: number;
  private readonly signerJitterMs: number;
  private inFlight: Promise<boolean> | undefined;
  private failures = 0;
  private stopped = false;
  private readonly listeners = new Set<IdentityListener>();
  private firstIdentity: { promise: Promise<WorkloadIdentity>; resolve: (id: WorkloadIdentity) => void; reject: (e: Error) => void };

  constructor(options: IdentityManagerOptions) {
    this.options = options;
    this.clock = options.clock;
    this.logger = options.logger;
    this.renewAtFraction = options.renewAtFraction ?? 0.5;
    if (!(this.renewAtFraction > 0 && this.renewAtFraction < 1)) throw new WeftError(ErrorCodes.INVALID, 'renewAtFraction must be between 0 and 1');
    this.retryInitialMs = options.retry?.initialMs ?? 1000;
    this.retryMaxMs = Math.max(this.retryInitialMs, options.retry?.maxMs ?? 30_000);
    this.random = options.random ?? Math.random;
    this.signerMinMs = options.signerChange?.minMs ?? 1000;
    this.signerJitterMs = options.signerChange?.jitterMs ?? 4000;
    this.trust = [];
    this.setTrust(options.trustBundle ?? []);
    let resolve!: (id: WorkloadIdentity) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<WorkloadIdentity>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // stop() before the first certificate rejects it; nobody may be awaiting, so don't crash on that.
    promise.catch(() => {});
    this.firstIdentity = { promise, resolve, reject };
  }

  /** Asks for the first certificate and resolves once one is installed (retrying with backoff until then, or until stop()). */
  start(): Promise<WorkloadIdentity> {
    if (!this.identity && !this.inFlight && !this.timer && !this.stopped) void this.attempt();
    return this.firstIdentity.promise;
  }

  /** Resolves once a first certificate is installed, without asking for one (start() does that). */
  whenReady(): Promise<WorkloadIdentity> {
    return this.firstIdentity.promise;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.firstIdentity.reject(new WeftError(ErrorCodes.DRAINING, 'the identity manager stopped before a certificate was issued'));
  }

  /** Renews now (e.g. after a root rotation); resolves true when a new certificate was installed. */
  renewNow(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    this.timer?.cancel();
    this.timer = undefined;
    return this.attempt();
  }

  get current(): WorkloadIdentity | undefined {
    return this.identity;
  }

  get ready(): boolean {
    return this.identity !== undefined;
  }

  /** Epoch milliseconds at which the current certificate expires (for the expiry metric and `weft status`). */
  get expiresAt(): number | undefined {
    return this.identity?.notAfter;
  }

  get trustBundle(): string[] {
    return [...this.trust];
  }

  /**
   * Replaces the trusted roots (from the snapshot); servers and new
   * connections pick them up through onChange. With `signingCa` (the
   * snapshot's mesh.signingCa): a certificate that CA did not sign is renewed
   * soon, with jitter (after a root rotation, the snapshot brings the new
   * bundle first and the renewal follows). Without it (an older control
   * plane): a changed bundle renews at once.
   */
  setTrustBundle(pems: string[], signingCa?: string): void {
    const bundleChanged = pems.length > 0 && !sameList(pems, this.trust);
    const hadTrust = this.trust.length > 0;
    if (bundleChanged) {
      this.setTrust(pems);
      if (this.identity) this.install(this.identity);
    }
    if (signingCa !== undefined) {
      this.signingCa = signingCa;
      if (this.identity && !this.stopped && !this.signedByCurrentCa(this.identity)) this.renewSoon();
      return;
    }
    if (bundleChanged && hadTrust && this.identity && !this.stopped) void this.renewNow();
  }

  /** Whether the current certificate is signed by the CA the snapshot names as signing (true when nothing says). */
  get signedBySigningCa(): boolean {
    return this.identity === undefined || this.signedByCurrentCa(this.identity);
  }

  /**
   * Options for `tls.createServer` / `tls.connect` / `server.setSecureContext`:
   * the key, the leaf followed by its chain, the trust bundle, TLS 1.3 only.
   * The object is replaced whole on every rotation, never mutated.
   */
  secureContextOptions(): SecureContextOptions {
    if (!this.context) throw new WeftError(ErrorCodes.INTERNAL, 'no workload certificate yet: await start() first');
    return this.context.options;
  }

  /** The same, as one SecureContext built once per rotation (for SNICallback or tls.connect({ secureContext })). */
  secureContext(): SecureContext {
    if (!this.context) throw new WeftError(ErrorCodes.INTERNAL, 'no workload certificate yet: await start() first');
    this.context.secureContext ??= createSecureContext(this.context.options);
    return this.context.secureContext;
  }

  /** Called after every swap (new certificate or new trust bundle); returns an unsubscribe function. */
  onChange(listener: IdentityListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private attempt(): Promise<boolean> {
    // One issuance at a time: a forced renewal during a scheduled one joins it.
    this.inFlight ??= this.issue();
    return this.inFlight;
  }

  private async issue(): Promise<boolean> {
    let outcome: { keyPem: string; issued: IssuedCertificate } | { error: unknown };
    try {
      // A fresh key each time: a renewal also rotates the key.
      const { keyPem, csrPem } = await generateKeyAndCsr(this.identity?.spiffeId ?? this.options.spiffeId);
      outcome = { keyPem, issued: await this.options.renew(csrPem) };
    } catch (error) {
      outcome = { error };
    }
    // Cleared before anyone awaiting this issuance runs again, so that a later renewNow() starts a new one.
    this.inFlight = undefined;
    if (this.stopped) return false;
    try {
      if ('error' in outcome) throw outcome.error;
      const identity = this.check(outcome.keyPem, outcome.issued);
      if (outcome.issued.trustBundle && outcome.issued.trustBundle.length > 0) this.setTrust(outcome.issued.trustBundle);
      this.failures = 0;
      this.install(identity);
      this.logger.info({ spiffeId: identity.spiffeId, notAfter: new Date(identity.notAfter).toISOString() }, 'workload certificate installed');
      this.firstIdentity.resolve(identity);
      let delay = identity.issuedAt + (identity.notAfter - identity.issuedAt) * this.renewAtFraction - this.clock.now();
      if (this.signedByCurrentCa(identity)) {
        this.signerMismatches = 0;
      } else {
        // Another replica may not have taken the rotation yet: ask again soon, backing off.
        this.signerMismatches++;
        delay = Math.min(delay, this.signerDelay() * 2 ** Math.min(this.signerMismatches - 1, 5));
      }
      this.schedule(delay);
      return true;
    } catch (e) {
      this.failures++;
      const base = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(this.failures - 1, 30));
      // Half fixed, half random: proxies that failed together do not retry together.
      const delay = base / 2 + (base / 2) * this.random();
      this.logger.warn(
        { err: e, failures: this.failures, retryInMs: Math.round(delay), expiresAt: this.expiresAt === undefined ? undefined : new Date(this.expiresAt).toISOString() },
        'workload certificate issuance failed',
      );
      this.schedule(delay);
      return false;
    }
  }

  /** Refuses an answer that would break the proxy: a certificate for another key, without a mesh ID, or already expired. */
  private check(keyPem: string, issued: IssuedCertificate): WorkloadIdentity {
    const cert = new X509Certificate(issued.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new WeftError(ErrorCodes.CSR_INVALID, 'the issued certificate is not for the key this proxy sent');
    const spiffeId = peerSpiffeId(cert);
    const now = this.clock.now();
    const notAfter = Math.min(issued.notAfter, cert.validToDate.getTime());
    if (notAfter <= now) throw new WeftError(ErrorCodes.CSR_INVALID, `the issued certificate expired at ${new Date(notAfter).toISOString()}`);
    const asked = this.identity?.spiffeId ?? this.options.spiffeId;
    if (asked !== undefined && spiffeId !== asked) this.logger.warn({ asked, granted: spiffeId }, 'the CA granted another identity than the one asked for');
    return { spiffeId, keyPem, certPem: issued.certPem, chainPem: issued.chainPem, notAfter, issuedAt: now, serialNumber: cert.serialNumber };
  }

  private install(identity: WorkloadIdentity): void {
    const options: SecureContextOptions = {
      key: identity.keyPem,
      cert: (identity.certPem.endsWith('\n') ? identity.certPem : `${identity.certPem}\n`) + identity.chainPem,
      minVersion: 'TLSv1.3',
    };
    if (this.trust.length > 0) options.ca = [...this.trust];
    // One assignment: a connection reads either the old context or the new one, never a mix.
    this.identity = identity;
    this.context = { options };
    for (const listener of this.listeners) {
      try {
        listener(identity);
      } catch (e) {
        this.logger.error({ err: e }, 'identity change listener failed');
      }
    }
  }

  private setTrust(pems: string[]): void {
    // Parsed only to fail here, on a bad bundle, rather than in the next handshake.
    for (const pem of pems) new X509Certificate(pem);
    this.trust = [...pems];
  }

  private schedule(delayMs: number): void {
    this.timer?.cancel();
    if (this.stopped) return;
    // Never a tight loop, even if the CA hands out certificates that are (nearly) expired.
    const delay = Math.max(this.retryInitialMs / 2, delayMs);
    this.timerDueAt = this.clock.now() + delay;
    this.timer = this.clock
      .setTimeout(() => {
        this.timer = undefined;
        void this.attempt();
      }, delay)
      .unref();
  }

  private signerDelay(): number {
    return this.signerMinMs + this.signerJitterMs * this.random();
  }

  /** Brings the next renewal forward to the signer-change delay, unless one is in flight or due sooner. */
  private renewSoon(): void {
    if (this.inFlight) return;
    const delay = this.signerDelay();
    if (this.timer && this.timerDueAt <= this.clock.now() + delay) return;
    this.logger.info({ signingCa: this.signingCa, inMs: Math.round(delay) }, 'the mesh CA rotated: renewing the workload certificate under the new CA');
    this.schedule(delay);
  }

  /** Whether `identity`'s certificate was signed by the snapshot's signing CA (found among the trusted roots and the certificate's own chain). */
  private signedByCurrentCa(identity: WorkloadIdentity): boolean {
    const signingCa = this.signingCa;
    if (signingCa === undefined) return true;
    const cached = this.signerCheck;
    if (cached && cached.identity === identity && cached.signingCa === signingCa && cached.trust === this.trust) return cached.signed;
    let signed = false;
    try {
      const leaf = new X509Certificate(identity.certPem);
      for (const pem of [...splitCertificates(identity.chainPem), ...this.trust]) {
        const candidate = new X509Certificate(pem);
        if (candidate.fingerprint256 !== signingCa) continue;
        signed = leaf.checkIssued(candidate) && leaf.verify(candidate.publicKey);
        break;
      }
    } catch {
      signed = false;
    }
    this.signerCheck = { identity, signingCa, trust: this.trust, signed };
    return signed;
  }
}

function splitCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
