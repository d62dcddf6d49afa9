// Protocol detection on a fresh byte stream: HTTP/1, the HTTP/2 preface, a TLS ClientHello, or opaque. Reads a few bytes and puts them back.
import type { Socket } from 'node:net';
import type { Clock } from '../../telemetry/clock.ts';
import type { Counter, CounterChild, MetricsRegistry } from '../../telemetry/metrics.ts';

export type Detected = 'http1' | 'http2' | 'tls' | 'opaque';

/**
 * How detection ended: what the bytes said, or why it gave up without them
 * ("timeout": the client stayed silent, as server-first clients do; "closed":
 * the client ended or closed first). Both give-ups are treated as opaque.
 */
export type DetectOutcome = Detected | 'timeout' | 'closed';

/** The default detection timeout: short enough that a server-first client (MySQL, SMTP) barely notices it. */
export const DEFAULT_DETECT_TIMEOUT_MS = 1_000;

/** Counts every detection by listener and outcome (weft_protocol_detect_total). */
export class DetectMetrics {
  private readonly counter: Counter;
  private readonly children = new Map<string, CounterChild>();

  constructor(registry: MetricsRegistry) {
    this.counter = registry.counter(
      'weft_protocol_detect_total',
      'Protocol detections on ports with no declared protocol, by listener and result (http1, http2, tls, opaque; timeout and closed are give-ups).',
      ['listener', 'result'],
    );
  }

  record(listener: string, outcome: DetectOutcome): void {
    const key = `${listener} ${outcome}`;
    let child = this.children.get(key);
    if (!child) this.children.set(key, (child = this.counter.labels(listener, outcome)));
    child.inc();
  }
}

/** Bytes enough to see "METHOD " for every registered method name. */
const ENOUGH = 24;
/** The start of the HTTP/2 connection preface, enough to tell it from an HTTP/1 request. */
const H2_PREFACE = 'PRI * HTTP/2.0';
/** A TLS record of type handshake (22): a ClientHello starts every TLS connection. */
const TLS_HANDSHAKE = 0x16;

/** Classifies what is buffered so far; undefined when it cannot tell yet. */
export function classify(bytes: Buffer): Detected | undefined {
  if (bytes.length > 0 && bytes[0] === TLS_HANDSHAKE) {
    if (bytes.length < 3) return undefined;
    // Record version 3.x (SSL 3.0 through TLS 1.3 all say 3.x in the record header).
    return bytes[1] === 0x03 ? 'tls' : 'opaque';
  }
  const n = Math.min(bytes.length, ENOUGH);
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0x20) {
      if (i === 0) return 'opaque';
      // HTTP/2 with prior knowledge starts like a request too ("PRI * HTTP/2.0").
      const text = bytes.subarray(0, Math.min(bytes.length, H2_PREFACE.length)).toString('latin1');
      if (H2_PREFACE.startsWith(text)) return text.length < H2_PREFACE.length ? undefined : 'http2';
      return 'http1';
    }
    // Method names are tokens; real ones are upper-case letters (and "-" in a few extensions).
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d)) return 'opaque';
  }
  return n >= ENOUGH ? 'opaque' : undefined;
}

/**
 * Waits for the first bytes of `socket` (after `head`, which the caller already
 * read) and classifies them; everything read is unshifted back, so the next
 * reader sees the stream from its start. Gives "opaque" when the client stays
 * silent for `timeoutMs` or ends, since only a server-first protocol would.
 */
export function detect(socket: Socket, head: Buffer, timeoutMs: number, clock: Clock, onOutcome?: (outcome: DetectOutcome) => void): Promise<Detected> {
  const now = head.length > 0 ? classify(head) : undefined;
  if (now) {
    socket.unshift(head);
    onOutcome?.(now);
    return Promise.resolve(now);
  }
  return new Promise((resolve) => {
    let buffered = head;
    const finish = (result: Detected, outcome: DetectOutcome = result) => {
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      onOutcome?.(outcome);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const result = classify(buffered);
      if (result) finish(result);
    };
    const onEnd = () => finish('opaque', 'closed');
    const timer = clock.setTimeout(() => finish('opaque', 'timeout'), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    // A socket paused by an earlier reader would otherwise never emit the bytes we wait for.
    socket.resume();
  });
}
