// Store rules every backend shares, so that memory, SQLite and etcd behave alike to callers: CAS and list filters.
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { ListFilter, StoredResource } from './types.ts';

/** Compare-and-swap on resourceVersion: "" or "0" means "must not exist yet". */
export function checkExpected(key: string, existing: StoredResource | undefined, expected: string | undefined): void {
  if (expected === undefined) return;
  if (expected === '' || expected === '0') {
    if (existing) throw new WeftError(ErrorCodes.ALREADY_EXISTS, `${key} already exists`);
    return;
  }
  if (!existing) throw new WeftError(ErrorCodes.NOT_FOUND, `${key} not found`);
  if (existing.metadata.resourceVersion !== expected) {
    throw new WeftError(
      ErrorCodes.CONFLICT,
      `${key} was modified: expected resourceVersion ${expected}, found ${existing.metadata.resourceVersion}`,
    );
  }
}

/** Whether a store key (`group/kind/namespace/name`) falls under a list filter. */
export function matchesFilter(key: string, filter: ListFilter): boolean {
  if (filter.group === undefined && filter.kind === undefined && filter.namespace === undefined) return true;
  const [group, kind, namespace] = key.split('/');
  return (
    (filter.group === undefined || filter.group === group) &&
    (filter.kind === undefined || filter.kind === kind) &&
    (filter.namespace === undefined || filter.namespace === namespace)
  );
}
