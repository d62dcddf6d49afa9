// What travels through a stack: one HTTP request/response, or one opaque TCP connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { SnapshotBackend, SnapshotEndpoint } from '../api/snapshot.ts';

export type Direction = 'outbound' | 'inbound';
export type Headers = Record<string, string | string[] | undefined>;

/** Fields every exchange has, so that backend, balancer and port layers serve HTTP and TCP alike. */
export interface Exchange {
  readonly direction: Direction;
  /** The destination as metrics name it ("ns/name:port" outbound, "ns/workload:port" inbound). */
  service: string;
  /** The declared port: the service port (outbound) or the app port the tunnel was asked for (inbound). */
  targetPort: number;
  /** Inbound: where the app really listens on 127.0.0.1. */
  appPort: number;
  backend: SnapshotBackend | undefined;
  endpoint: SnapshotEndpoint | undefined;
  /** An endpoint that just failed to connect: the balancer steers the next attempt away from it. */
  avoid: SnapshotEndpoint | undefined;
  /** Whether another attempt can be made after a connect failure (nothing of the request is lost). */
  readonly replayable: boolean;
}

export class HttpExchange implements Exchange {
  readonly direction: Direction;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: number;
  service = 'unknown';
  targetPort = 0;
  appPort = 0;
  backend: SnapshotBackend | undefined = undefined;
  endpoint: SnapshotEndpoint | undefined = undefined;
  avoid: SnapshotEndpoint | undefined = undefined;
  method: string;
  /** Origin-form target: path and query. */
  path: string;
  /** The headers to send on: hop-by-hop ones removed, `host` as the client sent it. Filters edit this. */
  headers: Headers;
  /** Edits applied, in order, to the response's headers before they are written. */
  responseEdits: ((headers: Headers) => void)[] | undefined = undefined;
  /** Set once the exchange is given up (timeout, client gone); the transport aborts its attempt. */
  aborted: Error | undefined = undefined;
  /** Installed by the transport while an upstream attempt runs. */
  onAbort: ((reason: Error) => void) | undefined = undefined;
  private pathEnd = -1;
  private query: URLSearchParams | undefined = undefined;

  constructor(direction: Direction, req: IncomingMessage, res: ServerResponse, path: string, headers: Headers, startedAt: number) {
    this.direction = direction;
    this.req = req;
    this.res = res;
    this.method = req.method ?? 'GET';
    this.path = path;
    this.headers = headers;
    this.startedAt = startedAt;
  }

  /** The path without its query, as route matches see it. */
  get pathname(): string {
    if (this.pathEnd === -1) {
      const q = this.path.indexOf('?');
      this.pathEnd = q === -1 ? this.path.length : q;
    }
    return this.path.slice(0, this.pathEnd);
  }

  /** Parsed once, on first use: only rules with query matches pay for it. */
  get queryParams(): URLSearchParams {
    if (!this.query) {
      const q = this.path.indexOf('?');
      this.query = new URLSearchParams(q === -1 ? '' : this.path.slice(q + 1));
    }
    return this.query;
  }

  /** Whether the request carries a body to stream on. */
  get hasBody(): boolean {
    const h = this.req.headers;
    return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
  }

  /** A request without a body can be sent again; a streamed body cannot (it is not kept). */
  get replayable(): boolean {
    return !this.hasBody && this.aborted === undefined;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = reason;
    this.onAbort?.(reason);
  }

  addResponseEdit(edit: (headers: Headers) => void): void {
    (this.responseEdits ??= []).push(edit);
  }
}

export class TcpExchange implements Exchange {
  readonly direction: Direction;
  /** The client side of the connection. */
  readonly socket: Duplex;
  service = 'unknown';
  targetPort = 0;
  appPort = 0;
  backend: SnapshotBackend | undefined = undefined;
  endpoint: SnapshotEndpoint | undefined = undefined;
  avoid: SnapshotEndpoint | undefined = undefined;
  /** Nothing is read from the client before the upstream connection is open. */
  readonly replayable = true;
  /** Called with the upstream connection once it is open; the listener splices the two. */
  readonly onConnected: (upstream: Duplex) => void;

  constructor(direction: Direction, socket: Duplex, onConnected: (upstream: Duplex) => void) {
    this.direction = direction;
    this.socket = socket;
    this.onConnected = onConnected;
  }
}
