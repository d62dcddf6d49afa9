// GraphQLApi filter: the proxy answers GraphQL requests itself (graphql-js), resolving the fields that have a resolver by REST calls to Services through the mesh.
//
// GraphQL over HTTP: GET with ?query= (queries only), or POST with a JSON
// body {query, variables, operationName}. A query that does not parse or
// validate (including one deeper than maxDepth, or an introspection when it
// is off) is answered 400 before anything is called. Fields with a resolver
// are REST calls to their Service port through the layers a routed request
// to it takes (layers/side-call: connect retries, balancer, circuit breaker,
// outlier detection, the forward layer's mTLS tunnel or straight connection,
// HTTP/2 to an h2c or gRPC port); the same call asked twice in one request
// is made once.
// A call that fails becomes a GraphQL error on its field, and the rest of the
// answer stands, as GraphQL executes. Fields without a resolver take the
// value of the same name from their parent object. graphql-js is loaded when
// a snapshot with such a route is applied: a proxy without one never loads it.
import type { OutgoingHttpHeaders } from 'node:http';
import { ErrorCodes } from '../../../api/errors.ts';
import { GRAPHQL_PLACEHOLDER, type HttpFilter, type SnapshotGraphQLApi, type SnapshotGraphQLResolver } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { readWholeBody } from '../body-buffer/index.ts';
import { filterOf } from '../filters.ts';
import { sendSideCall, sideCallSteps, type SideAnswer, type SideCallContext } from '../side-call/index.ts';

type GraphQLModule = typeof import('graphql');

/** The resolvers' calls are side calls: the snapshot's backends, the proxy's balancers and pools. */
export type GraphQLContext = SideCallContext;

/** The largest GraphQL request body read. */
export const MAX_GRAPHQL_REQUEST_BYTES = 1024 * 1024;
/** The largest answer of one REST call read. */
export const MAX_REST_ANSWER_BYTES = 8 * 1024 * 1024;


interface CompiledApi {
  graphql: GraphQLModule;
  schema: import('graphql').GraphQLSchema;
  rules: import('graphql').ValidationRule[];
  resolvers: ReadonlyMap<string, SnapshotGraphQLResolver>;
  api: SnapshotGraphQLApi;
}

let loading: Promise<GraphQLModule> | undefined;

export function graphqlEndpoint(context: GraphQLContext): Layer<{ filters: readonly HttpFilter[] }, HttpExchange> {
  return (target, next) => {
    const filter = filterOf(target.filters, 'GraphQL');
    if (!filter) return next;
    // Built when the snapshot is applied, not on the first request; a failure is every request's 500 (and no unhandled rejection meanwhile).
    const compiled = compileApi(filter.graphql);
    compiled.catch(() => {});
    // Each resolver's Service port gets the steps a routed request to it takes, built once per snapshot.
    const steps = sideCallSteps(Object.values(filter.graphql.resolvers).map((r) => r.backend), context);
    const caller: Caller = { steps, clock: context.clock };
    return async (ex) => {
      await serve(ex, await compiled, caller);
    };
  };
}

async function compileApi(api: SnapshotGraphQLApi): Promise<CompiledApi> {
  const graphql = await (loading ??= import('graphql'));
  const schema = graphql.buildSchema(api.schema);
  const rules = [...graphql.specifiedRules, depthLimit(graphql, api.maxDepth), ...(api.introspection ? [] : [graphql.NoSchemaIntrospectionCustomRule])];
  return { graphql, schema, rules, resolvers: new Map(Object.entries(api.resolvers)), api };
}

