// What the simulated proxies share: the config stream's receive window, and a reader that keeps only each line's head.
//
// A snapshot line can be hundreds of KiB; decoding and parsing it for every
// simulated proxy would measure the simulator, not the control plane. The
// control plane writes type, version and nonce first (and a delta's base
// right after), so the first 200 bytes of a line are all a simulated proxy reads.
import http2 from 'node:http2';

/** The receive window a real proxy opens on its config stream (src/proxy/discovery.ts). */
const CONFIG_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const HEAD_BYTES = 200;
const HEAD = /^\{"type":"(\w+)"(?:,"version":"([^"]*)","nonce":"([^"]*)"(?:,"base":"([^"]*)")?)?/;

/** A config-stream session to `url` with the windows a real proxy uses. */
export function connectConfigStream(url: string): http2.ClientHttp2Session {
  const session = http2.connect(url, { settings: { initialWindowSize: CONFIG_STREAM_WINDOW_BYTES } });
  session.once('connect', () => session.setLocalWindowSize(CONFIG_STREAM_WINDOW_BYTES));
  return session;
}

export interface LineHead {
  type: string;
  /** Snapshots and deltas: their version and nonce; deltas: the version they start from. */
  version?: string;
  nonce?: string;
  base?: string;
  /** The line's first bytes (a welcome fits whole). */
  text: string;
  /** The whole line's length, newline included. */
  bytes: number;
}

/** Feeds raw stream chunks; calls `onLine` with each complete line's head. */
export class LineHeads {
  private head = '';
  private lineBytes = 0;
  private readonly onLine: (line: LineHead) => void;

  constructor(onLine: (line: LineHead) => void) {
    this.onLine = onLine;
  }

  feed(chunk: Buffer): void {
    let start = 0;
    let newline: number;
    while ((newline = chunk.indexOf(0x0a, start)) !== -1) {
      this.take(chunk, start, newline);
      this.lineBytes += newline - start + 1;
      const match = HEAD.exec(this.head);
      if (match) this.onLine({ type: match[1]!, version: match[2], nonce: match[3], base: match[4], text: this.head, bytes: this.lineBytes });
      this.head = '';
      this.lineBytes = 0;
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.take(chunk, start, chunk.length);
      this.lineBytes += chunk.length - start;
    }
  }

  private take(chunk: Buffer, start: number, end: number): void {
    if (this.head.length < HEAD_BYTES) this.head += chunk.toString('latin1', start, Math.min(end, start + HEAD_BYTES - this.head.length));
  }
}
