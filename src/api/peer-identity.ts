// Reads and checks the SPIFFE ID a TLS peer presented: the mesh tunnel's two sides, and control-plane replicas asking each other.
import { ErrorCodes, WeftError } from './errors.ts';
import { parseSpiffeId } from './identity.ts';

/**
 * A peer certificate as node:tls gives it (`getPeerCertificate()`) or as
 * `getPeerX509Certificate()` does: what is read of it, spelled out here
 * because api/ takes nothing from node: (test/unit/imports.test.ts).
 */
export type PeerCertificateLike = { raw?: Uint8Array; ca?: boolean; subjectaltname?: string } | { raw: Uint8Array; ca: boolean; subjectAltName: string | undefined };

/** The side of a finished TLS handshake that is read (a node:tls TLSSocket). */
export interface VerifiedSocketLike {
  authorized: boolean;
  authorizationError?: Error | string | undefined;
  getPeerCertificate(): PeerCertificateLike;
}

/** The exact ID expected, or a predicate over the presented one (e.g. "any identity in namespace N"). */
export type ExpectedIdentity = string | ((spiffeId: string) => boolean);

/**
 * The peer's SPIFFE ID after checking it: a leaf (not a CA), exactly one URI
 * SAN, a well-formed mesh ID, and the one expected. Throws
 * WEFT_ERR_PEER_IDENTITY otherwise. The chain itself is node:tls's job: use
 * this only on a connection with `rejectUnauthorized: true` (or `authorized`).
 */
export function verifyPeerSpiffeId(peer: PeerCertificateLike | undefined | null, expected: ExpectedIdentity): string {
  const id = peerSpiffeId(peer);
  const accepted = typeof expected === 'string' ? id === expected : expected(id);
  if (!accepted) {
    throw new WeftError(ErrorCodes.PEER_IDENTITY, `the peer is ${id}, not ${typeof expected === 'string' ? expected : 'an identity allowed here'}`, { presented: id });
  }
  return id;
}

/** The SPIFFE ID a verified peer certificate carries; throws WEFT_ERR_PEER_IDENTITY when it carries none or several. */
export function peerSpiffeId(peer: PeerCertificateLike | undefined | null): string {
  if (!peer || (!('raw' in peer) || !peer.raw || peer.raw.length === 0)) throw refused('the peer presented no certificate');
  if (peer.ca) throw refused('the peer presented a CA certificate as its own');
  const altNames = 'subjectAltName' in peer ? peer.subjectAltName : peer.subjectaltname;
  const uris = subjectAltNames(altNames ?? '').filter((n) => n.type === 'URI');
  if (uris.length !== 1) throw refused(`the peer certificate has ${uris.length} URI SANs; a workload certificate has exactly one`);
  const uri = uris[0]!;
  if (uri.quoted || !parseSpiffeId(uri.value)) throw refused(`the peer's URI SAN ${JSON.stringify(uri.value)} is not a mesh SPIFFE ID`);
  return uri.value;
}

/** For `tls.connect({ checkServerIdentity })`: the mesh checks the server's SPIFFE ID, not a host name. */
export function spiffeServerIdentityCheck(expected: ExpectedIdentity): (hostname: string, cert: PeerCertificateLike) => Error | undefined {
  return (_hostname, cert) => {
    try {
      verifyPeerSpiffeId(cert, expected);
      return undefined;
    } catch (e) {
      return e as Error;
    }
  };
}

/** After a handshake (server side): the chain verified and the client is who it must be; returns its ID. */
export function authorizedPeerSpiffeId(socket: VerifiedSocketLike, expected: ExpectedIdentity): string {
  if (!socket.authorized) {
    throw refused(`the peer's certificate was not verified: ${socket.authorizationError ?? 'no certificate'}`);
  }
  return verifyPeerSpiffeId(socket.getPeerCertificate(), expected);
}

interface AltName {
  type: string;
  value: string;
  /** Node quotes a value (as JSON) when it holds characters that would make the list ambiguous. */
  quoted: boolean;
}

/** Splits node's "DNS:a, URI:b, IP Address:c" form, honouring the JSON-quoted values node uses for unusual characters. */
export function subjectAltNames(text: string): AltName[] {
  const names: AltName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let value: string;
    let quoted = false;
    let end: number;
    if (text[colon + 1] === '"') {
      quoted = true;
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        value = text.slice(colon + 2, end);
      }
      end += 1;
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end === -1) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value, quoted });
    i = text.startsWith(', ', end) ? end + 2 : end + 1;
  }
  return names;
}

function refused(message: string): WeftError {
  return new WeftError(ErrorCodes.PEER_IDENTITY, message);
}
