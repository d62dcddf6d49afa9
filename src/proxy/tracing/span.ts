// One finished or running span: plain fields, filled on the request path, encoded as OTLP JSON only when exported.
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;
export type SpanKind = typeof SPAN_KIND_SERVER | typeof SPAN_KIND_CLIENT;

export const STATUS_UNSET = 0;
export const STATUS_ERROR = 2;

export type AttributeValue = string | number | boolean;

export class Span {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly kind: SpanKind;
  /** Epoch milliseconds with sub-millisecond precision (monotonic clock, anchored once). */
  readonly startMs: number;
  endMs = 0;
  name = '';
  status: typeof STATUS_UNSET | typeof STATUS_ERROR = STATUS_UNSET;
  statusMessage: string | undefined = undefined;
  /** Flat key, value, key, value...: one array, no object per attribute until export. */
  readonly attributes: (string | AttributeValue)[] = [];
  /** A gateway's server span, finished together with its client span (this one). */
  outer: Span | undefined = undefined;

  constructor(traceId: string, spanId: string, parentSpanId: string | undefined, kind: SpanKind, startMs: number) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentSpanId = parentSpanId;
    this.kind = kind;
    this.startMs = startMs;
  }

  set(key: string, value: AttributeValue | undefined): void {
    if (value === undefined || value === '') return;
    this.attributes.push(key, value);
  }
}
