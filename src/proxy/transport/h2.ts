// HTTP/2 upstreams: a bounded set of reused sessions per peer (h2c to apps, h2 over the mTLS tunnel), and sending one exchange as one stream.
import {
  connect as h2connect,
  constants as h2constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders as H2IncomingHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { Socket } from 'node:net';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { classifyUpstreamError } from '../errors.ts';
import type { Headers, HttpExchange } from '../exchange.ts';
import { responseHeadersToForward } from './headers.ts';
import { HeldResponse } from './held-response.ts';
import { isPeerConnectFailure, resetResponse, resetStream, writeResponseHead } from './response.ts';

export interface H2Settings {
  /** Sessions per peer at most; streams beyond maxStreamsPerSession × this queue on the least busy session. */
  maxSessionsPerPeer: number;
  /** A session this busy makes the next stream open another session (up to maxSessionsPerPeer). */
  maxStreamsPerSession: number;
  connectTimeoutMs: number;
  /** A tunnel session (one we dial) that received nothing for this long is sent a PING (0: never). h2c sessions to apps are not pinged. */
  pingIntervalMs: number;
  /** A PING unanswered for this long means the peer is gone: the session is destroyed (its streams reset) and replaced. */
  pingTimeoutMs: number;
}

export const DEFAULT_H2_SETTINGS: H2Settings = { maxSessionsPerPeer: 4, maxStreamsPerSession: 1000, connectTimeoutMs: 5_000, pingIntervalMs: 10_000, pingTimeoutMs: 5_000 };

/** Why a session was opened or closed, for the session metric. */
export type SessionEvent = 'opened' | 'closed';
/** Told of every session opened (reason "dial") or closed (goaway, ping_timeout, error, peer_closed, retired, connect_failed, shutdown). */
export type SessionObserver = (event: SessionEvent, reason: string) => void;

/**
 * Flow-control windows for every HTTP/2 session weft opens or accepts: a
 * stream may have 256 KiB in flight (node replenishes it only as the reader
 * consumes, so a paused stream stops its sender), a connection 16 MiB, so
 * that many streams share a connection without the 64 KiB defaults throttling them.
 */
export const STREAM_WINDOW_BYTES = 256 * 1024;
export const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;
/** nghttp2's per-session buffer cap (MB): 1,000 concurrent streams need more than the 10 MB default. */
export const SESSION_MEMORY_MB = 64;
export const H2_SESSION_OPTIONS = { settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false }, maxSessionMemory: SESSION_MEMORY_MB } as const;

/** Opens the connection an HTTP/2 session runs on (the mTLS tunnel dial, negotiated for h2). */
export type SessionDialer = (timeoutMs: number) => Promise<Socket>;

/** A peer's own bounds (BackendTrafficPolicy), over the H2Settings defaults. */
export interface PeerSessionLimits {
  /** Sessions to the peer at most (circuitBreaker.maxConnections): beyond them, streams share the least busy one. */
  maxSessions?: number;
  /** Streams a session carries in its life (connection.maxRequestsPerConnection); then it takes no more and closes once they end. */
  maxStreamsPerSession?: number;
}

interface Slot {
  ready: Promise<ClientHttp2Session>;
  session: ClientHttp2Session | undefined;
  active: number;
  /** Streams leased on it so far, for maxStreamsPerSession (lifetime). */
  leased: number;
  closed: boolean;
  /** Retired (maxStreamsPerSession, a lowered maxSessions): the session closes when its last stream is released. */
  retiring: boolean;
  /** Takes the slot out of its peer's list: no new streams. */
  drop: () => void;
  /** Why the session ended, once known (the first cause wins). */
  reason: string | undefined;
}

/** Gives a session (server or client side) its connection-level window once it exists. */
export function widenSessionWindow(session: { setLocalWindowSize(size: number): void; on(event: 'connect', cb: () => void): unknown; connecting?: boolean }): void {
  try {
    session.setLocalWindowSize(SESSION_WINDOW_BYTES);
  } catch {
    // Not connected yet: do it once it is.
    session.on('connect', () => {
      try {
        session.setLocalWindowSize(SESSION_WINDOW_BYTES);
      } catch {
        // The session went away meanwhile.
      }
    });
  }
}

