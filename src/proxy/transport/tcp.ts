// Opaque TCP: connect straight to an address, or through a peer proxy's mTLS tunnel (a CONNECT stream on a shared HTTP/2 session, or HTTP/1.1 CONNECT on a connection of its own); then splice the two sides.
import { constants as h2constants, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import { connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { ErrorCodes, REASON_HEADER, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError } from '../errors.ts';
import type { Lease } from './h2.ts';
import { hostPort } from './pools.ts';

/** Opens verified mTLS connections to peer proxies' tunnels (Pools does, with its TunnelTls). */
export interface TunnelDialer {
  dialTunnel(host: string, port: number, identity: string | undefined, timeoutMs: number): Promise<Socket>;
}

/** Leases streams on HTTP/2 sessions to peers' tunnels, verified like dialTunnel's connections (Pools does). */
export interface TunnelSessions {
  h2Tunnel(host: string, port: number, identity: string | undefined): Promise<Lease>;
}

/** The longest CONNECT response head we read from a peer. */
const MAX_RESPONSE_HEAD = 16 * 1024;

export function connectDirect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // Half-open: an upstream that finishes sending may still be reading (see splice).
    const socket = connect({ host, port, allowHalfOpen: true });
    const fail = (error: Error) => {
      socket.destroy();
      reject(classifyUpstreamError(error, hostPort(host, port)));
    };
    socket.setTimeout(timeoutMs, () => fail(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/**
 * Opens `CONNECT 127.0.0.1:<targetPort>` on a peer's tunnel port, over mTLS
 * to the identity the endpoint must have, and resolves with the socket once
 * the peer answers 200. A refusal keeps the peer's weft-reason, so that the
 * client sees why.
 */
export async function connectThroughTunnel(
  dialer: TunnelDialer,
  endpoint: { address: string; tunnelPort: number; identity?: string | undefined },
  targetPort: number,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Socket> {
  const host = endpoint.address;
  const tunnelPort = endpoint.tunnelPort;
  const socket = await dialer.dialTunnel(host, tunnelPort, endpoint.identity, timeoutMs);
  const authority = `127.0.0.1:${targetPort}`;
  let head = `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.write(`${head}\r\n`);
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const where = `${hostPort(host, tunnelPort)} (tunnel to port ${targetPort})`;
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.setTimeout(0);
    };
    const fail = (error: WeftError) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error) => fail(classifyUpstreamError(error, where));
    const onEnd = () => fail(new WeftError(ErrorCodes.UPSTREAM_RESET, `${where} closed the tunnel before answering`));
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buffered.length > MAX_RESPONSE_HEAD) fail(new WeftError(ErrorCodes.UPSTREAM_RESET, `${where} sent an oversized CONNECT answer`));
        return;
      }
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      if (status === 200) {
        cleanup();
        const rest = buffered.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        resolve(socket);
        return;
      }
      const reason = lines.find((l) => l.toLowerCase().startsWith('weft-reason:'))?.slice('weft-reason:'.length).trim();
      const known = Object.values(ErrorCodes).find((c) => c === reason);
      fail(
        new WeftError(known ?? ErrorCodes.UPSTREAM_CONNECT, `${where} refused the tunnel with ${status || 'an invalid answer'}`, { status: status >= 400 ? status : 502 }),
      );
    };
    socket.setTimeout(timeoutMs, () => fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where} did not answer CONNECT in ${timeoutMs} ms`)));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
  });
}

/**
 * Opens an HTTP/2 `CONNECT 127.0.0.1:<targetPort>` stream on a shared,
 * verified h2 session to a peer's tunnel (RFC 9113 §8.5), and resolves with
 * the stream once the peer answers 200, i.e. once its app connection is
 * open. The stream is the TCP connection from here on: END_STREAM is a FIN,
 * RST_STREAM a reset, and its flow-control window keeps a stalled reader
 * from holding up the session's other streams. A refusal keeps the peer's
 * weft-reason, so that the client sees why.
 */
