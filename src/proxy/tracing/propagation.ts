// Trace context on the wire: W3C traceparent/tracestate and B3 (single `b3` and multi `x-b3-*` headers), read and written.
//
// Accepted: any of the three; when several arrive, traceparent wins, then
// b3, then x-b3-* (Envoy's OpenTelemetry tracer reads traceparent; Istio's
// default Zipkin tracer reads B3). Emitted: traceparent always, plus the B3
// form the request came with, so that a B3-only app downstream keeps its
// trace and a W3C-aware one gets the standard form (what Envoy does when it
// runs both propagators).
import type { Headers } from '../exchange.ts';

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';
export const B3 = 'b3';
export const B3_TRACE_ID = 'x-b3-traceid';
export const B3_SPAN_ID = 'x-b3-spanid';
export const B3_PARENT_SPAN_ID = 'x-b3-parentspanid';
export const B3_SAMPLED = 'x-b3-sampled';
export const B3_FLAGS = 'x-b3-flags';

/** The request headers apps should copy from an inbound request to the outbound ones it causes. */
export const TRACE_HEADERS: readonly string[] = [TRACEPARENT, TRACESTATE, B3, B3_TRACE_ID, B3_SPAN_ID, B3_PARENT_SPAN_ID, B3_SAMPLED, B3_FLAGS];

export type B3Format = 'single' | 'multi';

/** A caller's trace context. */
export interface IncomingContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is left-padded with zeros). */
  traceId: string;
  /** The caller's span: the parent of the span this proxy makes. */
  spanId: string;
  /** The caller's decision; undefined when it deferred it (B3 without a sampling state). */
  sampled: boolean | undefined;
  /** Set when the context came in B3: the same form is written on. */
  b3?: B3Format | undefined;
  /** The B3 trace id had 64 bits: B3 output keeps the short form. */
  b3ShortId?: boolean | undefined;
}

/** Only a sampling decision, no ids: B3 single `b3: 0` (or `1`, `d`). */
export interface DecisionOnly {
  traceId: undefined;
  sampled: boolean;
  b3: B3Format;
}

const HEX = /^[0-9a-f]+$/;

function isHex(value: string, length: number): boolean {
  return value.length === length && HEX.test(value) && !/^0+$/.test(value);
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value[0];
}

/** Reads the caller's context; undefined when the request carries none (or only malformed ones). */
export function extract(headers: Headers): IncomingContext | DecisionOnly | undefined {
  const traceparent = header(headers, TRACEPARENT);
  if (traceparent !== undefined) {
    const parsed = parseTraceparent(traceparent);
    if (parsed) {
      // B3 beside it (an app that copies every trace header): rewritten too, so that both forms name the same span.
      const single = header(headers, B3);
      const multi = single === undefined ? header(headers, B3_TRACE_ID) : undefined;
      if (single !== undefined) {
        parsed.b3 = 'single';
        parsed.b3ShortId = single.indexOf('-') === 16;
      } else if (multi !== undefined) {
        parsed.b3 = 'multi';
        parsed.b3ShortId = multi.length === 16;
      }
      return parsed;
    }
  }
  const single = header(headers, B3);
  if (single !== undefined) {
    const parsed = parseB3Single(single);
    if (parsed) return parsed;
  }
  const traceId = header(headers, B3_TRACE_ID);
  if (traceId !== undefined) {
    const spanId = header(headers, B3_SPAN_ID);
    const id = b3TraceId(traceId.toLowerCase());
    if (id && spanId !== undefined && isHex(spanId.toLowerCase(), 16)) {
      return { traceId: id.id, spanId: spanId.toLowerCase(), sampled: b3Sampled(header(headers, B3_SAMPLED), header(headers, B3_FLAGS)), b3: 'multi', b3ShortId: id.short };
    }
  }
  const sampledOnly = header(headers, B3_SAMPLED);
  const decided = b3Sampled(sampledOnly, header(headers, B3_FLAGS));
  if (decided !== undefined) return { traceId: undefined, sampled: decided, b3: 'multi' };
  return undefined;
}

const TRACEPARENT_FORM = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

/** W3C Trace Context level 1: version-traceid-parentid-flags; a later version is read by its first four fields. One regular expression: this runs for every traced request. */
export function parseTraceparent(value: string): IncomingContext | undefined {
  const match = TRACEPARENT_FORM.exec(value.length === 55 ? value : value.trim());
  if (match === null) return undefined;
  const version = match[1]!;
  if (version === 'ff' || (version === '00' && match[5] !== undefined)) return undefined;
  const traceId = match[2]!;
  const spanId = match[3]!;
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(match[4]!, 16) & 1) === 1 };
}

/** B3 single: {traceid}-{spanid}[-{sampled}[-{parentspanid}]], or a lone sampling state. */
export function parseB3Single(value: string): IncomingContext | DecisionOnly | undefined {
  const text = value.trim().toLowerCase();
  if (text === '0' || text === '1' || text === 'd') return { traceId: undefined, sampled: text !== '0', b3: 'single' };
  const parts = text.split('-');
  if (parts.length < 2 || parts.length > 4) return undefined;
  const id = b3TraceId(parts[0]!);
  if (!id || !isHex(parts[1]!, 16)) return undefined;
  let sampled: boolean | undefined;
  if (parts.length >= 3) {
    const state = parts[2]!;
    if (state === '1' || state === 'd') sampled = true;
    else if (state === '0') sampled = false;
    else return undefined;
  }
  return { traceId: id.id, spanId: parts[1]!, sampled, b3: 'single', b3ShortId: id.short };
}

function b3TraceId(value: string): { id: string; short: boolean } | undefined {
  if (isHex(value, 32)) return { id: value, short: false };
  if (isHex(value, 16)) return { id: `0000000000000000${value}`, short: true };
  return undefined;
}

function b3Sampled(sampled: string | undefined, flags: string | undefined): boolean | undefined {
  // Debug (x-b3-flags: 1) implies sampled.
  if (flags === '1') return true;
  if (sampled === undefined) return undefined;
  const s = sampled.trim().toLowerCase();
  if (s === '1' || s === 'true' || s === 'd') return true;
  if (s === '0' || s === 'false') return false;
  return undefined;
}

/** What to write on the request sent on: the span it comes from and the decision. */
export interface OutgoingContext {
  traceId: string;
  spanId: string;
  /** The parent of `spanId` (B3 multi names it); undefined for a root span. */
  parentSpanId: string | undefined;
  sampled: boolean;
  b3: B3Format | undefined;
  b3ShortId: boolean | undefined;
}

/** Writes traceparent (and the B3 form the caller used) into the headers sent on; tracestate travels as it came. */
export function inject(headers: Headers, out: OutgoingContext): void {
  headers[TRACEPARENT] = `00-${out.traceId}-${out.spanId}-${out.sampled ? '01' : '00'}`;
  if (out.b3 === undefined) return;
  const traceId = out.b3ShortId ? out.traceId.slice(16) : out.traceId;
  if (out.b3 === 'single') {
    headers[B3] = `${traceId}-${out.spanId}-${out.sampled ? '1' : '0'}${out.parentSpanId ? `-${out.parentSpanId}` : ''}`;
    return;
  }
  headers[B3_TRACE_ID] = traceId;
  headers[B3_SPAN_ID] = out.spanId;
  if (out.parentSpanId) headers[B3_PARENT_SPAN_ID] = out.parentSpanId;
  else delete headers[B3_PARENT_SPAN_ID];
  headers[B3_SAMPLED] = out.sampled ? '1' : '0';
  delete headers[B3_FLAGS];
}
