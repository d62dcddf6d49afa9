// Live tap (`weft tap`, the dashboard's Live traffic): the filter a client asks for, the request summaries proxies send, and the limits on both.
//
// The control plane serves `GET /api/v1/tap?target=...` as NDJSON; it asks the
// proxies of the target over their config streams (ControlMessage
// 'tap-start'/'tap-stop') and they answer with ProxyMessage 'tap' batches.
// Tap is opt-in per Workload: the annotation `weft.dev/tap: enabled` on the
// template Workload (Linkerd taps by default and authorises who may; we ask
// the workload's owner to allow it first, since tap shows request paths).

export const TAP_PATH = '/api/v1/tap';
/** The annotation that allows tapping a Workload's proxies; its value must be "enabled". */
export const TAP_ANNOTATION = 'weft.dev/tap';

export const TAP_LIMITS = {
  /** Events a proxy sends per second per tap; past it, events are counted as dropped. */
  eventsPerSecond: 100,
  /** Taps a proxy serves at once; more are refused. */
  concurrentPerProxy: 8,
  /** Taps the control plane serves at once. */
  concurrentPerControlPlane: 32,
  /** The most events one tap may ask for (`max`); the tap ends after that many. */
  maxEvents: 100_000,
  /** Headers a client may ask to see with their values. */
  shownHeaders: 16,
  /** Longest path / authority / header value in an event. */
  fieldChars: 512,
  /** How often a proxy flushes its batch of events. */
  flushMs: 100,
} as const;

/** Headers whose values are never shown, even when asked for. */
export const NEVER_SHOWN_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-weft-token'];
export const REDACTED = '<redacted>';

/** What a tap wants to see; every field narrows it. */
export interface TapFilter {
  pathPrefix?: string;
  method?: string;
  /** An exact status (404) or a class ("5xx"). */
  status?: string;
  /** Header names (lower case) whose values are shown; every other header's value is redacted. */
  showHeaders?: string[];
  /** Only requests in this direction through the tapped proxies. */
  direction?: 'inbound' | 'outbound';
}

/** One finished request as a tapped proxy saw it. */
export interface TapEvent {
  /** When the request ended (ISO 8601). */
  time: string;
  /** The proxy that saw it ("<namespace>/<instance>"). */
  proxy: string;
  direction: 'inbound' | 'outbound';
  /** The caller's SPIFFE ID (inbound, over mTLS), or this proxy's workload (outbound). */
  source: string;
  /** The Service (outbound: "ns/name:port") or local port (inbound) the request went to. */
  destination: string;
  /** The endpoint that answered, when one was chosen ("ns/instance"). */
  endpoint?: string;
  method: string;
  authority: string;
  path: string;
  /** 499: the client went away first. */
  status: number;
  grpcStatus?: string;
  latencyMs: number;
  requestBytes?: number;
  responseBytes?: number;
  /** Set on responses the proxy made itself. */
  weftReason?: string;
  /** The route rule that matched. */
  route?: string;
  /** Request headers, values redacted unless the filter shows them. */
  headers: Record<string, string>;
}

/** A line of GET /api/v1/tap: events, and notes about the tap itself. */
export type TapLine =
  | ({ type: 'event' } & TapEvent)
  /** The tap started on these proxies (and why others were left out). */
  | { type: 'started'; proxies: string[]; skipped: { proxy?: string; workload?: string; reason: string }[] }
  /** A proxy dropped events past the rate cap. */
  | { type: 'dropped'; proxy: string; count: number }
  /** The tap ended: `max` reached, or nothing to tap. */
  | { type: 'end'; reason: string };

/** `5xx` / `404` against a status. */
export function statusMatches(filter: string, status: number): boolean {
  const klass = /^([1-5])xx$/i.exec(filter);
  if (klass) return Math.floor(status / 100) === Number(klass[1]);
  return Number(filter) === status;
}

/** Checks a filter from outside (query parameters, a stream message); returns the problem or undefined. */
export function tapFilterProblem(filter: TapFilter): string | undefined {
  if (filter.status !== undefined && !/^([1-5]xx|[1-5]\d\d)$/i.test(filter.status)) return `status "${filter.status}" is not a status like 503 or a class like 5xx`;
  if (filter.method !== undefined && !/^[A-Za-z]{1,20}$/.test(filter.method)) return `method "${filter.method}" is not an HTTP method`;
  if (filter.pathPrefix !== undefined && (!filter.pathPrefix.startsWith('/') || filter.pathPrefix.length > TAP_LIMITS.fieldChars)) return `path prefix "${filter.pathPrefix}" must start with / (at most ${TAP_LIMITS.fieldChars} characters)`;
  if (filter.showHeaders !== undefined && filter.showHeaders.length > TAP_LIMITS.shownHeaders) return `at most ${TAP_LIMITS.shownHeaders} headers may be shown`;
  if (filter.direction !== undefined && filter.direction !== 'inbound' && filter.direction !== 'outbound') return `direction must be inbound or outbound`;
  return undefined;
}
