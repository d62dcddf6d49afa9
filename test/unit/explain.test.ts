// `weft explain`'s evaluator: hypothetical requests against snapshots the real compiler makes, one routing or policy situation per test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { ErrorCodes } from '../../src/api/errors.ts';
import type { ExplainRequest, ExplainTrace, LiveProxyState } from '../../src/api/explain.ts';
import type { Resource } from '../../src/api/meta.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { explainRequest } from '../../src/compiler/explain.ts';
import { explainFromConfig } from '../../src/control/explain.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import { fetchLiveState, formatTrace, parseHeaderFlag } from '../../src/cli/explain.ts';
import { startAdmin } from '../../src/proxy/admin.ts';
import { BalancerRegistry } from '../../src/proxy/layers/balancer/balancers.ts';
import { RateLimiterRegistry } from '../../src/proxy/layers/rate-limit/index.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';

const FIELDS: Record<string, keyof CompilerInput> = {
  Service: 'services',
  Workload: 'workloads',
  HTTPRoute: 'httpRoutes',
  GRPCRoute: 'grpcRoutes',
  TCPRoute: 'tcpRoutes',
  TLSRoute: 'tlsRoutes',
  FaultInjection: 'faultInjections',
  GraphQLApi: 'graphqlApis',
  Transformation: 'transformations',
  RateLimitPolicy: 'rateLimitPolicies',
  BackendTrafficPolicy: 'backendTrafficPolicies',
  Gateway: 'gateways',
  GatewayClass: 'gatewayClasses',
};

/** The mesh every test starts from: a client, reviews (v1, v2) and ratings, each with one ready instance. */
const BASE = `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: shop}
spec: {serviceAccount: client}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-1, namespace: shop, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, address: 10.0.0.1, tunnelPort: 15008, ports: [{port: 9080}]}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: reviews-2, namespace: shop, labels: {app: reviews, version: v2}}
spec: {serviceAccount: reviews, address: 10.0.0.2, tunnelPort: 15008, ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: shop}
spec: {selector: {app: reviews, version: v1}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec: {selector: {app: reviews, version: v2}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {selector: {app: ratings}, ports: [{name: http, port: 8080}]}
`;

const T0 = '2025-01-01T00:00:00Z';

function load(extra: string): CompilerInput {
  const input: Record<string, unknown[]> = { services: [], workloads: [], httpRoutes: [], namespaces: [] };
  const docs = parseAllDocuments(BASE + '\n---\n' + extra).map((d) => d.toJSON() as Record<string, unknown> | null);
  docs.forEach((raw, i) => {
    if (!raw) return;
    const result = validateResource(raw);
    if (!result.ok) assert.fail(`document ${i}: ${JSON.stringify(result.issues)}`);
    const resource = result.resource as Resource;
    resource.metadata.generation ??= 1;
    // Creation order is document order, so that precedence ties break the way the test reads.
    resource.metadata.creationTimestamp ??= new Date(Date.parse(T0) + i * 1000).toISOString();
    const field = FIELDS[resource.kind];
    assert.ok(field, `no input field for ${resource.kind}`);
    (input[field] ??= []).push(resource);
  });
  return input as unknown as CompilerInput;
}

const clientNode: NodeInfo = { id: 'shop/client-0', mode: 'sidecar', namespace: 'shop', workload: 'client', address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };

