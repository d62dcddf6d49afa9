// The proxy's own key and its certificate signing request: the key is made here and never leaves the proxy.
// The PKCS#10 request is DER-encoded by hand (a few fixed structures): an X.509 library costs every proxy ~5 MiB of memory.
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { parseSpiffeId } from '../../api/identity.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

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
  const { publicKey, privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keyPem, csrPem: toPem('CERTIFICATE REQUEST', certificationRequest(publicKey, privateKey, spiffeId)) };
}

// DER tags (X.690) and the object identifiers the request names.
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OBJECT_IDENTIFIER = 0x06;
const BOOLEAN = 0x01;
const SEQUENCE = 0x30;
const SET = 0x31;
const CONTEXT_0_CONSTRUCTED = 0xa0;
const URI_GENERAL_NAME = 0x86; // GeneralName uniformResourceIdentifier, [6] IMPLICIT IA5String
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/**
 * PKCS#10 (RFC 2986): version 0, an empty subject, the public key, and, for a
 * SPIFFE ID, an extensionRequest for a URI subject alternative name, marked
 * critical as RFC 5280 wants when the subject is empty; signed ECDSA-SHA256.
 */
function certificationRequest(publicKey: KeyObject, privateKey: KeyObject, spiffeId: string | undefined): Buffer {
  const attributes =
    spiffeId === undefined
      ? []
      : [
          tlv(SEQUENCE, [
            objectIdentifier(OID_EXTENSION_REQUEST),
            tlv(SET, [
              tlv(SEQUENCE, [
                tlv(SEQUENCE, [
                  objectIdentifier(OID_SUBJECT_ALT_NAME),
                  tlv(BOOLEAN, [Buffer.from([0xff])]),
                  tlv(OCTET_STRING, [tlv(SEQUENCE, [tlv(URI_GENERAL_NAME, [Buffer.from(spiffeId, 'ascii')])])]),
                ]),
              ]),
            ]),
          ]),
        ];
  const info = tlv(SEQUENCE, [
    tlv(INTEGER, [Buffer.from([0])]),
    tlv(SEQUENCE, []),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(CONTEXT_0_CONSTRUCTED, attributes),
  ]);
  // node:crypto signs EC keys as a DER Ecdsa-Sig-Value, the form X.509 signatures take.
  const signature = sign('sha256', info, privateKey);
  return tlv(SEQUENCE, [info, tlv(SEQUENCE, [objectIdentifier(OID_ECDSA_WITH_SHA256)]), tlv(BIT_STRING, [Buffer.from([0]), signature])]);
}

/** One DER type-length-value with definite length. */
function tlv(tag: number, contents: readonly Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const length = body.length;
  let head: Buffer;
  if (length < 0x80) head = Buffer.from([tag, length]);
  else if (length < 0x100) head = Buffer.from([tag, 0x81, length]);
  else if (length < 0x10000) head = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  else throw new RangeError(`DER value of ${length} bytes is longer than a CSR needs`);
  return Buffer.concat([head, body]);
}

/** An OBJECT IDENTIFIER: the first two arcs in one byte, each further arc in base-128 with continuation bits. */
function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const groups = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift((rest & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(OBJECT_IDENTIFIER, [Buffer.from(bytes)]);
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
