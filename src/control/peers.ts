// Asking another control-plane replica over its stream port: HTTP/2 over TLS, both sides showing the control plane's SPIFFE ID from the mesh CA.
import http2 from 'node:http2';
import { isIP } from 'node:net';
import { ErrorCodes, WeftError } from '../api/errors.ts';
import { isControlPlaneId } from '../api/identity.ts';
import { spiffeServerIdentityCheck } from '../api/peer-identity.ts';
import type { Replica } from './replicas.ts';

/** Paths a replica serves other replicas (and nobody else) on its stream port. */
export const PEER_PATH_PREFIX = '/weft/internal/v1/';
/** The header naming the replica a question is meant for. */
export const REPLICA_HEADER = 'weft-replica';

export interface PeerCredentials {
  /** This replica's stream certificate (its chain) and key: the peer checks it is a control plane's. */
  readonly current: { keyPem: string; certPem: string };
  /** The mesh trust bundle, to check the peer's certificate. */
  roots(): readonly string[];
}

export interface PeerClientOptions {
  credentials: PeerCredentials;
  /** How long one answer may take. */
  timeoutMs: number;
}

/**
 * One HTTP/2 session per peer, opened on first use and dropped when it
 * fails or the peer goes away; the next question opens a new one. A
 * certificate renewed since the session opened is not re-presented: the
 * peer checked it at the handshake, and it stays valid for the session.
 */
export class PeerClient {
  private readonly options: PeerClientOptions;
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  private closed = false;

  constructor(options: PeerClientOptions) {
    this.options = options;
  }

  /** GETs `path` (under PEER_PATH_PREFIX) of `peer` and parses its JSON; WEFT_ERR_UPSTREAM_CONNECT when it cannot be asked or answers other than 200. */
  async getJson<T>(peer: Replica, path: string): Promise<T> {
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const request = this.request(peer, path, (error) => reject(error));
      if (!request) return;
      const timer = setTimeout(() => request.close(), this.options.timeoutMs);
      request.on('response', (headers) => {
        if (headers[':status'] !== 200) {
          request.on('data', (chunk: Buffer) => chunks.push(chunk));
          request.on('end', () => reject(unreachable(peer, `answered ${headers[':status']}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300).trim()}`)));
          return;
        }
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => resolve());
      });
      request.on('error', (error) => reject(unreachable(peer, error.message)));
      request.on('close', () => {
        clearTimeout(timer);
        reject(unreachable(peer, `no answer within ${this.options.timeoutMs} ms`));
      });
    });
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
    } catch {
      throw unreachable(peer, 'answered something other than JSON');
    }
  }

  /**
   * GETs a stream of NDJSON lines: `onLine` for each, `onEnd` once when it
   * ends (with the error, if it failed). Returns a function that stops it.
   */
  streamLines(peer: Replica, path: string, onLine: (line: unknown) => void, onEnd: (error?: Error) => void): () => void {
    let ended = false;
    const finish = (error?: Error) => {
      if (ended) return;
      ended = true;
      onEnd(error);
    };
    const request = this.request(peer, path, finish);
    if (!request) return () => {};
    let rest = '';
    request.setEncoding('utf8');
    request.on('response', (headers) => {
      if (headers[':status'] !== 200) {
        finish(unreachable(peer, `answered ${headers[':status']}`));
        request.close();
      }
    });
    request.on('data', (text: string) => {
      rest += text;
      let newline: number;
      while ((newline = rest.indexOf('\n')) !== -1) {
        const line = rest.slice(0, newline);
        rest = rest.slice(newline + 1);
        if (line.trim() === '') continue;
        try {
          onLine(JSON.parse(line));
        } catch {
          finish(unreachable(peer, 'sent a line that is not JSON'));
          request.close();
          return;
        }
      }
    });
    request.on('error', (error) => finish(unreachable(peer, error.message)));
    request.on('close', () => finish());
    return () => {
      ended = true;
      request.close();
    };
  }

  close(): void {
    this.closed = true;
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }

  private request(peer: Replica, path: string, fail: (error: Error) => void): http2.ClientHttp2Stream | undefined {
    if (this.closed) {
      fail(unreachable(peer, 'this control plane is stopping'));
      return undefined;
    }
    try {
      // Names the replica meant: an address that reaches another one (say 127.0.0.1 advertised to another host) is told apart.
      return this.session(peer).request({ ':method': 'GET', ':path': `${PEER_PATH_PREFIX}${path}`, [REPLICA_HEADER]: peer.name });
    } catch (error) {
      fail(unreachable(peer, (error as Error).message));
      return undefined;
    }
  }

  private session(peer: Replica): http2.ClientHttp2Session {
    const known = this.sessions.get(peer.stream);
    if (known && !known.closed && !known.destroyed) return known;
    const { credentials } = this.options;
    const host = new URL(peer.stream).hostname.replace(/^\[|\]$/g, '');
    const session = http2.connect(peer.stream, {
      ca: [...credentials.roots()],
      cert: credentials.current.certPem,
      key: credentials.current.keyPem,
      minVersion: 'TLSv1.3',
      // Replicas are reached by any address: the peer is identified by its SPIFFE ID, and SNI must be a host name.
      ...(isIP(host) === 0 ? { servername: host } : {}),
      checkServerIdentity: spiffeServerIdentityCheck(isControlPlaneId),
    });
    const forget = () => {
      if (this.sessions.get(peer.stream) === session) this.sessions.delete(peer.stream);
    };
    session.on('error', forget);
    session.on('close', forget);
    session.on('goaway', forget);
    // An idle session must not keep the process up; it is closed with the client anyway.
    session.unref();
    this.sessions.set(peer.stream, session);
    return session;
  }
}

function unreachable(peer: Replica, why: string): WeftError {
  return new WeftError(ErrorCodes.UPSTREAM_CONNECT, `control-plane replica ${peer.name} (${peer.stream}) ${why}`);
}
