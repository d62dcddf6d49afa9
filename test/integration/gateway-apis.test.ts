// The gateway's API features over real REST apps (one outside the mesh, one behind its own sidecar with mTLS): a GraphQLApi (queries, nesting, mutations, errors on a field, limits, calls made once, bad config) and an ApiPortal publishing it (pages, catalog, OpenAPI, escaping, in Chromium).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects, askGateway, listenersOf, proxyArgs, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from './gateway-helpers.ts';
import { launchBrowser } from '../e2e/dashboard-browser.ts';

const OPENAPI = `openapi: 3.0.3
info: {title: Catalog, version: '1.0'}
paths:
  /catalog/products: {get: {summary: Every product, responses: {'200': {description: the products}}}}
`;

const NS = 'shop';

const SCHEMA = `
type Query {
  product(id: ID!): Product
  products: [Product!]!
}
type Mutation {
  addReview(productId: ID!, input: ReviewInput!): Review
}
input ReviewInput { stars: Int!, text: String }
type Product { id: ID!, name: String!, price: Float, reviews: [Review!], stock: Int }
type Review { stars: Int!, text: String, by: String, product: Product }
`;

interface RestApp {
  server: Server;
  port: number;
  /** Every request it got: "METHOD path", with the headers that matter. */
  seen: { line: string; headers: IncomingMessage['headers']; body: string }[];
}

