// Joins or starts a trace for each HTTP exchange: one span per hop (server at the receiving proxy, client at the sending one), headers injected on the request sent on.
//
// Hand-written rather than the OpenTelemetry SDK: the SDK allocates a context,
// a span with attribute maps and a processor chain per span, and wants async
// context propagation, while here the exchange already carries its span from
// listener to transport. An unsampled request costs one header parse (or two
// random ids and one traceparent string when it starts the trace); a sampled
// one a Span with a flat attribute array, encoded only by the exporter.
import { REASON_HEADER } from '../../api/errors.ts';
import type { SnapshotMesh } from '../../api/snapshot.ts';
import type { Clock } from '../../telemetry/clock.ts';
import type { HttpExchange } from '../exchange.ts';
import { SOURCE_HEADER } from '../layers/mesh-headers/index.ts';
import { DEFAULT_BATCH_SIZE, DEFAULT_EXPORT_INTERVAL_MS, DEFAULT_EXPORT_TIMEOUT_MS, DEFAULT_MAX_QUEUE, tracesUrl, type OtlpExporter } from './exporter.ts';
import { newSpanId, newTraceId } from './ids.ts';
import { extract, inject, type B3Format } from './propagation.ts';
import { Span, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR } from './span.ts';

/**
 * Where a listener stands in the request's path: `client` (the outbound
 * sidecar, sending for its app), `server` (the inbound sidecar, receiving for
 * its app), `gateway` (a server span for the client's request, then a client
 * span for the request it sends on).
 */
export type TraceRole = 'client' | 'server' | 'gateway';

export interface TracerOptions {
  /** The mesh part of the snapshot in force: its `tracing` says whether and how much to trace. */
  mesh: () => SnapshotMesh | undefined;
  clock: Clock;
  exporter: OtlpExporter;
  /** [0, 1); Math.random when absent. */
  random?: () => number;
}

export class Tracer {
  private readonly options: TracerOptions;
  private readonly random: () => number;
  /** Epoch ms − monotonic ms, taken once: span times keep the monotonic clock's sub-millisecond precision. */
  private readonly epochOffset: number;
  private seenMesh: SnapshotMesh | undefined | null = null;
  private enabled = false;
  private samplingPercent = 0;

  constructor(options: TracerOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.epochOffset = options.clock.now() - options.clock.monotonic();
  }

  /** Reads the snapshot's tracing settings when the snapshot changed (one identity check per request otherwise). */
  private refresh(): void {
    const mesh = this.options.mesh();
    if (mesh === this.seenMesh) return;
    this.seenMesh = mesh;
    const tracing = mesh?.tracing;
    this.enabled = tracing !== undefined;
    this.samplingPercent = tracing?.samplingPercent ?? 0;
    const collector = tracing?.collector;
    let url: string | undefined;
    try {
      url = collector ? tracesUrl(collector.endpoint) : undefined;
    } catch {
      url = undefined;
    }
    this.options.exporter.configure(
      url === undefined
        ? undefined
        : {
            url,
            batchSize: tracing?.batchSize ?? DEFAULT_BATCH_SIZE,
            maxQueue: tracing?.maxQueueSize ?? DEFAULT_MAX_QUEUE,
            intervalMs: tracing?.exportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS,
            timeoutMs: collector?.timeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS,
          },
    );
  }

  private decide(): boolean {
    const percent = this.samplingPercent;
    return percent >= 100 || (percent > 0 && this.random() * 100 < percent);
  }

  /** At the exchange's start, before its stack runs: joins the caller's trace or starts one, and writes the context on the request's headers. */
  start(ex: HttpExchange, role: TraceRole): void {
    this.refresh();
    if (!this.enabled) return;
    const incoming = extract(ex.headers);
    let traceId: string;
    let parentSpanId: string | undefined;
    let sampled: boolean;
    let b3: B3Format | undefined;
    let b3ShortId: boolean | undefined;
    if (incoming !== undefined && incoming.traceId !== undefined) {
      traceId = incoming.traceId;
      parentSpanId = incoming.spanId;
      b3 = incoming.b3;
      b3ShortId = incoming.b3ShortId;
      if (incoming.sampled === false) {
        // The caller decided: its headers travel on untouched, nothing is recorded.
        ex.traceId = traceId;
        return;
      }
      sampled = incoming.sampled ?? this.decide();
    } else {
      traceId = newTraceId();
      parentSpanId = undefined;
      b3 = incoming?.b3;
      sampled = incoming?.sampled ?? this.decide();
    }
    ex.traceId = traceId;
    if (!sampled) {
      // Not recorded, but the decision travels, so that the next hops agree.
      inject(ex.headers, { traceId, spanId: newSpanId(), parentSpanId, sampled: false, b3, b3ShortId });
      return;
    }
    const startMs = this.epochOffset + ex.startedAt;
    let span: Span;
    if (role === 'gateway') {
      const server = new Span(traceId, newSpanId(), parentSpanId, SPAN_KIND_SERVER, startMs);
      span = new Span(traceId, newSpanId(), server.spanId, SPAN_KIND_CLIENT, startMs);
      span.outer = server;
    } else {
      span = new Span(traceId, newSpanId(), parentSpanId, role === 'client' ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER, startMs);
    }
    ex.span = span;
    inject(ex.headers, { traceId, spanId: span.spanId, parentSpanId: span.parentSpanId, sampled: true, b3, b3ShortId });
  }

