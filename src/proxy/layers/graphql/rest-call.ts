// A resolver's REST call, sent through the backend's own layers (connect retries, balancer, circuit breaker, outlier detection, forward) and read whole.
//
// The call is an exchange of its own whose response is captured instead of
// written to a client: so it gets what a routed request to that backend
// gets (BackendTrafficPolicy's load balancing, limits and ejections, mTLS to
// a sidecar's tunnel, HTTP/2 to an h2c or gRPC port) from the same code.
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

export interface RestCallContext {
  balancers: BalancerRegistry;
  forward: ForwardContext;
  clock: Clock;
}

/** The steps a call to `backend` takes; built once per snapshot and backend. */
export function restCallStep(backend: SnapshotBackend, context: RestCallContext): Step<HttpExchange> {
  return stack({ backend }, [
    retryConnectFailures<HttpExchange>(CONNECT_ATTEMPTS),
    balance<HttpExchange>(context.balancers),
    circuitBreaker<HttpExchange>(context.balancers),
    outlierDetection<HttpExchange>(context.balancers),
    forwardHttp(context.forward),
  ]);
}

export interface RestCall {
  method: string;
  /** Origin-form: path and query. */
  path: string;
  headers: Headers;
  body: Buffer | null;
  timeoutMs: number;
  /** The largest answer read. */
  limitBytes: number;
}

export interface RestAnswer {
  status: number;
  body: Buffer;
}

/** Sends `call` through `step` on behalf of `parent` (the GraphQL request); rejects with a message that says what failed. */
export async function sendRestCall(step: Step<HttpExchange>, parent: HttpExchange, call: RestCall, clock: Clock): Promise<RestAnswer> {
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
  return { status: captured.statusCode, body: captured.body() };
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
    if (headers) Object.assign(this.headers, headers);
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