/** A small JSON REST app on 127.0.0.1:0: `routes` maps "METHOD /path" to a status and body. */
async function restApp(handle: (method: string, path: string, body: string) => [number, unknown]): Promise<RestApp> {
  const app: RestApp = { server: createServer(), port: 0, seen: [] };
  app.server.on('request', (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      app.seen.push({ line: `${req.method} ${req.url}`, headers: req.headers, body });
      const [status, value] = handle(req.method ?? 'GET', req.url ?? '/', body);
      const text = value === undefined ? '' : JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
  app.port = (app.server.address() as AddressInfo).port;
  return app;
}

const PRODUCTS = [
  { id: '1', name: 'teapot', price: 18.5 },
  { id: '2', name: 'kettle', price: 32 },
];

let dir: string;
let catalog: RestApp;
let reviews: RestApp;
/** An app that speaks only HTTP/2 (h2c): GET /stock/<id>. */
let stock: Http2Server;
const processes: RunningProcess[] = [];
let port: number;
let api: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-graphql-'));
  catalog = await restApp((method, path) => {
    if (method === 'GET' && path === '/products') return [200, { items: PRODUCTS }];
    const one = /^\/products\/([^/?]+)$/.exec(path);
    if (method === 'GET' && one) {
      const product = PRODUCTS.find((p) => p.id === decodeURIComponent(one[1]!));
      return product ? [200, product] : [404, { message: 'no such product' }];
    }
    return [500, { message: 'catalog broke' }];
  });
  reviews = await restApp((method, path, body) => {
    const of = /^\/reviews\/([^/?]+)$/.exec(path);
    if (method === 'GET' && of) return of[1] === '2' ? [503, { message: 'down' }] : [200, [{ stars: 5, text: 'pours well', by: 'ann' }]];
    if (method === 'POST' && of) return [201, { ...(JSON.parse(body) as object), by: 'you' }];
    return [404, undefined];
  });
  stock = createH2Server((req, res) => {
    const id = /^\/stock\/([^/?]+)$/.exec(req.url)?.[1];
    res.writeHead(id ? 200 : 404, { 'content-type': 'application/json' });
    res.end(id ? JSON.stringify({ id, count: Number(id) * 10 }) : '');
  });
  await new Promise<void>((resolve) => stock.listen(0, '127.0.0.1', resolve));
  const stockPort = (stock.address() as AddressInfo).port;
  const controlPlane = await startControlPlaneProcess();
  processes.push(controlPlane);
  api = String(controlPlane.ready.api);
  await applyObjects(api, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
    // The catalog outside the mesh; reviews behind its own sidecar, reached over the mesh tunnel with mTLS.
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'catalog', namespace: NS }, spec: { selector: { app: 'catalog' }, ports: [{ port: 8080, targetPort: catalog.port }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'catalog-0', namespace: NS, labels: { app: 'catalog' } }, spec: { address: '127.0.0.1', ports: [{ port: catalog.port }] } },
    // A second catalog endpoint that refuses connections (nothing listens on 127.0.0.2): calls to it are tried again elsewhere.
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'catalog-gone', namespace: NS, labels: { app: 'catalog' } }, spec: { address: '127.0.0.2', ports: [{ port: catalog.port }] } },
    // Stock speaks HTTP/2 only, as its port says (h2c).
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'stock', namespace: NS }, spec: { selector: { app: 'stock' }, ports: [{ port: 8080, targetPort: stockPort, appProtocol: 'kubernetes.io/h2c' }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'stock-0', namespace: NS, labels: { app: 'stock' } }, spec: { address: '127.0.0.1', ports: [{ port: stockPort }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews-v1', namespace: NS, labels: { app: 'reviews' } }, spec: { serviceAccount: 'reviews', ports: [{ name: 'http', port: 9080 }] } },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'GraphQLApi',
      metadata: { name: 'shop', namespace: NS },
      spec: {
        schema: SCHEMA,
        maxDepth: 4,
        introspection: false,
        resolvers: {
          'Query.products': { rest: { service: 'catalog', port: 8080, path: '/products', resultPath: 'items' } },
          'Query.product': { rest: { service: 'catalog', port: 8080, path: '/products/{args.id}' } },
          'Product.reviews': { rest: { service: 'reviews', port: 9080, path: '/reviews/{parent.id}', forwardHeaders: ['authorization'] } },
          'Product.stock': { rest: { service: 'stock', port: 8080, path: '/stock/{parent.id}', resultPath: 'count' } },
          'Mutation.addReview': { rest: { service: 'reviews', port: 9080, method: 'POST', path: '/reviews/{args.productId}', body: 'args.input' } },
        },
      },
    },
    // The portal publishes the catalog's REST route and the GraphQL API; the Gateway takes API keys, which the portal names.
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'partners', namespace: NS }, stringData: { acme: 'acme-portal-key-0123456789', globex: 'globex-portal-key-9876543210' } },
    // Each partner (its API key's client) gets its own quota on the catalog route; callers without a key share one.
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RateLimitPolicy',
      metadata: { name: 'per-partner', namespace: NS },
      spec: { targetRefs: [{ kind: 'HTTPRoute', name: 'catalog-rest' }], limits: [{ name: 'per-client', requests: 3, interval: '1h', descriptors: [{ type: 'RequestPrincipal' }] }] },
    },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'keys', namespace: NS }, spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], apiKeys: { credentialRefs: [{ name: 'partners' }] } } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'catalog-rest', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['api.example'],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/catalog' }, method: 'GET' }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }], backendRefs: [{ name: 'catalog', port: 8080 }] }],
      },
    },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'ApiPortal',
      metadata: { name: 'developers', namespace: NS },
      spec: {
        title: 'Shop APIs',
        description: 'Everything <script>alert(1)</script> a partner needs.',
        apis: [
          { name: 'catalog', title: 'Catalog', description: 'Products and prices.', routes: [{ name: 'catalog-rest' }], openapi: OPENAPI },
          { name: 'shop-graphql', title: 'Shop GraphQL', routes: [{ name: 'graphql' }], graphql: { name: 'shop' } },
        ],
      },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'portal', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['api.example'],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/portal' } }], filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'ApiPortal', name: 'developers' } }] }],
      },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'graphql', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['api.example'],
        rules: [{ matches: [{ path: { type: 'Exact', value: '/graphql' } }], filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'GraphQLApi', name: 'shop' } }] }],
      },
    },
  ]);
  const gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80], await writeTokenFile(api, dir, NS, 'gw.gateway'));
  processes.push(gateway);
  const sidecar = await startWeft(
    ['proxy', '--mode', 'sidecar', '--namespace', NS, '--workload', 'reviews-v1', '--app-port', `9080=${reviews.port}`, ...proxyArgs(controlPlane, await writeTokenFile(api, dir, NS, 'reviews-v1'))],
    { env: { WEFT_LOG_LEVEL: 'warn' } },
  );
  processes.push(sidecar);
  port = listenersOf(gateway)['80']!;
  // Ready once the gateway answers GraphQL and the reviews sidecar has registered (its field resolves).
  await waitFor(async () => (await query('{ product(id: "1") { reviews { stars } } }')).body.includes('"stars":5'), { timeoutMs: 20_000, message: 'the GraphQL API to resolve through the sidecar' });
});

