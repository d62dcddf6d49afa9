// Opaque TCP: connect straight to an address, or through a peer proxy's mTLS tunnel with CONNECT; then splice two sockets.
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError } from '../errors.ts';
import { hostPort } from './pools.ts';

/** Opens verified mTLS connections to peer proxies' tunnels (Pools does, with its TunnelTls). */
export interface TunnelDialer {
  dialTunnel(host: string, port: number, identity: string | undefined, timeoutMs: number): Promise<Socket>;
}

/** The longest CONNECT response head we read from a peer. */
const MAX_RESPONSE_HEAD = 16 * 1024;

export function connectDirect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
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
 * Copies bytes both ways until both sides are done. Ends propagate (half
 * close); an error on either side tears both down.
 */
export function splice(client: Duplex, upstream: Duplex): void {
  const teardown = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', teardown);
  upstream.on('error', teardown);
  client.on('close', () => {
    if (!upstream.writableEnded) upstream.end();
  });
  upstream.on('close', () => {
    if (!client.writableEnded) client.end();
  });
  client.pipe(upstream);
  upstream.pipe(client);
}
