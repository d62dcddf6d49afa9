// Request path normalisation (Istio's pathNormalization options), pure so that the proxy and `weft explain` agree on what a path is.
//
// Routing and authorization must see the same path, or a request can be
// routed by one reading and authorized by another ("/admin" denied, but
// "/public/../admin" or "/%61dmin" let through). So the proxy normalises the
// target once, where the exchange is made, and every layer reads the result.

/**
 * NONE: the path is left as it came.
 * BASE (the default): RFC 3986 §6.2.2 (percent-encoded unreserved characters
 * decoded, other percent-encodings upper-cased), backslashes made slashes,
 * §5.2.4 dot-segment removal.
 * MERGE_SLASHES: BASE, then runs of "/" merged into one.
 * DECODE_AND_MERGE_SLASHES: MERGE_SLASHES, with %2F and %5C (any case)
 * decoded first, so that "/a%2Fb" is "/a/b".
 */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];

export type NormalizedPath = { ok: true; path: string } | { ok: false; why: string };

const PERCENT = 0x25;
const DOT = 0x2e;
const SLASH = 0x2f;
const BACKSLASH = 0x5c;

/**
 * The request target (origin-form path and query, or "*") normalised by
 * `mode`; the query is kept as it came. Refused: a target that is neither
 * origin-form nor "*", a "%" not followed by two hex digits, and NUL (raw or
 * as %00), which no backend should be asked to interpret.
 */
export function normalizePath(target: string, mode: PathNormalization = 'BASE'): NormalizedPath {
  if (target === '*') return { ok: true, path: target };
  if (target.charCodeAt(0) !== SLASH) return { ok: false, why: `"${preview(target)}" is not an origin-form target (it must start with "/")` };
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  // The hot path: most paths have nothing to normalise, and are returned as they are (no copy).
  let special = false;
  let previous = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0) return { ok: false, why: 'the path contains NUL' };
    // A dot matters only at the start of a segment ("." or ".."): "/file.json" takes the fast path.
    if (c === PERCENT || c === BACKSLASH || (previous === SLASH && (c === DOT || c === SLASH))) special = true;
    previous = c;
  }
  if (!special || mode === 'NONE') return { ok: true, path: target };

  const decoded = decodePercents(path, mode === 'DECODE_AND_MERGE_SLASHES');
  if (!decoded.ok) return decoded;
  let result = removeDotSegments(decoded.path.replaceAll('\\', '/'));
  if (mode !== 'BASE') result = result.replace(/\/{2,}/g, '/');
  return { ok: true, path: q === -1 ? result : result + target.slice(q) };
}

/** Percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~") decoded; other encodings upper-cased; %2F/%5C decoded when asked. */
function decodePercents(path: string, decodeSlashes: boolean): NormalizedPath {
  if (!path.includes('%')) return { ok: true, path };
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return { ok: false, why: `"${preview(path.slice(i, i + 3))}" is not a valid percent-encoding` };
    const byte = hi * 16 + lo;
    if (byte === 0) return { ok: false, why: 'the path contains NUL (%00)' };
    out += path.slice(from, i);
    if (isUnreserved(byte) || (decodeSlashes && (byte === SLASH || byte === BACKSLASH))) out += String.fromCharCode(byte);
    else out += '%' + path.slice(i + 1, i + 3).toUpperCase();
    from = i + 3;
    i += 2;
  }
  return { ok: true, path: out + path.slice(from) };
}

/** RFC 3986 §5.2.4 for an absolute path: "." segments dropped, ".." removes the segment before it (never above the root); a trailing "." or ".." leaves a trailing "/". */
export function removeDotSegments(path: string): string {
  if (!path.includes('.')) return path;
  const segments = path.slice(1).split('/');
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === '.') {
      if (last) out.push('');
    } else if (segment === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(segment);
  }
  return '/' + out.join('/');
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === DOT || byte === 0x5f || byte === 0x7e
  );
}

function preview(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}
