// Backend layer: picks one of a rule's weighted backends (weight 0 never) and runs that backend's stack.
import { ErrorCodes } from '../../../api/errors.ts';
import type { HttpFilter, HttpMatch, HttpRouteRule, RetryPolicy, SnapshotBackend, WeightedBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';

/** What a backend's own stack is built from: the backend, the backendRef's filters, and the rule's match, timeouts and retry policy. */
export interface BackendTarget {
  backend: SnapshotBackend;
  filters: readonly HttpFilter[];
  /** The rule's match (ReplacePrefixMatch in a backendRef's filters replaces its prefix). */
  match?: HttpMatch;
  timeouts?: HttpRouteRule['timeouts'];
  retry?: RetryPolicy;
}

export interface RuleBackends {
  id: string;
  backends: readonly WeightedBackend[];
  match?: HttpMatch;
  timeouts?: HttpRouteRule['timeouts'];
  retry?: RetryPolicy;
}

/**
 * Weighted choice among a rule's backends. A rule without backends, or whose
 * weights are all 0, answers 500; so does a chosen backendRef that could not
 * be resolved (Gateway API), in proportion to its weight.
 */
export function weightedBackends<X extends Exchange>(
  backends: Readonly<Record<string, SnapshotBackend>>,
  backendStack: (target: BackendTarget) => Step<X>,
  random: () => number = Math.random,
): Layer<RuleBackends, X> {
  return (rule) => {
    const choices: { upTo: number; step: Step<X> }[] = [];
    const byKey = new Map<string, Step<X>>();
    let total = 0;
    for (const wb of rule.backends) {
      if (!(wb.weight > 0)) continue;
      total += wb.weight;
      const backend = wb.backend === undefined ? undefined : backends[wb.backend];
      const step: Step<X> = backend
        ? backendStack(backendTarget(rule, backend, wb.filters))
        : notFound(`rule ${rule.id} sends to a backend that does not exist${wb.backend === undefined ? '' : ` (${wb.backend})`}`);
      choices.push({ upTo: total, step });
      if (backend && !byKey.has(backend.key)) byKey.set(backend.key, step);
    }
    if (choices.length === 0) {
      return notFound(rule.backends.length === 0 ? `rule ${rule.id} has no backends` : `every backend of rule ${rule.id} has weight 0`);
    }
    if (choices.length === 1) return choices[0]!.step;
    return (ex) => {
      // A persistent session stays on the backend it started on while that backend is still one of the rule's.
      const pinned = ex.session === undefined ? undefined : byKey.get(ex.session.backend);
      if (pinned) return pinned(ex);
      const point = random() * total;
      for (const choice of choices) if (point < choice.upTo) return choice.step(ex);
      return choices[choices.length - 1]!.step(ex);
    };
  };
}

function backendTarget(rule: RuleBackends, backend: SnapshotBackend, filters: readonly HttpFilter[]): BackendTarget {
  const target: BackendTarget = { backend, filters };
  if (rule.match) target.match = rule.match;
  if (rule.timeouts) target.timeouts = rule.timeouts;
  if (rule.retry) target.retry = rule.retry;
  return target;
}

function notFound<X>(message: string): Step<X> {
  return () => Promise.reject(proxyError(ErrorCodes.BACKEND_NOT_FOUND, message, 500));
}
