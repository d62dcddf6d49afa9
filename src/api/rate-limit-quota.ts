// The global rate limit exchange between proxies and the control plane: demand reported up, shares leased down.
//
// Once a second (and at once when a snapshot brings a new Global limit) a
// proxy POSTs, on its control-plane connection (the stream port, HTTP/2), the
// requests each (limit, key) asked of it since its last report. The control
// plane answers each with the share of the limit this proxy may use until the
// lease ends: its part of the demand every proxy reported, so that the shares
// of one key add up to one. No request waits for the control plane.

export const RATE_LIMIT_QUOTA_PATH = '/weft.v1/ratelimit';

export interface QuotaReport {
  /** The proxy's id ("<ns>/<instance>"). */
  proxy: string;
  namespace: string;
  /** The workload the proxy serves, as in its hello: its bootstrap token may be scoped to it. */
  workload?: string;
  limits: {
    /** SnapshotRateLimit.id. */
    id: string;
    /** Requests per key since the last report; a limit with no keys only says "count me in". */
    keys: { key: string; demand: number }[];
  }[];
}

export interface QuotaAnswer {
  /** How long the leases below hold; without a new answer by then, the proxy enforces each limit in full locally. */
  ttlMs: number;
  limits: {
    id: string;
    /** Proxies enforcing this limit now: a key without a lease gets 1/proxies of it. */
    proxies: number;
    keys: { key: string; share: number }[];
  }[];
}

/** Bounds on one report, which the control plane enforces. */
export const QUOTA_LIMITS = { limitsPerReport: 1000, keysPerLimit: 10_000, keyLength: 512, bodyBytes: 4 * 1024 * 1024 } as const;
