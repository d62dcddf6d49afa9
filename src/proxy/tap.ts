// The proxy's side of `weft tap`: taps asked for over the config stream, matched against every finished request, sent back in small batches.
//
// Costs nothing while no tap runs: the metrics' request hook reads `active`
// (one boolean) and returns. With taps running, a request is matched against
// each tap's filter, and a summary is built only for a tap that wants it and
// is under its rate cap (Linkerd's tap caps events per tap the same way);
// header values are replaced by a placeholder unless the tap asked to see
// that header, and credentials are never shown.
import type { TapEvent, TapFilter } from '../api/tap.ts';
import { NEVER_SHOWN_HEADERS, REDACTED, statusMatches, TAP_LIMITS, tapFilterProblem } from '../api/tap.ts';
import type { ControlMessage, ProxyMessage } from '../api/stream.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { HttpExchange } from './exchange.ts';

type TapReply = (message: Extract<ProxyMessage, { type: 'tap' }>) => boolean;

interface TapSession {
  readonly id: string;
  readonly filter: TapFilter;
  readonly method: string | undefined;
  readonly shown: ReadonlySet<string>;
  readonly eventsPerSecond: number;
  readonly reply: TapReply;
  batch: TapEvent[];
  dropped: number;
  windowStart: number;
  inWindow: number;
}

export interface ProxyTapOptions {
  clock: Clock;
  /** This proxy's id ("<namespace>/<instance>"), named in every event. */
  proxy: string;
  /** Who this proxy's outbound requests come from ("<namespace>/<workload>"). */
  source: string;
}

const NEVER_SHOWN = new Set(NEVER_SHOWN_HEADERS);

export class ProxyTap {
  /** The hot-path check: true while at least one tap runs. */
  active = false;
  private readonly options: ProxyTapOptions;
  private readonly sessions = new Map<string, TapSession>();
  private flushTimer: Timer | undefined;

  constructor(options: ProxyTapOptions) {
    this.options = options;
  }

  get running(): number {
    return this.sessions.size;
  }

  /** A tap-start or tap-stop from the control plane; `reply` goes to the stream that asked. */
  handle(message: Extract<ControlMessage, { type: 'tap-start' | 'tap-stop' }>, reply: TapReply): void {
    const id = typeof message.id === 'string' ? message.id.slice(0, 128) : '';
    if (!id) return;
    if (message.type === 'tap-stop') {
      this.stop(id);
      return;
    }
    const filter: TapFilter = message.filter && typeof message.filter === 'object' ? message.filter : {};
    const problem = tapFilterProblem(filter);
    if (problem) {
      reply({ type: 'tap', id, events: [], ended: problem });
      return;
    }
    if (!this.sessions.has(id) && this.sessions.size >= TAP_LIMITS.concurrentPerProxy) {
      reply({ type: 'tap', id, events: [], ended: `this proxy already serves ${TAP_LIMITS.concurrentPerProxy} taps` });
      return;
    }
    const asked = Number(message.eventsPerSecond);
    this.sessions.set(id, {
      id,
      filter,
      method: filter.method?.toUpperCase(),
      shown: new Set((filter.showHeaders ?? []).map((h) => String(h).toLowerCase()).filter((h) => !NEVER_SHOWN.has(h))),
      eventsPerSecond: asked > 0 ? Math.min(asked, TAP_LIMITS.eventsPerSecond) : TAP_LIMITS.eventsPerSecond,
      reply,
      batch: [],
      dropped: 0,
      windowStart: this.options.clock.monotonic(),
      inWindow: 0,
    });
    this.active = true;
  }

  stop(id: string): void {
    this.sessions.delete(id);
    this.active = this.sessions.size > 0;
    if (!this.active) {
      this.flushTimer?.cancel();
      this.flushTimer = undefined;
    }
  }

  stopAll(): void {
    for (const id of [...this.sessions.keys()]) this.stop(id);
  }

