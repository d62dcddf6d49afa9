// ApiPortal objects → the snapshot's Portal filter: each API's base URLs and operations from its routes, its authentication from its Gateways' RequestAuthentications and CUSTOM AuthorizationPolicies, its GraphQL schema and OpenAPI document.
import type { ApiPortal, Gateway, HTTPRoute } from '../api/resources.ts';
import type { SnapshotPortal, SnapshotPortalApi } from '../api/snapshot.ts';
import { parseYamlValue } from '../api/yaml.ts';
import type { GraphQLIndex } from './graphql.ts';
import { gatewayAuthorization, indexAuthorizationPolicies } from './authorization.ts';
import { gatewayRequestAuthentication } from './request-authentication.ts';
import { serviceNamespace } from './services.ts';
import type { CompilerInput } from './types.ts';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** An ApiPortal compiled once per input: what it publishes, and what it could not (a route or API that is not there, an OpenAPI document that does not parse). */
export interface CompiledPortal {
  portal: SnapshotPortal;
  problems: string[];
  /** The problems of the object alone: what makes an update keep its last good version. */
  ownProblems: string[];
}

export type PortalIndex = ReadonlyMap<string, CompiledPortal>;

export function indexApiPortals(input: CompilerInput, graphqlApis: GraphQLIndex): Map<string, CompiledPortal> {
  const index = new Map<string, CompiledPortal>();
  for (const object of input.apiPortals ?? []) index.set(`${serviceNamespace(object)}/${object.metadata.name}`, compilePortal(object, input, graphqlApis));
  return index;
}

/** The OpenAPI document as JSON text, or why not. */
export function openApiJson(text: string): { json?: string; problem?: string } {
  let value: unknown;
  try {
    value = parseYamlValue(text);
  } catch (error) {
    return { problem: `does not parse as JSON or YAML: ${(error as Error).message.split('\n')[0]}` };
  }
  const doc = value as { openapi?: unknown; swagger?: unknown } | null;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || (typeof doc.openapi !== 'string' && typeof doc.swagger !== 'string')) {
    return { problem: 'is not an OpenAPI document (an object with an "openapi" or "swagger" version)' };
  }
  return { json: JSON.stringify(doc) };
}

function compilePortal(object: ApiPortal, input: CompilerInput, graphqlApis: GraphQLIndex): CompiledPortal {
  const namespace = serviceNamespace(object);
  const problems: string[] = [];
  const ownProblems: string[] = [];
  const portal: SnapshotPortal = { name: `${namespace}/${object.metadata.name}`, title: object.spec.title, apis: [] };
  if (object.spec.description) portal.description = object.spec.description;
  object.spec.apis.forEach((spec, i) => {
    const where = `spec.apis[${i}]`;
    const api: SnapshotPortalApi = { name: spec.name, title: spec.title ?? spec.name, baseUrls: [], operations: [], authentication: [] };
    if (spec.description) api.description = spec.description;
    const graphqlPaths: string[] = [];
    for (const [r, ref] of (spec.routes ?? []).entries()) {
      const route = input.httpRoutes.find((h) => serviceNamespace(h) === namespace && h.metadata.name === ref.name);
      if (!route) {
        problems.push(`${where}.routes[${r}]: HTTPRoute ${namespace}/${ref.name} does not exist`);
        continue;
      }
      describeRoute(route, namespace, input, api, graphqlPaths, spec.graphql?.name);
    }
    if (spec.graphql) {
      const compiled = graphqlApis.get(`${namespace}/${spec.graphql.name}`);
      if (!compiled) problems.push(`${where}.graphql: GraphQLApi ${namespace}/${spec.graphql.name} does not exist`);
      else if (!compiled.api) problems.push(`${where}.graphql: GraphQLApi ${namespace}/${spec.graphql.name} is invalid`);
      else api.graphql = { schema: compiled.api.schema, paths: graphqlPaths };
    }
    if (spec.openapi !== undefined) {
      const { json, problem } = openApiJson(spec.openapi);
      if (problem) ownProblems.push(`${where}.openapi: ${problem}`);
      else api.openapi = json!;
    }
    api.baseUrls = [...new Set(api.baseUrls)].sort();
    api.authentication = [...new Set(api.authentication)];
    portal.apis.push(api);
  });
  return { portal, problems: [...ownProblems, ...problems], ownProblems };
}

/** A route's operations (its matches), base URLs (hostnames on its Gateways' HTTP listeners) and its Gateways' authentication. */
function describeRoute(route: HTTPRoute, namespace: string, input: CompilerInput, api: SnapshotPortalApi, graphqlPaths: string[], graphqlName: string | undefined): void {
  for (const rule of route.spec.rules ?? [{}]) {
    const servesGraphQL = (rule.filters ?? []).some((f) => f.type === 'ExtensionRef' && f.extensionRef?.kind === 'GraphQLApi' && f.extensionRef.name === graphqlName);
    for (const match of rule.matches ?? [{}]) {
      const path = match.path?.value ?? '/';
      const pathType = match.path?.type ?? 'PathPrefix';
      api.operations.push({ methods: match.method ? [match.method] : [], path, pathType });
      if (servesGraphQL) graphqlPaths.push(path);
    }
  }
  for (const parent of route.spec.parentRefs ?? []) {
    if ((parent.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (parent.kind ?? 'Gateway') !== 'Gateway') continue;
    const gwNamespace = parent.namespace ?? namespace;
    const gateway = (input.gateways ?? []).find((g) => serviceNamespace(g) === gwNamespace && g.metadata.name === parent.name) as Gateway | undefined;
    if (!gateway) continue;
    for (const listener of gateway.spec.listeners ?? []) {
      if (parent.sectionName !== undefined && listener.name !== parent.sectionName) continue;
      if (parent.port !== undefined && listener.port !== parent.port) continue;
      const scheme = listener.protocol === 'HTTPS' ? 'https' : listener.protocol === 'HTTP' ? 'http' : undefined;
      if (!scheme) continue;
      const port = (scheme === 'http' && listener.port === 80) || (scheme === 'https' && listener.port === 443) ? '' : `:${listener.port}`;
      const hosts = route.spec.hostnames?.length ? route.spec.hostnames : [listener.hostname ?? '<gateway address>'];
      for (const host of hosts) api.baseUrls.push(`${scheme}://${host}${port}`);
    }
    const rules = gatewayRequestAuthentication(input, gwNamespace, gateway.metadata.name);
    for (const keys of rules.apiKeys) {
      const places = [...keys.fromHeaders.map((h) => `header ${h.name}${h.prefix ? ` (prefix "${h.prefix.trim()}")` : ''}`), ...keys.fromParams.map((p) => `query parameter ${p}`)];
      api.authentication.push(`API key in ${places.join(' or ')}`);
    }
    for (const jwt of rules.jwtRules) {
      const places = [...jwt.fromHeaders.map((h) => `header ${h.name}${h.prefix ? ` (prefix "${h.prefix.trim()}")` : ''}`), ...jwt.fromParams.map((p) => `query parameter ${p}`), ...jwt.fromCookies.map((c) => `cookie ${c}`)];
      api.authentication.push(`JWT from ${jwt.issuer} in ${places.join(' or ')}`);
    }
    // CUSTOM policies on the Gateway: a caller should know that an external service decides some requests (a login redirect, say).
    for (const policy of gatewayAuthorization(indexAuthorizationPolicies(input), gwNamespace, gateway.metadata.name)?.custom ?? []) {
      if (policy.provider) api.authentication.push(`requests matching ${policy.name} are checked by the external authorization service ${policy.provider.name}`);
    }
  }
}