after(async () => {
  for (const p of processes.reverse()) await p.stop({ timeoutMs: 5000 });
  await Promise.all([catalog?.server, reviews?.server, stock].map((server) => server && new Promise<void>((resolve) => server.close(() => resolve()))));
  rmSync(dir, { recursive: true, force: true });
});

/** One request to the gateway as host api.example. */
const ask = (method: string, path: string, body?: string, headers: Record<string, string> = {}) => askGateway(port, method, path, body, { host: 'api.example', ...headers });

const post = (body: unknown, headers: Record<string, string> = {}) => ask('POST', '/graphql', typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json', ...headers });
const query = (source: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) => post({ query: source, ...(variables ? { variables } : {}) }, headers);
const get = (path: string) => ask('GET', path);

test('a query resolves across two services: a list, a field with an argument, and nested reviews through the mesh', async () => {
  reviews.seen.length = 0;
  const answer = await query('query($id: ID!) { products { id name } product(id: $id) { name price reviews { stars text by } } }', { id: '1' }, { authorization: 'Bearer abc' });
  assert.equal(answer.status, 200, answer.body);
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(answer.body), {
    data: {
      products: [{ id: '1', name: 'teapot' }, { id: '2', name: 'kettle' }],
      product: { name: 'teapot', price: 18.5, reviews: [{ stars: 5, text: 'pours well', by: 'ann' }] },
    },
  });
  // The reviews call went through the reviews sidecar (the app sees the mesh's x-forwarded-client-cert) with the forwarded header.
  const call = reviews.seen.find((s) => s.line === 'GET /reviews/1')!;
  assert.equal(call.headers.authorization, 'Bearer abc');
  assert.match(String(call.headers['x-forwarded-client-cert']), /^By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/reviews;.*URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/default$/);
});

test("resolver calls take the backend's own layers: a refused endpoint is tried again elsewhere, and an h2c port is spoken to in HTTP/2", async () => {
  // Half the catalog's endpoints refuse connections: without the connect retry about half of these would fail.
  for (let i = 0; i < 12; i++) {
    const answer = await query('{ products { id stock } }');
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(JSON.parse(answer.body), { data: { products: [{ id: '1', stock: 10 }, { id: '2', stock: 20 }] } });
  }
});

test('the same call for the same parent is made once; a missing resource is null; a failing call is an error on its field only', async () => {
  reviews.seen.length = 0;
  const answer = JSON.parse((await query('{ a: product(id: "1") { reviews { stars } } b: product(id: "1") { reviews { stars } } c: product(id: "404") { name } k: product(id: "2") { name reviews { stars } } }')).body) as {
    data: Record<string, unknown>;
    errors: { message: string; path: (string | number)[] }[];
  };
  assert.deepEqual(answer.data, { a: { reviews: [{ stars: 5 }] }, b: { reviews: [{ stars: 5 }] }, c: null, k: { name: 'kettle', reviews: null } });
  assert.equal(answer.errors.length, 1);
  assert.deepEqual(answer.errors[0]!.path, ['k', 'reviews']);
  assert.match(answer.errors[0]!.message, /GET http:\/\/reviews\/reviews\/2 answered 503/);
  assert.deepEqual(reviews.seen.map((s) => s.line).sort(), ['GET /reviews/1', 'GET /reviews/2'], 'product 1\'s reviews were asked once for a and b');
});

