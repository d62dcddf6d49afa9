// The kinds the control plane knows (GET /weft/v1/kinds), fetched once and shared by the pages.
import { useEffect, useState } from 'preact/hooks';
import { kinds as fetchKinds, type KindEntry } from './api.ts';

let cached: Promise<KindEntry[]> | undefined;
let resolved: KindEntry[] | undefined;

function load(): Promise<KindEntry[]> {
  cached ??= fetchKinds().then(
    (list) => (resolved = list),
    (error: unknown) => {
      cached = undefined; // try again on the next page that asks
      throw error;
    },
  );
  return cached;
}

export function useKinds(): KindEntry[] | undefined {
  const [list, setList] = useState(resolved);
  useEffect(() => {
    if (!resolved) load().then(setList, () => setList([]));
  }, []);
  return list;
}

export function findKind(list: readonly KindEntry[] | undefined, kind: string, group?: string): KindEntry | undefined {
  return list?.find((k) => k.kind === kind && (group === undefined || k.group === group));
}
