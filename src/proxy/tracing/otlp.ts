// OTLP/JSON encoding of spans (opentelemetry-proto trace/v1, protobuf JSON mapping: hex ids, enums as numbers, 64-bit integers as strings).
import { Span, type AttributeValue } from './span.ts';

export interface OtlpAttribute {
  key: string;
  value: { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
}

/** Epoch milliseconds (fractional) → nanoseconds as a decimal string, exact to the microsecond. */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.round((ms - whole) * 1000));
  return `${whole}${String(micros).padStart(3, '0')}000`;
}

export function attribute(key: string, value: AttributeValue): OtlpAttribute {
  if (typeof value === 'string') return { key, value: { stringValue: value } };
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  return Number.isInteger(value) ? { key, value: { intValue: String(value) } } : { key, value: { doubleValue: value } };
}

function encodeSpan(span: Span): Record<string, unknown> {
  const attributes: OtlpAttribute[] = [];
  const flat = span.attributes;
  for (let i = 0; i + 1 < flat.length; i += 2) attributes.push(attribute(flat[i] as string, flat[i + 1]!));
  const encoded: Record<string, unknown> = {
    traceId: span.traceId,
    spanId: span.spanId,
    name: span.name,
    kind: span.kind,
    startTimeUnixNano: unixNanos(span.startMs),
    endTimeUnixNano: unixNanos(span.endMs),
    attributes,
    status: span.statusMessage === undefined ? { code: span.status } : { code: span.status, message: span.statusMessage },
  };
  if (span.parentSpanId !== undefined) encoded.parentSpanId = span.parentSpanId;
  return encoded;
}

/** One ExportTraceServiceRequest: one resource (this proxy), one scope (weft). */
export function encodeExport(resource: readonly OtlpAttribute[], spans: readonly Span[], scopeVersion: string): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: resource },
        scopeSpans: [{ scope: { name: 'weft', version: scopeVersion }, spans: spans.map(encodeSpan) }],
      },
    ],
  });
}
