// Looks up a rule's or a backendRef's filters by type, typed as that filter.
import type { HttpFilter } from '../../api/snapshot.ts';

export type FilterOf<T extends HttpFilter['type']> = Extract<HttpFilter, { type: T }>;

export function filtersOf<T extends HttpFilter['type']>(filters: readonly HttpFilter[], type: T): FilterOf<T>[] {
  return filters.filter((f): f is FilterOf<T> => f.type === type);
}

/** The filter of that type; the Gateway API allows one per list for every type but RequestMirror. */
export function filterOf<T extends HttpFilter['type']>(filters: readonly HttpFilter[], type: T): FilterOf<T> | undefined {
  return filters.find((f): f is FilterOf<T> => f.type === type);
}
