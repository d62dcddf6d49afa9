// GraphQLApi objects → the snapshot's GraphQL filter: the schema checked with graphql-js, each resolver's field, placeholders and Service port checked.
import { buildSchema, GraphQLObjectType, isObjectType, type GraphQLSchema } from 'graphql';
import type { GraphQLApi, Service } from '../api/resources.ts';
import { GRAPHQL_PLACEHOLDER, servicePortKey, type SnapshotGraphQLApi, type SnapshotGraphQLResolver } from '../api/snapshot.ts';
import { parseGatewayDuration } from './duration.ts';
import { serviceNamespace } from './services.ts';

/** A GraphQLApi compiled once per input: the filter, or why it cannot be served. */
export interface CompiledGraphQLApi {
  api?: SnapshotGraphQLApi;
  problems: string[];
  /** The problems of the object alone (its schema and resolvers), not of the Services it names: what makes an update keep its last good version. */
  ownProblems: string[];
}

/** "ns/name" → compiled GraphQLApi. */
export type GraphQLIndex = ReadonlyMap<string, CompiledGraphQLApi>;

/** `services`: "ns/name" → Service (the resolvers' targets must exist and have the port). */
export function indexGraphQLApis(apis: readonly GraphQLApi[], services: ReadonlyMap<string, Service>): Map<string, CompiledGraphQLApi> {
  const index = new Map<string, CompiledGraphQLApi>();
  for (const object of apis) {
    const key = `${serviceNamespace(object)}/${object.metadata.name}`;
    index.set(key, compileGraphQLApi(object, key, services));
  }
  return index;
}

function compileGraphQLApi(object: GraphQLApi, name: string, services: ReadonlyMap<string, Service>): CompiledGraphQLApi {
  const spec = object.spec;
  const namespace = serviceNamespace(object);
  const problems: string[] = [];
  const refProblems: string[] = [];
  let schema: GraphQLSchema;
  try {
    schema = buildSchema(spec.schema);
  } catch (error) {
    const problem = `spec.schema: ${(error as Error).message.split('\n')[0]}`;
    return { problems: [problem], ownProblems: [problem] };
  }
  if (!schema.getQueryType()) problems.push('spec.schema: defines no Query type');
  const resolvers: Record<string, SnapshotGraphQLResolver> = {};
  for (const [field, { rest }] of Object.entries(spec.resolvers ?? {})) {
    const where = `spec.resolvers["${field}"]`;
    const [typeName, fieldName] = field.split('.') as [string, string];
    const type = schema.getType(typeName);
    if (!type || !isObjectType(type)) {
      problems.push(`${where}: the schema has no object type ${typeName}`);
      continue;
    }
    const definition = (type as GraphQLObjectType).getFields()[fieldName];
    if (!definition) {
      problems.push(`${where}: type ${typeName} has no field ${fieldName}`);
      continue;
    }
    const argNames = new Set(definition.args.map((a) => a.name));
    const parentFields = new Set(Object.keys((type as GraphQLObjectType).getFields()));
    for (const [, source, placeholder] of rest.path.matchAll(GRAPHQL_PLACEHOLDER)) {
      if (source === 'args' && !argNames.has(placeholder!)) problems.push(`${where}.rest.path: {args.${placeholder}}: field ${field} has no argument ${placeholder}`);
      if (source === 'parent' && !parentFields.has(placeholder!)) problems.push(`${where}.rest.path: {parent.${placeholder}}: type ${typeName} has no field ${placeholder}`);
    }
    const bodyArg = rest.body?.startsWith('args.') ? rest.body.slice('args.'.length) : undefined;
    if (bodyArg !== undefined && !argNames.has(bodyArg)) problems.push(`${where}.rest.body: field ${field} has no argument ${bodyArg}`);
    const service = services.get(`${namespace}/${rest.service}`);
    if (!service) {
      refProblems.push(`${where}.rest.service: Service ${namespace}/${rest.service} does not exist`);
      continue;
    }
    if (!(service.spec.ports ?? []).some((p) => p.port === rest.port)) {
      refProblems.push(`${where}.rest.port: Service ${namespace}/${rest.service} has no port ${rest.port}`);
      continue;
    }
    const resolver: SnapshotGraphQLResolver = {
      backend: servicePortKey(namespace, rest.service, rest.port),
      host: rest.service,
      method: rest.method ?? 'GET',
      path: rest.path,
      forwardHeaders: (rest.forwardHeaders ?? []).map((h) => h.toLowerCase()),
    };
    if (rest.body !== undefined) resolver.body = rest.body;
    if (rest.resultPath !== undefined) resolver.resultPath = rest.resultPath.split('.');
    resolvers[field] = resolver;
  }
  if (problems.length > 0 || refProblems.length > 0) return { problems: [...problems, ...refProblems], ownProblems: problems };
  return {
    api: {
      name,
      schema: spec.schema,
      resolvers,
      maxDepth: spec.maxDepth ?? 12,
      introspection: spec.introspection ?? true,
      timeoutMs: parseGatewayDuration(spec.timeout ?? '10s') ?? 10_000,
    },
    problems,
    ownProblems: problems,
  };
}
