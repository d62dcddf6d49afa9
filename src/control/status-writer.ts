// Writes the statuses the compiler computes back onto the objects, only where they changed, stamping condition transitions.
import { ErrorCodes, isWeftError } from '../api/errors.ts';
import type { CompilerInput } from '../compiler/types.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { CompilerFunctions } from './compiler-functions.ts';
import type { ResourceIndex } from './index.ts';
import { sameJson } from './store/canonical.ts';
import type { Store, StoredResource } from './store/types.ts';

export interface StatusWriterOptions {
  store: Store;
  index: ResourceIndex;
  computeStatuses: CompilerFunctions['computeStatuses'];
  clock: Clock;
  logger: Logger;
}

/**
 * Runs after each compile pass. Writes are statusOnly, which the index does
 * not report as changes, so writing a status never causes another pass.
 * Runs never overlap; passes that arrive during a run collapse into one more.
 */
export class StatusWriter {
  private readonly options: StatusWriterOptions;
  private running: Promise<void> | undefined;
  private pending: CompilerInput | undefined;
  private closed = false;
  private writes = 0;

  constructor(options: StatusWriterOptions) {
    this.options = options;
  }

  /** Status writes done so far (for tests and the status page). */
  get writeCount(): number {
    return this.writes;
  }

  schedule(input: CompilerInput): void {
    if (this.closed) return;
    this.pending = input;
    if (!this.running) this.running = this.drain();
  }

  /** Resolves when no run is in progress or queued. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending = undefined;
    await this.idle();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending && !this.closed) {
        const input = this.pending;
        this.pending = undefined;
        try {
          await this.run(input);
        } catch (error) {
          this.options.logger.error({ err: error }, 'writing statuses failed');
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  private async run(input: CompilerInput): Promise<void> {
    const { index, store, computeStatuses, logger } = this.options;
    const statuses = computeStatuses(input);
    for (const [key, desired] of statuses) {
      if (this.closed) return;
      const current = index.get(key);
      if (!current) continue;
      try {
        await this.write(current, desired);
      } catch (error) {
        if (isWeftError(error, ErrorCodes.NOT_FOUND)) continue;
        if (!isWeftError(error, ErrorCodes.CONFLICT)) throw error;
        // The index lags the store a little; look again, and write only if the object is still the one the status is about.
        const fresh = await store.get(key);
        if (!fresh || fresh.metadata.generation !== current.metadata.generation) continue;
        try {
          await this.write(fresh, desired);
        } catch (retryError) {
          if (isWeftError(retryError, ErrorCodes.CONFLICT) || isWeftError(retryError, ErrorCodes.NOT_FOUND)) continue;
          throw retryError;
        }
      }
    }
    logger.debug({ objects: statuses.size, writes: this.writes }, 'statuses written');
  }

  private async write(current: StoredResource, desired: unknown): Promise<void> {
    const now = new Date(this.options.clock.now()).toISOString();
    const next = withTransitionTimes(desired, current.status, now);
    if (sameJson(next, current.status)) return;
    await this.options.store.put(
      { apiVersion: current.apiVersion, kind: current.kind, metadata: current.metadata, spec: current.spec, status: next },
      { statusOnly: true, expectedResourceVersion: current.metadata.resourceVersion },
    );
    this.writes++;
  }
}

interface ConditionLike {
  type: string;
  status: string;
  lastTransitionTime?: string;
}

function isCondition(value: unknown): value is ConditionLike {
  return !!value && typeof value === 'object' && typeof (value as ConditionLike).type === 'string' && typeof (value as ConditionLike).status === 'string';
}

/**
 * Copies lastTransitionTime from the previous status for every condition whose
 * status did not change, and stamps `now` on the others. Conditions are found
 * by type; route parent entries by parentRef and controllerName; anything else
 * by position.
 */
export function withTransitionTimes(next: unknown, previous: unknown, now: string): unknown {
  if (Array.isArray(next)) {
    const before = Array.isArray(previous) ? previous : [];
    if (next.length && next.every(isCondition)) {
      return next.map((condition: ConditionLike) => {
        const old = before.find((p): p is ConditionLike => isCondition(p) && p.type === condition.type);
        const since = old && old.status === condition.status && old.lastTransitionTime ? old.lastTransitionTime : now;
        return { ...condition, lastTransitionTime: since };
      });
    }
    return next.map((item: unknown, i) => withTransitionTimes(item, matchingItem(item, before, i), now));
  }
  if (next && typeof next === 'object') {
    const prev = previous && typeof previous === 'object' && !Array.isArray(previous) ? (previous as Record<string, unknown>) : {};
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(next)) out[key] = withTransitionTimes(value, prev[key], now);
    return out;
  }
  return next;
}

function matchingItem(item: unknown, before: unknown[], position: number): unknown {
  if (item && typeof item === 'object' && 'parentRef' in item) {
    const ref = item as { parentRef: unknown; controllerName?: unknown };
    return before.find(
      (p) => !!p && typeof p === 'object' && sameJson((p as typeof ref).parentRef, ref.parentRef) && (p as typeof ref).controllerName === ref.controllerName,
    );
  }
  return before[position];
}