export async function openTunnelStream(
  sessions: TunnelSessions,
  endpoint: { address: string; tunnelPort: number; identity?: string | undefined },
  targetPort: number,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Duplex> {
  const where = `${hostPort(endpoint.address, endpoint.tunnelPort)} (tunnel stream to port ${targetPort})`;
  const lease = await sessions.h2Tunnel(endpoint.address, endpoint.tunnelPort, endpoint.identity).catch((error: unknown) => {
    throw classifyUpstreamError(error, where);
  });
  const outgoing: OutgoingHttpHeaders = { ':method': 'CONNECT', ':authority': `127.0.0.1:${targetPort}` };
  for (const [name, value] of Object.entries(headers)) outgoing[name] = value;
  let stream: ClientHttp2Stream;
  try {
    stream = lease.session.request(outgoing, { endStream: false });
  } catch (error) {
    lease.release();
    throw classifyUpstreamError(error, where);
  }
  stream.once('close', () => lease.release());
  // Errors after the answer are the splice's to handle; until it is attached none may go unheard.
  stream.on('error', () => {});
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const fail = (error: WeftError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('close', onClose);
      resetTcpSide(stream);
      reject(error);
    };
    const timer = setTimeout(() => fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where} did not answer CONNECT in ${timeoutMs} ms`)), timeoutMs);
    const onError = (error: Error) => fail(classifyUpstreamError(error, where));
    const onClose = () => {
      const code = stream.rstCode ?? 0;
      fail(
        code === h2constants.NGHTTP2_REFUSED_STREAM
          ? new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where} refused the stream`)
          : new WeftError(ErrorCodes.UPSTREAM_RESET, `${where} closed the stream before answering (HTTP/2 error code ${code})`),
      );
    };
    stream.once('error', onError);
    stream.once('close', onClose);
    stream.once('response', (received) => {
      if (settled) return;
      const status = Number(received[':status']);
      if (status === 200) {
        settled = true;
        clearTimeout(timer);
        stream.off('error', onError);
        stream.off('close', onClose);
        resolve(stream);
        return;
      }
      const reason = received[REASON_HEADER];
      const known = Object.values(ErrorCodes).find((c) => c === reason);
      fail(new WeftError(known ?? ErrorCodes.UPSTREAM_CONNECT, `${where} refused the tunnel with ${status}`, { status: status >= 400 ? status : 502 }));
    });
  });
}

/**
 * Ends one side of a spliced pair as a failure the other end can tell from a
 * clean close: a TCP reset (RST) for a plain TCP socket, RST_STREAM with an
 * error code for an HTTP/2 stream (destroy() without an error would send
 * NO_ERROR, which node on the other end reads as a clean end). A TLS socket
 * cannot be reset from JavaScript: it is destroyed.
 */
export function resetTcpSide(side: Duplex): void {
  if (side.destroyed) return;
  if (side instanceof Socket && !(side instanceof TLSSocket)) {
    try {
      side.resetAndDestroy();
      return;
    } catch {
      // Not a TCP handle (a pipe, a socket still connecting): a plain destroy.
    }
  }
  side.destroy(side instanceof Socket ? undefined : new Error('the other side of the tunnel failed'));
}

/**
 * Copies bytes both ways until both sides are done. An end propagates on its
 * own (half close): a client that shuts its sending side down still receives
 * the rest of the answer, and an upstream that finishes first (a server that
 * says goodbye) still hears the client. Node would otherwise end a socket's
 * writable side as soon as its readable side ends, so both sockets are made
 * half-open here, whoever created them. An error on either side, or one side
 * closing for good, tears both down, as a reset (resetTcpSide): a client must
 * not mistake a peer that died mid-stream for one that finished. pipe() keeps
 * backpressure both ways: nothing is buffered beyond the streams' own
 * high-water marks (and, for an HTTP/2 stream, its flow-control window).
 */
export function splice(client: Duplex, upstream: Duplex): void {
  client.allowHalfOpen = true;
  upstream.allowHalfOpen = true;
  const teardown = () => {
    resetTcpSide(client);
    resetTcpSide(upstream);
  };
  client.on('error', teardown);
  upstream.on('error', teardown);
  // A side that closed without finishing cleanly both ways (a reset, a destroy) cannot take the rest: the other
  // goes too. After a clean close the other side is left to flush what it still holds and close on its own.
  client.on('close', () => {
    if (!client.readableEnded || !client.writableFinished) resetTcpSide(upstream);
  });
  upstream.on('close', () => {
    if (!upstream.readableEnded || !upstream.writableFinished) resetTcpSide(client);
  });
  endInto(client, upstream);
  endInto(upstream, client);
}

/**
 * Pipes `from` into `to` and passes its end on as an end, unless it was no
 * real end: node ends the readable side of an HTTP/2 stream that was reset
 * or cancelled (its session's connection died) as well, and only rstCode
 * tells them apart. Such a stream resets `to` instead.
 */
function endInto(from: Duplex, to: Duplex): void {
  from.pipe(to, { end: false });
  from.once('end', () => {
    const code = (from as { rstCode?: number }).rstCode;
    if (code !== undefined && code !== h2constants.NGHTTP2_NO_ERROR) resetTcpSide(to);
    else if (!to.destroyed) to.end();
  });
}
