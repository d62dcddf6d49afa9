// Polls a condition until it holds or a deadline passes: the only way tests and `weft up` wait for things.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  timeoutMs?: number; // default 5000
  intervalMs?: number; // default 50
  /** Says what was awaited; the timeout error starts with it. */
  message?: string;
}

/**
 * Calls `condition` until it returns a truthy value (which is returned) or the
 * deadline passes. A throwing condition counts as "not yet"; its last error is
 * quoted in the timeout error so that a failure says why.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    const left = deadline - performance.now();
    if (left <= 0) break;
    await sleep(Math.min(intervalMs, left));
  }
  const what = options.message ?? 'condition';
  const why = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
}
