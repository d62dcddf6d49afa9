// Status of GatewayClasses, Gateways (with their listeners) and of routes towards their Gateway parents.
import type { Condition } from '../api/meta.ts';
import { prepareGateways, type AnalyzedGateway, type AnalyzedListener, type PreparedGateways, type Verdict } from './gateway.ts';
import type { AnalyzedRoute } from './routes.ts';
import { GATEWAY_CONTROLLER_NAME, type CompilerInput, type GatewayClassStatus, type GatewayStatus, type ListenerStatus, type RouteParentStatus } from './types.ts';

function condition(type: string, verdict: Verdict, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status: verdict.status, reason: verdict.reason, message: verdict.message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

/** Status of every GatewayClass and Gateway weft serves, by "GatewayClass/name" and "Gateway/ns/name". */
export function gatewayObjectStatuses(input: CompilerInput): { classes: Map<string, GatewayClassStatus>; gateways: Map<string, GatewayStatus> } {
  const prepared = prepareGateways(input);
  const classes = new Map<string, GatewayClassStatus>();
  for (const [name, gatewayClass] of prepared.classes) {
    classes.set(name, { conditions: [condition('Accepted', { status: 'True', reason: 'Accepted', message: '' }, gatewayClass.metadata.generation)] });
  }
  const gateways = new Map<string, GatewayStatus>();
  for (const [key, gateway] of prepared.gateways) gateways.set(key, gatewayStatus(gateway));
  return { classes, gateways };
}

function listenerStatus(listener: AnalyzedListener, hasAddress: boolean, generation: number | undefined): ListenerStatus {
  const programmed: Verdict = !listener.servable
    ? { status: 'False', reason: 'Invalid', message: listener.invalid ?? 'the listener cannot be served' }
    : hasAddress
      ? { status: 'True', reason: 'Programmed', message: '' }
      : { status: 'False', reason: 'Pending', message: 'no gateway proxy for this Gateway is running' };
  return {
    name: listener.name,
    supportedKinds: listener.supportedKinds.map((k) => ({ ...k })),
    // Counted by attachment alone (parentRef, allowedRoutes, hostnames), whether or not the route's rules are valid.
    attachedRoutes: listener.attached.length,
    conditions: [
      condition('Accepted', listener.accepted, generation),
      condition('Programmed', programmed, generation),
      condition('ResolvedRefs', listener.resolvedRefs, generation),
      condition('Conflicted', listener.conflicted, generation),
    ],
  };
}

/**
 * Accepted: True when every listener can be served, True/ListenersNotValid
 * when some can, False/ListenersNotValid when none can. Programmed: True when
 * a gateway proxy runs for it (its registered address is the Gateway's
 * address) and some listener can be served.
 */
function gatewayStatus(gateway: AnalyzedGateway): GatewayStatus {
  const generation = gateway.gateway.metadata.generation;
  const servable = gateway.listeners.filter((l) => l.servable);
  const invalid = gateway.listeners.filter((l) => !l.servable);
  const invalidText = invalid.map((l) => `${l.name}: ${l.invalid ?? 'invalid'}`).join('; ');
  const accepted: Verdict =
    invalid.length === 0
      ? { status: 'True', reason: 'Accepted', message: '' }
      : { status: servable.length > 0 ? 'True' : 'False', reason: 'ListenersNotValid', message: invalidText };
  const hasAddress = gateway.addresses.length > 0;
  const programmed: Verdict =
    servable.length === 0
      ? { status: 'False', reason: 'Invalid', message: 'no listener can be served' }
      : hasAddress
        ? { status: 'True', reason: 'Programmed', message: '' }
        : {
            status: 'False',
            reason: 'AddressNotAssigned',
            message: `no gateway proxy runs for it: start \`weft proxy --mode gateway --gateway ${gateway.namespace}/${gateway.name}\``,
          };
  return {
    addresses: gateway.addresses.map((a) => ({ ...a })),
    conditions: [condition('Accepted', accepted, generation), condition('Programmed', programmed, generation)],
    listeners: gateway.listeners.map((l) => listenerStatus(l, hasAddress, generation)),
  };
}

/**
 * One status entry per Gateway parentRef the route names (of weft's
 * Gateways, or of Gateways that do not exist): Accepted as attachment decided
 * it, unless no rule of the route compiles; ResolvedRefs from its backendRefs.
 */
export function gatewayParentStatuses(route: AnalyzedRoute, prepared: PreparedGateways): RouteParentStatus[] {
  const results = prepared.routeParents.get(route) ?? [];
  const generation = route.route.metadata.generation;
  const resolvedRefs: Verdict =
    route.refProblems.length === 0
      ? { status: 'True', reason: 'ResolvedRefs', message: '' }
      : { status: 'False', reason: route.refProblems[0]!.reason, message: route.refProblems.map((p) => p.message).join('; ') };
  const noValidRule = route.rules.length === 0;
  return results.map((result) => {
    let accepted = result.accepted;
    if (accepted.status === 'True' && noValidRule) {
      const why = route.dropped.length > 0 ? `no rule can be served: ${route.dropped.join('; ')}` : 'the route has no rules';
      accepted = { status: 'False', reason: 'UnsupportedValue', message: why };
    }
    const conditions = [condition('Accepted', accepted, generation), condition('ResolvedRefs', resolvedRefs, generation)];
    if (!noValidRule && route.dropped.length > 0) {
      conditions.push(condition('PartiallyInvalid', { status: 'True', reason: 'UnsupportedValue', message: `Dropped Rule(s): ${route.dropped.join('; ')}` }, generation));
    }
    return { parentRef: { ...result.parentRef }, controllerName: GATEWAY_CONTROLLER_NAME, conditions };
  });
}
