// Rate limit layer (RateLimitPolicy): a token bucket per limit and descriptor key; an empty bucket answers 429 with RateLimit headers.
//
// It runs after the route match (so that a route's limits know the route) and
// before any work is spent on the request: filters, body buffering, retries.
// Every limit on the target must let the request pass; each takes a token.
import { ErrorCodes } from '../../../api/errors.ts';
import { baseBackendKey, type HttpRouteRule, type RateLimitDescriptor, type SnapshotRateLimit } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import type { Decision, LimitBuckets, RateLimiterRegistry } from './buckets.ts';

export { RateLimiterRegistry, LimitBuckets, type QuotaSource, type Lease } from './buckets.ts';
export { QuotaClient } from './quota-client.ts';

export interface RateLimitContext {
  registry: RateLimiterRegistry;
  clock: Clock;
  /** "<ns>/<workload>" of this proxy: the SourceIdentity of outbound requests (inbound ones carry the caller's verified SPIFFE ID). */
  source: string;
}

/** What the layer serves: a rule (outbound, gateway) or the inbound side's limits. */
export interface RateLimitTarget {
  rateLimits?: readonly SnapshotRateLimit[] | undefined;
  /** A rule's id ("<ns>/<route>/<rule>/<match>"): the Route descriptor's value. */
  id?: string;
  backends?: HttpRouteRule['backends'];
}

/** A descriptor value longer than this is cut: a key is a bucket name, not a place to store a client's megabytes. */
const MAX_VALUE_LENGTH = 256;

type KeyPart = (ex: HttpExchange) => string;

function keyPart(descriptor: RateLimitDescriptor, target: RateLimitTarget, source: string): KeyPart {
  switch (descriptor.type) {
    case 'Route': {
      // "<ns>/<route>" of the rule: every rule and match of one route shares the route's bucket.
      const route = (target.id ?? '').split('/').slice(0, 2).join('/');
      return () => route;
    }
    case 'Service': {
      // A route's backend variant (route-targeted BackendTrafficPolicy) is still its Service port's bucket.
      const services = [...new Set((target.backends ?? []).map((b) => baseBackendKey(b.backend ?? '')))].join(',');
      return target.backends ? () => services : (ex) => ex.service;
    }
    case 'SourceIdentity':
      return (ex) => ex.peerIdentity ?? source;
    case 'ClientIP':
      return (ex) => ex.req.socket?.remoteAddress ?? '';
    case 'RequestPrincipal':
      // A verified JWT's iss/sub or an API key's client (request-authn runs first); callers with neither share one bucket.
      return (ex) => ex.requestPrincipal ?? '';
    case 'Header': {
      const name = descriptor.header;
      return (ex) => {
        const value = ex.req.headers[name];
        const text = value === undefined ? '' : Array.isArray(value) ? value.join(',') : value;
        return text.length > MAX_VALUE_LENGTH ? text.slice(0, MAX_VALUE_LENGTH) : text;
      };
    }
  }
}

interface CompiledLimit {
  buckets: LimitBuckets;
  key: (ex: HttpExchange) => string;
}

export function rateLimit(context: RateLimitContext): Layer<RateLimitTarget, HttpExchange> {
  return (target, next) => {
    const limits = target.rateLimits ?? [];
    if (limits.length === 0) return next;
    const compiled: CompiledLimit[] = limits.map((limit) => {
      const parts = limit.descriptors.map((d) => keyPart(d, target, context.source));
      const key =
        parts.length === 0 ? () => '' : parts.length === 1 ? parts[0]! : (ex: HttpExchange) => parts.map((part) => part(ex)).join('\u0000');
      return { buckets: context.registry.buckets(limit), key };
    });
    const clock = context.clock;
    const step: Step<HttpExchange> = (ex) => {
      const now = clock.monotonic();
      for (const limit of compiled) {
        const decision = limit.buckets.take(limit.key(ex), now);
        if (!decision.allowed) return Promise.reject(limited(ex, limit.buckets.limit, decision));
      }
      return next(ex);
    };
    return step;
  };
}

/**
 * The 429: RateLimit-Policy and RateLimit as the IETF httpapi draft writes
 * them, the older RateLimit-Limit/-Remaining/-Reset trio many clients still
 * read, and Retry-After. Headers set here are merged into the head the
 * ErrorResponder writes.
 */
function limited(ex: HttpExchange, limit: SnapshotRateLimit, decision: Decision): Error {
  const resetSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  const windowSeconds = Math.max(1, Math.round(limit.intervalMs / 1000));
  const name = limit.policy.replace(/["\\]/g, '');
  const res = ex.res;
  if (!res.headersSent) {
    res.setHeader('ratelimit-policy', `"${name}";q=${limit.requests};w=${windowSeconds}`);
    res.setHeader('ratelimit', `"${name}";r=${decision.remaining};t=${resetSeconds}`);
    res.setHeader('ratelimit-limit', String(limit.requests));
    res.setHeader('ratelimit-remaining', String(decision.remaining));
    res.setHeader('ratelimit-reset', String(resetSeconds));
    res.setHeader('retry-after', String(resetSeconds));
  }
  return proxyError(ErrorCodes.RATE_LIMITED, `rate limited by ${limit.policy} (${limit.requests} per ${limit.intervalMs} ms)`, 429);
}
