// Protocol detection on a fresh byte stream: HTTP/1, the HTTP/2 preface, a TLS ClientHello, or opaque. Reads a few bytes and puts them back.
import type { Socket } from 'node:net';
import type { Clock } from '../../telemetry/clock.ts';

export type Detected = 'http1' | 'http2' | 'tls' | 'opaque';

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
export function detect(socket: Socket, head: Buffer, timeoutMs: number, clock: Clock): Promise<Detected> {
  const now = head.length > 0 ? classify(head) : undefined;
  if (now) {
    socket.unshift(head);
    return Promise.resolve(now);
  }
  return new Promise((resolve) => {
    let buffered = head;
    const finish = (result: Detected) => {
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const result = classify(buffered);
      if (result) finish(result);
    };
    const onEnd = () => finish('opaque');
    const timer = clock.setTimeout(() => finish('opaque'), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