/** Refuses operations whose selections nest deeper than `max` (fragments followed), before anything runs. */
function depthLimit(graphql: GraphQLModule, max: number): import('graphql').ValidationRule {
  return (context) => {
    const fragments = new Map(context.getDocument().definitions.flatMap((d) => (d.kind === graphql.Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
    const depthOf = (set: import('graphql').SelectionSetNode | undefined, depth: number, seen: Set<string>): number => {
      if (!set) return depth;
      let deepest = depth;
      for (const selection of set.selections) {
        if (selection.kind === graphql.Kind.FIELD) deepest = Math.max(deepest, depthOf(selection.selectionSet, depth + 1, seen));
        else if (selection.kind === graphql.Kind.INLINE_FRAGMENT) deepest = Math.max(deepest, depthOf(selection.selectionSet, depth, seen));
        else if (!seen.has(selection.name.value)) {
          seen.add(selection.name.value);
          deepest = Math.max(deepest, depthOf(fragments.get(selection.name.value)?.selectionSet, depth, seen));
        }
      }
      return deepest;
    };
    return {
      OperationDefinition(node) {
        const depth = depthOf(node.selectionSet, 0, new Set());
        if (depth > max) context.reportError(new graphql.GraphQLError(`the query is ${depth} levels deep; this API allows ${max}`, { nodes: [node] }));
      },
    };
  };
}

interface GraphQLRequest {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** How a request's resolvers call their services: a step per backend key. */
interface Caller {
  steps: ReadonlyMap<string, Step<HttpExchange>>;
  clock: Clock;
}

async function serve(ex: HttpExchange, compiled: CompiledApi, caller: Caller): Promise<void> {
  const { graphql, schema } = compiled;
  if (ex.method !== 'GET' && ex.method !== 'POST') {
    return answer(ex, 405, { errors: [{ message: 'GraphQL is asked with GET (queries) or POST' }] }, { allow: 'GET, POST' });
  }
  const request = ex.method === 'GET' ? fromQuery(ex) : await fromBody(ex);
  if ('error' in request) return answer(ex, 400, { errors: [{ message: request.error }] });
  let document: import('graphql').DocumentNode;
  try {
    document = graphql.parse(request.query);
  } catch (error) {
    return answer(ex, 400, { errors: [{ message: (error as Error).message }] });
  }
  const invalid = graphql.validate(schema, document, compiled.rules);
  if (invalid.length > 0) return answer(ex, 400, { errors: invalid.map((e) => e.toJSON()) });
  const operation = graphql.getOperationAST(document, request.operationName);
  if (!operation) return answer(ex, 400, { errors: [{ message: request.operationName ? `no operation named ${request.operationName}` : 'the document holds several operations: name one (operationName)' }] });
  if (ex.method === 'GET' && operation.operation !== 'query') {
    return answer(ex, 405, { errors: [{ message: `a ${operation.operation} is sent with POST, not GET` }] }, { allow: 'POST' });
  }
  const calls = new Map<string, Promise<unknown>>();
  const result = await graphql.execute({
    schema,
    document,
    ...(request.variables ? { variableValues: request.variables } : {}),
    ...(request.operationName ? { operationName: request.operationName } : {}),
    fieldResolver: (source, args, _context, info) => {
      const resolver = compiled.resolvers.get(`${info.parentType.name}.${info.fieldName}`);
      if (!resolver) return source !== null && typeof source === 'object' ? (source as Record<string, unknown>)[info.fieldName] : undefined;
      return call(ex, resolver, compiled.api, source, args, caller, calls);
    },
  });
  return answer(ex, 200, result);
}

function fromQuery(ex: HttpExchange): GraphQLRequest | { error: string } {
  const params = ex.queryParams;
  const query = params.get('query');
  if (!query) return { error: 'a GET asks with ?query=' };
  const request: GraphQLRequest = { query };
  const variables = params.get('variables');
  if (variables) {
    try {
      request.variables = JSON.parse(variables) as Record<string, unknown>;
    } catch {
      return { error: '?variables= is not JSON' };
    }
  }
  const operationName = params.get('operationName');
  if (operationName) request.operationName = operationName;
  return request;
}

async function fromBody(ex: HttpExchange): Promise<GraphQLRequest | { error: string }> {
  const type = String(ex.headers['content-type'] ?? '').toLowerCase();
  if (!type.startsWith('application/json')) return { error: 'a POST carries application/json: {"query": ..., "variables": ..., "operationName": ...}' };
  const body = await readWholeBody(ex, MAX_GRAPHQL_REQUEST_BYTES, () => proxyError(ErrorCodes.BAD_REQUEST, `a GraphQL request may be at most ${MAX_GRAPHQL_REQUEST_BYTES} bytes`, 413));
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { error: 'the body is not JSON' };
  }
  const fields = parsed as Partial<Record<keyof GraphQLRequest, unknown>> | null;
  if (typeof fields !== 'object' || fields === null || typeof fields.query !== 'string') return { error: 'the body has no "query" string' };
  if (fields.variables !== undefined && fields.variables !== null && (typeof fields.variables !== 'object' || Array.isArray(fields.variables))) return { error: '"variables" must be an object' };
  if (fields.operationName !== undefined && fields.operationName !== null && typeof fields.operationName !== 'string') return { error: '"operationName" must be a string' };
  const request: GraphQLRequest = { query: fields.query };
  if (fields.variables) request.variables = fields.variables as Record<string, unknown>;
  if (fields.operationName) request.operationName = fields.operationName;
  return request;
}

function answer(ex: HttpExchange, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const headers: Headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store', ...extra };
  // The rule's ResponseHeaderModifier applies to this answer as to a backend's.
  if (ex.responseEdits) for (const edit of ex.responseEdits) edit(headers);
  ex.res.writeHead(status, headers as OutgoingHttpHeaders);
  ex.res.end(text);
}

/** A placeholder's value in a path: strings and numbers as they are, URL-encoded; anything else is refused. */
function pathValue(value: unknown, what: string): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return encodeURIComponent(String(value));
  throw new Error(`${what} is ${value === undefined || value === null ? 'missing' : 'not a string or number'}, so the REST path cannot be made`);
}

/** One REST call for one field (made once per request for the same method, path and body). */
function call(
  ex: HttpExchange,
  resolver: SnapshotGraphQLResolver,
  api: SnapshotGraphQLApi,
  source: unknown,
  args: Record<string, unknown>,
  caller: Caller,
  calls: Map<string, Promise<unknown>>,
): Promise<unknown> {
  const parent = (source ?? {}) as Record<string, unknown>;
  const path = resolver.path.replace(GRAPHQL_PLACEHOLDER, (_whole, from: string, name: string) =>
    pathValue(from === 'args' ? args[name] : parent[name], `${from === 'args' ? 'argument' : 'field'} ${name}`),
  );
  const bodyValue = resolver.body === undefined ? undefined : resolver.body === 'args' ? args : args[resolver.body.slice('args.'.length)];
  const body = bodyValue === undefined ? null : Buffer.from(JSON.stringify(bodyValue));
  const key = `${resolver.backend} ${resolver.method} ${path} ${body?.toString('utf8') ?? ''}`;
  let pending = calls.get(key);
  if (!pending) {
    pending = send(ex, resolver, api, path, body, caller).then((value) => pick(value, resolver.resultPath));
    calls.set(key, pending);
  }
  return pending;
}

function pick(value: unknown, resultPath: readonly string[] | undefined): unknown {
  let at = value;
  for (const step of resultPath ?? []) at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[step] : undefined;
  return at;
}

async function send(ex: HttpExchange, resolver: SnapshotGraphQLResolver, api: SnapshotGraphQLApi, path: string, body: Buffer | null, caller: Caller): Promise<unknown> {
  const what = `${resolver.method} http://${resolver.host}${path}`;
  const step = caller.steps.get(resolver.backend);
  if (!step) throw new Error(`${what}: the proxy has no backend ${resolver.backend}`);
  const headers: Headers = { host: resolver.host, accept: 'application/json' };
  for (const name of resolver.forwardHeaders) {
    const value = ex.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  let answered: SideAnswer;
  try {
    answered = await sendSideCall(step, ex, { method: resolver.method, path, headers, body, timeoutMs: api.timeoutMs, limitBytes: MAX_REST_ANSWER_BYTES }, caller.clock);
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`);
  }
  // A resource that is not there is a null field, as GraphQL has it; any other failure is an error on the field.
  if (answered.status === 404) return null;
  if (answered.status < 200 || answered.status > 299) throw new Error(`${what} answered ${answered.status}`);
  const text = answered.body.toString('utf8');
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} answered something other than JSON`);
  }
}
