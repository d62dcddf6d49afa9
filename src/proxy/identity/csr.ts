// The proxy's own key and its certificate signing request: the key is made here and never leaves the proxy.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { parseSpiffeId } from '../../api/identity.ts';

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/**
 * A fresh ECDSA P-256 key (PKCS#8 PEM, for node:tls) and a CSR signed by it
 * that asks for `spiffeId` (or for nothing in particular, before the proxy
 * knows its identity). The CA decides the identity it certifies; the request
 * only says what this proxy expects.
 */
export async function generateKeyAndCsr(spiffeId?: string): Promise<{ keyPem: string; csrPem: string }> {
  if (spiffeId !== undefined && !parseSpiffeId(spiffeId)) {
    throw new WeftError(ErrorCodes.IDENTITY_INVALID, `${JSON.stringify(spiffeId)} is not spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
  }
  const keys = (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: KEY_ALGORITHM,
    extensions: spiffeId === undefined ? [] : [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPem: toPem('PRIVATE KEY', pkcs8), csrPem: toPem('CERTIFICATE REQUEST', Buffer.from(csr.rawData)) };
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
