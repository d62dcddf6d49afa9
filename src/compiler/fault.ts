// FaultInjection objects → the snapshot's FaultInjection filter, and how a route's ExtensionRef filter resolves to one (or to a GraphQLApi, an ApiPortal, a Transformation).
import type { FaultInjection as FaultInjectionResource } from '../api/resources.ts';
import type { FaultInjection, HttpFilter, StringMatch } from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import type { GraphQLIndex } from './graphql.ts';
import type { PortalIndex } from './portal.ts';
import type { TransformationIndex } from './transformation.ts';
import type { RefProblem } from './routes.ts';
import { serviceNamespace } from './services.ts';

export const EXTENSION_GROUP = 'weft.dev';
export const FAULT_INJECTION_KIND = 'FaultInjection';
export const GRAPHQL_API_KIND = 'GraphQLApi';
export const API_PORTAL_KIND = 'ApiPortal';
export const TRANSFORMATION_KIND = 'Transformation';

/** The kinds an ExtensionRef filter may name. */
const EXTENSION_KINDS: readonly string[] = [FAULT_INJECTION_KIND, GRAPHQL_API_KIND, API_PORTAL_KIND, TRANSFORMATION_KIND];

/** The weft.dev objects a route's ExtensionRef filters may name, compiled once per input. */
export interface ExtensionIndex {
  faults: FaultIndex;
  graphqlApis: GraphQLIndex;
  portals: PortalIndex;
  transformations: TransformationIndex;
}

/** A FaultInjection compiled once per input: the filter, or why it cannot be used. */
export interface CompiledFault {
  fault?: FaultInjection;
  problems: string[];
}

/** "ns/name" → compiled FaultInjection. */
export type FaultIndex = ReadonlyMap<string, CompiledFault>;

export function indexFaultInjections(faults: readonly FaultInjectionResource[]): Map<string, CompiledFault> {
  const index = new Map<string, CompiledFault>();
  for (const object of faults) {
    const key = `${serviceNamespace(object)}/${object.metadata.name}`;
    index.set(key, compileFault(object, key));
  }
  return index;
}

function compileFault(object: FaultInjectionResource, name: string): CompiledFault {
  const spec = object.spec;
  const problems: string[] = [];
  const fault: FaultInjection = { name };
  if (spec.delay) {
    const ms = parseGatewayDuration(spec.delay.fixedDelay);
    if (ms === undefined) problems.push(`spec.delay.fixedDelay: "${spec.delay.fixedDelay}" is not a duration`);
    else fault.delay = { ms, percent: spec.delay.percentage ?? 100 };
  }
  if (spec.abort) {
    const abort: NonNullable<FaultInjection['abort']> = { percent: spec.abort.percentage ?? 100 };
    if (spec.abort.httpStatus !== undefined) abort.httpStatus = spec.abort.httpStatus;
    if (spec.abort.grpcStatus !== undefined) abort.grpcStatus = spec.abort.grpcStatus;
    fault.abort = abort;
  }
  if (!fault.delay && !fault.abort && problems.length === 0) problems.push('spec: a FaultInjection needs a delay, an abort or both');
  const headers: ({ name: string } & StringMatch)[] = [];
  (spec.match?.headers ?? []).forEach((h, i) => {
    const type = h.type ?? 'Exact';
    if (type === 'RegularExpression') {
      try {
        new RegExp(`^(?:${h.value})$`);
      } catch (error) {
        problems.push(`spec.match.headers[${i}]: invalid regular expression "${h.value}": ${(error as Error).message}`);
      }
    }
    headers.push({ name: h.name.toLowerCase(), type, value: h.value });
  });
  if (headers.length > 0) fault.headers = headers;
  return problems.length > 0 ? { problems } : { fault, problems };
}

/**
 * An ExtensionRef filter in a route of `namespace`. A known, valid
 * FaultInjection, GraphQLApi, ApiPortal or Transformation becomes its filter; anything else is a ResolvedRefs problem
 * (InvalidKind for a kind weft does not know, BackendNotFound for a missing
 * or unusable object) and undefined: the Gateway API says such a filter must
 * not be skipped, so the caller makes the requests it covers answer 500.
 */
export function resolveExtensionRef(
  ref: { group: string; kind: string; name: string },
  where: string,
  namespace: string,
  extensions: ExtensionIndex,
  refProblems: RefProblem[],
): HttpFilter | undefined {
  if (ref.group !== EXTENSION_GROUP || !EXTENSION_KINDS.includes(ref.kind)) {
    refProblems.push({
      reason: 'InvalidKind',
      message: `${where}: ExtensionRef ${ref.group}/${ref.kind} is not a kind weft knows (it knows ${EXTENSION_GROUP}/${EXTENSION_KINDS.slice(0, -1).join(', ')} and ${EXTENSION_KINDS.at(-1)}); the requests it covers answer 500`,
    });
    return undefined;
  }
  const named = `${namespace}/${ref.name}`;
  const unusable = (why: string): undefined => {
    refProblems.push({ reason: 'BackendNotFound', message: `${where}: ${ref.kind} ${named} ${why}; the requests it covers answer 500` });
    return undefined;
  };
  if (ref.kind === API_PORTAL_KIND) {
    // What resolves is published; what does not is in the portal's own status.
    const portal = extensions.portals.get(named)?.portal;
    return portal ? { type: 'Portal', portal } : unusable('does not exist');
  }
  if (ref.kind === TRANSFORMATION_KIND) {
    const compiled = extensions.transformations.get(named);
    if (!compiled) return unusable('does not exist');
    return { type: 'Transformation', transformation: compiled };
  }
  if (ref.kind === GRAPHQL_API_KIND) {
    const compiled = extensions.graphqlApis.get(named);
    if (!compiled) return unusable('does not exist');
    return compiled.api ? { type: 'GraphQL', graphql: compiled.api } : unusable(`is invalid (${compiled.problems.join('; ')})`);
  }
  const compiled = extensions.faults.get(named);
  if (!compiled) return unusable('does not exist');
  return compiled.fault ? { type: 'FaultInjection', fault: compiled.fault } : unusable(`is invalid (${compiled.problems.join('; ')})`);
}
