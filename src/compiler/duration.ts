// Parses Gateway API durations ("1h2m3s4ms") into milliseconds.

const WHOLE = /^([0-9]{1,5}(ms|h|m|s)){1,4}$/;
// "ms" is tried before "m" so that "5ms" is five milliseconds, not five minutes followed by a stray "s".
const PART = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or undefined when `text` is not a Gateway API duration. */
export function parseGatewayDuration(text: string): number | undefined {
  if (!WHOLE.test(text)) return undefined;
  let total = 0;
  for (const part of text.matchAll(PART)) total += Number(part[1]) * (UNIT_MS[part[2]!] ?? 0);
  return total;
}
