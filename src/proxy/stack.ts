// Stack primitives: a layer is built once per snapshot from its config and returns the small per-request step.
//
// `Layer<Target, X>`: given the config object it serves (a route table, a rule,
// a chosen backend...) and the step after it, a layer compiles what it needs
// and returns the step for exchanges of type X. A layer with nothing to do for
// its target returns `next` itself, so that unused features cost nothing on
// the request path. Each direction lists its layers in order in one
// stack-builder file (outbound/stack.ts, inbound/stack.ts).
import { ErrorCodes, WeftError } from '../api/errors.ts';

export type Step<X> = (exchange: X) => Promise<void>;
export type Layer<Target, X> = (target: Target, next: Step<X>) => Step<X>;

const endOfStack: Step<unknown> = () => Promise.reject(new WeftError(ErrorCodes.INTERNAL, 'a stack ended without a terminal layer'));

/** Builds `layers` (first = outermost) around `target`; the last layer is the terminal one. */
export function stack<T, X>(target: T, layers: readonly Layer<NoInfer<T>, X>[]): Step<X> {
  let next = endOfStack as Step<X>;
  for (let i = layers.length - 1; i >= 0; i--) next = layers[i]!(target, next);
  return next;
}
