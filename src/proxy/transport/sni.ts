// Reads the server name (SNI) out of a TLS ClientHello without terminating TLS: a small, bounded parser for passthrough routing.

/** The longest ClientHello we wait for (a record's payload is at most 16 KiB; post-quantum key shares make hellos large). */
export const MAX_CLIENT_HELLO = 16 * 1024 + 5;

export type ClientHelloResult =
  /** More bytes are needed. */
  | { state: 'incomplete' }
  /** Not a TLS ClientHello (or a malformed one). */
  | { state: 'invalid'; why: string }
  /** A complete ClientHello; `serverName` absent when it names no server. */
  | { state: 'complete'; serverName?: string };

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXTENSION = 0x0000;
const HOST_NAME_TYPE = 0x00;

/**
 * Parses the first TLS record(s) in `bytes`. Only what SNI routing needs is
 * checked; every length is bounds-checked, so hostile input yields "invalid",
 * never an exception or a read past the end. The ClientHello must fit in the
 * first record, as every real client sends it (a hello split across records
 * is refused as invalid).
 */
export function parseClientHello(bytes: Buffer): ClientHelloResult {
  if (bytes.length < 5) return bytes.length > 0 && bytes[0] !== HANDSHAKE ? { state: 'invalid', why: 'not a TLS handshake record' } : { state: 'incomplete' };
  if (bytes[0] !== HANDSHAKE) return { state: 'invalid', why: 'not a TLS handshake record' };
  if (bytes[1] !== 0x03) return { state: 'invalid', why: 'not a TLS record version' };
  const recordLength = bytes.readUInt16BE(3);
  if (recordLength === 0 || recordLength > 16 * 1024 + 2048) return { state: 'invalid', why: `record length ${recordLength}` };
  if (bytes.length < 5 + recordLength) return { state: 'incomplete' };
  const record = bytes.subarray(5, 5 + recordLength);
  if (record.length < 4 || record[0] !== CLIENT_HELLO) return { state: 'invalid', why: 'the first handshake message is not a ClientHello' };
  const helloLength = (record[1]! << 16) | (record[2]! << 8) | record[3]!;
  if (helloLength + 4 > record.length) return { state: 'invalid', why: 'the ClientHello does not fit in its record' };
  const hello = record.subarray(4, 4 + helloLength);
  const reader = new Reader(hello);
  // client_version (2), random (32), session_id (1 + n), cipher_suites (2 + n), compression_methods (1 + n).
  if (!reader.skip(2 + 32) || !reader.skipVector(1) || !reader.skipVector(2) || !reader.skipVector(1)) {
    return { state: 'invalid', why: 'truncated ClientHello' };
  }
  if (reader.remaining === 0) return { state: 'complete' };
  const extensions = reader.vector(2);
  if (!extensions) return { state: 'invalid', why: 'truncated extensions' };
  const ext = new Reader(extensions);
  while (ext.remaining > 0) {
    const type = ext.u16();
    const body = ext.vector(2);
    if (type === undefined || !body) return { state: 'invalid', why: 'truncated extension' };
    if (type !== SERVER_NAME_EXTENSION) continue;
    const names = new Reader(body).vector(2);
    if (!names) return { state: 'invalid', why: 'truncated server_name extension' };
    const list = new Reader(names);
    while (list.remaining > 0) {
      const nameType = list.u8();
      const name = list.vector(2);
      if (nameType === undefined || !name) return { state: 'invalid', why: 'truncated server name' };
      if (nameType !== HOST_NAME_TYPE) continue;
      const text = name.toString('latin1');
      // RFC 6066: an ASCII host name, no trailing dot; anything else is not routable.
      if (text.length === 0 || text.length > 253 || !/^[A-Za-z0-9._-]+$/.test(text)) return { state: 'invalid', why: 'the server name is not a host name' };
      return { state: 'complete', serverName: text.toLowerCase() };
    }
    return { state: 'complete' };
  }
  return { state: 'complete' };
}

/** A bounds-checked cursor: every read returns undefined instead of reading past the end. */
class Reader {
  private offset = 0;
  private readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  skip(n: number): boolean {
    if (this.remaining < n) return false;
    this.offset += n;
    return true;
  }

  u8(): number | undefined {
    if (this.remaining < 1) return undefined;
    return this.bytes[this.offset++];
  }

  u16(): number | undefined {
    if (this.remaining < 2) return undefined;
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  /** A length-prefixed vector with a `width`-byte length. */
  vector(width: 1 | 2): Buffer | undefined {
    const length = width === 1 ? this.u8() : this.u16();
    if (length === undefined || this.remaining < length) return undefined;
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  skipVector(width: 1 | 2): boolean {
    return this.vector(width) !== undefined;
  }
}
