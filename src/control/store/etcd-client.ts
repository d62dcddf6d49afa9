// The etcd3 client as the etcd store uses it: request deadlines, fault handling, watch backoff, and etcd failures as WeftErrors.
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
  type IOptions,
} from 'etcd3';
import { ErrorCodes, WeftError, isWeftError } from '../../api/errors.ts';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type EtcdPolicy = NonNullable<FaultHandling['global']>;
type EtcdBackoff = NonNullable<FaultHandling['watchBackoff']>;

export interface EtcdClientOptions {
  /** http://host:port (or host:port); several for a cluster. */
  endpoints: string[];
  /** Deadline of every unary call. Default 5000 ms. */
  requestTimeoutMs?: number | undefined;
  /** First and longest wait before a lost watch stream is opened again. Default 100 ms and 5000 ms. */
  watchBackoff?: { initialMs?: number | undefined; maxMs?: number | undefined } | undefined;
  /** TLS to etcd: the CA that signed etcd's certificate, and a client certificate when etcd asks for one (--client-cert-auth). */
  tls?: EtcdTls | undefined;
  /** etcd's own users (auth enabled): the client trades these for a token and renews it. */
  auth?: { username: string; password: string } | undefined;
}

export interface EtcdTls {
  /** PEM of the CA that signed etcd's server certificate. */
  ca: Buffer;
  /** PEM client certificate (with its chain) and key, both or neither. */
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
export const DEFAULT_WATCH_BACKOFF = { initialMs: 100, maxMs: 5000 };

/**
 * Exponential backoff with jitter. It has the shape etcd3's `watchBackoff`
 * takes (cockatiel's IBackoff), so one setting drives both etcd3's own
 * watchers and the store's watch streams. The cap matches the index's re-list
 * cap: a control plane rejoins a recovered etcd within seconds, not the
 * 30 s etcd3 would wait by default.
 */
export class WatchBackoff {
  readonly duration: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly attempt: number;

  constructor(initialMs: number, maxMs: number, attempt = 0) {
    this.initialMs = Math.max(1, initialMs);
    this.maxMs = Math.max(this.initialMs, maxMs);
    this.attempt = attempt;
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(attempt, 30));
    this.duration = Math.round(base * (0.8 + Math.random() * 0.4));
  }

  next(_context?: unknown): WatchBackoff {
    return new WatchBackoff(this.initialMs, this.maxMs, this.attempt + 1);
  }

  /** The first delay again, after a stream came back. */
  reset(): WatchBackoff {
    return new WatchBackoff(this.initialMs, this.maxMs, 0);
  }
}

/** Thrown, without calling etcd, for an endpoint that failed twice in a row during the last second. */
export class EndpointDownError extends Error {
  constructor(endpoint: string) {
    super(`${endpoint} failed just now; trying another endpoint`);
    this.name = 'EndpointDownError';
  }
}

const BREAKER_OPEN_MS = 1000;
const neverAborted = new AbortController().signal;

/** Only a dead or silent endpoint counts: our own stream cancellations and etcd's answers ("lease not found") do not. */
function isEndpointFailure(error: unknown): boolean {
  return error instanceof GRPCUnavailableError || error instanceof GRPCDeadlineExceededError;
}

/**
 * etcd3's default host breaker stays open 5 s after three failures, which
 * would keep a control plane off a restarted single-member etcd for seconds
 * more; this one skips an endpoint for one second after two failures, long
 * enough to send the calls in between to the other members.
 */
function endpointBreaker(endpoint: string): EtcdPolicy {
  let failures = 0;
  let openUntil = 0;
  const policy = {
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      if (Date.now() < openUntil) throw new EndpointDownError(endpoint);
      try {
        const result = await fn({ signal: neverAborted });
        failures = 0;
        return result;
      } catch (error) {
        if (isEndpointFailure(error) && ++failures >= 2) {
          openUntil = Date.now() + BREAKER_OPEN_MS;
          failures = 0;
        }
        throw error;
      }
    },
  };
  // etcd3 only ever calls execute(); the event members of cockatiel's IPolicy are unused.
  return policy as unknown as EtcdPolicy;
}