function explain(extra: string, request: Partial<ExplainRequest> & { url: string }, node = clientNode): ExplainTrace {
  const snapshot = compile(load(extra), node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  const source = node.mode === 'gateway' ? { kind: 'gateway' as const, name: node.gateway! } : { kind: 'workload' as const, name: `${node.namespace}/${node.workload}` };
  const trace = explainRequest(snapshot, { method: 'GET', ...request }, source);
  // Every trace renders as text without throwing, with its verdict first.
  assert.match(formatTrace(trace), /Verdict: /);
  return trace;
}

function httpRoute(name: string, rules: string, parent = '{group: "", kind: Service, name: reviews, port: 9080}', namespace = 'shop'): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  parentRefs: [${parent}]
  rules:
${rules}
---`;
}

const ratingsEndpoint = `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings-1, namespace: shop, labels: {app: ratings}}
spec: {serviceAccount: ratings, address: 10.0.0.9, tunnelPort: 15008, ports: [{port: 8080}]}
---`;

test('exact, prefix and regular-expression paths: the first matching rule wins, earlier ones say why not', () => {
  const route = httpRoute(
    'paths',
    `    - matches: [{path: {type: Exact, value: /health}}]
      backendRefs: [{name: reviews-v1, port: 9080}]
    - matches: [{path: {type: RegularExpression, value: "/reviews/[0-9]+"}}]
      backendRefs: [{name: reviews-v2, port: 9080}]
    - matches: [{path: {type: PathPrefix, value: /items}}]
      backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const exact = explain(route, { url: 'http://reviews:9080/health' });
  assert.equal(exact.verdict.outcome, 'forwarded');
  assert.equal(exact.backends[0]!.key, 'shop/reviews-v1:9080');
  assert.equal(exact.entry!.summary, 'reviews:9080 is service shop/reviews port 9080 (http), http');

  const regex = explain(route, { url: 'http://reviews.shop:9080/reviews/42?x=1' });
  const matched = regex.rules.find((r) => r.result === 'matched')!;
  assert.match(matched.why, /path RegularExpression/);
  assert.equal(regex.backends[0]!.key, 'shop/reviews-v2:9080');
  assert.ok(regex.rules.some((r) => r.result === 'no-match' && /needs path Exact "\/health" \(the request has path is \/reviews\/42\)/.test(r.why)));
  // Gateway API precedence: Exact, then the longest PathPrefix, then RegularExpression; a later rule that also matches is shadowed, not silently ignored.
  const both = explain(route, { url: 'http://reviews:9080/items/7' });
  assert.equal(both.rule!.id, 'shop/paths/2/0');
  assert.equal(both.rules.at(-1)!.result, 'no-match');

  const prefix = explain(route, { url: 'http://reviews:9080/items/abc' });
  assert.equal(prefix.rules.find((r) => r.result === 'matched')!.conditions[0]!.describe, 'path PathPrefix "/items"');
  // Segment-wise prefix: /itemsX matches no rule at all.
  const none = explain(route, { url: 'http://reviews:9080/itemsX' });
  assert.equal(none.verdict.outcome, 'no-route');
  assert.equal(none.verdict.status, 404);
  assert.equal(none.verdict.reason, ErrorCodes.NO_ROUTE);
});

