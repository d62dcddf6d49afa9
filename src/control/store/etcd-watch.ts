// One store watch over an etcd watch stream: exclusive start revision, previous values, resumption after disconnects, compaction as CONFLICT.
import type { Etcd3, IDuplexStream, IKeyValue, IWatchRequest, IWatchResponse } from 'etcd3';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { WatchBackoff } from './etcd-client.ts';
import type { StoredResource, WatchEvent } from './types.ts';

export interface EtcdWatchOptions {
  client: Etcd3;
  /** The watched range: every key with this prefix. */
  keyPrefix: Buffer;
  /** Events after this revision (exclusive) are delivered. */
  fromRevision: number;
  /** A stored value as the object it holds, with `resourceVersion` set; undefined when it holds none (logged by the caller). */
  decode: (kv: IKeyValue, resourceVersion: string) => StoredResource | undefined;
  onEvent: (event: WatchEvent) => void;
  onError: ((error: Error) => void) | undefined;
  backoff: WatchBackoff;
  logger: Logger | undefined;
  /** Called once the watch has ended for good (stopped or failed), so the store can forget it. */
  onEnd: () => void;
}

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

/**
 * etcd3's own Watcher resumes from the revision in the last response header,
 * which on a catching-up stream can run ahead of the events delivered so far;
 * a disconnect then would skip events. This keeps its own cursor: the
 * revision after the last event handed to the caller, and nothing else.
 * All events of one etcd revision arrive in one response, so a disconnect
 * never splits a revision.
 */
export class EtcdWatch {
  private readonly options: EtcdWatchOptions;
  /** The first revision not yet delivered. */
  private nextRevision: number;
  private stream: WatchStream | undefined;
  private backoff: WatchBackoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(options: EtcdWatchOptions) {
    this.options = options;
    this.nextRevision = options.fromRevision + 1;
    this.backoff = options.backoff.reset();
    this.connect();
  }

  /** Stops delivering events at once; nothing is called afterwards. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    this.options.onEnd();
  }

  private connect(): void {
    if (this.ended) return;
    const { client, keyPrefix } = this.options;
    client.watchClient.watch().then(
      (stream) => {
        if (this.ended) {
          stream.cancel();
          return;
        }
        this.stream = stream;
        stream.on('data', (response) => this.receive(stream, response));
        stream.on('error', (error) => this.lost(stream, error));
        stream.on('end', () => this.lost(stream, new Error('etcd ended the watch stream')));
        stream.write({
          create_request: { key: keyPrefix, range_end: rangeEndOf(keyPrefix), start_revision: this.nextRevision, prev_kv: true },
        });
      },
      (error: unknown) => this.lost(undefined, error),
    );
  }

  private receive(stream: WatchStream, response: IWatchResponse): void {
    if (this.ended || stream !== this.stream) return;
    const compactedThrough = Number(response.compact_revision || 0);
    if (compactedThrough > 0) {
      this.fail(
        new WeftError(
          ErrorCodes.CONFLICT,
          `revision ${this.nextRevision - 1} is too old to watch from (etcd compacted its history through revision ${compactedThrough}); list again`,
        ),
      );
      return;
    }
    if (response.canceled) {
      this.fail(new WeftError(ErrorCodes.STORE_UNAVAILABLE, `etcd cancelled the watch${response.cancel_reason ? `: ${response.cancel_reason}` : ''}`));
      return;
    }
    if (response.created) {
      this.backoff = this.backoff.reset();
      return;
    }
    for (const event of response.events ?? []) {
      if (this.ended) return;
      const revision = Number(event.kv.mod_revision);
      const watchEvent = this.toWatchEvent(event.type, event.kv, event.prev_kv, revision);
      if (watchEvent === 'unknown-deletion') {
        // Without the deleted value there is no object to report; a re-list finds the deletion by its absence.
        this.fail(new WeftError(ErrorCodes.CONFLICT, `etcd sent a deletion at revision ${revision} without its previous value; list again`));
        return;
      }
      if (watchEvent) {
        try {
          this.options.onEvent(watchEvent);
        } catch (error) {
          this.options.logger?.error({ err: error }, 'store watcher threw');
        }
      }
      this.nextRevision = revision + 1;
    }
  }

  private toWatchEvent(type: string, kv: IKeyValue, previousKv: IKeyValue | undefined, revision: number): WatchEvent | 'unknown-deletion' | undefined {
    const { decode } = this.options;
    const hasPrevious = previousKv !== undefined && previousKv !== null && previousKv.key !== undefined && previousKv.key.length > 0;
    if (type === 'Delete') {
      if (!hasPrevious) return 'unknown-deletion';
      // As in the local stores, a deleted object carries the revision of its deletion.
      const object = decode(previousKv, String(revision));
      return object ? { type: 'delete', revision, object } : undefined;
    }
    const object = decode(kv, String(revision));
    if (!object) return undefined;
    const previous = hasPrevious ? decode(previousKv, previousKv.mod_revision) : undefined;
    return previous ? { type: 'put', revision, object, previous } : { type: 'put', revision, object };
  }

  private lost(stream: WatchStream | undefined, error: unknown): void {
    if (this.ended || (stream !== undefined && stream !== this.stream)) return;
    this.stream = undefined;
    stream?.cancel();
    const delayMs = this.backoff.duration;
    this.backoff = this.backoff.next();
    this.options.logger?.warn(
      { err: error, resumeFromRevision: this.nextRevision, delayMs },
      'etcd watch stream lost; opening it again from the last delivered revision',
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delayMs);
    this.retryTimer.unref?.();
  }

  private fail(error: WeftError): void {
    if (this.ended) return;
    const { onError } = this.options;
    this.stop();
    if (onError) {
      try {
        onError(error);
      } catch (thrown) {
        this.options.logger?.error({ err: thrown }, 'store watch error handler threw');
      }
    } else {
      this.options.logger?.warn({ err: error }, 'etcd watch ended');
    }
  }
}

/** The range_end that selects every key starting with `prefix` (etcd's "prefix + 1"). */
export function rangeEndOf(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff: every key from prefix onwards.
  return Buffer.from([0]);
}
