// Side calls: HTTP requests a proxy makes itself to a Service port (a GraphQL resolver's REST call, an external authorization check), read whole.
//
// A side call is an exchange of its own, sent through the backend's own
// layers (connect retries, balancer, circuit breaker, outlier detection,
// forward) with its response captured instead of written to a client: so it
// gets what a routed request to that backend gets (BackendTrafficPolicy's
// load balancing, limits and ejections, mTLS to a sidecar's tunnel, HTTP/2 to
// an h2c or gRPC port) from the same code.
import type { SnapshotBackend } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { HttpExchange, type DownstreamRequest, type DownstreamResponse, type Headers, type OutgoingHeaders } from '../../exchange.ts';
import { stack, type Step } from '../../stack.ts';
import type { BalancerRegistry } from '../balancer/balancers.ts';
import { balance } from '../balancer/index.ts';
import { circuitBreaker } from '../circuit-breaker/index.ts';
import { forwardHttp, type ForwardContext } from '../forward/index.ts';
import { outlierDetection } from '../outlier/index.ts';
import { retryConnectFailures } from '../retry/index.ts';

/** Attempts per call when endpoints refuse connections, as for a routed request. */
const CONNECT_ATTEMPTS = 2;

/** Where side calls go: the snapshot's backends, and the proxy's balancers and pools. */
export interface SideCallContext {
  backends: Readonly<Record<string, SnapshotBackend>>;
  balancers: BalancerRegistry;
  forward: ForwardContext;
  clock: Clock;
}

/** The steps to each of the backends `keys` name (those the snapshot has), built once when the snapshot is applied. */
export function sideCallSteps(keys: Iterable<string>, context: SideCallContext): ReadonlyMap<string, Step<HttpExchange>> {
  const steps = new Map<string, Step<HttpExchange>>();
  for (const key of keys) {
    const backend = context.backends[key];
    if (backend && !steps.has(key)) steps.set(key, sideCallStep(backend, context));
  }
  return steps;
}

/** The steps a call to `backend` takes. */
function sideCallStep(backend: SnapshotBackend, context: SideCallContext): Step<HttpExchange> {
  return stack({ backend }, [
    retryConnectFailures<HttpExchange>(CONNECT_ATTEMPTS),
    balance<HttpExchange>(context.balancers),
    circuitBreaker<HttpExchange>(context.balancers),
    outlierDetection<HttpExchange>(context.balancers),
    forwardHttp(context.forward),
  ]);
}

export interface SideCall {
  method: string;
  /** Origin-form: path and query. */
  path: string;
  headers: Headers;
  body: Buffer | null;
  timeoutMs: number;
  /** The largest answer read. */
  limitBytes: number;
}

export interface SideAnswer {
  status: number;
  headers: OutgoingHeaders;
  body: Buffer;
}

/** Sends `call` through `step` on behalf of `parent` (the request that needs it); rejects with a message that says what failed. */
export async function sendSideCall(step: Step<HttpExchange>, parent: HttpExchange, call: SideCall, clock: Clock): Promise<SideAnswer> {
  const request: DownstreamRequest = { method: call.method, url: call.path, headers: call.headers, httpVersionMajor: 1, httpVersionMinor: 1, socket: parent.req.socket };
  const captured = new CapturedResponse(call.limitBytes);
  const exchange = new HttpExchange('outbound', request, captured, call.path, { ...call.headers }, clock.monotonic(), call.body ?? undefined);
  exchange.traceId = parent.traceId;
  const timer = clock.setTimeout(() => exchange.abort(new Error(`no answer within ${call.timeoutMs} ms`)), call.timeoutMs);
  captured.onOverflow = () => exchange.abort(new Error(`the answer is over ${call.limitBytes} bytes`));
  try {
    await step(exchange);
  } finally {
    timer.cancel();
  }
  if (exchange.aborted) throw exchange.aborted;
  if (captured.destroyed || !captured.writableEnded) throw new Error('the answer was cut short');
  return { status: captured.statusCode, headers: captured.getHeaders(), body: captured.body() };
}

/** A response the proxy reads itself, held in memory up to a limit. */
class CapturedResponse implements DownstreamResponse {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  statusMessage: string | undefined = undefined;
  onOverflow: (() => void) | undefined = undefined;
  private readonly limitBytes: number;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly headers: OutgoingHeaders = {};

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  body(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  writeHead(statusCode: number, headers?: OutgoingHeaders): this {
    this.statusCode = statusCode;
    this.headersSent = true;
    if (headers) for (const name in headers) this.headers[name.toLowerCase()] = headers[name];
    return this;
  }

  setHeader(name: string, value: number | string | readonly string[]): unknown {
    this.headers[name.toLowerCase()] = value as OutgoingHeaders[string];
    return this;
  }

  getHeader(name: string): number | string | string[] | undefined {
    return this.headers[name.toLowerCase()];
  }

  getHeaders(): OutgoingHeaders {
    return this.headers;
  }

  addTrailers(): void {}

  write(chunk: Buffer | string): boolean {
    this.headersSent = true;
    if (this.destroyed) return true;
    const piece = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.size += piece.length;
    if (this.size > this.limitBytes) {
      this.chunks.length = 0;
      this.destroyed = true;
      this.onOverflow?.();
      return true;
    }
    this.chunks.push(piece);
    return true;
  }

  end(chunk?: Buffer | string): unknown {
    if (chunk !== undefined) this.write(chunk);
    this.headersSent = true;
    this.writableEnded = true;
    this.writableFinished = true;
    return this;
  }

  destroy(): unknown {
    this.destroyed = true;
    return this;
  }

  once(): unknown {
    return this;
  }
}
