// The echo backend of the Gateway API conformance contract (echo-basic): answers every request with what it saw.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { HTTP_TOKEN } from '../api/http-syntax.ts';
import type { Logger } from '../telemetry/logger.ts';
import { serveWebSocketEcho } from './websocket-echo.ts';

export interface EchoOptions {
  port: number; // 0 = any
  host?: string; // default 127.0.0.1
  /** Reported as `namespace` and `pod`, as the conformance tests read them. */
  namespace?: string;
  pod?: string;
  /** Gets one line per request, the line upstream's mirror tests grep for. */
  logger?: Logger;
  /** Speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1, as echo-basic's port 3001 does. */
  h2c?: boolean;
  /** Told of every request once its body has ended (or the request was cut): what the backend really received, for the attack suite. */
  record?: (request: ReceivedRequest) => void;
}

/** One request as the echo received it. */
export interface ReceivedRequest {
  method: string;
  url: string;
  /** Raw name/value pairs, in order, as they arrived. */
  rawHeaders: string[];
  body: Buffer;
  /** false: the client (the proxy) cut the request before its body ended. */
  complete: boolean;
}

export interface RunningEcho {
  port: number;
  close(): Promise<void>;
}

/** What the echo answers with; the field names are the contract's. */
export interface EchoResponse {
  path: string;
  host: string;
  method: string;
  proto: string;
  headers: Record<string, string[]>;
  namespace: string;
  ingress: string;
  service: string;
  pod: string;
  httpPort: string;
}

/** Go's textproto.CanonicalMIMEHeaderKey: "x-forwarded-for" → "X-Forwarded-For"; names with invalid bytes stay as they are. */
export function canonicalHeaderName(name: string): string {
  if (!HTTP_TOKEN.test(name)) return name;
  let out = '';
  let upper = true;
  for (const c of name) {
    out += upper ? c.toUpperCase() : c.toLowerCase();
    upper = c === '-';
  }
  return out;
}

const durationUnitsMs: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration ("1s", "150ms", "1.5s", "1m30s") into milliseconds; undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const whole = /^(?:[0-9]*(?:\.[0-9]*)?(?:ns|us|µs|μs|ms|s|m|h))+$/;
  if (!whole.test(text)) return undefined;
  let total = 0;
  for (const [, number, unit] of text.matchAll(/([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/g)) {
    const value = Number(number);
    if (!number || Number.isNaN(value)) return undefined;
    total += value * (durationUnitsMs[unit!] ?? 0);
  }
  return total;
}

/** Longest `?delay=` the echo honours, so a typo can't park a connection for hours. */
const MAX_DELAY_MS = 120_000;
/** Retry counters kept at once; the oldest are forgotten first. */
const MAX_RETRY_COUNTERS = 10_000;

function remoteOf(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? '';
  const port = req.socket.remotePort ?? 0;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function headersOf(req: IncomingMessage): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    // Go moves Host out of the header map; HTTP/2 pseudo-headers are not headers.
    if (name.startsWith(':') || name.toLowerCase() === 'host') continue;
    (headers[canonicalHeaderName(name)] ??= []).push(raw[i + 1]!);
  }
  return headers;
}

/** `X-Echo-Set-Header: A:1,B:2` → response headers A: 1 and B: 2; a repeated name gets "v1,v2". */
function setRequestedHeaders(req: IncomingMessage, res: ServerResponse): void {
  const wanted = new Map<string, { name: string; values: string[] }>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'x-echo-set-header') continue;
    for (const pair of req.rawHeaders[i + 1]!.split(',')) {
      const colon = pair.indexOf(':');
      if (colon === -1) continue;
      const name = pair.slice(0, colon).trim();
      const value = pair.slice(colon + 1).trim();
      if (!HTTP_TOKEN.test(name)) continue;
      const entry = wanted.get(name.toLowerCase()) ?? { name, values: [] };
      entry.values.push(value);
      wanted.set(name.toLowerCase(), entry);
    }
  }
  for (const { name, values } of wanted.values()) res.setHeader(name, values.join(','));
}