  /** One finished request (the listeners' metrics hook, only while `active`). */
  record(ex: HttpExchange, status: number, seconds: number): void {
    let path: string | undefined;
    for (const session of this.sessions.values()) {
      const filter = session.filter;
      if (filter.direction !== undefined && filter.direction !== ex.direction) continue;
      if (session.method !== undefined && session.method !== ex.method) continue;
      if (filter.status !== undefined && !statusMatches(filter.status, status)) continue;
      path ??= originalPath(ex);
      if (filter.pathPrefix !== undefined && !path.startsWith(filter.pathPrefix)) continue;
      const now = this.options.clock.monotonic();
      if (now - session.windowStart >= 1000) {
        session.windowStart = now;
        session.inWindow = 0;
      }
      if (session.inWindow >= session.eventsPerSecond) {
        session.dropped++;
        this.scheduleFlush();
        continue;
      }
      session.inWindow++;
      session.batch.push(this.summary(ex, status, seconds, path, session.shown));
      this.scheduleFlush();
    }
  }

  private summary(ex: HttpExchange, status: number, seconds: number, path: string, shown: ReadonlySet<string>): TapEvent {
    const req = ex.req;
    const event: TapEvent = {
      time: new Date(this.options.clock.now()).toISOString(),
      proxy: this.options.proxy,
      direction: ex.direction,
      source: ex.direction === 'outbound' ? this.options.source : (ex.peerIdentity ?? headerText(req.headers['weft-source']) ?? 'unknown'),
      destination: ex.service,
      method: ex.method,
      authority: clip(headerText(req.headers.host) ?? headerText(req.headers[':authority']) ?? headerText(ex.headers.host) ?? ''),
      path: clip(path),
      status,
      latencyMs: Math.round(seconds * 1e6) / 1000,
      headers: redact(req.headers, shown),
    };
    if (ex.endpoint) event.endpoint = ex.endpoint.id;
    if (ex.grpc) {
      const grpcStatus = ex.answeredGrpcStatus ?? ex.res.getHeader('grpc-status');
      if (grpcStatus !== undefined) event.grpcStatus = String(grpcStatus);
    }
    const requestBytes = declaredLength(req.headers['content-length']) ?? ex.bufferedBody?.length;
    if (requestBytes !== undefined) event.requestBytes = requestBytes;
    const responseBytes = declaredLength(ex.res.getHeader('content-length'));
    if (responseBytes !== undefined) event.responseBytes = responseBytes;
    if (ex.proxyReason !== undefined) event.weftReason = ex.proxyReason;
    if (ex.routeId !== undefined) event.route = ex.routeId;
    return event;
  }

  private scheduleFlush(): void {
    this.flushTimer ??= this.options.clock.setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, TAP_LIMITS.flushMs);
  }

  /** Sends each tap's batch; a tap whose stream is gone ends here. */
  flush(): void {
    for (const session of [...this.sessions.values()]) {
      if (session.batch.length === 0 && session.dropped === 0) continue;
      const message: Extract<ProxyMessage, { type: 'tap' }> = { type: 'tap', id: session.id, events: session.batch };
      if (session.dropped > 0) message.dropped = session.dropped;
      session.batch = [];
      session.dropped = 0;
      if (!session.reply(message)) this.stop(session.id);
    }
  }
}

/** The path the client asked for (the absolute form's path for a forward-proxy request), before any rewrite. */
function originalPath(ex: HttpExchange): string {
  const url = ex.req.url ?? '';
  if (url.startsWith('/')) return url;
  return ex.path;
}

function redact(headers: Record<string, string | string[] | undefined>, shown: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  let count = 0;
  for (const name in headers) {
    if (name.startsWith(':')) continue;
    // A request with hundreds of headers does not make a huge event.
    if (++count > 64) break;
    const value = headers[name];
    out[name] = shown.has(name) && value !== undefined ? clip(Array.isArray(value) ? value.join(', ') : value) : REDACTED;
  }
  return out;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function clip(text: string): string {
  return text.length > TAP_LIMITS.fieldChars ? `${text.slice(0, TAP_LIMITS.fieldChars)}…` : text;
}

function declaredLength(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string' || value === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
