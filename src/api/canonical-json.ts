// Canonical JSON: object keys sorted, so that equal values give equal text; snapshot versions hash it (compiler) and proxies re-check them (deltas).

/**
 * JSON with object keys sorted by code unit, so that two equal values give
 * equal text whatever order their keys were built in. Keys whose value is
 * undefined are left out and undefined array items become null, as
 * JSON.stringify does. `known` holds the canonical JSON of objects already
 * encoded (shared, immutable parts of many snapshots), so they are encoded once.
 */
export function canonicalJson(value: unknown, known?: ReadonlyWeakMap<object, string>): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  const memo = known?.get(value);
  if (memo !== undefined) return memo;
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item, known))).join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort(compareStrings);
  const parts: string[] = [];
  for (const key of keys) {
    const item = record[key];
    if (item === undefined || typeof item === 'function') continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(item, known)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The read side of a WeakMap, so that callers can pass a cache without handing out the right to change it. */
export interface ReadonlyWeakMap<K extends WeakKey, V> {
  get(key: K): V | undefined;
}
