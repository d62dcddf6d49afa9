// The control plane's own certificate for TLS on the stream port: a SPIFFE ID of the mesh CA, renewed at half life and at once when the signing CA changes.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { controlPlaneSpiffeId } from '../../api/identity.ts';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { SignedCertificate, SignOptions } from './authority.ts';

/** What this needs of the mesh CA (MeshCa). */
export interface StreamCertificateSigner {
  signCsr(csrPem: string, options: SignOptions): Promise<SignedCertificate>;
  onChange(listener: () => void): () => void;
}

export interface StreamCredentials {
  keyPem: string;
  /** The leaf, then the intermediates up to a trust-bundle root. */
  certPem: string;
  notAfter: number;
  serialNumber: string;
}

export interface StreamIdentityOptions {
  ca: StreamCertificateSigner;
  trustDomain: () => string;
  ttlMs: number;
  clock: Clock;
  logger: Logger;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
/** After a failed renewal, try again this soon (the current certificate is still good for half its life). */
const RETRY_MS = 5_000;

/**
 * Holds the stream port's certificate. The key is made here, in memory, per
 * renewal; nothing is written to disk. Listeners (the TLS server) swap their
 * context on every change, so open streams carry on and new ones get the
 * new certificate.
 */
export class StreamIdentity {
  private readonly options: StreamIdentityOptions;
  private credentials!: StreamCredentials;
  private readonly listeners = new Set<() => void>();
  private timer: Timer | undefined;
  private readonly stopCa: () => void;
  private stopped = false;

  private constructor(options: StreamIdentityOptions) {
    this.options = options;
    // A rotation: the next certificate comes from the new CA, so proxies that trust only it still connect.
    this.stopCa = options.ca.onChange(() => this.schedule(0));
  }

  static async start(options: StreamIdentityOptions): Promise<StreamIdentity> {
    const identity = new StreamIdentity(options);
    identity.credentials = await identity.issue();
    identity.scheduleRenewal();
    return identity;
  }

  get current(): StreamCredentials {
    return this.credentials;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.stopCa();
  }

  private async issue(): Promise<StreamCredentials> {
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: ALGORITHM });
    const signed = await this.options.ca.signCsr(csr.toString('pem'), { spiffeId: controlPlaneSpiffeId(this.options.trustDomain()), ttlMs: this.options.ttlMs });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
    return { keyPem, certPem: signed.certPem + signed.chainPem, notAfter: signed.notAfter, serialNumber: signed.serialNumber };
  }

  private scheduleRenewal(): void {
    const { clock } = this.options;
    const now = clock.now();
    this.schedule(Math.max(0, (this.credentials.notAfter - now) / 2));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    // Node timers hold at most 2^31-1 ms; a longer wait is cut short and re-armed by renew().
    this.timer = this.options.clock.setTimeout(() => void this.renew(), Math.min(delayMs, 2 ** 31 - 1)).unref();
  }

  private async renew(): Promise<void> {
    try {
      const next = await this.issue();
      if (this.stopped) return;
      this.credentials = next;
      this.options.logger.info({ notAfter: new Date(next.notAfter).toISOString(), serialNumber: next.serialNumber }, 'stream port certificate renewed');
      for (const listener of this.listeners) listener();
      this.scheduleRenewal();
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cannot renew the stream port certificate; keeping the current one');
      this.schedule(RETRY_MS);
    }
  }
}