function recordRequest(req: IncomingMessage, record: (request: ReceivedRequest) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = (complete: boolean) => {
    if (done) return;
    done = true;
    record({ method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders], body: Buffer.concat(chunks), complete });
  };
  req.on('data', (chunk: Buffer) => {
    // Kept up to 1 MiB: enough to compare, bounded whatever a test sends.
    if (size < 1024 * 1024) chunks.push(chunk);
    size += chunk.length;
  });
  req.once('end', () => finish(true));
  req.once('close', () => finish(req.complete));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function startEcho(options: EchoOptions): Promise<RunningEcho> {
  const namespace = options.namespace ?? '';
  const pod = options.pod ?? '';
  const logger = options.logger;
  const retryAttempts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  let httpPort = '';

  const later = (ms: number, req: IncomingMessage, fn: () => void) => {
    if (ms <= 0) return fn();
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    req.socket.once('close', () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  };

  const echo = (req: IncomingMessage, res: ServerResponse) => {
    const body: EchoResponse = {
      path: req.url ?? '',
      host: req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '',
      method: req.method ?? '',
      proto: `HTTP/${req.httpVersion}`,
      headers: headersOf(req),
      namespace,
      ingress: '',
      service: '',
      pod,
      httpPort,
    };
    const json = JSON.stringify(body, null, 1);
    setRequestedHeaders(req, res);
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('content-length', Buffer.byteLength(json));
    res.writeHead(200);
    res.end(json);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const uri = req.url ?? '/';
    logger?.info(`Echoing back request made to ${uri} to client (${remoteOf(req)})`);
    if (options.record) recordRequest(req, options.record);
    req.resume();
    const url = new URL(uri, 'http://echo.invalid');
    const path = url.pathname;

    if (path === '/health') return sendText(res, 200, 'OK');

    const status = /^\/status\/([0-9]{3})$/.exec(path);
    if (status) {
      const code = Number(status[1]);
      if (code < 200 || code > 599) return sendText(res, 400, `status ${code} is not one the echo can answer with\n`);
      res.writeHead(code, { 'content-length': 0 });
      return void res.end();
    }

    const delayText = url.searchParams.get('delay');
    let delayMs = 0;
    if (delayText !== null) {
      const parsed = parseGoDuration(delayText);
      if (parsed === undefined || parsed > MAX_DELAY_MS) return sendText(res, 400, `invalid delay "${delayText}"\n`);
      delayMs = parsed;
    }

    if (path === '/retry' || path.startsWith('/retry/')) {
      const uuid = url.searchParams.get('uuid');
      const succeedAfter = Number(url.searchParams.get('succeedAfter'));
      if (!uuid || !Number.isInteger(succeedAfter) || succeedAfter < 0) {
        return sendText(res, 400, 'retry needs ?uuid=<id>&succeedAfter=<attempts that fail>\n');
      }
      const attempt = (retryAttempts.get(uuid) ?? 0) + 1;
      retryAttempts.delete(uuid); // re-insert so that Map order is least recently used first
      retryAttempts.set(uuid, attempt);
      if (retryAttempts.size > MAX_RETRY_COUNTERS) retryAttempts.delete(retryAttempts.keys().next().value!);
      if (attempt <= succeedAfter) {
        const retryDelay = parseGoDuration(url.searchParams.get('delayRetry') ?? '0') ?? 0;
        const code = url.searchParams.get('responseCode');
        return later(Math.min(retryDelay, MAX_DELAY_MS), req, () => {
          if (code === null) return void req.socket.resetAndDestroy();
          const n = Number(code);
          if (!Number.isInteger(n) || n < 200 || n > 599) return sendText(res, 400, `invalid responseCode "${code}"\n`);
          sendText(res, n, `attempt ${attempt} of ${uuid} fails on purpose\n`);
        });
      }
    }

    later(delayMs, req, () => echo(req, res));
  };

  if (options.h2c) return listenH2c(options, handle, timers, (port) => (httpPort = port));
  const server: Server = createServer(handle);
  /** WebSocket connections: the server lets go of them at the upgrade, so close() ends them itself. */
  const upgraded = new Set<Duplex>();
  // `/ws` is a WebSocket that echoes every frame (echo-basic's); an Upgrade anywhere else is served as a plain request, as Go's net/http does.
  (server as Server & { shouldUpgradeCallback: (req: IncomingMessage) => boolean }).shouldUpgradeCallback = (req) => new URL(req.url ?? '/', 'http://echo.invalid').pathname === '/ws';
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    logger?.info(`Echoing back request made to ${req.url ?? '/'} to client (${remoteOf(req)})`);
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    serveWebSocketEcho(req, socket, head);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      const port = address && typeof address === 'object' ? address.port : options.port;
      httpPort = String(port);
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            server.close(() => done());
            server.closeAllConnections();
            for (const socket of upgraded) socket.destroy();
          }),
      });
    });
  });
}

/**
 * The same handler on an h2c server (Node's compatibility API gives it the
 * request and response it expects). A client speaking HTTP/1.1 there gets
 * its connection closed, as echo-basic's h2c port refuses it.
 */
function listenH2c(
  options: EchoOptions,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  timers: Set<NodeJS.Timeout>,
  onPort: (port: string) => void,
): Promise<RunningEcho> {
  const server = createH2cServer(handle as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  const sessions = new Set<Http2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      const port = address && typeof address === 'object' ? address.port : options.port;
      onPort(String(port));
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            server.close(() => done());
            for (const session of sessions) session.destroy();
          }),
      });
    });
  });
}
