// Snapshot deltas for the config stream: what changed between two published versions of one snapshot, and applying it to the older one.
//
// A delta names top-level sections of ProxySnapshot. The keyed maps (route
// tables, backends) change entry by entry: entries set (added or changed) and
// keys removed. Every other section changed is sent whole; `null` removes an
// optional one (`gateway`). Applying a delta never touches the snapshot it
// starts from: the proxy's running config keeps reading it until the swap.
import { ErrorCodes, WeftError } from './errors.ts';
import type { ProxySnapshot } from './snapshot.ts';

/** The sections of a snapshot that change entry by entry. */
export const KEYED_SECTIONS = ['routes', 'backends'] as const;
export type KeyedSection = (typeof KEYED_SECTIONS)[number];

/** Entries of one keyed map set (added or changed) and keys removed. */
export interface KeyedDelta<T> {
  set?: Record<string, T>;
  remove?: string[];
}

export interface SnapshotDelta {
  /**
   * Sections other than the keyed maps that changed, each whole; `null`
   * removes an optional section. A section a newer control plane adds is
   * carried here too.
   */
  sections?: Record<string, unknown>;
  routes?: KeyedDelta<ProxySnapshot['routes'][string]>;
  backends?: KeyedDelta<ProxySnapshot['backends'][string]>;
}

const KEYED = new Set<string>(KEYED_SECTIONS);
/** Keys that would reach an object's prototype when assigned: never a snapshot key, refused outright. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * What changed from `from` to `to`, or undefined when nothing did besides the
 * version. Entries are compared by value; an unchanged entry (even a rebuilt
 * object) is not sent.
 */
export function computeSnapshotDelta(from: ProxySnapshot, to: ProxySnapshot): SnapshotDelta | undefined {
  const delta: SnapshotDelta = {};
  const fromRecord = from as unknown as Record<string, unknown>;
  const toRecord = to as unknown as Record<string, unknown>;
  const sections: Record<string, unknown> = {};
  let anySection = false;
  for (const name of new Set([...Object.keys(fromRecord), ...Object.keys(toRecord)])) {
    if (name === 'version' || KEYED.has(name)) continue;
    const before = fromRecord[name];
    const after = toRecord[name];
    if (sameJsonValue(before, after)) continue;
    sections[name] = after === undefined ? null : after;
    anySection = true;
  }
  if (anySection) delta.sections = sections;
  for (const name of KEYED_SECTIONS) {
    const keyed = keyedDelta<unknown>(from[name] as Record<string, unknown>, to[name] as Record<string, unknown>);
    if (keyed) (delta as Record<string, unknown>)[name] = keyed;
  }
  return Object.keys(delta).length > 0 ? delta : undefined;
}

function keyedDelta<T>(from: Record<string, T> | undefined, to: Record<string, T> | undefined): KeyedDelta<T> | undefined {
  const before = from ?? {};
  const after = to ?? {};
  const set: Record<string, T> = {};
  const remove: string[] = [];
  let anySet = false;
  for (const [key, value] of Object.entries(after)) {
    if (Object.hasOwn(before, key) && sameJsonValue(before[key], value)) continue;
    set[key] = value;
    anySet = true;
  }
  for (const key of Object.keys(before)) if (!Object.hasOwn(after, key)) remove.push(key);
  if (!anySet && remove.length === 0) return undefined;
  return { ...(anySet ? { set } : {}), ...(remove.length > 0 ? { remove } : {}) };
}

/**
 * The snapshot `base` becomes with `delta` applied, versioned `version`: a new
 * object sharing every untouched section and entry with `base`. Throws
 * WEFT_ERR_SNAPSHOT_INVALID for a delta that is not one (the caller then asks
 * for the full snapshot). It does not check the result: the caller validates
 * it as it would a full snapshot.
 */
export function applySnapshotDelta(base: ProxySnapshot, delta: unknown, version: string): ProxySnapshot {
  if (!isPlainRecord(base)) throw malformed('there is no snapshot to apply it to');
  if (!isPlainRecord(delta)) throw malformed('delta is not an object');
  const next: Record<string, unknown> = { ...(base as unknown as Record<string, unknown>) };
  const sections = delta.sections;
  if (sections !== undefined) {
    if (!isPlainRecord(sections)) throw malformed('delta.sections is not an object');
    for (const [name, value] of Object.entries(sections)) {
      if (name === 'version' || KEYED.has(name) || FORBIDDEN_KEYS.has(name)) throw malformed(`delta.sections may not replace "${name}"`);
      if (value === null) delete next[name];
      else next[name] = value;
    }
  }
  for (const name of KEYED_SECTIONS) {
    const keyed = delta[name];
    if (keyed === undefined) continue;
    if (!isPlainRecord(keyed)) throw malformed(`delta.${name} is not an object`);
    const map: Record<string, unknown> = { ...((next[name] as Record<string, unknown> | undefined) ?? {}) };
    const { set, remove } = keyed;
    if (remove !== undefined) {
      if (!Array.isArray(remove) || !remove.every((key) => typeof key === 'string')) throw malformed(`delta.${name}.remove is not a list of keys`);
      for (const key of remove as string[]) delete map[key];
    }
    if (set !== undefined) {
      if (!isPlainRecord(set)) throw malformed(`delta.${name}.set is not an object`);
      for (const [key, value] of Object.entries(set)) {
        if (FORBIDDEN_KEYS.has(key)) throw malformed(`delta.${name}.set has the key "${key}"`);
        map[key] = value;
      }
    }
    next[name] = map;
  }
  next.version = version;
  return next as unknown as ProxySnapshot;
}

function malformed(why: string): WeftError {
  return new WeftError(ErrorCodes.SNAPSHOT_INVALID, `cannot apply the snapshot delta: ${why}`);
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether two values would serialize to the same JSON, key order aside (keys
 * whose value is undefined count as absent). Walks both without encoding
 * either: the cache compares every entry of a large snapshot per change.
 */
export function sameJsonValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const aObject = typeof a === 'object' && a !== null;
  const bObject = typeof b === 'object' && b !== null;
  if (aObject !== bObject) return false;
  if (!aObject) {
    // JSON has no undefined, NaN or Infinity: each is written as null (in arrays) or left out (in objects).
    return jsonScalar(a) === jsonScalar(b);
  }
  const aArray = Array.isArray(a);
  if (aArray !== Array.isArray(b)) return false;
  if (aArray) {
    const left = a as unknown[];
    const right = b as unknown[];
    if (left.length !== right.length) return false;
    for (let i = 0; i < left.length; i++) if (!sameJsonValue(left[i], right[i])) return false;
    return true;
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  let leftCount = 0;
  for (const key in left) {
    if (!Object.hasOwn(left, key)) continue;
    const value = left[key];
    if (value === undefined || typeof value === 'function') continue;
    leftCount++;
    if (!Object.hasOwn(right, key) || !sameJsonValue(value, right[key])) return false;
  }
  let rightCount = 0;
  for (const key in right) {
    if (!Object.hasOwn(right, key)) continue;
    const value = right[key];
    if (value === undefined || typeof value === 'function') continue;
    rightCount++;
  }
  return leftCount === rightCount;
}

function jsonScalar(value: unknown): string {
  if (value === undefined || typeof value === 'function') return 'undefined';
  return JSON.stringify(value) ?? 'undefined';
}