/** Retries a failed call on the next endpoint (etcd3 moves to another host on each global retry), once around the ring. */
function retryOnOtherEndpoints(attempts: number): EtcdPolicy {
  const policy = {
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      let lastError: unknown;
      for (let attempt = 0; attempt < attempts; attempt++) {
        try {
          return await fn({ signal: neverAborted });
        } catch (error) {
          lastError = error;
          // An EndpointDownError means every endpoint was skipped just now: another round would skip them again.
          if (!isRecoverableError(error as Error)) throw error;
        }
      }
      throw lastError;
    },
  };
  return policy as unknown as EtcdPolicy;
}

/** "h:2379" → "http://h:2379" (https with `tls`); http(s) URLs pass unchanged (without a trailing slash). */
export function normalizeEndpoint(endpoint: string, tls = false): string {
  const trimmed = endpoint.trim().replace(/\/+$/, '');
  return /^https?:\/\//.test(trimmed) ? trimmed : `${tls ? 'https' : 'http'}://${trimmed}`;
}

export function createEtcdClient(options: EtcdClientOptions): { client: Etcd3; backoff: WatchBackoff } {
  const tls = options.tls;
  const endpoints = options.endpoints.map((e) => normalizeEndpoint(e, tls !== undefined)).filter((e) => e !== 'http://' && e !== 'https://');
  if (!endpoints.length) throw new WeftError(ErrorCodes.INVALID, 'the etcd store needs at least one endpoint');
  if (tls && endpoints.some((e) => e.startsWith('http://'))) {
    throw new WeftError(ErrorCodes.INVALID, `TLS to etcd is set but ${endpoints.find((e) => e.startsWith('http://'))} is a plaintext endpoint (use https:// or etcds://)`);
  }
  if (!tls && endpoints.some((e) => e.startsWith('https://'))) {
    throw new WeftError(ErrorCodes.INVALID, 'https etcd endpoints need the CA that signed etcd\'s certificate (--etcd-ca)');
  }
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) throw new WeftError(ErrorCodes.INVALID, 'an etcd client certificate and its key go together (--etcd-cert with --etcd-key)');
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const backoff = new WatchBackoff(
    options.watchBackoff?.initialMs ?? DEFAULT_WATCH_BACKOFF.initialMs,
    options.watchBackoff?.maxMs ?? DEFAULT_WATCH_BACKOFF.maxMs,
  );
  const client = new Etcd3({
    hosts: endpoints,
    ...(tls ? { credentials: { rootCertificate: tls.ca, ...(tls.key ? { privateKey: tls.key } : {}), ...(tls.cert ? { certChain: tls.cert } : {}) } } : {}),
    ...(options.auth ? { auth: { username: options.auth.username, password: options.auth.password } } : {}),
    // Streams (watch, keepalive) live as long as they are useful; every other call gets a deadline.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    dialTimeout: timeoutMs,
    grpcOptions: {
      // A watch stream on a silently dead connection would wait forever; pings find out (etcd allows one every 5 s).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    },
    faultHandling: {
      host: endpointBreaker,
      global: retryOnOtherEndpoints(endpoints.length + 1),
      watchBackoff: backoff as unknown as EtcdBackoff,
    },
  });
  return { client, backoff };
}

/** Whether etcd said a lease does not exist (expired, revoked, never granted). */
export function isLeaseNotFound(error: unknown): boolean {
  return error instanceof EtcdLeaseInvalidError || (error instanceof Error && error.message.includes('requested lease not found'));
}

/** Whether a range at a pinned revision failed because etcd compacted that revision meanwhile. */
export function isCompacted(error: unknown): boolean {
  return error instanceof Error && error.message.includes('required revision has been compacted');
}

/** Any other failure talking to etcd: the caller may try again later, so it is STORE_UNAVAILABLE, saying which etcd and what failed. */
export function unavailable(error: unknown, endpoints: readonly string[], what: string): WeftError {
  if (isWeftError(error)) return error;
  // grpc-js ends some messages with an empty "Resolution note:"; it only adds noise.
  const message = (error instanceof Error ? error.message : String(error)).replace(/\s*Resolution note:\s*$/, '');
  const where = endpoints.join(', ');
  const unreachable =
    error instanceof GRPCUnavailableError ||
    error instanceof GRPCDeadlineExceededError ||
    error instanceof EndpointDownError ||
    error instanceof ClientClosedError;
  return new WeftError(
    ErrorCodes.STORE_UNAVAILABLE,
    unreachable ? `cannot reach etcd at ${where} (${what}): ${message}` : `etcd at ${where} failed to ${what}: ${message}`,
    error,
  );
}
