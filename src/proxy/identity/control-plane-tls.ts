// How a proxy connects to its control planes: TLS (verified against the mesh trust bundle and the control plane's SPIFFE ID) for https://, cleartext HTTP/2 for http:// on this host.
import http2 from 'node:http2';
import { isIP } from 'node:net';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { isControlPlaneId } from '../../api/identity.ts';
import { isLoopbackHost } from '../../api/loopback.ts';
import { spiffeServerIdentityCheck } from '../../api/peer-identity.ts';

/** The roots a proxy trusts on the stream port: `weft proxy --ca-bundle`, plus the mesh trust bundle it was last sent (so a root rotation does not strand it). */
export interface ControlPlaneTls {
  roots(): readonly string[];
}

/**
 * An HTTP/2 session to a control plane URL. https:// checks the chain
 * against `tls.ca` and that the server presents a control plane's SPIFFE ID
 * (not a host name: replicas are reached by any address); http:// is
 * cleartext, which the control plane takes only from its own host.
 */
export function connectControlPlane(url: string, tls: ControlPlaneTls | undefined, options: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:') return http2.connect(url, options);
  const roots = tls?.roots() ?? [];
  if (roots.length === 0) throw new WeftError(ErrorCodes.INVALID, `${url}: a TLS control plane needs the mesh trust bundle to verify it (--ca-bundle)`);
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return http2.connect(url, {
    ...options,
    ca: [...roots],
    minVersion: 'TLSv1.3',
    // SNI must be a host name; the server is identified by its SPIFFE ID.
    ...(isIP(host) === 0 ? { servername: host } : {}),
    checkServerIdentity: spiffeServerIdentityCheck(isControlPlaneId),
  });
}


/**
 * Refuses control plane URLs that would send the bootstrap token across the
 * network in cleartext (http:// to another host), unless allowed.
 */
export function checkTokenTransport(urls: readonly string[], hasToken: boolean, allowPlaintext: boolean): void {
  if (!hasToken || allowPlaintext) return;
  for (const url of urls) {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
      throw new WeftError(
        ErrorCodes.INVALID,
        `${url}: the bootstrap token would cross the network in cleartext; use https://${parsed.host} with --ca-bundle (the mesh trust bundle), or --insecure-plaintext-control-plane`,
      );
    }
  }
}
