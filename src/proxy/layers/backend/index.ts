// Backend layer: picks one of a rule's weighted backends (weight 0 never) and runs that backend's stack.
import { ErrorCodes } from '../../../api/errors.ts';
import type { HttpFilter, HttpRouteRule, SnapshotBackend, WeightedBackend } from '../../../api/snapshot.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';

/** What a backend's own stack is built from: the backend, the backendRef's filters and the rule's timeouts. */
export interface BackendTarget {
  backend: SnapshotBackend;
  filters: readonly HttpFilter[];
  timeouts?: HttpRouteRule['timeouts'];
}

export interface RuleBackends {
  id: string;
  backends: readonly WeightedBackend[];
  timeouts?: HttpRouteRule['timeouts'];
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
    let total = 0;
    for (const wb of rule.backends) {
      if (!(wb.weight > 0)) continue;
      total += wb.weight;
      const backend = wb.backend === undefined ? undefined : backends[wb.backend];
      const step: Step<X> = backend
        ? backendStack(rule.timeouts ? { backend, filters: wb.filters, timeouts: rule.timeouts } : { backend, filters: wb.filters })
        : notFound(`rule ${rule.id} sends to a backend that does not exist${wb.backend === undefined ? '' : ` (${wb.backend})`}`);
      choices.push({ upTo: total, step });
    }
    if (choices.length === 0) {
      return notFound(rule.backends.length === 0 ? `rule ${rule.id} has no backends` : `every backend of rule ${rule.id} has weight 0`);
    }
    if (choices.length === 1) return choices[0]!.step;
    return (ex) => {
      const point = random() * total;
      for (const choice of choices) if (point < choice.upTo) return choice.step(ex);
      return choices[choices.length - 1]!.step(ex);
    };
  };
}

function notFound<X>(message: string): Step<X> {
  return () => Promise.reject(proxyError(ErrorCodes.BACKEND_NOT_FOUND, message, 500));
}