test('header, query and method matches: a mismatch names the condition and what the request has', () => {
  const route = httpRoute(
    'conditions',
    `    - matches: [{method: POST, headers: [{name: x-env, value: canary}], queryParams: [{name: debug, value: "1"}]}]
      backendRefs: [{name: reviews-v2, port: 9080}]
    - backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const miss = explain(route, { method: 'GET', url: 'http://reviews:9080/?debug=0', headers: { 'X-Env': 'prod' } });
  const first = miss.rules[0]!;
  assert.equal(first.result, 'no-match');
  assert.deepEqual(first.conditions.filter((c) => !c.ok).map((c) => c.describe), ['method POST', 'header x-env = "canary"', 'query debug = "1"']);
  assert.match(first.why, /method POST/);
  assert.match(first.why, /x-env: prod/);
  assert.match(first.why, /debug=0/);
  assert.equal(miss.backends[0]!.key, 'shop/reviews-v1:9080');

  const hit = explain(route, { method: 'post', url: 'http://reviews:9080/?debug=1', headers: { 'x-env': 'canary' } });
  assert.equal(hit.rules[0]!.result, 'matched');
  assert.equal(hit.backends[0]!.key, 'shop/reviews-v2:9080');
});

test('precedence between two routes: the more specific match wins, the other is shadowed', () => {
  const a = httpRoute('broad', `    - matches: [{path: {type: PathPrefix, value: /api}}]\n      backendRefs: [{name: reviews-v1, port: 9080}]`);
  const b = httpRoute('narrow', `    - matches: [{path: {type: PathPrefix, value: /api/v2}}]\n      backendRefs: [{name: reviews-v2, port: 9080}]`);
  const trace = explain(a + b, { url: 'http://reviews:9080/api/v2/x' });
  assert.equal(trace.rule!.id, 'shop/narrow/0/0');
  const broad = trace.rules.find((r) => r.id === 'shop/broad/0/0')!;
  assert.equal(broad.result, 'shadowed');
  assert.match(broad.why, /shop\/narrow\/0\/0 comes first in precedence order/);
});

test('unknown host: no route, 502 WEFT_ERR_NO_ROUTE, with a hint when the short name exists elsewhere', () => {
  const trace = explain('', { url: 'http://reviewz:9080/' });
  assert.equal(trace.verdict.outcome, 'no-route');
  assert.equal(trace.verdict.status, 502);
  assert.equal(trace.verdict.reason, ErrorCodes.NO_ROUTE);
  assert.match(trace.verdict.summary, /no mesh service/);
  const wrongPort = explain('', { url: 'http://reviews:1234/' });
  assert.match(wrongPort.verdict.summary, /the service has no port 1234 \(ports: 9080\)/);
  const other = explain('', { url: 'http://ratings.elsewhere/' });
  assert.match(other.verdict.summary, /did you mean ratings\.shop/);
});

test('backend with no ready endpoint: no healthy endpoint, 503 WEFT_ERR_NO_HEALTHY_UPSTREAM', () => {
  const trace = explain('', { url: 'http://ratings:8080/' });
  assert.equal(trace.verdict.outcome, 'no-healthy-endpoint');
  assert.equal(trace.verdict.status, 503);
  assert.equal(trace.verdict.reason, ErrorCodes.NO_HEALTHY_UPSTREAM);
  assert.equal(trace.rules[0]!.id, 'default');
  const withOne = explain(ratingsEndpoint, { url: 'http://ratings:8080/' });
  assert.equal(withOne.verdict.outcome, 'forwarded');
  assert.deepEqual(withOne.backends[0]!.endpoints.map((e) => [e.id, e.address, e.available]), [['shop/ratings-1', '10.0.0.9', true]]);
});

test('weighted split with one share unable to serve: forwarded, with the failing share as a risk', () => {
  const route = httpRoute('split', `    - backendRefs: [{name: reviews-v1, port: 9080, weight: 80}, {name: ratings, port: 8080, weight: 20}]`);
  const trace = explain(route, { url: 'http://reviews:9080/' });
  assert.deepEqual(trace.backends.map((b) => [b.key, b.percent]), [['shop/reviews-v1:9080', 80], ['shop/ratings:8080', 20]]);
  assert.equal(trace.verdict.outcome, 'forwarded');
  assert.ok(trace.risks.some((r) => r.percent === 20 && r.reason === ErrorCodes.NO_HEALTHY_UPSTREAM));
});

test('a GraphQLApi rule: the proxy answers it, and the trace names the calls its resolvers would make', () => {
  const api = `
apiVersion: weft.dev/v1alpha1
kind: GraphQLApi
metadata: {name: shop-api, namespace: shop}
spec:
  schema: "type Query { rating(id: ID!): Int }"
  resolvers:
    Query.rating: {rest: {service: ratings, port: 8080, path: "/ratings/{args.id}"}}
---`;
  const route = httpRoute('graphql', `    - matches: [{path: {type: Exact, value: /graphql}}]
      filters: [{type: ExtensionRef, extensionRef: {group: weft.dev, kind: GraphQLApi, name: shop-api}}]`);
  const trace = explain(api + route, { method: 'POST', url: 'http://reviews:9080/graphql' });
  assert.equal(trace.verdict.outcome, 'graphql');
  assert.equal(trace.verdict.status, 200);
  assert.equal(trace.verdict.summary, 'the proxy answers it as GraphQLApi shop/shop-api, calling shop/ratings:8080 for the fields the query asks for');
  assert.equal(trace.rule!.filters[0]!.effect, 'resolvers call Query.rating → GET http://ratings/ratings/{args.id}');
  assert.match(formatTrace(trace), /Verdict: GRAPHQL/);
});

test('a Transformation rule: the trace lists what each side rewrites and what is extracted, and the request is forwarded', () => {
  const transformation = `
apiVersion: weft.dev/v1alpha1
kind: Transformation
metadata: {name: v2, namespace: shop}
spec:
  extract: [{name: user, value: "{{ request.header.authorization }}", regex: "^Bearer (.+)$"}]
  request: {headers: {set: [{name: x-user, value: "{{ extract.user }}"}], remove: [x-debug]}, body: {json: {user: "{{ extract.user }}"}}}
  response: {body: {text: "{{ response.body.id }}", contentType: text/plain}}
---`;
  const route = httpRoute('v2', `    - matches: [{path: {type: PathPrefix, value: /v2}}]
      filters: [{type: ExtensionRef, extensionRef: {group: weft.dev, kind: Transformation, name: v2}}]
      backendRefs: [{name: reviews-v1, port: 9080}]`);
  const trace = explain(transformation + route, { method: 'POST', url: 'http://reviews:9080/v2/x' });
  assert.equal(trace.verdict.outcome, 'forwarded');
  const filter = trace.rule!.filters[0]!;
  assert.equal(filter.type, 'Transformation');
  assert.equal(filter.describe, 'Transformation shop/v2: request: remove x-debug, set x-user, a new JSON body; response: a new text/plain body');
  assert.equal(filter.effect, 'extracts user from the request');
});

test('redirect and rewrite: the Location and the rewritten path as the proxy would build them', () => {
  const route = httpRoute(
    'moves',
    `    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters: [{type: RequestRedirect, requestRedirect: {scheme: https, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}}]
    - matches: [{path: {type: PathPrefix, value: /v1}}]
      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /api}}}, {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-from, value: explain}]}}]
      backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const redirect = explain(route, { url: 'http://reviews:9080/old/page?q=1' });
  assert.equal(redirect.verdict.outcome, 'redirected');
  assert.equal(redirect.verdict.status, 301);
  assert.match(redirect.verdict.summary, /answers 301, Location: https:\/\/reviews\/new\/page\?q=1/);
  const rewrite = explain(route, { url: 'http://reviews:9080/v1/items?q=1' });
  assert.equal(rewrite.verdict.outcome, 'forwarded');
  const filters = rewrite.rule!.filters;
  assert.equal(filters.find((f) => f.type === 'URLRewrite')!.effect, 'path becomes /api/items?q=1');
  assert.match(filters.find((f) => f.type === 'RequestHeaderModifier')!.describe, /set x-from: explain/);
  // Listed in the order the proxy runs them: header modifier before the rewrite.
  assert.deepEqual(filters.map((f) => f.type), ['RequestHeaderModifier', 'URLRewrite']);
});

