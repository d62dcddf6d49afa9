// HTTP/1.1 Upgrade (WebSocket and the like): the request is routed like any other, then the two connections are spliced.
//
// A listener's serveUpgrades() hands each Upgrade request to acceptUpgrade(), which
// gives it a ServerResponse bound to the client's raw connection and marks the exchange
// (HttpExchange.upgrade); from there the request runs through the ordinary
// stacks (route, filters, redirect, weighted backends, balancer, retries),
// so that a refusal, a redirect or a proxy error reaches the client as an
// ordinary response. The terminal forward layer then calls sendUpgrade()
// instead of sending a pooled request: it opens a connection of its own to
// the endpoint (through the peer proxy's mTLS tunnel, straight to an address
// outside the mesh, or to the app on the inbound side), sends the request
// with `Connection: upgrade` and `Upgrade` put back, and relays the answer:
// a 101 is written to the client and both connections are spliced, any
// other status is passed on as a normal response and the connection closed.
//
// Once switched, the exchange stays in flight (it counts in the balancer's
// load and keeps a drain waiting) until both sides are closed; the route's
// request and backendRequest timeouts stop applying, an idle timeout
// (silence in both directions) applies instead, and at the end of a drain
// period the connection is ended with a FIN each way.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, REASON_HEADER, WeftError } from '../../api/errors.ts';
import { classifyUpstreamError, proxyError } from '../errors.ts';
import { UPGRADE_REQUEST, type Headers, type HttpExchange, type UpgradeRequest } from '../exchange.ts';
import type { ListenerContext } from '../listener-context.ts';
import { responseHeadersToForward } from './headers.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { request: httpRequest, ServerResponse: ServerResponseClass } = process.getBuiltinModule('node:http');

/**
 * How long an upgraded connection may stay silent in both directions before
 * the proxy closes it: one hour, Istio's idle timeout for TCP (an upgraded
 * connection is a byte stream from then on). Envoy's own stream idle
 * timeout (5 min) is aimed at requests, and would close quiet WebSockets
 * that applications expect to keep.
 */
export const DEFAULT_UPGRADE_IDLE_TIMEOUT_MS = 3_600_000;
/** After a graceful close (FIN each way) at idle or drain, how long the peers get to close before both are cut. */
export const UPGRADE_CLOSE_LINGER_MS = 1_000;

/** What upgrades need from their listener: its clock, drain tracking, error responder, logger and idle timeout (0: none). */
export type UpgradeContext = Pick<ListenerContext, 'clock' | 'activity' | 'responder' | 'logger' | 'upgradeIdleTimeoutMs'>;

/** A node:http server, or a node:http2 secure server that allows HTTP/1.1 (both emit 'upgrade' for HTTP/1.1 clients). */
interface UpgradingServer {
  on(event: 'upgrade', listener: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): unknown;
  shouldUpgradeCallback?: (req: IncomingMessage) => boolean;
}

/**
 * Serves a server's Upgrade requests through `onRequest` (the listener's
 * ordinary request handler). `Upgrade: h2c` is not switched to: such a
 * request is served as the HTTP/1.1 request it also is (the offer is
 * hop-by-hop, and HTTP/2 reaches weft with prior knowledge or ALPN instead).
 */
export function serveUpgrades(server: UpgradingServer, context: UpgradeContext, onRequest: (req: IncomingMessage, res: ServerResponse) => void): void {
  server.shouldUpgradeCallback = (req) => !isH2cOffer(req);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let res: ServerResponse | undefined;
    try {
      res = acceptUpgrade(req, socket, head, context);
    } catch (error) {
      // E.g. an Upgrade pipelined behind a response still being written: the connection cannot take another answer.
      context.logger.debug({ err: error }, 'cannot serve an Upgrade request on this connection');
      socket.destroy();
      return;
    }
    if (res) onRequest(req, res);
  });
}

function isH2cOffer(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.trim().toLowerCase() === 'h2c';
}

/**
 * The response of an Upgrade request: a ServerResponse on the raw connection
 * the HTTP server handed over, carrying the UpgradeRequest for the exchange.
 * Undefined when the request was answered here already (draining, or a body
 * that cannot be told from the upgraded stream).
 */
