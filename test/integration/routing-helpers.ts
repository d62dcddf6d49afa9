// Helpers for the routing integration tests: compact route rules, a recording HTTP server, and the conformance echo with its log captured.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { servicePortKey, type HttpFilter, type HttpRouteRule } from '../../src/api/snapshot.ts';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import type { Logger } from '../../src/telemetry/logger.ts';

/** A rule matching a path prefix, sending to `backend` ("ns/name:port", default default/web:80) unless told otherwise. */
export function prefixRule(id: string, prefix: string, extra: Partial<HttpRouteRule> = {}, backend = servicePortKey('default', 'web', 80)): HttpRouteRule {
  return { id, match: { path: { type: 'PathPrefix', value: prefix } }, filters: [], backends: [{ backend, weight: 1, filters: [] }], ...extra };
}

export function headerFilter(type: 'RequestHeaderModifier' | 'ResponseHeaderModifier', set: Record<string, string>): HttpFilter {
  return { type, modifier: { set: Object.entries(set).map(([name, value]) => ({ name, value })) } };
}

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RecordingServer {
  port: number;
  requests: Recorded[];
  /** Requests whose URL starts with `prefix`. */
  seen(prefix: string): Recorded[];
  close(): Promise<void>;
}

/**
 * A server that records every request and answers 200 with its name, after
 * `delayMs`; with `hang`, it reads the request and never answers.
 */
export async function startRecorder(name: string, options: { delayMs?: number; hang?: boolean } = {}): Promise<RecordingServer> {
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (options.hang) return;
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-recorder': name });
        res.end(name);
      };
      if (!options.delayMs) return answer();
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, options.delayMs);
      timers.add(timer);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    seen: (prefix) => requests.filter((r) => r.url.startsWith(prefix)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface CapturedEcho extends RunningEcho {
  /** The "Echoing back request made to <uri> to client (...)" lines, as upstream greps them. */
  lines: string[];
}

/** The conformance echo (retry simulator, delays, X-Echo-Set-Header), its per-request log lines kept. */
export async function startCapturedEcho(pod: string): Promise<CapturedEcho> {
  const lines: string[] = [];
  const logger = { info: (line: string) => lines.push(line) } as unknown as Logger;
  const echo = await startEcho({ port: 0, namespace: 'default', pod, logger });
  return Object.assign(echo, { lines });
}