test('mirror: the mirrored backend and its share', () => {
  const route = httpRoute(
    'mirror',
    `    - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: reviews-v2, port: 9080}, percent: 25}}]
      backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const trace = explain(route, { url: 'http://reviews:9080/' });
  assert.match(trace.rule!.filters[0]!.describe, /mirror 25 % of requests to shop\/reviews-v2:9080/);
  assert.equal(trace.verdict.outcome, 'forwarded');
});

const FAULTS = `
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: outage, namespace: shop}
spec:
  abort: {httpStatus: 503, percentage: 100}
  match: {headers: [{name: x-chaos, value: "on"}]}
---
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: flaky, namespace: shop}
spec:
  delay: {fixedDelay: 200ms, percentage: 50}
  abort: {httpStatus: 500, percentage: 10}
---`;

test('fault injection: an abort at 100 % is "denied by policy" (WEFT_ERR_FAULT_INJECTED), partial faults are risks', () => {
  const route = httpRoute(
    'chaos',
    `    - filters: [{type: ExtensionRef, extensionRef: {group: weft.dev, kind: FaultInjection, name: outage}}, {type: ExtensionRef, extensionRef: {group: weft.dev, kind: FaultInjection, name: flaky}}]
      backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const denied = explain(FAULTS + route, { url: 'http://reviews:9080/', headers: { 'x-chaos': 'on' } });
  assert.equal(denied.verdict.outcome, 'denied');
  assert.equal(denied.verdict.status, 503);
  assert.equal(denied.verdict.reason, ErrorCodes.FAULT_INJECTED);
  assert.match(denied.verdict.summary, /denied by policy: FaultInjection shop\/outage aborts 100 %/);
  const spared = explain(FAULTS + route, { url: 'http://reviews:9080/' });
  assert.equal(spared.verdict.outcome, 'forwarded');
  assert.match(spared.rule!.filters.find((f) => /outage/.test(f.describe))!.effect!, /lacks the headers/);
  assert.ok(spared.risks.some((r) => r.percent === 50 && /delays 50 %.*200 ms/.test(r.why)));
  assert.ok(spared.risks.some((r) => r.percent === 10 && r.reason === ErrorCodes.FAULT_INJECTED));
});

const LIMIT = `
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: per-user, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]
  limits: [{name: users, requests: 5, interval: 1s, descriptors: [{type: Header, header: x-user}]}]
---`;

function live(parts: Partial<LiveProxyState>): LiveProxyState {
  return { proxy: 'shop/client-abc', readAt: T0, backends: [], rateLimits: [], ...parts };
}

test('rate limit: its key for this request; an exhausted bucket in the live state is "denied by policy" (429 WEFT_ERR_RATE_LIMITED)', () => {
  const route = httpRoute('limited', `    - backendRefs: [{name: reviews-v1, port: 9080}]`);
  const fresh = explain(LIMIT + route, { url: 'http://reviews:9080/', headers: { 'x-user': 'alice' } });
  const limit = fresh.rule!.rateLimits[0]!;
  assert.deepEqual(limit.key, ['Header x-user=alice']);
  assert.equal(limit.requests, 5);
  assert.equal(fresh.verdict.outcome, 'forwarded');
  assert.equal(fresh.live.used, false);
  const state = live({ rateLimits: [{ id: limit.id, size: 2, buckets: [{ key: 'alice', tokens: 0.2 }, { key: 'bob', tokens: 4 }] }] });
  const denied = explain(LIMIT + route, { url: 'http://reviews:9080/', headers: { 'x-user': 'alice' }, live: state });
  assert.equal(denied.verdict.outcome, 'denied');
  assert.equal(denied.verdict.status, 429);
  assert.equal(denied.verdict.reason, ErrorCodes.RATE_LIMITED);
  assert.equal(denied.rule!.rateLimits[0]!.exhausted, true);
  const bob = explain(LIMIT + route, { url: 'http://reviews:9080/', headers: { 'x-user': 'bob' }, live: state });
  assert.equal(bob.verdict.outcome, 'forwarded');
  assert.equal(bob.rule!.rateLimits[0]!.tokensLeft, 4);
});

