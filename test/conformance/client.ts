// The harness's HTTP client: one request per connection, either through a sidecar's outbound listener (mesh) or straight to a gateway.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as http2Connect, type IncomingHttpHeaders as Http2Headers } from 'node:http2';
import type { PeerCertificate } from 'node:tls';

/** The echo body fields the tests read (echo-basic's JSON). */
export interface EchoBody {
  path: string;
  host: string;
  method: string;
  /** Lower-case names, every value as received. */
  headers: Map<string, string[]>;
  namespace: string;
  pod: string;
}

export interface Captured {
  status: number;
  /** Response headers by lower-case name, one entry per header line (as Go's http.Header keeps them). */
  headers: Map<string, string[]>;
  contentType: string;
  body: string;
  /** Parsed only when Content-Type is exactly application/json, as upstream's roundtripper does. */
  echo?: EchoBody;
}

export interface OutgoingRequest {
  method: string;
  /** Absolute URL for a proxy, or origin-form path for a gateway. */
  target: string;
  /** Header name → value, each sent once (Host included). */
  headers: Record<string, string>;
  /** "H2": HTTP/2 over TLS; "H2C_PRIOR_KNOWLEDGE": HTTP/2 in cleartext (the Host going as :authority); anything else (or absent): HTTP/1.1. */
  protocol?: string;
}

/** Where a request goes: a forward proxy (a sidecar's outbound port) or a gateway listener. */
export type Destination =
  | { kind: 'proxy'; port: number; host?: string }
  | { kind: 'direct'; address: string; port: number; scheme: 'http' | 'https'; sni?: string; ca?: string | Buffer };

const MAX_BODY_BYTES = 1 << 20;
export const REQUEST_TIMEOUT_MS = 10_000;

function headerMap(res: IncomingMessage): Map<string, string[]> {
  const map = new Map<string, string[]>();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    let values = map.get(name);
    if (!values) map.set(name, (values = []));
    values.push(raw[i + 1]!);
  }
  return map;
}

function parseEcho(body: string): EchoBody | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const o = parsed as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const headers = new Map<string, string[]>();
  if (o.headers && typeof o.headers === 'object') {
    for (const [name, values] of Object.entries(o.headers as Record<string, unknown>)) {
      const list = Array.isArray(values) ? values.map(String) : [String(values)];
      const key = name.toLowerCase();
      headers.set(key, [...(headers.get(key) ?? []), ...list]);
    }
  }
  return { path: str(o.path), host: str(o.host), method: str(o.method), headers, namespace: str(o.namespace), pod: str(o.pod) };
}

/**
 * Go's certificate name matching (crypto/x509), which upstream's client uses:
 * a "*" leftmost label stands for exactly one label, however few labels the
 * name has ("*.org" covers "example.org", which Node's own check refuses).
 */
export function goStyleServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const names = (cert.subjectaltname ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
  const hostLabels = host.toLowerCase().replace(/\.$/, '').split('.');
  const matches = (pattern: string) => {
    const labels = pattern.replace(/\.$/, '').split('.');
    return labels.length === hostLabels.length && labels.every((label, i) => (i === 0 && label === '*') || label === hostLabels[i]);
  };
  if (names.some(matches)) return undefined;
  return new Error(`certificate is not valid for ${host}: its names are ${names.join(', ') || 'none'}`);
}

function collect(
  statusCode: number,
  headers: Map<string, string[]>,
  contentType: string,
  body: string,
): Captured {
  const captured: Captured = { status: statusCode, headers, contentType, body };
  if (contentType === 'application/json') {
    const echo = parseEcho(body);
    if (echo) captured.echo = echo;
  }
  return captured;
}

/**
 * HTTP/2 on its own connection: over TLS (SNI from the destination), or in
 * cleartext with prior knowledge; :authority from the Host header.
 */
function sendHttp2(destination: Extract<Destination, { kind: 'direct' }>, outgoing: OutgoingRequest, timeoutMs: number): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const session =
      destination.scheme === 'https'
        ? http2Connect(`https://${destination.address}:${destination.port}`, {
            servername: destination.sni ?? '',
            ...(destination.ca ? { ca: destination.ca, checkServerIdentity: goStyleServerIdentity } : { rejectUnauthorized: false }),
          })
        : http2Connect(`http://${destination.address}:${destination.port}`);
    let settled = false;
    const finish = (error: Error | undefined, captured?: Captured) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      if (error) reject(error);
      else resolve(captured!);
    };
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    session.on('error', (error) => finish(error));
    const headers: Record<string, string> = { ':method': outgoing.method, ':path': outgoing.target, ':scheme': destination.scheme };
    for (const [name, value] of Object.entries(outgoing.headers)) {
      if (name.toLowerCase() === 'host') headers[':authority'] = value;
      else headers[name.toLowerCase()] = value;
    }
    const stream = session.request(headers, { endStream: true });
    let responseHeaders: Http2Headers = {};
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    stream.on('error', (error) => finish(error));
    stream.on('close', () => finish(new Error(`the stream closed before its end (code ${stream.rstCode})`)));
    stream.on('end', () => {
      const map = new Map<string, string[]>();
      for (const [name, value] of Object.entries(responseHeaders)) {
        if (name.startsWith(':') || value === undefined) continue;
        map.set(name, Array.isArray(value) ? value.map(String) : [String(value)]);
      }
      const status = Number(responseHeaders[':status'] ?? 0);
      finish(undefined, collect(status, map, String(responseHeaders['content-type'] ?? ''), Buffer.concat(chunks).toString('utf8')));
    });
  });
}

/** Sends one request on a fresh connection (keep-alive off, as upstream's client) and reads the whole answer, bounded. */
export function send(destination: Destination, outgoing: OutgoingRequest, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Captured> {
  if (destination.kind === 'direct') {
    if (outgoing.protocol === 'H2' && destination.scheme === 'https') return sendHttp2(destination, outgoing, timeoutMs);
    if (outgoing.protocol === 'H2C_PRIOR_KNOWLEDGE' && destination.scheme === 'http') return sendHttp2(destination, outgoing, timeoutMs);
  }
  const headers: OutgoingHttpHeaders = { ...outgoing.headers, connection: 'close' };
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, captured?: Captured) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(captured!);
    };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      });
      res.on('error', (error) => finish(error));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const contentType = String(res.headers['content-type'] ?? '');
        const captured: Captured = { status: res.statusCode ?? 0, headers: headerMap(res), contentType, body };
        if (contentType === 'application/json') {
          const echo = parseEcho(body);
          if (echo) captured.echo = echo;
        }
        finish(undefined, captured);
      });
    };
    const common = { method: outgoing.method, path: outgoing.target, headers, agent: false as const, setHost: false };
    const req =
      destination.kind === 'proxy'
        ? httpRequest({ ...common, host: destination.host ?? '127.0.0.1', port: destination.port }, onResponse)
        : destination.scheme === 'https'
          ? httpsRequest(
              {
                ...common,
                host: destination.address,
                port: destination.port,
                servername: destination.sni ?? '',
                ...(destination.ca ? { ca: destination.ca, checkServerIdentity: goStyleServerIdentity } : { rejectUnauthorized: false }),
              },
              onResponse,
            )
          : httpRequest({ ...common, host: destination.address, port: destination.port }, onResponse);
    const timer = setTimeout(() => {
      req.destroy();
      finish(new Error(`no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (error) => finish(error));
    req.end();
  });
}