  /** When the response is closed: the span gets its end, status and attributes, and is queued for export. */
  finish(ex: HttpExchange, status: number): void {
    const span = ex.span;
    if (span === undefined) return;
    ex.span = undefined;
    const endMs = this.epochOffset + this.options.clock.monotonic();
    const exporter = this.options.exporter;
    const reason = ex.proxyReason ?? headerText(ex.res.getHeader(REASON_HEADER));
    const outer = span.outer;
    if (outer !== undefined) {
      outer.endMs = endMs;
      describe(outer, ex, status, reason);
      exporter.add(outer);
    }
    span.endMs = endMs;
    describe(span, ex, status, reason);
    exporter.add(span);
  }
}

function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value[0] as string | undefined;
  return undefined;
}

/** The OpenTelemetry HTTP semantic conventions (stable, v1.23+) plus weft's own decisions. */
function describe(span: Span, ex: HttpExchange, status: number, reason: string | undefined): void {
  const client = span.kind === SPAN_KIND_CLIENT;
  const host = typeof ex.headers.host === 'string' ? ex.headers.host : '';
  const colon = host.lastIndexOf(':');
  const hostName = colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host;
  const hostPort = colon > 0 && !host.endsWith(']') ? Number(host.slice(colon + 1)) : undefined;
  span.name = `${ex.method} ${ex.service}`;
  span.set('http.request.method', ex.method);
  span.set('server.address', hostName);
  if (hostPort !== undefined && Number.isInteger(hostPort)) span.set('server.port', hostPort);
  else if (ex.addressedPort > 0) span.set('server.port', ex.addressedPort);
  span.set('network.protocol.version', ex.downstream === 'h2' ? '2' : '1.1');
  if (client) {
    span.set('url.full', `${ex.scheme}://${host}${ex.path}`);
    const endpoint = ex.endpoint;
    if (endpoint) {
      span.set('network.peer.address', endpoint.address);
      span.set('network.peer.port', endpoint.tunnelPort ?? endpoint.port);
    }
  } else {
    const target = ex.req.url ?? '/';
    const q = target.indexOf('?');
    const path = target.startsWith('/') ? (q === -1 ? target : target.slice(0, q)) : ex.pathname;
    span.set('url.path', path);
    span.set('url.scheme', ex.scheme);
    const agent = ex.req.headers['user-agent'];
    if (typeof agent === 'string') span.set('user_agent.original', agent);
    const remote = ex.req.socket?.remoteAddress;
    if (remote) span.set('client.address', remote);
    if (ex.peerIdentity !== undefined) span.set('weft.peer.identity', ex.peerIdentity);
    const source = ex.req.headers[SOURCE_HEADER];
    if (typeof source === 'string') span.set('weft.source', source);
  }
  if (status > 0) span.set('http.response.status_code', status);
  if (ex.grpc && ex.answeredGrpcStatus !== undefined) span.set('rpc.grpc.status_code', Number(ex.answeredGrpcStatus));
  span.set('weft.direction', ex.direction);
  span.set('weft.service', ex.service);
  span.set('weft.route', ex.routeId);
  span.set('weft.backend', ex.backend?.key);
  span.set('weft.endpoint', ex.endpoint?.id);
  span.set('weft.reason', reason);
  const failed = status >= 500 || status === 499 || (client && status >= 400) || (reason !== undefined && status >= 400);
  if (failed) {
    span.status = STATUS_ERROR;
    span.set('error.type', reason ?? String(status));
    if (reason !== undefined) span.statusMessage = ex.proxyReasonText === undefined ? reason : `${reason}: ${ex.proxyReasonText}`;
  }
}
