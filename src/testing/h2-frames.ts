// Hand-written HTTP/2 frames for the attack suite: a writer for the frames hostile clients send (no validation on purpose) and a reader of what the server answers.
import { connect, type Socket } from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PRIORITY: 0x20 } as const;
/** RFC 9113 §7 error codes the tests look for. */
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settings(values: Record<number, number> = {}, ack = false): Buffer {
  const entries = Object.entries(values);
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(Number(id), i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, payload);
}

export function ping(data = 0): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(data >>> 0, 4);
  return frame(FrameType.PING, 0, 0, payload);
}

export function rstStream(streamId: number, code: number = ErrorCode.CANCEL): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function priority(streamId: number, dependsOn: number, weight = 16): Buffer {
  const payload = Buffer.alloc(5);
  payload.writeUInt32BE(dependsOn & 0x7fffffff);
  payload[4] = weight - 1;
  return frame(FrameType.PRIORITY, 0, streamId, payload);
}

export function data(streamId: number, body: Buffer | string = Buffer.alloc(0), endStream = false): Buffer {
  return frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, Buffer.isBuffer(body) ? body : Buffer.from(body));
}

/** An HPACK integer with an `prefixBits`-bit prefix, the prefix's other bits set to `mask`. */
export function hpackInt(value: number, prefixBits: number, mask = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([mask | value]);
  const out = [mask | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(text: string | Buffer): Buffer {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInt(bytes.length, 7), bytes]);
}

/** A literal field without indexing, new name (RFC 7541 §6.2.2). */
export function literal(name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]);
}

/** A literal field with incremental indexing, new name: it enters the dynamic table (index 62 when the table was empty). */
export function indexedLiteral(name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** An indexed field (static 1-61, dynamic from 62). */
export function indexed(index: number): Buffer {
  return hpackInt(index, 7, 0x80);
}

/** A request's header block: :method, :scheme http, :path, :authority, then `extra` fields as literals. */
export function requestBlock(method: string, path: string, authority: string, extra: [string, string][] = []): Buffer {
  return Buffer.concat([
    literal(':method', method),
    indexed(6), // :scheme http
    literal(':path', path),
    literal(':authority', authority),
    ...extra.map(([name, value]) => literal(name, value)),
  ]);
}

export function headers(streamId: number, block: Buffer, options: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  const flags = (options.endStream ? Flag.END_STREAM : 0) | (options.endHeaders === false ? 0 : Flag.END_HEADERS);
  return frame(FrameType.HEADERS, flags, streamId, block);
}

export function continuation(streamId: number, block: Buffer, endHeaders = false): Buffer {
  return frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block);
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A raw HTTP/2 client connection: writes bytes as given, parses every frame the server sends, knows when it closed. */
export class RawH2 {
  readonly socket: Socket;
  readonly frames: ReceivedFrame[] = [];
  closed = false;
  private buffer = Buffer.alloc(0);
  private readonly opened: Promise<void>;
  private readonly closedPromise: Promise<void>;

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.socket.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.closedPromise = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.once('close', () => (this.closed = true));
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 9) {
        const length = this.buffer.readUIntBE(0, 3);
        if (this.buffer.length < 9 + length) break;
        this.frames.push({ type: this.buffer[3]!, flags: this.buffer[4]!, streamId: this.buffer.readUInt32BE(5) & 0x7fffffff, payload: this.buffer.subarray(9, 9 + length) });
        this.buffer = this.buffer.subarray(9 + length);
      }
    });
  }

  /** Connects and sends the preface with an empty SETTINGS frame (and the ACK of the server's). */
  async start(): Promise<this> {
    await this.opened;
    this.write(Buffer.concat([PREFACE, settings(), settings({}, true)]));
    return this;
  }

  /** Writes unless the connection is gone; false once it is. */
  write(bytes: Buffer): boolean {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return false;
    this.socket.write(bytes);
    return true;
  }

  /** Writes `bytes` once the socket has room, so that a flood does not buffer without bound in this process. */
  async writeDrained(bytes: Buffer): Promise<boolean> {
    if (!this.write(bytes)) return false;
    if (this.socket.writableLength > 1024 * 1024) {
      await Promise.race([new Promise((resolve) => this.socket.once('drain', resolve)), this.closedPromise]);
    }
    return !this.closed;
  }

  /** The GOAWAY the server sent, if any: its error code. */
  goaway(): number | undefined {
    const f = this.frames.find((x) => x.type === FrameType.GOAWAY);
    return f ? f.payload.readUInt32BE(4) : undefined;
  }

  /** RST_STREAM codes the server sent, by stream. */
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === FrameType.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]));
  }

  /** Streams the server answered with a HEADERS frame. */
  answered(): Set<number> {
    return new Set(this.frames.filter((f) => f.type === FrameType.HEADERS).map((f) => f.streamId));
  }

  /** Resolves once the server has closed the connection, or after `timeoutMs` (then closes it here); says whether the server closed it. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const closedByServer = await Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))]);
    clearTimeout(timer);
    this.socket.destroy();
    return closedByServer;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
