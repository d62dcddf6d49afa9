// The mesh CA: a generated root or an operator's intermediate that signs short-lived SPIFFE certificates from proxies' CSRs.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeCertificate, type KeyObject } from 'node:crypto';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { parseSpiffeId, trustDomainId, isValidTrustDomain } from '../../api/identity.ts';
import type { Clock } from '../../telemetry/clock.ts';
import { joinPem, splitPemCertificates } from './pem.ts';

type CryptoKey = webcrypto.CryptoKey;
type SigningAlgorithm = webcrypto.EcdsaParams | webcrypto.Algorithm;

export const DEFAULT_CERT_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_ROOT_VALIDITY_DAYS = 3650;
/** Certificates start a minute in the past so that a peer whose clock is slightly behind still accepts them. */
export const CLOCK_SKEW_MS = 60 * 1000;
/** A CSR is a few hundred bytes; anything much bigger is not one of ours and is not worth parsing. */
const MAX_CSR_LENGTH = 16 * 1024;
const MIN_RSA_BITS = 2048;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface SignOptions {
  /** The identity to certify. The CA's caller decides it (from the authenticated token), never the CSR. */
  spiffeId: string;
  /** Lifetime from now; 24 h by default. Capped by the CA's own expiry. */
  ttlMs?: number;
}

export interface SignedCertificate {
  certPem: string;
  /** The certificates between the leaf and a trust-bundle root (the intermediates); '' under a generated root. */
  chainPem: string;
  /** Epoch milliseconds. */
  notAfter: number;
  serialNumber: string;
}

export interface GenerateOptions {
  trustDomain: string;
  clock: Clock;
  validityDays?: number;
}

export interface LoadOptions {
  /** The CA certificate, optionally followed by its chain. */
  certPem: string;
  /** PKCS#8, SEC1 ("EC PRIVATE KEY") or PKCS#1 PEM, unencrypted. */
  keyPem: string;
  /** The certificates above the CA certificate, up to and including the organisation's root (required unless certPem holds them). */
  chainPem?: string;
  clock: Clock;
  /** More roots to trust, e.g. the previous root during a rotation overlap. */
  extraTrustPem?: string;
}

interface SigningSetup {
  algorithm: SigningAlgorithm;
  importAlgorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
}

export class CertificateAuthority {
  /** The CA's own certificate. */
  readonly certPem: string;
  /** The certificates above it as supplied ('' for a generated root). */
  readonly chainPem: string;
  /** From the CA certificate's `spiffe://<td>` URI SAN; undefined for an operator CA without one. */
  readonly trustDomain: string | undefined;
  /** Epoch milliseconds after which no certificate can be signed (the earliest expiry along the chain). */
  readonly notAfter: number;
  private readonly privateKey: KeyObject;
  private readonly signingKey: CryptoKey;
  private readonly signingAlgorithm: SigningAlgorithm;
  private readonly issuerName: x509.Name;
  private readonly authorityKeyId: string | undefined;
  /** What leaves carry above themselves: the CA and the supplied chain, less self-signed roots. */
  private readonly leafChain: string[];
  private readonly ownAnchors: string[];
  private extraAnchors: string[];
  private readonly clock: Clock;

  private constructor(init: {
    certPem: string;
    chain: string[];
    privateKey: KeyObject;
    signingKey: CryptoKey;
    signingAlgorithm: SigningAlgorithm;
    extraAnchors: string[];
    clock: Clock;
  }) {
    this.certPem = init.certPem;
    this.chainPem = joinPem(init.chain);
    this.privateKey = init.privateKey;
    this.signingKey = init.signingKey;
    this.signingAlgorithm = init.signingAlgorithm;
    this.clock = init.clock;

    const caCert = new x509.X509Certificate(init.certPem);
    this.issuerName = caCert.subjectName;
    this.authorityKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    this.trustDomain = trustDomainOfCa(caCert);

    const path = [init.certPem, ...init.chain];
    const parsed = path.map((pem) => new NodeCertificate(pem));
    this.notAfter = Math.min(...parsed.map((c) => c.validToDate.getTime()));
    this.leafChain = path.filter((_, i) => !isSelfSigned(parsed[i]!));
    // load() and generate() both guarantee the path ends at a self-signed root.
    this.ownAnchors = path.filter((_, i) => isSelfSigned(parsed[i]!));
    this.extraAnchors = init.extraAnchors.filter((pem) => !this.ownAnchors.includes(pem));
  }