test('a mutation sends its input as a JSON body; GET serves queries and refuses mutations', async () => {
  const added = await query('mutation { addReview(productId: "1", input: { stars: 4, text: "sturdy" }) { stars text by } }');
  assert.deepEqual(JSON.parse(added.body), { data: { addReview: { stars: 4, text: 'sturdy', by: 'you' } } });
  assert.deepEqual(JSON.parse(reviews.seen.at(-1)!.body), { stars: 4, text: 'sturdy' });
  const viaGet = await get(`/graphql?query=${encodeURIComponent('{ product(id: "2") { name } }')}`);
  assert.deepEqual([viaGet.status, JSON.parse(viaGet.body)], [200, { data: { product: { name: 'kettle' } } }]);
  const mutationViaGet = await get(`/graphql?query=${encodeURIComponent('mutation { addReview(productId: "1", input: {stars: 1}) { stars } }')}`);
  assert.equal(mutationViaGet.status, 405);
  assert.match(mutationViaGet.body, /a mutation is sent with POST, not GET/);
});

test('refused before anything is called: syntax, unknown fields, too deep, introspection off, not JSON', async () => {
  const before = catalog.seen.length + reviews.seen.length;
  const cases: [unknown, RegExp][] = [
    [{ query: '{ product(id: "1") { name' }, /Syntax Error/],
    [{ query: '{ product(id: "1") { colour } }' }, /Cannot query field "colour" on type "Product"/],
    [{ query: '{ product(id: "1") { reviews { stars } } }', variables: 'x' }, /"variables" must be an object/],
    [{ query: '{ __schema { types { name } } }' }, /introspection/i],
    ['not json', /the body is not JSON/],
  ];
  for (const [body, pattern] of cases) {
    const answer = await post(body);
    assert.equal(answer.status, 400, answer.body);
    assert.match((JSON.parse(answer.body) as { errors: { message: string }[] }).errors.map((e) => e.message).join('; '), pattern);
  }
  // maxDepth 4: four levels pass, five (through a fragment too) are refused.
  const deep = await query('{ product(id: "1") { reviews { product { name } } } }');
  assert.deepEqual(JSON.parse(deep.body), { data: { product: { reviews: [{ product: null }] } } });
  const tooDeep = await query('{ product(id: "1") { ...more } } fragment more on Product { reviews { product { reviews { stars } } } }');
  assert.equal(tooDeep.status, 400);
  assert.match(tooDeep.body, /the query is 5 levels deep; this API allows 4/);
  const unnamed = await query('query A { products { name } } query B { products { id } }');
  assert.equal(unnamed.status, 400);
  assert.match(unnamed.body, /several operations: name one/);
  assert.equal(catalog.seen.length + reviews.seen.length - before, 2, 'only the query that passed made calls (product 1 and its reviews)');
});

