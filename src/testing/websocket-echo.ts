// A WebSocket (RFC 6455) echo for the conformance echo backend: accepts the handshake and sends every frame back unchanged.
//
// Written here rather than taken from the `ws` package because `weft echo`
// ships with weft, and `ws` is a development dependency only. It speaks just
// what an echo needs: the opening handshake, frame parsing with client
// masking, ping → pong, close → close, and data frames (fragments included)
// echoed with their opcode and FIN bit as they came.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Frames larger than this are refused with close code 1009 (message too big). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** The Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key. */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + HANDSHAKE_GUID).digest('base64');
}

/** An unmasked (server) frame. */
export function websocketFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.alloc(2) : length <= 0xffff ? Buffer.alloc(4) : Buffer.alloc(10);
  header[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  if (length < 126) header[1] = length;
  else if (length <= 0xffff) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(why)}\r\nconnection: close\r\n\r\n${why}`);
}

/** Answers a WebSocket opening handshake on `socket` and echoes frames until either side closes. */
export function serveWebSocketEcho(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const key = req.headers['sec-websocket-key'];
  if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || typeof key !== 'string' || key === '') {
    refuse(socket, '400 Bad Request', 'not a WebSocket handshake\n');
    return;
  }
  if (req.headers['sec-websocket-version'] !== '13') {
    socket.end('HTTP/1.1 426 Upgrade Required\r\nsec-websocket-version: 13\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${websocketAccept(key)}\r\n\r\n`);

  let buffered: Buffer = head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  let closing = false;
  const consume = () => {
    for (;;) {
      if (buffered.length < 2) return;
      const first = buffered[0]!;
      const second = buffered[1]!;
      const fin = (first & 0x80) !== 0;
      const opcode = first & 0x0f;
      const masked = (second & 0x80) !== 0;
      let length = second & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        const big = buffered.readBigUInt64BE(2);
        if (big > BigInt(MAX_FRAME_BYTES)) {
          socket.end(websocketFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xf1])));
          return;
        }
        length = Number(big);
        offset = 10;
      }
      if (length > MAX_FRAME_BYTES) {
        socket.end(websocketFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xf1])));
        return;
      }
      const maskOffset = offset;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= buffered[maskOffset + (i & 3)]!;
      buffered = buffered.subarray(offset + length);
      if (opcode === OPCODE_CLOSE) {
        // The close handshake: the status (if any) goes back, then the server closes the connection.
        if (!closing) socket.end(websocketFrame(OPCODE_CLOSE, payload.subarray(0, 2)));
        closing = true;
        return;
      }
      if (opcode === OPCODE_PING) socket.write(websocketFrame(OPCODE_PONG, payload));
      else if (opcode !== OPCODE_PONG) socket.write(websocketFrame(opcode, payload, fin));
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    consume();
  });
  socket.on('end', () => socket.end());
  consume();
}
