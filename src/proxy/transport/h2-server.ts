// The server side of HTTP/2 for the outbound and tunnel listeners: an h2 server that never listens, fed connections found to speak HTTP/2, with per-connection tags.
import { createServer as createH2cServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { H2_SESSION_OPTIONS, SESSION_MEMORY_MB, STREAM_WINDOW_BYTES, widenSessionWindow } from './h2.ts';
import type { ListenerGuard } from './hardening.ts';

/**
 * Where a connection's tag lives: on the socket itself, because an HTTP/2
 * request's `socket` is a proxy object (a WeakMap keyed by the real socket
 * would not find it), while property reads pass through to the socket.
 */
const TAG = Symbol('weft.connectionTag');

type Tagged = { [TAG]?: unknown };

/**
 * One node:http2 server serving connections handed to it: h2c sockets after
 * detection, TLS sockets that negotiated h2. Each connection may carry a tag
 * (an upstream port's or CONNECT tunnel's target, a tunnel caller's verified
 * identity) that its requests read back with tagOf().
 */
export class H2Front {
  readonly server: Http2Server;
  private readonly sessions = new Set<ServerHttp2Session>();
  private stopped = false;

  /**
   * `onConnect` serves CONNECT streams (RFC 9113 §8.5: opaque TCP as one
   * stream); without it node answers them 405. With `guard`, sessions get
   * the listener's limits (concurrent streams, header list, floods, rapid
   * reset, idleness) and a receive window of `connectionWindowBytes`.
   */
  constructor(
    onRequest: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
    onConnect?: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
    guard?: { guard: ListenerGuard; connectionWindowBytes: number; sessionMemoryMb?: number },
  ) {
    this.server = createH2cServer(guard ? guard.guard.h2Options(STREAM_WINDOW_BYTES, guard.sessionMemoryMb ?? SESSION_MEMORY_MB) : H2_SESSION_OPTIONS, onRequest);
    if (onConnect) this.server.on('connect', onConnect);
    this.server.on('session', (session: ServerHttp2Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => {});
      if (guard) guard.guard.hardenH2Session(session, guard.connectionWindowBytes);
      else widenSessionWindow(session);
      if (this.stopped) session.close();
    });
  }

  /** Serves `socket` (whose first bytes are the HTTP/2 preface, or a TLS socket that negotiated h2) as HTTP/2. */
  accept(socket: Duplex, tag: unknown): void {
    if (tag !== undefined) (socket as Tagged)[TAG] = tag;
    this.server.emit('connection', socket);
  }

  /** The tag of the connection a request came on. */
  static tagOf<T>(req: Http2ServerRequest): T | undefined {
    try {
      return (req.socket as unknown as Tagged)[TAG] as T | undefined;
    } catch {
      // The session is gone (its socket unbound): nothing to serve anyway.
      return undefined;
    }
  }

  /** Tells every client to go away (GOAWAY); streams in flight finish. */
  stop(): void {
    this.stopped = true;
    for (const session of this.sessions) if (!session.closed) session.close();
  }
}
