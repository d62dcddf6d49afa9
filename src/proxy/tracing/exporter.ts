// Sends finished spans to an OTLP/HTTP collector (JSON, POST /v1/traces) in batches, from a timer, through a bounded queue.
//
// The request path only pushes a span on an array. A full queue drops the
// span and counts it (weft_tracing_spans_dropped_total{reason="queue_full"});
// a failed or timed-out export drops its batch (reason="export_failed"): a
// collector that is down costs a counter, never a slower request. One export
// is in flight at a time; the defaults follow the OpenTelemetry batch span
// processor (512 spans per batch, 2048 queued).
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Clock, Timer } from '../../telemetry/clock.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { MetricsRegistry } from '../../telemetry/metrics.ts';
import type { CounterChild } from '../../telemetry/metrics.ts';
import { encodeExport, type OtlpAttribute } from './otlp.ts';
import type { Span } from './span.ts';
// Not `import ... from 'node:http'`: an ESM import of it evaluates every export, and http.WebSocket loads Node's bundled undici (~13 MiB of RSS).
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule('node:http');

export const DEFAULT_BATCH_SIZE = 512;
export const DEFAULT_MAX_QUEUE = 2048;
export const DEFAULT_EXPORT_INTERVAL_MS = 1000;
export const DEFAULT_EXPORT_TIMEOUT_MS = 10_000;

export interface ExporterSettings {
  /** The collector's traces URL (…/v1/traces). */
  url: string;
  batchSize: number;
  maxQueue: number;
  intervalMs: number;
  timeoutMs: number;
}

export interface ExporterOptions {
  resource: readonly OtlpAttribute[];
  registry: MetricsRegistry;
  clock: Clock;
  logger: Logger;
  version: string;
}

/** The collector URL to POST to: a base URL gets OTLP/HTTP's /v1/traces; a URL with a path is used as given. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/v1/traces';
  return url.toString();
}

export class OtlpExporter {
  private readonly options: ExporterOptions;
  private settings: ExporterSettings | undefined;
  private queue: Span[] = [];
  private inFlight = false;
  private timer: Timer | undefined;
  private readonly droppedFull: CounterChild;
  private readonly droppedFailed: CounterChild;
  private readonly exported: CounterChild;
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
  private stopped = false;

  constructor(options: ExporterOptions) {
    this.options = options;
    const { registry } = options;
    const dropped = registry.counter('weft_tracing_spans_dropped_total', 'Spans not exported: the queue was full or the collector failed.', ['reason']);
    this.droppedFull = dropped.labels('queue_full');
    this.droppedFailed = dropped.labels('export_failed');
    this.exported = registry.counter('weft_tracing_spans_exported_total', 'Spans the collector accepted.').labels();
  }

  /** Applies the mesh's collector settings (undefined: tracing off; what is queued is dropped). */
  configure(settings: ExporterSettings | undefined): void {
    if (this.stopped) return;
    const before = this.settings;
    this.settings = settings;
    if (!settings) {
      this.timer?.cancel();
      this.timer = undefined;
      this.queue = [];
      return;
    }
    if (!this.timer || before?.intervalMs !== settings.intervalMs) {
      this.timer?.cancel();
      this.timer = this.options.clock.setInterval(() => this.flush(), settings.intervalMs).unref();
    }
  }

  /** On the request path: queue a finished span, or count it dropped. */
  add(span: Span): void {
    const settings = this.settings;
    if (!settings) return;
    if (this.queue.length >= settings.maxQueue) {
      this.droppedFull.value++;
      return;
    }
    this.queue.push(span);
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Sends one batch if none is in flight; chains the next while a full batch is waiting. Resolves when this round is done. */
  async flush(): Promise<void> {
    const settings = this.settings;
    if (!settings || this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.length <= settings.batchSize ? this.queue : this.queue.slice(0, settings.batchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(settings.batchSize);
    this.inFlight = true;
    try {
      await this.post(settings, encodeExport(this.options.resource, batch, this.options.version));
      this.exported.value += batch.length;
    } catch (error) {
      this.droppedFailed.value += batch.length;
      this.options.logger.debug({ err: error, spans: batch.length, url: settings.url }, 'span export failed; the batch is dropped');
    } finally {
      this.inFlight = false;
    }
    if (!this.stopped && this.queue.length >= settings.batchSize) await this.flush();
  }

  /** Stops the timer and sends what is queued (one bounded attempt). */
  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    try {
      await this.flush();
    } finally {
      this.stopped = true;
      this.queue = [];
      this.httpAgent.destroy();
      this.httpsAgent.destroy();
    }
  }

  private post(settings: ExporterSettings, body: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const url = new URL(settings.url);
      const https = url.protocol === 'https:';
      const send = https ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: 'POST',
          agent: https ? this.httpsAgent : this.httpAgent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: settings.timeoutMs,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`the collector answered ${status}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from the collector within ${settings.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