export function acceptUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, context: UpgradeContext): ServerResponse | undefined {
  socket.on('error', () => socket.destroy());
  if (context.activity.draining) {
    context.responder.tunnel(socket, proxyError(ErrorCodes.DRAINING, 'the proxy is shutting down: no new upgraded connections', 503));
    return undefined;
  }
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')) {
    context.responder.tunnel(socket, proxyError(ErrorCodes.BAD_REQUEST, 'an Upgrade request with a body is not supported', 400));
    return undefined;
  }
  const res = new ServerResponseClass(req);
  // The HTTP server has let go of this connection: whatever is answered, it closes after.
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    const raw = socket as Partial<Socket>;
    if (raw.destroySoon) raw.destroySoon();
    else socket.end();
  });
  const upgrade: UpgradeRequest = {
    protocol: String(h.upgrade ?? ''),
    socket,
    head,
    established: (upstream, upstreamHead) => spliceUpgraded(socket, head, upstream, upstreamHead, context),
  };
  (res as ServerResponse & { [UPGRADE_REQUEST]?: UpgradeRequest })[UPGRADE_REQUEST] = upgrade;
  return res;
}

/**
 * Sends an Upgrade exchange on a connection of its own (`dial` opens it) and
 * relays the answer. Rejects with a WeftError while nothing has been written
 * (so that retries and the error responder work as for any request);
 * resolves when a non-101 response has been passed on, or, after a 101,
 * when the spliced connections are both closed. With `peer`, a peer proxy's
 * "my app refused" answer is a connect failure of this attempt.
 */
export function sendUpgrade(ex: HttpExchange, dial: () => Promise<Duplex>, headers: Headers, where: string, peer = false): Promise<void> {
  const upgrade = ex.upgrade;
  if (!upgrade) return Promise.reject(new WeftError(ErrorCodes.INTERNAL, 'sendUpgrade called for an exchange that is no Upgrade request'));
  return new Promise<void>((resolve, reject) => {
    if (ex.aborted) {
      reject(ex.aborted);
      return;
    }
    // acceptUpgrade's own ServerResponse: Upgrade requests are node:http's (the fast path hands them over).
    const res = ex.res as ServerResponse;
    let settled = false;
    let upstream: Duplex | undefined;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      ex.onAbort = undefined;
      upstream?.destroy();
      reject(error);
    };
    ex.onAbort = fail;

    dial().then(
      (connection) => {
        if (settled) {
          connection.destroy();
          return;
        }
        upstream = connection;
        const out: OutgoingHttpHeaders = {};
        for (const name in headers) {
          const value = headers[name];
          if (value !== undefined) out[name] = value;
        }
        // Hop-by-hop, so dropped on the way in; an upgrade must say them again on each hop.
        out.connection = 'upgrade';
        out.upgrade = upgrade.protocol;
        const request = httpRequest({ method: ex.method, path: ex.path, headers: out, setHost: false, createConnection: () => connection as Socket });
        request.on('error', (error) => fail(classifyUpstreamError(error, where)));
        request.on('upgrade', (answer: IncomingMessage, switched: Duplex, switchedHead: Buffer) => {
          if (settled || upgrade.socket.destroyed) {
            switched.destroy();
            fail(new Error('the client closed the connection'));
            return;
          }
          settled = true;
          // From here on the route's timeouts no longer apply: the idle timeout does.
          ex.onAbort = undefined;
          const answerHeaders = responseHeadersToForward({ ...answer.headers } as Headers);
          if (ex.responseEdits) for (const edit of ex.responseEdits) edit(answerHeaders);
          answerHeaders.connection = 'upgrade';
          answerHeaders.upgrade = answer.headers.upgrade ?? upgrade.protocol;
          // The handshake goes on as the upstream made it: no Date of ours.
          res.sendDate = false;
          res.writeHead(101, answer.statusMessage || 'Switching Protocols', answerHeaders as OutgoingHttpHeaders);
          res.flushHeaders();
          upgrade.established(switched, switchedHead).then(resolve, resolve);
        });
        request.on('response', (answer: IncomingMessage) => {
          if (settled) {
            answer.destroy();
            return;
          }
          const status = answer.statusCode ?? 502;
          let answerHeaders = { ...answer.headers } as Headers;
          const refused = ex.refuseResponse?.(status, answerHeaders, peer);
          if (refused) {
            fail(refused);
            return;
          }
          if (peer && status === 503 && answerHeaders[REASON_HEADER] === ErrorCodes.UPSTREAM_CONNECT && ex.replayable) {
            fail(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `${where}: the peer proxy could not connect to its app`));
            return;
          }
          settled = true;
          // The answer is passed on: a give-up from now on can only cut it.
          ex.onAbort = () => {
            answer.destroy();
            res.destroy();
          };
          answerHeaders = responseHeadersToForward(answerHeaders);
          if (ex.responseEdits) for (const edit of ex.responseEdits) edit(answerHeaders);
          res.writeHead(status, answer.statusMessage || undefined, answerHeaders as OutgoingHttpHeaders);
          const done = () => {
            ex.onAbort = undefined;
            connection.destroy();
            resolve();
          };
          answer.on('error', () => res.destroy());
          answer.on('aborted', () => res.destroy());
          res.once('close', done);
          answer.pipe(res);
        });
        request.end();
      },
      (error: unknown) => fail(classifyUpstreamError(error, where)),
    );
  });
}

