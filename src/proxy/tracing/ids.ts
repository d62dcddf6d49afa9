// Random trace and span ids as lower-case hex, drawn from a pooled random buffer so that an id costs no syscall.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

function take(bytes: number): string {
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/** 16 random bytes, never all zero (W3C: an all-zero trace-id is invalid). */
export function newTraceId(): string {
  const id = take(16);
  return id === ZERO_TRACE ? newTraceId() : id;
}

/** 8 random bytes, never all zero. */
export function newSpanId(): string {
  const id = take(8);
  return id === ZERO_SPAN ? newSpanId() : id;
}