test('session persistence, timeouts, retries and grpc-timeout', () => {
  const route = httpRoute(
    'sticky',
    `    - sessionPersistence: {sessionName: cart, type: Cookie, absoluteTimeout: 1h}
      timeouts: {request: 5s, backendRequest: 1s}
      retry: {codes: [503], attempts: 2, backoff: 100ms}
      backendRefs: [{name: reviews-v1, port: 9080}]`,
  );
  const trace = explain(route, { url: 'http://reviews:9080/', headers: { cookie: 'a=1; cart=xyz', 'grpc-timeout': '2S' } });
  const session = trace.rule!.filters.find((f) => f.type === 'SessionPersistence')!;
  assert.match(session.effect!, /brings a cookie cart/);
  assert.equal(trace.timeouts!.requestMs, 5000);
  assert.equal(trace.timeouts!.backendRequestMs, 1000);
  assert.equal(trace.timeouts!.grpcTimeoutMs, 2000);
  assert.equal(trace.timeouts!.effectiveMs, 2000);
  assert.match(trace.timeouts!.summary, /2000 ms.*grpc-timeout/);
  assert.equal(trace.retry!.attempts, 3);
  assert.match(trace.retry!.summary, /up to 2 retries on 503/);
  const plain = explain('', { url: 'http://reviews:9080/' });
  assert.equal(plain.retry!.attempts, 2);
  assert.match(plain.timeouts!.summary, /no request timeout/);
});

const POLICY = `
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: reviews, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: reviews-v1}]
  circuitBreaker: {maxParallelRequests: 2}
  outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 30s}
  retryBudget: {percent: 20, minRetriesPerSecond: 5}
---
apiVersion: weft.dev/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: checkout-only, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: checkout}]
  circuitBreaker: {maxParallelRequests: 1}
---`;

test('route-targeted BackendTrafficPolicy: the route gets its own variant of the backend', () => {
  const route = httpRoute('checkout', `    - backendRefs: [{name: reviews-v2, port: 9080}]`);
  const trace = explain(POLICY + route, { url: 'http://reviews:9080/' });
  const backend = trace.backends[0]!;
  assert.equal(backend.variant, 'HTTPRoute/shop/checkout');
  assert.equal(backend.traffic!.policy, 'shop/checkout-only');
  assert.equal(backend.circuitBreaker!.maxRequests, 1);
  assert.match(backend.key!, /^shop\/reviews-v2:9080~/);
});

test('circuit breaker at its limit (live): circuit open, 503 WEFT_ERR_CIRCUIT_OPEN', () => {
  const route = httpRoute('to-v1', `    - backendRefs: [{name: reviews-v1, port: 9080}]`);
  const key = 'shop/reviews-v1:9080';
  const endpoints = [{ id: 'shop/reviews-1', inFlight: 2, ejectedForMs: 0, ejections: 0, healthy: true, consecutive5xx: 0, consecutiveGatewayErrors: 0, consecutiveConnectFailures: 0 }];
  const atLimit = explain(POLICY + route, { url: 'http://reviews:9080/', live: live({ backends: [{ key, requests: 2, pending: 0, retries: 0, healthChecked: false, endpoints }] }) });
  assert.equal(atLimit.verdict.outcome, 'circuit-open');
  assert.equal(atLimit.verdict.status, 503);
  assert.equal(atLimit.verdict.reason, ErrorCodes.CIRCUIT_OPEN);
  assert.deepEqual(atLimit.backends[0]!.circuitBreaker!.live, { requests: 2, pending: 0, retries: 0 });
  assert.deepEqual(atLimit.retry!.budgets, [{ backend: key, percent: 20, minRetriesPerSecond: 5, windowMs: 10000 }]);
  const below = explain(POLICY + route, { url: 'http://reviews:9080/', live: live({ backends: [{ key, requests: 1, pending: 0, retries: 0, healthChecked: false, endpoints }] }) });
  assert.equal(below.verdict.outcome, 'forwarded');
  assert.equal(below.backends[0]!.circuitBreaker!.open, false);
});

