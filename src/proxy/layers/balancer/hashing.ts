// Consistent hashing for the balancer: Maglev tables and hash rings over endpoint ids, and the 32-bit hash they use.

/** FNV-1a over the string's UTF-16 code units, then murmur3's finalizer so that near keys land far apart. */
export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Maps a key's hash to an index into the ids the table was built from. */
export interface HashTable {
  lookup(keyHash: number): number;
}

/** A prime comfortably above 100 × the endpoints a backend usually has, as Maglev asks. */
const MAGLEV_SIZE = 65_537;

/**
 * Maglev (Eisenbud et al., NSDI 2016): every id fills the table's slots in
 * its own permutation order, taking turns, so each owns ~1/N of the slots and
 * adding or removing one id moves only ~1/N of the keys.
 */
export function maglevTable(ids: readonly string[]): HashTable {
  const n = ids.length;
  const size = MAGLEV_SIZE;
  const table = new Int32Array(size).fill(-1);
  if (n === 0) return { lookup: () => -1 };
  const offsets = ids.map((id) => hash32(id, 0x9747b28c) % size);
  const skips = ids.map((id) => (hash32(id, 0x5bd1e995) % (size - 1)) + 1);
  const next = new Array<number>(n).fill(0);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      let slot = (offsets[i]! + next[i]! * skips[i]!) % size;
      while (table[slot] !== -1) {
        next[i]!++;
        slot = (offsets[i]! + next[i]! * skips[i]!) % size;
      }
      table[slot] = i;
      next[i]!++;
      filled++;
    }
  }
  return { lookup: (keyHash) => table[keyHash % size]! };
}

/**
 * Points per id on a hash ring: enough that shares stay within a few percent
 * of 1/N. Fixed whatever N is, so that adding an id leaves the others' points
 * (and keys) where they were.
 */
const POINTS_PER_ID = 256;

/** A ring hash (Karger et al.): ids own the arcs before their points; a key goes to the next point clockwise. */
export function ringTable(ids: readonly string[]): HashTable {
  if (ids.length === 0) return { lookup: () => -1 };
  const perId = POINTS_PER_ID;
  const points: { at: number; index: number }[] = [];
  ids.forEach((id, index) => {
    for (let r = 0; r < perId; r++) points.push({ at: hash32(`${id}#${r}`), index });
  });
  points.sort((a, b) => a.at - b.at || a.index - b.index);
  const at = new Uint32Array(points.map((p) => p.at));
  const owner = new Int32Array(points.map((p) => p.index));
  return {
    lookup(keyHash) {
      let lo = 0;
      let hi = at.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (at[mid]! < keyHash) lo = mid + 1;
        else hi = mid;
      }
      return owner[lo === at.length ? 0 : lo]!;
    },
  };
}