test('a GraphQLApi with a bad schema or a resolver for nothing is not accepted, and says why', async () => {
  await applyObjects(api, [
    { apiVersion: 'weft.dev/v1alpha1', kind: 'GraphQLApi', metadata: { name: 'broken', namespace: NS }, spec: { schema: 'type Query { a: Strin }', resolvers: {} } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'GraphQLApi', metadata: { name: 'dangling', namespace: NS }, spec: { schema: 'type Query { a(id: ID): String }', resolvers: { 'Query.b': { rest: { service: 'catalog', port: 8080, path: '/b' } }, 'Query.a': { rest: { service: 'nowhere', port: 1, path: '/a/{args.name}' } } } } },
  ]);
  const status = (name: string) =>
    waitFor(async () => {
      const res = await fetch(`${api}/apis/weft.dev/v1alpha1/namespaces/${NS}/graphqlapis/${name}`);
      return ((await res.json()) as { status?: { conditions?: { type: string; status: string; message: string }[] } }).status?.conditions?.find((c) => c.type === 'Accepted');
    }, { timeoutMs: 10_000, message: `the status of GraphQLApi ${name}` });
  const broken = await status('broken');
  assert.equal(broken.status, 'False');
  assert.match(broken.message, /^spec\.schema: Unknown type "Strin"/);
  const dangling = await status('dangling');
  assert.equal(dangling.status, 'False');
  assert.equal(
    dangling.message,
    'spec.resolvers["Query.b"]: type Query has no field b; spec.resolvers["Query.a"].rest.path: {args.name}: field Query.a has no argument name; spec.resolvers["Query.a"].rest.service: Service shop/nowhere does not exist',
  );
});

test('an update that breaks the schema leaves the last good version answering, and the status says so', async () => {
  await waitFor(async () => {
    const res = await fetch(`${api}/apis/weft.dev/v1alpha1/namespaces/${NS}/graphqlapis/shop`);
    return ((await res.json()) as { status?: unknown }).status !== undefined;
  }, { timeoutMs: 10_000, message: 'the first status of GraphQLApi shop' });
  const current = (await (await fetch(`${api}/apis/weft.dev/v1alpha1/namespaces/${NS}/graphqlapis/shop`)).json()) as { spec: Record<string, unknown> };
  await applyObjects(api, [{ apiVersion: 'weft.dev/v1alpha1', kind: 'GraphQLApi', metadata: { name: 'shop', namespace: NS }, spec: { ...current.spec, schema: 'type Query { products: [Product!]! ' } }]);
  const conditions = await waitFor(async () => {
    const res = await fetch(`${api}/apis/weft.dev/v1alpha1/namespaces/${NS}/graphqlapis/shop`);
    const body = (await res.json()) as { metadata: { generation: number }; status?: { conditions?: { type: string; status: string; message: string; observedGeneration?: number }[] } };
    const all = body.status?.conditions ?? [];
    return all.some((c) => c.observedGeneration === body.metadata.generation) ? all : undefined;
  }, { timeoutMs: 10_000, message: 'the status of the broken generation' });
  assert.match(JSON.stringify(conditions), /generation \d+ is invalid: spec\.schema: Syntax Error.*; generation \d+ stays in force/);
  const still = await query('{ product(id: "2") { name } }');
  assert.deepEqual(JSON.parse(still.body), { data: { product: { name: 'kettle' } } }, 'the last good schema still answers');
});