test('outlier-ejected endpoint (live): out of rotation; every endpoint ejected is panic mode', () => {
  const key = 'shop/reviews:9080';
  const ep = (id: string, ejectedForMs: number) => ({ id, inFlight: 0, ejectedForMs, ejections: ejectedForMs ? 1 : 0, healthy: true, consecutive5xx: ejectedForMs ? 3 : 0, consecutiveGatewayErrors: 0, consecutiveConnectFailures: 0 });
  const one = explain('', { url: 'http://reviews:9080/', live: live({ backends: [{ key, requests: 0, pending: 0, retries: 0, healthChecked: false, endpoints: [ep('shop/reviews-1', 28_000), ep('shop/reviews-2', 0)] }] }) });
  const [first, second] = one.backends[0]!.endpoints;
  assert.equal(first!.available, false);
  assert.match(first!.state, /ejected by outlier detection for 28 s more/);
  assert.equal(second!.available, true);
  assert.equal(one.verdict.outcome, 'forwarded');
  assert.ok(one.risks.some((r) => /shop\/reviews-1 is out of rotation/.test(r.why)));
  const all = explain('', { url: 'http://reviews:9080/', live: live({ backends: [{ key, requests: 0, pending: 0, retries: 0, healthChecked: false, endpoints: [ep('shop/reviews-1', 5000), ep('shop/reviews-2', 5000)] }] }) });
  assert.ok(all.risks.some((r) => /panic mode/.test(r.why)));
});

test('consumer route in the caller\'s namespace overrides the producer route', () => {
  const producer = httpRoute('producer', `    - backendRefs: [{name: reviews-v1, port: 9080}]`);
  const consumer = httpRoute('consumer', `    - backendRefs: [{name: reviews-v2, namespace: shop, port: 9080}]`, '{group: "", kind: Service, name: reviews, namespace: shop, port: 9080}', 'web');
  const webNode: NodeInfo = { ...clientNode, id: 'web/front-0', namespace: 'web', workload: 'front' };
  const ns = `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: front, namespace: web}
spec: {serviceAccount: front}
---`;
  const fromWeb = explain(ns + producer + consumer, { url: 'http://reviews.shop:9080/' }, webNode);
  assert.equal(fromWeb.rule!.id, 'web/consumer/0/0');
  assert.match(fromWeb.rules[0]!.why, /consumer route/);
  const fromShop = explain(ns + producer + consumer, { url: 'http://reviews:9080/' });
  assert.equal(fromShop.rule!.id, 'shop/producer/0/0');
});

test('GRPCRoute: service and method match', () => {
  const grpc = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: grpc, port: 50051, appProtocol: grpc}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 50051}]
  rules:
    - matches: [{method: {service: echo.Echo, method: Say}}]
      backendRefs: [{name: reviews-v2, port: 9080}]
---`;
  const say = explain(grpc, { method: 'POST', url: 'http://echo:50051/echo.Echo/Say', headers: { 'content-type': 'application/grpc' } });
  assert.equal(say.verdict.outcome, 'forwarded');
  assert.equal(say.entry!.protocol, 'grpc');
  assert.equal(say.backends[0]!.key, 'shop/reviews-v2:9080');
  const other = explain(grpc, { method: 'POST', url: 'http://echo:50051/echo.Echo/Other', headers: { 'content-type': 'application/grpc' } });
  assert.equal(other.verdict.outcome, 'no-route');
});

const EDGE = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weft}
spec: {controllerName: weft.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  gatewayClassName: weft
  listeners:
    - {name: web, port: 80, protocol: HTTP, hostname: "*.example.com"}
    - {name: db, port: 5432, protocol: TCP}
    - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: site, namespace: shop}
spec:
  parentRefs: [{name: edge, sectionName: web}]
  hostnames: [shop.example.com]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  parentRefs: [{name: edge, sectionName: db}]
  rules: [{backendRefs: [{name: reviews-v1, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: TLSRoute
metadata: {name: secure, namespace: shop}
spec:
  parentRefs: [{name: edge, sectionName: tls}]
  hostnames: [secure.example.com]
  rules: [{backendRefs: [{name: reviews-v2, port: 9080}]}]
---`;

const edgeNode: NodeInfo = { id: 'shop/edge-0', mode: 'gateway', namespace: 'shop', workload: 'edge.gateway', gateway: 'shop/edge', address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };

test('gateway: listener and route hostnames; a hostname mismatch is 404 WEFT_ERR_NO_ROUTE', () => {
  const ok = explain(EDGE, { url: 'http://shop.example.com/cart' }, edgeNode);
  assert.equal(ok.verdict.outcome, 'forwarded');
  assert.equal(ok.entry!.gateway!.listener, 'web');
  assert.equal(ok.entry!.gateway!.virtualHost, 'shop.example.com');
  assert.equal(ok.backends[0]!.key, 'shop/reviews:9080');
  const listenerMiss = explain(EDGE, { url: 'http://shop.example.org/' }, edgeNode);
  assert.equal(listenerMiss.verdict.status, 404);
  assert.equal(listenerMiss.verdict.reason, ErrorCodes.NO_ROUTE);
  assert.match(listenerMiss.verdict.summary, /no listener on port 80 serves shop\.example\.org/);
  const routeMiss = explain(EDGE, { url: 'http://blog.example.com/' }, edgeNode);
  assert.match(routeMiss.verdict.summary, /no route of listener web serves blog\.example\.com \(route hostnames: shop\.example\.com\)/);
  const noPort = explain(EDGE, { url: 'http://shop.example.com:8080/' }, edgeNode);
  assert.match(noPort.verdict.summary, /has no listener on port 8080/);
});

