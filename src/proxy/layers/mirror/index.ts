// RequestMirror filter (Gateway API): fire-and-forget copies of a share of the requests to other backends; their answers are discarded.
//
// A copy never slows or fails the request it copies: it is sent alongside,
// its response body is thrown away, its errors are ignored, and it is
// dropped rather than queued when too many copies are already in flight or
// when the request's body is streamed (not buffered) and so cannot be sent twice.
import type { HttpFilter, HttpRouteRule, SnapshotBackend } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';
import type { Balancer, BalancerRegistry } from '../balancer/balancers.ts';
import { filtersOf } from '../filters.ts';
import type { ForwardContext } from '../forward/index.ts';
import { dropMeshHeaders } from '../../transport/headers.ts';
import type { Http1Attempt } from '../../transport/http1-client.ts';
import { SOURCE_HEADER, TARGET_PORT_HEADER } from '../mesh-headers/index.ts';

/** Copies in flight at once, per proxy: past it, copies are dropped (and counted). */
export class MirrorBudget {
  readonly max: number;
  inFlight = 0;
  sent = 0;
  dropped = 0;
  failed = 0;
  constructor(max: number) {
    this.max = max;
  }
}

export const DEFAULT_MIRRORS_IN_FLIGHT = 32;
/** How long a copy may take when the rule sets no timeout: it holds a pooled connection meanwhile. */
export const DEFAULT_MIRROR_TIMEOUT_MS = 10_000;

export interface MirrorContext {
  backends: Readonly<Record<string, SnapshotBackend>>;
  balancers: BalancerRegistry;
  forward: ForwardContext;
  clock: Clock;
  budget: MirrorBudget;
  random?: () => number;
}

interface CompiledMirror {
  backend: SnapshotBackend;
  balancer: Balancer;
  percent: number;
}

export function requestMirror(context: MirrorContext): Layer<{ filters: readonly HttpFilter[]; timeouts?: HttpRouteRule['timeouts'] }, HttpExchange> {
  const random = context.random ?? Math.random;
  return (target, next) => {
    const mirrors: CompiledMirror[] = [];
    for (const { mirror } of filtersOf(target.filters, 'RequestMirror')) {
      const backend = mirror.backend === undefined ? undefined : context.backends[mirror.backend];
      if (!backend || !(mirror.percent > 0)) continue;
      mirrors.push({ backend, balancer: context.balancers.balancerFor(backend), percent: mirror.percent });
    }
    if (mirrors.length === 0) return next;
    const timeoutMs = target.timeouts?.backendRequestMs ?? target.timeouts?.requestMs ?? DEFAULT_MIRROR_TIMEOUT_MS;
    return (ex) => {
      // An Upgrade (WebSocket) is one long-lived connection, not a request a copy could stand for.
      if (ex.upgrade) return next(ex);
      for (const mirror of mirrors) {
        if (mirror.percent >= 100 || random() * 100 < mirror.percent) sendCopy(ex, mirror, context, timeoutMs);
      }
      return next(ex);
    };
  };
}

/** Sends one copy of the request as it is now (filters before this one applied), to one endpoint of the mirror backend. */
function sendCopy(ex: HttpExchange, mirror: CompiledMirror, context: MirrorContext, timeoutMs: number): void {
  const budget = context.budget;
  if ((ex.hasBody && ex.bufferedBody === undefined) || budget.inFlight >= budget.max) {
    budget.dropped++;
    return;
  }
  const picked = mirror.balancer.pick();
  if (!picked) {
    budget.dropped++;
    return;
  }
  const endpoint = picked.endpoint;
  const headers: Headers = {};
  for (const [name, value] of Object.entries(ex.headers)) if (value !== undefined) headers[name] = value;
  if (endpoint.tunnelPort !== undefined) {
    headers[TARGET_PORT_HEADER] = String(endpoint.port);
    headers[SOURCE_HEADER] = context.forward.source;
  } else {
    // A copy for an app: none of the mesh's own headers (a retried primary may have put some on the exchange).
    dropMeshHeaders(headers);
  }
  budget.inFlight++;
  budget.sent++;
  picked.load.inFlight++;
  let settled = false;
  let attempt: Http1Attempt | undefined;
  const timer = context.clock.setTimeout(() => {
    attempt?.abort(new Error(`mirror copy timed out after ${timeoutMs} ms`));
    settle(true);
  }, timeoutMs);
  const settle = (failed: boolean): void => {
    if (settled) return;
    settled = true;
    timer.cancel();
    if (failed) budget.failed++;
    budget.inFlight--;
    picked.load.inFlight--;
  };
  // As forwardHttp does: a tunnelled endpoint through its proxy's mTLS pool, any other straight. The answer is read and dropped.
  attempt = context.forward.pools.http1For(endpoint).request(
    { path: ex.path, method: ex.method, headers, body: ex.bufferedBody ?? null },
    { onHead: () => undefined, onData: () => true, onEnd: () => settle(false), onError: () => settle(true) },
  );
}