  /** A new self-signed root: ECDSA P-256, CA:true, keyCertSign, URI SAN spiffe://<trustDomain>. */
  static async generate(options: GenerateOptions): Promise<CertificateAuthority> {
    const { trustDomain, clock } = options;
    if (!isValidTrustDomain(trustDomain)) throw new WeftError(ErrorCodes.IDENTITY_INVALID, `trust domain ${JSON.stringify(trustDomain)} must be 1-255 of a-z 0-9 . _ -`);
    const validityDays = options.validityDays ?? DEFAULT_ROOT_VALIDITY_DAYS;
    if (!(validityDays > 0)) throw new WeftError(ErrorCodes.INVALID, `validityDays must be positive, got ${validityDays}`);
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = clock.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=weft root CA ${trustDomain}`,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + validityDays * DAY_MS),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }]),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    return new CertificateAuthority({
      certPem: pemOf(cert),
      chain: [],
      privateKey,
      signingKey: keys.privateKey,
      signingAlgorithm: algorithm,
      extraAnchors: [],
      clock,
    });
  }

  /** An operator-supplied CA (usually an intermediate under the organisation's root), checked before use. */
  static async load(options: LoadOptions): Promise<CertificateAuthority> {
    const supplied = splitPemCertificates(options.certPem);
    const caPem = supplied[0];
    if (!caPem) throw caInvalid('the CA certificate file holds no PEM certificate');
    const chain = [...supplied.slice(1), ...splitPemCertificates(options.chainPem)];

    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(options.keyPem);
    } catch (e) {
      throw caInvalid(`the CA key cannot be read: ${(e as Error).message}`);
    }
    const path = [caPem, ...chain].map((pem, i) => {
      try {
        return new NodeCertificate(pem);
      } catch (e) {
        throw caInvalid(`certificate ${i} of the CA chain cannot be read: ${(e as Error).message}`);
      }
    });
    const caCert = path[0]!;
    if (!caCert.checkPrivateKey(privateKey)) throw caInvalid('the CA key does not match the CA certificate');
    if (!caCert.ca) throw caInvalid(`${caCert.subject || 'the CA certificate'} is not a CA certificate (basicConstraints CA:false)`);
    const keyUsage = new x509.X509Certificate(caPem).getExtension(x509.KeyUsagesExtension);
    if (keyUsage && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw caInvalid('the CA certificate lacks the keyCertSign key usage');
    for (let i = 0; i + 1 < path.length; i++) {
      const child = path[i]!;
      const parent = path[i + 1]!;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
        throw caInvalid(`the CA chain is out of order: certificate ${i} (${child.subject}) is not issued by certificate ${i + 1} (${parent.subject})`);
      }
    }
    const top = path[path.length - 1]!;
    // OpenSSL (so node:tls) anchors only on self-signed roots; Node's TLS server ignores allowPartialTrustChain.
    if (!isSelfSigned(top)) {
      throw caInvalid(`the CA chain ends at ${top.subject || 'a certificate'} issued by ${top.issuer}; supply the chain up to the organisation's root (a self-signed certificate), which peers need as their trust anchor`);
    }
    const setup = signingSetup(privateKey);
    const signingKey = privateKey.toCryptoKey(setup.importAlgorithm, false, ['sign']);
    return new CertificateAuthority({
      certPem: caPem,
      chain,
      privateKey,
      signingKey,
      signingAlgorithm: setup.algorithm,
      extraAnchors: splitPemCertificates(options.extraTrustPem),
      clock: options.clock,
    });
  }

  /** The CA certificate, its key (PKCS#8) and its chain, for persistence. The key is secret. */
  toPem(): { certPem: string; keyPem: string; chainPem: string } {
    return {
      certPem: this.certPem,
      keyPem: this.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      chainPem: this.chainPem,
    };
  }

  /** The roots every proxy trusts: this CA's root, plus any others during a rotation overlap. */
  trustBundle(): string[] {
    return [...this.ownAnchors, ...this.extraAnchors];
  }

  /** Roots trusted besides this CA's own (the previous or next root during a rotation overlap). */
  extraTrustAnchors(): string[] {
    return [...this.extraAnchors];
  }

  /** Starts an overlap: trusts other roots too (self-signed CA certificates, PEM, one or more). */
  addTrustAnchors(pem: string): void {
    const certs = splitPemCertificates(pem);
    if (certs.length === 0) throw caInvalid('no PEM certificate to trust');
    for (const cert of certs) {
      let parsed: NodeCertificate;
      try {
        parsed = new NodeCertificate(cert);
      } catch (e) {
        throw caInvalid(`a root to trust cannot be read: ${(e as Error).message}`);
      }
      if (!parsed.ca || !isSelfSigned(parsed)) throw caInvalid(`${parsed.subject} is not a self-signed CA certificate, so it cannot be a trust anchor`);
      if (!this.ownAnchors.includes(cert) && !this.extraAnchors.includes(cert)) this.extraAnchors.push(cert);
    }
  }

  /** Ends an overlap: stops trusting the given roots (this CA's own cannot be removed). */
  removeTrustAnchors(pem: string): void {
    const drop = new Set(splitPemCertificates(pem));
    this.extraAnchors = this.extraAnchors.filter((cert) => !drop.has(cert));
  }

  /**
   * Signs a proxy's CSR. The CSR only contributes its public key: its subject
   * and any SAN it asks for are ignored, and the certificate names exactly
   * `spiffeId`.
   */
  async signCsr(csrPem: string, options: SignOptions): Promise<SignedCertificate> {
    const id = parseSpiffeId(options.spiffeId);
    if (!id) throw new WeftError(ErrorCodes.IDENTITY_INVALID, `${JSON.stringify(options.spiffeId)} is not spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
    if (this.trustDomain !== undefined && id.trustDomain !== this.trustDomain) {
      throw new WeftError(ErrorCodes.IDENTITY_INVALID, `${options.spiffeId} is outside this CA's trust domain ${this.trustDomain}`);
    }
    const ttlMs = options.ttlMs ?? DEFAULT_CERT_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < 1000) throw new WeftError(ErrorCodes.INVALID, `ttlMs must be at least 1000, got ${ttlMs}`);
    const now = this.clock.now();
    if (now >= this.notAfter) throw caInvalid(`the CA expired at ${new Date(this.notAfter).toISOString()}`);

    const csr = await parseAndVerifyCsr(csrPem);
    checkCsrKey(csr);

    const notAfter = Math.min(now + ttlMs, this.notAfter);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      // Critical because the subject is empty (RFC 5280 §4.2.1.6): the SAN is the whole identity.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: options.spiffeId }], true),
    ];
    // Roots of one trust domain share a name across rotations; the key id tells peers which one signed.
    if (this.authorityKeyId) extensions.push(new x509.AuthorityKeyIdentifierExtension(this.authorityKeyId));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: this.issuerName,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(notAfter),
      publicKey: csr.publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: this.signingAlgorithm,
      extensions,
    });
    return { certPem: pemOf(cert), chainPem: joinPem(this.leafChain), notAfter: cert.notAfter.getTime(), serialNumber: cert.serialNumber };
  }
}