test('TCPRoute and TLSRoute at a gateway: the TCP listener\'s route, TLS by SNI', () => {
  const tcp = explain(EDGE, { url: 'tcp://db.example.com:5432' }, edgeNode);
  assert.equal(tcp.verdict.outcome, 'forwarded');
  assert.equal(tcp.backends[0]!.key, 'shop/reviews-v1:9080');
  assert.match(tcp.retry!.summary, /refused connection/);
  const tls = explain(EDGE, { url: 'tls://secure.example.com:443' }, edgeNode);
  assert.equal(tls.verdict.outcome, 'forwarded');
  assert.equal(tls.entry!.gateway!.virtualHost, 'secure.example.com');
  assert.equal(tls.backends[0]!.key, 'shop/reviews-v2:9080');
  const unknown = explain(EDGE, { url: 'tls://other.example.com:443' }, edgeNode);
  assert.equal(unknown.verdict.outcome, 'no-route');
});

test('TLSRoute on a mesh service port: the rule is chosen by SNI, a TCPRoute takes the rest', () => {
  const mesh = `
apiVersion: v1
kind: Service
metadata: {name: secure, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: tls, port: 8443, appProtocol: tcp}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: a, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: secure}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: reviews-v1, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: rest, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: secure}]
  rules: [{backendRefs: [{name: reviews-v2, port: 9080}]}]
---`;
  const a = explain(mesh, { url: 'tls://secure:8443', sni: 'a.example.com' });
  assert.equal(a.rule, undefined, 'opaque traffic has no HTTP rule');
  assert.equal(a.backends[0]!.key, 'shop/reviews-v1:9080');
  assert.equal(a.rules.find((r) => r.result === 'matched')!.id, 'shop/a/sni:a.example.com');
  const b = explain(mesh, { url: 'tls://secure:8443', sni: 'b.example.com' });
  assert.equal(b.backends[0]!.key, 'shop/reviews-v2:9080');
  // An app's https:// is TLS through a CONNECT tunnel: the same SNI routing, the URL's host as the SNI unless told.
  const viaHttps = explain(mesh, { url: 'https://secure:8443/', sni: 'a.example.com' });
  assert.equal(viaHttps.backends[0]!.key, 'shop/reviews-v1:9080');
  assert.ok(viaHttps.notes.some((n) => /CONNECT tunnel with TLS inside/.test(n)));
});

test('an endpoint address goes straight to the endpoint; bad input names the field', () => {
  const direct = explain('', { url: 'http://10.0.0.1:9080/' });
  assert.equal(direct.entry!.kind, 'endpoint');
  assert.match(direct.verdict.summary, /straight to endpoint shop\/reviews-1/);
  assert.throws(() => explain('', { url: 'reviews/path' }), /url: "reviews\/path" is not an absolute URL/);
  assert.throws(() => explain('', { url: 'ftp://reviews/' }), /scheme "ftp"/);
});

test('CORS preflight is answered by the proxy; an unresolved backendRef is 500 WEFT_ERR_BACKEND_NOT_FOUND', () => {
  const route = httpRoute(
    'web',
    `    - matches: [{path: {type: PathPrefix, value: /api}}]
      filters: [{type: CORS, cors: {allowOrigins: ["https://shop.example.com"], allowMethods: [GET, POST]}}]
      backendRefs: [{name: reviews-v1, port: 9080}]
    - matches: [{path: {type: PathPrefix, value: /gone}}]
      backendRefs: [{name: missing, port: 9080}]`,
  );
  const preflight = explain(route, { method: 'OPTIONS', url: 'http://reviews:9080/api/x', headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'POST' } });
  assert.equal(preflight.verdict.outcome, 'preflight');
  const simple = explain(route, { url: 'http://reviews:9080/api/x', headers: { origin: 'https://shop.example.com' } });
  assert.equal(simple.verdict.outcome, 'forwarded');
  assert.match(simple.rule!.filters[0]!.effect!, /Origin https:\/\/shop\.example\.com/);
  const gone = explain(route, { url: 'http://reviews:9080/gone' });
  assert.equal(gone.verdict.outcome, 'backend-not-found');
  assert.equal(gone.verdict.status, 500);
  assert.equal(gone.verdict.reason, ErrorCodes.BACKEND_NOT_FOUND);
});

