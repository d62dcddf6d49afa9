// Mutual TLS on the mesh tunnel: the client side (dials for pools and CONNECT) and the server side's checks, both on the proxy's workload identity.
import { createHash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { parseSpiffeId } from '../../api/identity.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { Counter, Histogram, MetricsRegistry } from '../../telemetry/metrics.ts';
import { classifyUpstreamError, proxyError } from '../errors.ts';
import type { IdentityManager } from '../identity/manager.ts';
import { peerSpiffeId, spiffeServerIdentityCheck } from '../../api/peer-identity.ts';
import { hostPort } from './pools.ts';

/** What both ends of the tunnel must agree on: HTTP/1.1 requests and CONNECT, spoken by weft proxies. */
export const TUNNEL_ALPN = 'weft-tunnel/1';
/** HTTP/2 on the tunnel (HTTP/2 and gRPC requests as streams): negotiated per connection beside TUNNEL_ALPN. */
export const TUNNEL_H2_ALPN = 'h2';
/** What the tunnel server accepts, in its order of preference. */
export const TUNNEL_SERVER_ALPNS = [TUNNEL_ALPN, TUNNEL_H2_ALPN];
/** Idle time before TCP keep-alive probes start on a client tunnel connection. */
const TUNNEL_KEEPALIVE_MS = 30_000;
/** The first byte of a TLS handshake record: how PERMISSIVE tells mTLS from plaintext. */
export const TLS_HANDSHAKE_RECORD = 0x16;
/** The header that carries the verified caller to the app (Envoy's format). */
export const XFCC_HEADER = 'x-forwarded-client-cert';

export interface TunnelMetrics {
  /** Tunnel handshakes by side (client, server) and result. */
  readonly handshakes: Counter;
  /** Client side: TCP connect plus TLS handshake plus the peer check, per new tunnel connection. */
  readonly handshakeSeconds: Histogram;
  /** Client side: HTTP/2 tunnel sessions opened and closed, by reason (see h2.ts SessionObserver). */
  readonly sessions: Counter;
}

export function createTunnelMetrics(registry: MetricsRegistry): TunnelMetrics {
  return {
    handshakes: registry.counter(
      'weft_tunnel_handshakes_total',
      'Mesh tunnel connections by side and outcome: ok, plaintext (accepted in PERMISSIVE), plaintext_refused, refused (peer identity or certificate), failed.',
      ['side', 'result'],
    ),
    handshakeSeconds: registry.histogram('weft_tunnel_handshake_seconds', 'Time to open one mTLS tunnel connection to a peer (TCP connect, TLS 1.3 handshake, identity check).', ['side']),
    sessions: registry.counter(
      'weft_tunnel_sessions_total',
      'HTTP/2 tunnel sessions to peers by event (opened, closed) and reason: dial; goaway, ping_timeout, error, peer_closed, retired, shutdown.',
      ['event', 'reason'],
    ),
  };
}

/** The caller of a tunnel connection, as the server side verified it. */
export interface VerifiedPeer {
  spiffeId: string;
  /** SHA-256 of the peer certificate (DER), hex: the XFCC `Hash`. */
  certHash: string;
}

export interface TunnelTlsOptions {
  identity: IdentityManager;
  metrics: TunnelMetrics;
  clock: Clock;
}

/**
 * The client side of mesh mTLS. Every new connection reads the identity's
 * current SecureContext, so a rotated certificate is used from the next
 * connection on while the open ones carry on.
 */
export class TunnelTls {
  private readonly options: TunnelTlsOptions;

  constructor(options: TunnelTlsOptions) {
    this.options = options;
  }

  get metrics(): TunnelMetrics {
    return this.options.metrics;
  }

  /** Dials the tunnel at host:port for HTTP/2 sessions (ALPN h2). */
  h2Dialer(host: string, port: number, expected: string | undefined): (timeoutMs: number) => Promise<TLSSocket> {
    return (timeoutMs) => this.connect(host, port, expected, timeoutMs, TUNNEL_H2_ALPN);
  }

  /**
   * One mTLS connection to a peer's tunnel, resolved after the TLS 1.3
   * handshake: the chain verified against the trust bundle, the peer's
   * SPIFFE ID exactly `expected`, the ALPN protocol agreed. Waits (within
   * the timeout) for this proxy's first certificate if it has none yet.
   */
  async connect(host: string, port: number, expected: string | undefined, timeoutMs: number, alpn: string = TUNNEL_ALPN): Promise<TLSSocket> {
    const where = hostPort(host, port);
    if (expected === undefined) {
      this.count('client', 'refused');
      throw proxyError(ErrorCodes.PEER_IDENTITY, `${where}: the config names no identity for this endpoint, so it cannot be verified`, 503);
    }
    const started = this.options.clock.monotonic();
    await this.waitForIdentity(timeoutMs, where);
    const left = Math.max(1, timeoutMs - (this.options.clock.monotonic() - started));
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      let settled = false;
      const fail = (error: WeftError, result: string) => {
        if (settled) return;
        settled = true;
        socket.destroy();
        this.count('client', result);
        reject(error);
      };
      const socket = tlsConnect({
        host,
        port,
        // SNI must be a host name; the peer is identified by its SPIFFE ID, not by it.
        ...(isIP(host) === 0 ? { servername: host } : {}),
        secureContext: this.options.identity.secureContext(),
        ALPNProtocols: [alpn],
        minVersion: 'TLSv1.3',
        rejectUnauthorized: true,
        checkServerIdentity: spiffeServerIdentityCheck(expected),
      });
      socket.setTimeout(left, () => fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${where}: no TLS handshake within ${timeoutMs} ms`), 'failed'));
      const onError = (error: Error) => {
        if (error instanceof WeftError) fail(withStatus(error, 503), 'refused');
        else if (socket.connecting) fail(classifyUpstreamError(error, where), 'failed');
        else fail(proxyError(ErrorCodes.PEER_IDENTITY, `the mTLS handshake with ${where} failed: ${error.message}`, 503), 'refused');
      };
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        if (settled) return;
        if (socket.alpnProtocol !== alpn) {
          fail(proxyError(ErrorCodes.PEER_IDENTITY, `${where} does not speak ${alpn}`, 503), 'refused');
          return;
        }
        settled = true;
        socket.setTimeout(0);
        // The caller attaches its own handlers before any later I/O can emit.
        socket.off('error', onError);
        socket.setNoDelay(true);
        // Kept tunnel connections (HTTP/1.1 pools, HTTP/2 sessions) to a peer that vanished without a FIN are found by the kernel and replaced.
        socket.setKeepAlive(true, TUNNEL_KEEPALIVE_MS);
        this.count('client', 'ok');
        this.options.metrics.handshakeSeconds.labels('client').observe((this.options.clock.monotonic() - started) / 1000);
        resolve(socket);
      });
    });
    return socket;
  }

  private async waitForIdentity(timeoutMs: number, where: string): Promise<void> {
    const identity = this.options.identity;
    if (identity.ready) return;
    let timer: { cancel(): void } | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.options.clock.setTimeout(
        () => reject(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${where}: this proxy has no workload certificate yet`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([identity.whenReady(), timeout]);
    } catch (error) {
      this.count('client', 'failed');
      throw error instanceof WeftError && error.code === ErrorCodes.UPSTREAM_CONNECT
        ? error
        : new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${where}: this proxy has no workload certificate (${(error as Error).message})`);
    } finally {
      timer?.cancel();
    }
  }

  private count(side: string, result: string): void {
    this.options.metrics.handshakes.labels(side, result).inc();
  }
}

/**
 * Server side, after node:tls verified the chain (rejectUnauthorized): the
 * peer speaks the tunnel protocol and is a workload of `trustDomain` (any
 * trust domain of the bundle when undefined). Throws WEFT_ERR_PEER_IDENTITY.
 */
export function verifyTunnelClient(socket: TLSSocket, trustDomain: string | undefined): VerifiedPeer {
  if (!socket.authorized) throw new WeftError(ErrorCodes.PEER_IDENTITY, `the client certificate was not verified: ${String(socket.authorizationError ?? 'none presented')}`);
  if (socket.alpnProtocol !== TUNNEL_ALPN && socket.alpnProtocol !== TUNNEL_H2_ALPN) {
    throw new WeftError(ErrorCodes.PEER_IDENTITY, `the client did not ask for ${TUNNEL_ALPN} or ${TUNNEL_H2_ALPN}`);
  }
  const certificate = socket.getPeerX509Certificate();
  const spiffeId = peerSpiffeId(certificate);
  if (trustDomain !== undefined && parseSpiffeId(spiffeId)?.trustDomain !== trustDomain) {
    throw new WeftError(ErrorCodes.PEER_IDENTITY, `the client ${spiffeId} is outside the trust domain ${trustDomain}`);
  }
  return { spiffeId, certHash: createHash('sha256').update(certificate!.raw).digest('hex') };
}

/** Envoy's x-forwarded-client-cert element: who received the connection, the caller certificate's hash, and the caller. */
export function xfccElement(ownSpiffeId: string | undefined, peer: VerifiedPeer): string {
  return `${ownSpiffeId ? `By=${ownSpiffeId};` : ''}Hash=${peer.certHash};URI=${peer.spiffeId}`;
}

/** A raw socket the tunnel refuses: closed without a word, since the caller speaks neither TLS nor (in STRICT) is allowed plaintext. */
export function refuse(socket: Socket): void {
  socket.destroy();
}

/** The refusal as the proxy answers it: the peer's details kept, the status of a failed connect. */
function withStatus(error: WeftError, status: number): WeftError {
  const details = typeof error.details === 'object' && error.details !== null ? error.details : {};
  return new WeftError(error.code, error.message, { ...details, status });
}
