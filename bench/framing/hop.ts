// One hop of the framing micro-benchmark: HTTP/1 traffic carried between two Node proxies as pooled HTTP/1.1 or as HTTP/2 streams.
//
// DESIGN.md ("Between proxies") leaves the framing of HTTP/1 traffic between
// proxies to a benchmark. This is that benchmark's proxy, written small and
// alike for both framings so that only the framing differs:
//   --role client  accepts HTTP/1.1 from the load generator and forwards to the server hop
//                  over an undici Pool (--framing h1) or one node:http2 session (--framing h2);
//   --role server  accepts that framing (optionally mutual TLS) and forwards to the upstream
//                  over an undici Pool.
// Prints {"event":"ready","port":N} once listening.
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    framing: { type: 'string', default: 'h1' },
    port: { type: 'string', default: '0' },
    next: { type: 'string' },
    tls: { type: 'boolean', default: false },
    'ca-cert': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'server-name': { type: 'string', default: 'server.bench.local' },
    connections: { type: 'string', default: '32' },
  },
});

const role = values.role;
const framing = values.framing;
if ((role !== 'client' && role !== 'server') || (framing !== 'h1' && framing !== 'h2') || !values.next) {
  process.stderr.write('usage: hop.ts --role client|server --framing h1|h2 --next PORT [--tls --ca-cert F --cert F --key F]\n');
  process.exit(2);
}
const nextPort = Number(values.next);
const poolConnections = Number(values.connections);
const tls = values.tls
  ? { ca: readFileSync(values['ca-cert']!), cert: readFileSync(values.cert!), key: readFileSync(values.key!), servername: values['server-name'] }
  : undefined;

// Connection-specific headers never cross a hop (and HTTP/2 forbids them).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

function forwardHeaders(headers: IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function fail(res: ServerResponse | http2.ServerHttp2Stream, error: unknown): void {
  const message = `hop error: ${error instanceof Error ? error.message : String(error)}\n`;
  if ('respond' in res) {
    if (!res.headersSent && !res.destroyed) res.respond({ ':status': 502 });
    if (!res.destroyed) res.end(message);
  } else {
    if (!res.headersSent) res.writeHead(502);
    res.end(message);
  }
}

function listening(server: { address(): unknown }): void {
  const address = server.address() as { port: number };
  process.stdout.write(JSON.stringify({ event: 'ready', port: address.port }) + '\n');
}

const poolOptions = { connections: poolConnections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 120_000 };

if (role === 'server') {
  // Server hop → upstream: always pooled HTTP/1.1, plaintext (the app is on loopback).
  const upstream = new Pool(`http://127.0.0.1:${nextPort}`, poolOptions);
  const forward = (method: string, path: string, authority: string, headers: Record<string, string | string[]>, body: IncomingMessage | http2.ServerHttp2Stream | null) =>
    upstream.request({ method, path, headers: { ...headers, host: authority }, body: body ?? null });

  if (framing === 'h1') {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      forward(req.method ?? 'GET', req.url ?? '/', req.headers.host ?? '', forwardHeaders(req.headers), hasBody ? req : null).then(
        (answer) => {
          res.writeHead(answer.statusCode, forwardHeaders(answer.headers as IncomingHttpHeaders));
          answer.body.pipe(res);
        },
        (error: unknown) => fail(res, error),
      );
      if (!hasBody) req.resume();
    };
    const server = tls
      ? https.createServer({ ...tls, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 120_000 }, handler)
      : http.createServer({ keepAliveTimeout: 120_000 }, handler);
    server.listen(Number(values.port), '127.0.0.1', () => listening(server));
  } else {
    const server = tls
      ? http2.createSecureServer({ ...tls, requestCert: true, rejectUnauthorized: true, allowHTTP1: false })
      : http2.createServer();
    server.on('stream', (stream, headers) => {
      const method = String(headers[':method'] ?? 'GET');
      const hasBody = !stream.readableEnded && method !== 'GET' && method !== 'HEAD';
      forward(method, String(headers[':path'] ?? '/'), String(headers[':authority'] ?? ''), forwardHeaders(headers), hasBody ? stream : null).then(
        (answer) => {
          if (stream.destroyed) return answer.body.destroy();
          stream.respond({ ':status': answer.statusCode, ...forwardHeaders(answer.headers as IncomingHttpHeaders) });
          answer.body.pipe(stream);
        },
        (error: unknown) => fail(stream, error),
      );
      stream.on('error', () => {});
      if (!hasBody) stream.resume();
    });
    server.listen(Number(values.port), '127.0.0.1', () => listening(server));
  }
} else {
  // Client hop: the app side is plain HTTP/1.1; the framing choice is how it reaches the server hop.
  const scheme = tls ? 'https' : 'http';
  let send: (req: IncomingMessage, res: ServerResponse) => void;
  if (framing === 'h1') {
    const peer = new Pool(`${scheme}://127.0.0.1:${nextPort}`, { ...poolOptions, ...(tls ? { connect: { ...tls, rejectUnauthorized: true } } : {}) });
    send = (req, res) => {
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      peer
        .request({ method: (req.method ?? 'GET') as 'GET', path: req.url ?? '/', headers: { ...forwardHeaders(req.headers), host: req.headers.host ?? '' }, body: hasBody ? req : null })
        .then(
          (answer) => {
            res.writeHead(answer.statusCode, forwardHeaders(answer.headers as IncomingHttpHeaders));
            answer.body.pipe(res);
          },
          (error: unknown) => fail(res, error),
        );
      if (!hasBody) req.resume();
    };
  } else {
    // One session carries every stream; it is reopened if it goes away.
    let session: http2.ClientHttp2Session | undefined;
    const connect = (): http2.ClientHttp2Session => {
      if (session && !session.closed && !session.destroyed) return session;
      const opened = http2.connect(`${scheme}://127.0.0.1:${nextPort}`, {
        ...(tls ? { ...tls, rejectUnauthorized: true } : {}),
        settings: { initialWindowSize: 1 << 20 },
      });
      opened.on('error', () => {});
      opened.on('close', () => {
        if (session === opened) session = undefined;
      });
      session = opened;
      return opened;
    };
    send = (req, res) => {
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      let stream: http2.ClientHttp2Stream;
      try {
        stream = connect().request(
          { ':method': req.method ?? 'GET', ':path': req.url ?? '/', ':authority': req.headers.host ?? '', ...forwardHeaders(req.headers) },
          { endStream: !hasBody },
        );
      } catch (error) {
        fail(res, error);
        return;
      }
      stream.on('response', (headers) => {
        res.writeHead(Number(headers[':status']), forwardHeaders(headers));
        stream.pipe(res);
      });
      stream.on('error', (error) => fail(res, error));
      if (hasBody) req.pipe(stream);
      else req.resume();
    };
  }
  const server = http.createServer({ keepAliveTimeout: 120_000 }, send);
  server.listen(Number(values.port), '127.0.0.1', () => listening(server));
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