async function parseAndVerifyCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_LENGTH) throw csrInvalid(`the CSR must be a PEM string of at most ${MAX_CSR_LENGTH} characters`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    throw csrInvalid(`the CSR cannot be parsed: ${(e as Error).message}`);
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (e) {
    throw csrInvalid(`the CSR's signature cannot be checked: ${(e as Error).message}`);
  }
  if (!valid) throw csrInvalid('the CSR is not signed by the key it carries');
  return csr;
}

/** ECDSA P-256 (what weft proxies make) or RSA of at least 2048 bits (what other tooling may make). */
function checkCsrKey(csr: x509.Pkcs10CertificateRequest): void {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (e) {
    throw csrInvalid(`the CSR's public key cannot be read: ${(e as Error).message}`);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return;
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= MIN_RSA_BITS) return;
  const what = key.asymmetricKeyType === 'ec' ? `EC ${details.namedCurve}` : key.asymmetricKeyType === 'rsa' ? `RSA ${details.modulusLength}` : key.asymmetricKeyType;
  throw csrInvalid(`the CSR's key (${what}) is refused: use ECDSA P-256 or RSA of at least ${MIN_RSA_BITS} bits`);
}

function signingSetup(key: KeyObject): SigningSetup {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return { algorithm: { name: 'ECDSA', hash: 'SHA-256' }, importAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' } };
    if (details.namedCurve === 'secp384r1') return { algorithm: { name: 'ECDSA', hash: 'SHA-384' }, importAlgorithm: { name: 'ECDSA', namedCurve: 'P-384' } };
  }
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= MIN_RSA_BITS) {
    return { algorithm: { name: 'RSASSA-PKCS1-v1_5' }, importAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw caInvalid(`the CA key (${key.asymmetricKeyType} ${details.namedCurve ?? details.modulusLength ?? ''}) is not supported: use ECDSA P-256/P-384 or RSA ≥ ${MIN_RSA_BITS}`);
}

function trustDomainOfCa(cert: x509.X509Certificate): string | undefined {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  for (const name of san?.names.items ?? []) {
    if (name.type !== 'url' || !name.value.startsWith('spiffe://')) continue;
    const td = name.value.slice('spiffe://'.length).replace(/\/$/, '');
    if (isValidTrustDomain(td)) return td;
  }
  return undefined;
}

function isSelfSigned(cert: NodeCertificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/** 16 random bytes as a positive integer with no leading zero byte: about 127 bits an attacker cannot guess. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function pemOf(cert: x509.X509Certificate): string {
  const pem = cert.toString('pem').replace(/\r\n/g, '\n');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function caInvalid(message: string): WeftError {
  return new WeftError(ErrorCodes.CA_INVALID, message);
}

function csrInvalid(message: string): WeftError {
  return new WeftError(ErrorCodes.CSR_INVALID, message);
}
