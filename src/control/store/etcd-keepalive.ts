// One shared etcd LeaseKeepAlive stream for one-shot renewals: each keepAlive() writes a request and waits for its answer.
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

interface Waiter {
  resolve: (ttlSeconds: number) => void;
  reject: (error: unknown) => void;
}

/**
 * etcd renews leases only over a stream. Opening one per heartbeat would
 * cost a stream per proxy per heartbeat; instead one stream stays open and
 * answers come back in request order per lease, so each lease has a FIFO of
 * waiters. A stream failure fails every pending renewal (the caller's next
 * heartbeat opens a fresh stream).
 */
export class KeepAliveChannel {
  private readonly client: Etcd3;
  private readonly timeoutMs: number;
  private stream: Promise<KeepAliveStream> | undefined;
  private readonly waiting = new Map<string, Waiter[]>();
  private closed = false;

  constructor(client: Etcd3, timeoutMs: number) {
    this.client = client;
    this.timeoutMs = timeoutMs;
  }

  /** Renews the lease once; resolves with the TTL etcd granted, 0 when the lease no longer exists. */
  async renew(id: string): Promise<number> {
    const stream = await this.open();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The stream may be stuck: start over on a new one.
        this.failAll(new Error(`no keepalive answer from etcd within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const waiter: Waiter = {
        resolve: (ttl) => {
          clearTimeout(timer);
          resolve(ttl);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const queue = this.waiting.get(id);
      if (queue) queue.push(waiter);
      else this.waiting.set(id, [waiter]);
      try {
        stream.write({ ID: id });
      } catch (error) {
        this.failAll(error);
      }
    });
  }

  close(): void {
    this.closed = true;
    this.failAll(new Error('the store is closed'));
  }

  private open(): Promise<KeepAliveStream> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    if (this.stream) return this.stream;
    const opening = this.client.leaseClient.leaseKeepAlive().then((stream) => {
      stream.on('data', (response) => this.answer(response));
      stream.on('error', (error) => {
        if (this.stream === opening) this.failAll(error);
      });
      stream.on('end', () => {
        if (this.stream === opening) this.failAll(new Error('etcd ended the keepalive stream'));
      });
      return stream;
    });
    this.stream = opening;
    opening.catch(() => {
      if (this.stream === opening) this.stream = undefined;
    });
    return opening;
  }

  private answer(response: ILeaseKeepAliveResponse): void {
    const id = String(response.ID);
    const queue = this.waiting.get(id);
    const waiter = queue?.shift();
    if (queue && !queue.length) this.waiting.delete(id);
    waiter?.resolve(Number(response.TTL));
  }

  private failAll(error: unknown): void {
    const stream = this.stream;
    this.stream = undefined;
    void stream?.then(
      (s) => s.cancel(),
      () => {},
    );
    const waiters = [...this.waiting.values()].flat();
    this.waiting.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}