/**
 * Copies bytes both ways with backpressure until both sides are closed. An
 * end on one side is passed on as an end (half close); an error tears down
 * both. Silence in both directions for the idle timeout, or the end of a
 * drain, closes both with a FIN, and cuts them if they linger.
 */
export function spliceUpgraded(client: Duplex, clientHead: Buffer, upstream: Duplex, upstreamHead: Buffer, context: UpgradeContext): Promise<void> {
  const { clock, activity } = context;
  const idleMs = context.upgradeIdleTimeoutMs ?? DEFAULT_UPGRADE_IDLE_TIMEOUT_MS;
  return new Promise<void>((resolve) => {
    // A FIN from one side must not end the other direction: Node ends a socket's writable side itself unless told not to.
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    (upstream as Partial<Socket>).setNoDelay?.(true);
    let lastActivity = clock.monotonic();
    let idleTimer: { cancel(): void } | undefined;
    let lingerTimer: { cancel(): void } | undefined;
    let open = 2;

    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    const closeGracefully = () => {
      if (!client.writableEnded) client.end();
      if (!upstream.writableEnded) upstream.end();
      lingerTimer ??= clock.setTimeout(destroyBoth, UPGRADE_CLOSE_LINGER_MS);
    };
    if (client.destroyed || upstream.destroyed) {
      // One side left while the 101 was on its way: nothing to splice.
      destroyBoth();
      resolve();
      return;
    }
    const untrack = activity.trackUpgraded(closeGracefully);
    const onClosed = (other: Duplex) => () => {
      // Nothing more can reach the side that closed: the other gets what is already written, an end, and is let go.
      if (!other.destroyed) {
        if (other.writableFinished) other.destroy();
        else other.end(() => other.destroy());
      }
      if (--open > 0) return;
      idleTimer?.cancel();
      lingerTimer?.cancel();
      untrack();
      resolve();
    };
    client.once('close', onClosed(upstream));
    upstream.once('close', onClosed(client));
    client.on('error', destroyBoth);
    upstream.on('error', destroyBoth);

    const pump = (from: Duplex, to: Duplex) => {
      from.on('data', (chunk: Buffer) => {
        lastActivity = clock.monotonic();
        if (!to.write(chunk)) from.pause();
      });
      to.on('drain', () => from.resume());
      from.once('end', () => {
        if (!to.destroyed && !to.writableEnded) to.end();
      });
    };

    if (idleMs > 0) {
      // Timers run before the loop reads sockets: a busy process may have bytes waiting that it has not read yet,
      // so an expiry is confirmed once more on the next turn, after pending reads have updated lastActivity.
      let confirming = false;
      const check = () => {
        const quiet = clock.monotonic() - lastActivity;
        if (quiet < idleMs) {
          confirming = false;
          idleTimer = clock.setTimeout(check, idleMs - quiet);
          return;
        }
        if (!confirming) {
          confirming = true;
          idleTimer = clock.setTimeout(check, 0);
          return;
        }
        context.logger.debug({ idleMs }, 'closing an upgraded connection that stayed idle');
        closeGracefully();
      };
      idleTimer = clock.setTimeout(check, idleMs);
    }

    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (clientHead.length > 0) upstream.write(clientHead);
    pump(client, upstream);
    pump(upstream, client);
    client.resume();
    upstream.resume();
  });
}