test('the control plane side: the workload or gateway must exist; proxies that run another config are named', () => {
  const input = load(EDGE);
  const context = {
    input: () => input,
    compile,
    proxies: () => [{ id: 'shop/client-7', mode: 'sidecar' as const, namespace: 'shop', workload: 'client', address: '127.0.0.1', tunnelPort: 1, connected: true, ready: true, ackedVersion: 'old', lastSeen: T0 }],
  };
  const trace = explainFromConfig({ from: 'shop/client', method: 'GET', url: 'http://reviews:9080/' }, context);
  assert.equal(trace.verdict.outcome, 'forwarded');
  assert.ok(trace.notes.some((n) => /Proxy shop\/client-7 runs config old/.test(n)));
  const atEdge = explainFromConfig({ gateway: 'shop/edge', method: 'GET', url: 'http://shop.example.com/' }, context);
  assert.equal(atEdge.from.kind, 'gateway');
  assert.ok(atEdge.notes.some((n) => /No proxy of shop\/edge is connected/.test(n)));
  assert.throws(() => explainFromConfig({ from: 'shop/nope', method: 'GET', url: 'http://reviews/' }, context), /from: no Workload shop\/nope/);
  assert.throws(() => explainFromConfig({ gateway: 'shop/nope', method: 'GET', url: 'http://reviews/' }, context), /gateway: no Gateway shop\/nope/);
  assert.throws(() => explainFromConfig({ method: 'GET', url: 'http://reviews/' }, context), /exactly one of from/);
  assert.throws(() => explainFromConfig({ from: 'client', method: 'GET', url: 'http://reviews/' }, context), /from: "client" is not "<namespace>\/<name>"/);
});

test('the proxy admin\'s /debug/backends: the balancer registry\'s and the buckets\' state, read by the CLI; a node proxy names the workload', async (t) => {
  const clock = new ManualClock();
  const balancers = new BalancerRegistry({ clock });
  const backend = { key: 'shop/reviews:9080', namespace: 'shop', service: 'reviews', port: 9080, protocol: 'http' as const, lb: 'round-robin' as const, endpoints: [
    { id: 'shop/reviews-1', address: '10.0.0.1', port: 9080, labels: {} },
    { id: 'shop/reviews-2', address: '10.0.0.2', port: 9080, labels: {} },
  ] };
  balancers.balancerFor(backend);
  const state = balancers.stateOf(backend.key);
  balancers.healthOf(state, 'shop/reviews-1').ejectedUntil = clock.monotonic() + 30_000;
  state.counters.requests = 3;
  const limits = new RateLimiterRegistry();
  const limit = { id: 'shop/p/0@HTTPRoute/shop/r', policy: 'shop/p/0', requests: 2, intervalMs: 1000, burst: 2, descriptors: [], scope: 'Local' as const, maxKeys: 10 };
  limits.buckets(limit).take('', clock.monotonic());
  limits.buckets(limit).take('', clock.monotonic());
  const live = (): LiveProxyState => ({ proxy: 'shop/client-1', readAt: T0, backends: balancers.describe(), rateLimits: limits.describe(clock.monotonic()) });
  const admin = await startAdmin('127.0.0.1', 0, { ready: () => ({ ready: true }), config: () => ({}), metrics: () => '', backends: (w) => (w === undefined || w === 'shop/client' ? live() : undefined) });
  t.after(() => new Promise<void>((resolve) => admin.server.close(() => resolve())));
  const url = `http://127.0.0.1:${admin.port}`;

  const read = await fetchLiveState(url, 'shop/client');
  const reviews = read.live!.backends.find((b) => b.key === backend.key)!;
  assert.equal(reviews.requests, 3);
  assert.deepEqual(reviews.endpoints.map((e) => [e.id, e.ejectedForMs]), [['shop/reviews-1', 30_000], ['shop/reviews-2', 0]]);
  assert.deepEqual(read.live!.rateLimits, [{ id: limit.id, size: 1, buckets: [{ key: '', tokens: 0 }] }]);
  const other = await fetchLiveState(url, 'shop/other');
  assert.match(other.why!, /answered 404/);
  const down = await fetchLiveState('http://127.0.0.1:1');
  assert.match(down.why!, /could not read http:\/\/127\.0\.0\.1:1\/debug\/backends/);
  assert.deepEqual(parseHeaderFlag('X-User:  alice '), ['X-User', 'alice']);
  assert.throws(() => parseHeaderFlag('nocolon'), /expected "Name: value"/);
});