/** Closes a slot's session gracefully once it exists. */
function closeWhenReady(slot: Slot): void {
  slot.ready.then((session) => session.close(), () => {});
}

/** A stream handed out by H2Sessions: release() when it is done, so that the session's load is known. */
export interface Lease {
  session: ClientHttp2Session;
  release(): void;
}

/**
 * HTTP/2 client sessions by peer id. One session carries many streams; a
 * peer gets another session only when every one it has is busy with
 * maxStreamsPerSession streams, and never more than maxSessionsPerPeer. A
 * session that closes, errors, receives GOAWAY or stops answering PINGs
 * (tunnel sessions, see watch) is dropped and the next stream opens a fresh
 * one. Streams are HTTP requests and TCP connections (CONNECT) alike.
 */
export class H2Sessions {
  private readonly peers = new Map<string, Slot[]>();
  private readonly limits = new Map<string, PeerSessionLimits>();
  private readonly settings: H2Settings;
  private readonly logger: Logger;
  private readonly observe: SessionObserver | undefined;

  constructor(settings: H2Settings, logger: Logger, observe?: SessionObserver) {
    this.settings = settings;
    this.logger = logger;
    this.observe = observe;
  }

  /** A session to `id` (opened with `dial`, or as h2c to `authority` when dial is undefined), with one stream counted against it. */
  async lease(id: string, authority: string, dial: SessionDialer | undefined): Promise<Lease> {
    const limits = this.limits.get(id);
    const slot = this.pick(id, authority, dial, limits?.maxSessions ?? this.settings.maxSessionsPerPeer);
    slot.active++;
    slot.leased++;
    // Its last stream: no more on this session, which ends gracefully once the streams it carries are done.
    if (limits?.maxStreamsPerSession !== undefined && slot.leased >= limits.maxStreamsPerSession) this.retire(slot);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      slot.active--;
      if (slot.retiring && slot.active === 0) closeWhenReady(slot);
    };
    try {
      const session = await slot.ready;
      return { session, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * Bounds of the peer `id` (BackendTrafficPolicy), or undefined for the
   * defaults. Sessions beyond a lowered maxSessions take no new streams and
   * close once theirs are done.
   */
  configure(id: string, limits: PeerSessionLimits | undefined): void {
    if (limits && (limits.maxSessions !== undefined || limits.maxStreamsPerSession !== undefined)) this.limits.set(id, limits);
    else this.limits.delete(id);
    const max = limits?.maxSessions;
    const slots = this.peers.get(id);
    if (max === undefined || !slots || slots.length <= max) return;
    // The least busy go first: they have the fewest streams to finish.
    const surplus = [...slots].sort((a, b) => a.active - b.active).slice(0, slots.length - max);
    for (const slot of surplus) this.retire(slot);
  }

  /** No new streams on the slot's session; it closes once the streams leased on it are released. */
  private retire(slot: Slot): void {
    if (slot.retiring) return;
    slot.retiring = true;
    slot.reason ??= 'retired';
    slot.drop();
    if (slot.active === 0) closeWhenReady(slot);
  }

  private pick(id: string, authority: string, dial: SessionDialer | undefined, maxSessions: number): Slot {
    let slots = this.peers.get(id);
    if (!slots) this.peers.set(id, (slots = []));
    let best: Slot | undefined;
    for (const slot of slots) if (!slot.closed && (best === undefined || slot.active < best.active)) best = slot;
    if (best && (best.active < this.settings.maxStreamsPerSession || slots.length >= maxSessions)) return best;
    const slot = this.open(id, authority, dial, slots);
    slots.push(slot);
    return slot;
  }

  private open(id: string, authority: string, dial: SessionDialer | undefined, slots: Slot[]): Slot {
    // No new streams from here on; the session itself may still finish the ones it carries (GOAWAY, retain).
    const drop = () => {
      if (slot.closed) return;
      slot.closed = true;
      const i = slots.indexOf(slot);
      if (i !== -1) slots.splice(i, 1);
      if (slots.length === 0 && this.peers.get(id) === slots) this.peers.delete(id);
    };
    const slot: Slot = { ready: undefined as unknown as Promise<ClientHttp2Session>, session: undefined, active: 0, leased: 0, closed: false, retiring: false, drop, reason: undefined };
    const timeoutMs = this.settings.connectTimeoutMs;
    // Only tunnel sessions (dialled by us) are counted; h2c sessions to apps are not the mesh's.
    const observe = dial ? this.observe : undefined;
    let connected = false;
    slot.ready = (async () => {
      const socket = dial ? await dial(timeoutMs) : undefined;
      return new Promise<ClientHttp2Session>((resolve, reject) => {
        const session = h2connect(`http://${authority}`, { ...H2_SESSION_OPTIONS, ...(socket ? { createConnection: () => socket } : {}) });
        slot.session = session;
        const timer = setTimeout(() => {
          session.destroy();
          reject(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot connect to ${authority}: no HTTP/2 session within ${timeoutMs} ms`));
        }, timeoutMs);
        const onError = (error: Error) => {
          clearTimeout(timer);
          reject(classifyUpstreamError(error, authority));
        };
        session.once('error', onError);
        session.once('connect', () => {
          clearTimeout(timer);
          session.off('error', onError);
          session.on('error', (error) => {
            slot.reason ??= 'error';
            this.logger.debug({ peer: id, err: error }, 'HTTP/2 session failed');
          });
          widenSessionWindow(session);
          connected = true;
          observe?.('opened', 'dial');
          // Only tunnel sessions: gRPC servers take PINGs without calls as abuse (GOAWAY too_many_pings).
          if (dial) this.watch(id, slot, session, drop);
          resolve(session);
        });
        session.once('close', () => {
          drop();
          if (connected) observe?.('closed', slot.reason ?? 'peer_closed');
        });
        session.once('goaway', () => {
          slot.reason ??= 'goaway';
          drop();
        });
      });
    })();
    slot.ready.catch(() => {
      slot.reason = 'connect_failed';
      drop();
    });
    return slot;
  }

  /**
   * Health: a session that has received nothing for pingIntervalMs is sent a
   * PING; no answer within pingTimeoutMs (a peer that vanished without a FIN,
   * a frozen process, a black-holed path) destroys it, which resets its
   * streams, and the next stream dials a fresh one. A session that is
   * receiving is alive and is not pinged.
   */
  private watch(id: string, slot: Slot, session: ClientHttp2Session, drop: () => void): void {
    const { pingIntervalMs, pingTimeoutMs } = this.settings;
    if (pingIntervalMs <= 0) return;
    const bytesRead = () => {
      try {
        return session.socket?.bytesRead ?? 0;
      } catch {
        return 0;
      }
    };
    let seen = bytesRead();
    let waiting: NodeJS.Timeout | undefined;
    const tick = setInterval(() => {
      if (session.destroyed || session.closed) return;
      const now = bytesRead();
      if (now !== seen || waiting) {
        seen = now;
        return;
      }
      const atPing = now;
      waiting = setTimeout(() => {
        if (bytesRead() !== atPing) {
          // Frames arrived meanwhile (the answer may be queued behind them): the peer is alive.
          waiting = undefined;
          return;
        }
        slot.reason ??= 'ping_timeout';
        drop();
        this.logger.debug({ peer: id, timeoutMs: pingTimeoutMs }, 'HTTP/2 session did not answer a PING: replacing it');
        session.destroy(new WeftError(ErrorCodes.UPSTREAM_RESET, `the peer did not answer a PING within ${pingTimeoutMs} ms`));
      }, pingTimeoutMs);
      waiting.unref();
      try {
        session.ping((error) => {
          clearTimeout(waiting);
          waiting = undefined;
          seen = bytesRead();
          if (error) this.logger.debug({ peer: id, err: error }, 'HTTP/2 PING failed');
        });
      } catch {
        // Too many PINGs outstanding, or the session is closing: the timeout decides.
      }
    }, pingIntervalMs);
    tick.unref();
    session.once('close', () => {
      clearInterval(tick);
      clearTimeout(waiting);
    });
  }

  /** Sessions open now to `id`. */
  count(id: string): number {
    return this.peers.get(id)?.length ?? 0;
  }

  /** Closes, gracefully, the sessions of peers whose ids are not in `keep` (their streams finish first). */
  retain(keep: ReadonlySet<string>): void {
    for (const [id, slots] of this.peers) {
      if (keep.has(id)) continue;
      this.peers.delete(id);
      for (const slot of slots) {
        slot.closed = true;
        slot.reason ??= 'retired';
        slot.ready.then((session) => session.close(), () => {});
      }
    }
  }

  destroy(): void {
    for (const slots of this.peers.values())
      for (const slot of slots) {
        slot.reason ??= 'shutdown';
        slot.session?.destroy();
      }
    this.peers.clear();
  }
}

/** Request header names HTTP/2 forbids (RFC 9113 §8.2.2) besides the hop-by-hop ones already dropped. */
const NOT_FOR_H2 = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

/** The response's header block without pseudo-headers. */
function plainHeaders(received: H2IncomingHeaders): Headers {
  const out: Headers = {};
  for (const name in received) {
    if (name.charCodeAt(0) === 0x3a) continue;
    const value = received[name];
    if (value !== undefined) out[name] = value as string | string[];
  }
  return out;
}

/**
 * Sends one exchange as one HTTP/2 stream on a leased session and streams
 * the answer back: headers, body with backpressure both ways, trailers. The
 * promise settles as sendHttp's does: resolves once the response is written
 * (or cut), rejects with a WeftError while nothing has been written. A reset
 * after the response started resets (or cuts) the client's side too, so a
 * truncated answer never looks complete.
 */
export function sendHttp2(ex: HttpExchange, leasing: Promise<Lease>, headers: Headers, where: string, peer = false): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ex.aborted) {
      reject(ex.aborted);
      return;
    }
    const res = ex.res;
    let settled = false;
    let responding = false;
    let stream: ClientHttp2Stream | undefined;
    let lease: Lease | undefined;
    let trailers: Headers | undefined;
    /** A response a Transformation rewrites: held whole, written at its end. */
    let held: HeldResponse | undefined;

    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      ex.onAbort = undefined;
      lease?.release();
      if (error === undefined) resolve();
      else reject(error);
    };
    const giveUp = (reason: Error) => {
      if (settled) return;
      if (stream) resetStream(stream);
      if (responding) {
        resetResponse(ex);
        finish();
      } else {
        finish(reason);
      }
    };
    ex.onAbort = giveUp;

    leasing.then(
      (leased) => {
        lease = leased;
        if (settled) {
          leased.release();
          return;
        }
        start(leased.session);
      },
      (error: unknown) => finish(classifyUpstreamError(error, where)),
    );

    const start = (session: ClientHttp2Session) => {
      const outgoing: OutgoingHttpHeaders = {
        ':method': ex.method,
        ':path': ex.path,
        ':scheme': 'http',
        ':authority': firstValue(headers.host) ?? where,
      };
      for (const name in headers) {
        if (NOT_FOR_H2.has(name)) continue;
        const value = headers[name];
        if (value !== undefined) outgoing[name] = value;
      }
      // gRPC servers want to know that trailers are understood (the only TE value HTTP/2 allows).
      if (ex.grpc || /\btrailers\b/i.test(String(ex.req.headers.te ?? ''))) outgoing.te = 'trailers';
      const body = ex.bufferedBody;
      const streamed = body === undefined && ex.hasBody;
      // Request trailers go on when the client announced them (Trailer, RFC 9110 §6.6.2): waiting for them costs
      // an extra HEADERS frame, which gRPC servers (never sent request trailers) need not see.
      const trailersAnnounced = streamed && ex.req.headers.trailer !== undefined;
      if (trailersAnnounced) outgoing.trailer = ex.req.headers.trailer;
      try {
        stream = session.request(outgoing, { endStream: body === undefined && !streamed, waitForTrailers: trailersAnnounced });
      } catch (error) {
        // A session that got GOAWAY or closed between its lease and this request (a draining peer) is a
        // connect failure of this attempt, which another endpoint can take; anything else is the request's fault.
        const code = (error as NodeJS.ErrnoException).code;
        const sessionGone = session.closed || session.destroyed || code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION';
        const message = error instanceof Error ? error.message : String(error);
        finish(
          sessionGone
            ? new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the HTTP/2 session closed before the request could start (${message})`)
            : new WeftError(ErrorCodes.BAD_REQUEST, `cannot forward the request: ${message}`),
        );
        return;
      }
      const upstream = stream;
      upstream.on('error', () => {});
      if (trailersAnnounced) {
        upstream.once('wantTrailers', () => {
          const sent: OutgoingHttpHeaders = {};
          const received = (ex.body?.trailers ?? {}) as Record<string, string | string[] | undefined>;
          for (const name in received) {
            if (name.charCodeAt(0) === 0x3a || NOT_FOR_H2.has(name)) continue;
            const value = received[name];
            if (value !== undefined) sent[name] = value;
          }
          upstream.sendTrailers(sent);
        });
      }
      if (body !== undefined) upstream.end(body);
      else if (streamed && ex.body) {
        // pipe() pauses the client when the upstream window is full; a client that goes away cancels the stream.
        ex.body.pipe(upstream);
        ex.body.once('aborted', () => resetStream(upstream));
      }

      upstream.on('response', (received, flags) => {
        if (settled) return;
        const status = Number(received[':status']);
        let out = plainHeaders(received);
        const refused = ex.refuseResponse?.(status, out, peer);
        if (refused) {
          resetStream(upstream);
          finish(refused);
          return;
        }
        if (peer && ex.replayable && isPeerConnectFailure(status, out)) {
          resetStream(upstream);
          finish(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the peer proxy could not connect to its app`));
          return;
        }
        if (typeof out['grpc-status'] === 'string') ex.answeredGrpcStatus = out['grpc-status'];
        out = responseHeadersToForward(out);
        if (ex.responseEdits) for (const edit of ex.responseEdits) edit(out);
        if (ex.responseRewrite?.head(status, out)) {
          held = new HeldResponse(ex.responseRewrite, status, undefined, out);
          return;
        }
        responding = true;
        const endStream = (flags & h2constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        if (!writeResponseHead(ex, status, out, endStream)) {
          resetStream(upstream);
          finish();
          return;
        }
        if (endStream) finish();
      });
      upstream.on('data', (chunk: Buffer) => {
        if (held && !settled) {
          const overflow = held.add(chunk);
          if (overflow) giveUp(overflow);
          return;
        }
        if (settled || !responding) return;
        if (!res.write(chunk)) {
          upstream.pause();
          res.once('drain', () => upstream.resume());
        }
      });
      upstream.on('trailers', (received) => {
        trailers = plainHeaders(received);
        if (typeof trailers['grpc-status'] === 'string') ex.answeredGrpcStatus = trailers['grpc-status'];
      });
      upstream.on('end', () => {
        if (held && !settled && (upstream.rstCode ?? 0) === h2constants.NGHTTP2_NO_ERROR) {
          finish(held.writeOrFail(ex));
          return;
        }
        if (settled || !responding) return;
        // node ends the readable side of a stream the peer reset, too: only an end without a reset is the real end.
        const code = upstream.rstCode ?? 0;
        if (code !== h2constants.NGHTTP2_NO_ERROR) {
          resetResponse(ex);
          finish();
          return;
        }
        if (trailers && Object.keys(trailers).length > 0) res.addTrailers(trailers as Record<string, string>);
        res.end();
        finish();
      });
      upstream.on('close', () => {
        if (settled) return;
        const code = upstream.rstCode ?? 0;
        if (responding) {
          // The upstream reset mid-response: the client must not see an ending that looks complete.
          resetResponse(ex);
          finish();
          return;
        }
        if (code === h2constants.NGHTTP2_REFUSED_STREAM) {
          // RFC 9113 §8.7: the stream was not processed; safe to try elsewhere.
          finish(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where} refused the stream`));
          return;
        }
        finish(new WeftError(ErrorCodes.UPSTREAM_RESET, `${where} reset the stream before answering (HTTP/2 error code ${code})`));
      });
    };
  });
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