test('the portal publishes the APIs: an index, a page per API with its base URL, operations and authentication, the catalog as JSON, OpenAPI and the GraphQL schema', async () => {
  const index = await get('/portal/');
  assert.equal(index.status, 200);
  assert.match(String(index.headers['content-type']), /^text\/html/);
  assert.match(String(index.headers['content-security-policy']), /default-src 'none'/);
  assert.match(index.body, /<h1>Shop APIs<\/h1>/);
  assert.match(index.body, /Everything &lt;script&gt;alert\(1\)&lt;\/script&gt; a partner needs\./, 'config text is escaped');
  assert.doesNotMatch(index.body, /<script>/);
  const catalog = JSON.parse((await get('/portal/apis.json')).body) as { apis: { name: string; baseUrls: string[]; operations: unknown[]; authentication: string[]; openapi?: string; graphql?: { schema: string; paths: string[] } }[] };
  assert.deepEqual(catalog.apis.map((a) => a.name), ['catalog', 'shop-graphql']);
  const [rest, graph] = catalog.apis as [typeof catalog.apis[0], typeof catalog.apis[0]];
  assert.deepEqual(rest.baseUrls, ['http://api.example']);
  assert.deepEqual(rest.operations, [{ methods: ['GET'], path: '/catalog', pathType: 'PathPrefix' }]);
  assert.deepEqual(rest.authentication, ['API key in header x-api-key']);
  assert.equal(rest.openapi, '/portal/apis/catalog/openapi.json');
  assert.deepEqual(graph.graphql, { schema: '/portal/apis/shop-graphql/schema.graphql', paths: ['/graphql'] });
  const openapi = await get('/portal/apis/catalog/openapi.json');
  assert.deepEqual((JSON.parse(openapi.body) as { paths: Record<string, unknown> }).paths['/catalog/products'], { get: { summary: 'Every product', responses: { '200': { description: 'the products' } } } });
  const schema = await get('/portal/apis/shop-graphql/schema.graphql');
  assert.match(schema.body, /type Product \{ id: ID!, name: String!/);
  const page = await get('/portal/apis/catalog/');
  assert.match(page.body, /<code>http:\/\/api\.example<\/code>/);
  assert.match(page.body, /<li>API key in header x-api-key<\/li>/);
  // The OpenAPI document's operations are listed on the page.
  assert.match(page.body, /<h2>OpenAPI <span class="muted">version 1\.0<\/span><\/h2>/);
  assert.match(page.body, /<tr><td><code>GET<\/code><\/td><td><code>\/catalog\/products<\/code><\/td><td>Every product<\/td><\/tr>/);
  assert.equal((await get('/portal/apis/nothing/')).status, 404);
  // The REST route the portal describes works as described (the key is optional: no policy requires one).
  const products = await get('/catalog/products');
  assert.deepEqual(JSON.parse(products.body), { items: PRODUCTS });
});

test('the portal renders in Chromium: the index links to each API, whose page shows its operations, with no script and no console error', async () => {
  const browser = await launchBrowser({ width: 1280, height: 800 }, [`--host-resolver-rules=MAP api.example 127.0.0.1:${port}`]);
  try {
    const { page } = browser;
    await page.goto(`http://api.example:${port}/portal/`);
    assert.equal(await page.locator('h1').textContent(), 'Shop APIs');
    await page.locator('[data-api="shop-graphql"] a').click();
    await page.waitForURL(/\/portal\/apis\/shop-graphql\/$/);
    assert.match((await page.locator('[data-section="graphql"] pre').textContent()) ?? '', /type Mutation/);
    await page.goto(`http://api.example:${port}/portal/apis/catalog/`);
    assert.equal(await page.locator('[data-section="operations"] tbody tr').count(), 1);
    assert.equal(await page.locator('script').count(), 0);
    assert.deepEqual(browser.problems, []);
  } finally {
    await browser.close();
  }
});

test('a rate limit keyed by RequestPrincipal gives each API key client its own quota, and callers without a key one shared quota', async () => {
  const asClient = (key?: string) => ask('GET', '/catalog/products', undefined, key ? { 'x-api-key': key } : {});
  const statuses = async (key: string | undefined, n: number) => {
    const seen: number[] = [];
    for (let i = 0; i < n; i++) seen.push((await asClient(key)).status);
    return seen;
  };
  assert.deepEqual(await statuses('acme-portal-key-0123456789', 4), [200, 200, 200, 429]);
  assert.deepEqual(await statuses('globex-portal-key-9876543210', 3), [200, 200, 200], "globex's quota is its own");
  // Callers without a key share one bucket of 3 (the portal test may have spent some of it already).
  const anonymous = await statuses(undefined, 4);
  const first = anonymous.indexOf(429);
  assert.ok(first >= 0 && first <= 3 && anonymous.slice(0, first).every((s) => s === 200) && anonymous.slice(first).every((s) => s === 429), JSON.stringify(anonymous));
  const limited = await asClient('acme-portal-key-0123456789');
  assert.equal(limited.headers['weft-reason'], 'WEFT_ERR_RATE_LIMITED');
});
