// Transformations at a real gateway over real apps (HTTP/1.1 and h2c): request and response headers and bodies rewritten from templates, extractors, limits, bodies that are not JSON, and the API refusing bad templates by field.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createH2Server, type Http2Server } from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { apiCall, applyObjects, askGateway, listenersOf, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from './gateway-helpers.ts';

const NS = 'orders';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What every app answers: a JSON echo of the request, unless the path asks for something else. */
function answerFor(seen: Seen): { status: number; headers: Record<string, string>; body: string } {
  if (seen.url.endsWith('/text')) return { status: 500, headers: { 'content-type': 'text/plain' }, body: 'the app broke, in plain text' };
  if (seen.url.endsWith('/big')) return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ blob: 'x'.repeat(4096) }) };
  const body = JSON.stringify({ order: { id: 'o-17', total: 42.5, lines: [{ sku: 'tea', qty: 2 }] }, got: { method: seen.method, url: seen.url, body: seen.body } });
  return { status: 201, headers: { 'content-type': 'application/json', 'x-app-version': '7' }, body };
}

let dir: string;
let app: Server;
let h2app: Http2Server;
const seen: Seen[] = [];
const processes: RunningProcess[] = [];
let port: number;
let api: string;

function listen(server: Server | Http2Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

const TRANSFORM = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'Transformation',
  metadata: { name: 'orders-v2', namespace: NS },
  spec: {
    extract: [
      { name: 'user', value: '{{ request.header.authorization }}', regex: '^Bearer user-([a-z0-9]+)$' },
      { name: 'region', value: '{{ request.query.region }}' },
    ],
    request: {
      headers: { set: [{ name: 'x-user', value: '{{ extract.user }}' }, { name: 'x-first-sku', value: '{{ request.body.items.0.sku }}' }], remove: ['x-debug'] },
      body: { json: { customer: '{{ extract.user }}', region: '{{ extract.region }}', lines: '{{ request.body.items }}', note: 'from {{ request.method }} {{ request.path }}' } },
    },
    response: {
      headers: { set: [{ name: 'x-order-id', value: '{{ response.body.order.id }}' }, { name: 'x-upstream-status', value: '{{ response.status }}' }], remove: ['x-app-version'] },
      body: {
        json: {
          id: '{{ response.body.order.id }}',
          total: '{{ response.body.order.total }}',
          lines: { $each: '{{ response.body.order.lines }}', $to: '{{ item.qty }}x {{ item.sku }}' },
          version: '{{ response.header.x-app-version }}',
          for: '{{ extract.user }}',
          sent: '{{ response.body.got.body }}',
        },
      },
    },
    maxBodyBytes: 2048,
  },
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-transform-'));
  const handle = (method: string, url: string, headers: IncomingHttpHeaders, body: string) => {
    const one: Seen = { method, url, headers, body };
    seen.push(one);
    return answerFor(one);
  };
  app = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (req.url?.endsWith('/cut')) {
        // Half an answer, then the connection is gone.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 });
        res.write('{"order":');
        setImmediate(() => req.socket.destroy());
        return;
      }
      const out = handle(req.method ?? '', req.url ?? '', req.headers, body);
      res.writeHead(out.status, { ...out.headers, 'content-length': Buffer.byteLength(out.body) });
      res.end(out.body);
    });
  });
  h2app = createH2Server((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const out = handle(req.method, req.url, req.headers, body);
      res.writeHead(out.status, out.headers);
      res.end(out.body);
    });
  });
  const [appPort, h2Port] = [await listen(app), await listen(h2app)];
  const controlPlane = await startControlPlaneProcess();
  processes.push(controlPlane);
  api = String(controlPlane.ready.api);
  const route = (name: string, prefix: string, service: string, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS },
    spec: {
      parentRefs: [{ name: 'gw' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: prefix } }],
          filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'Transformation', name: 'orders-v2' } }],
          backendRefs: [{ name: service, port: 8080, ...extra }],
        },
      ],
    },
  });
  await applyObjects(api, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'orders', namespace: NS }, spec: { selector: { app: 'orders' }, ports: [{ port: 8080, targetPort: appPort }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'orders-0', namespace: NS, labels: { app: 'orders' } }, spec: { address: '127.0.0.1', ports: [{ port: appPort }] } },
    // The same app over h2c: the gateway speaks HTTP/2 to it, through the HTTP/2 transport.
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'orders-h2', namespace: NS }, spec: { selector: { app: 'orders-h2' }, ports: [{ port: 8080, targetPort: h2Port, appProtocol: 'kubernetes.io/h2c' }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'orders-h2-0', namespace: NS, labels: { app: 'orders-h2' } }, spec: { address: '127.0.0.1', ports: [{ port: h2Port }] } },
    TRANSFORM,
    // Only a response-side rewrite on a backendRef, under the rule's: the backendRef's rewrite sees the response first.
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'Transformation',
      metadata: { name: 'wrap', namespace: NS },
      spec: { response: { headers: { add: [{ name: 'x-wrapped', value: 'by the backendRef' }] }, body: { json: { order: { id: 'wrapped-{{ response.body.order.id }}', total: 1 }, got: { body: 'inner' } } } } },
    },
    route('orders', '/v2/orders', 'orders'),
    route('orders-h2', '/h2/orders', 'orders-h2'),
    route('nested', '/nested', 'orders', { filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'Transformation', name: 'wrap' } }] }),
  ]);
  const gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80], await writeTokenFile(api, dir, NS, 'gw.gateway'));
  processes.push(gateway);
  port = listenersOf(gateway)['80']!;
  await waitFor(async () => (await ask('POST', '/v2/orders', '{"items": []}')).status === 201, { timeoutMs: 20_000, message: 'the gateway to serve the transformed route' });
});

after(async () => {
  for (const p of processes.reverse()) await p.stop({ timeoutMs: 5000 });
  await Promise.all([app, h2app].map((server) => server && new Promise<void>((resolve) => server.close(() => resolve()))));
  rmSync(dir, { recursive: true, force: true });
});

/** One request to the gateway, JSON unless the headers say otherwise. */
const ask = (method: string, path: string, body?: string, headers: Record<string, string> = {}) => askGateway(port, method, path, body, { 'content-type': 'application/json', ...headers });

for (const [name, prefix] of [['HTTP/1.1', '/v2/orders'], ['h2c', '/h2/orders']] as const) {
  test(`${name} app: the request and the response are rewritten from the templates, with extracted values and typed JSON`, async () => {
    seen.length = 0;
    const order = JSON.stringify({ items: [{ sku: 'tea', qty: 2 }, { sku: 'cup', qty: 1 }] });
    const answer = await ask('POST', `${prefix}?region=eu`, order, { authorization: 'Bearer user-ann42', 'x-debug': '1', 'x-user': 'spoofed' });
    assert.equal(answer.status, 201, answer.body);

    // What the app got: the new body (lines kept as an array), the extracted user in place of the client's own x-user.
    assert.equal(seen.length, 1);
    const got = seen[0]!;
    assert.deepEqual(JSON.parse(got.body), { customer: 'ann42', region: 'eu', lines: [{ sku: 'tea', qty: 2 }, { sku: 'cup', qty: 1 }], note: `from POST ${prefix}` });
    assert.equal(got.headers['x-user'], 'ann42');
    assert.equal(got.headers['x-first-sku'], 'tea');
    assert.equal(got.headers['x-debug'], undefined);
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(Number(got.headers['content-length']), Buffer.byteLength(got.body));

    // What the client got: the reshaped answer, the status kept, headers from the response body and status.
    assert.deepEqual(JSON.parse(answer.body), { id: 'o-17', total: 42.5, lines: ['2x tea'], version: '7', for: 'ann42', sent: got.body });
    assert.equal(answer.headers['x-order-id'], 'o-17');
    assert.equal(answer.headers['x-upstream-status'], '201');
    assert.equal(answer.headers['x-app-version'], undefined);
    assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body));
  });
}

test('an HTTP/2 client gets the rewritten response too, with its new length and the removed header gone', async () => {
  const session = connect(`http://127.0.0.1:${port}`);
  try {
    const answer = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/v2/orders?region=us', 'content-type': 'application/json', authorization: 'Bearer user-dee' });
      stream.setTimeout(10_000, () => stream.close());
      let headers: Record<string, unknown> = {};
      let body = '';
      stream.on('response', (h) => (headers = h));
      stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
      stream.on('error', reject);
      stream.end(JSON.stringify({ items: [{ sku: 'pot', qty: 1 }] }));
    });
    assert.equal(answer.status, 201, answer.body);
    const body = JSON.parse(answer.body) as { id: string; for: string; sent: string };
    assert.equal(body.id, 'o-17');
    assert.equal(body.for, 'dee');
    assert.deepEqual(JSON.parse(body.sent), { customer: 'dee', region: 'us', lines: [{ sku: 'pot', qty: 1 }], note: 'from POST /v2/orders' });
    assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body));
    assert.equal(answer.headers['x-app-version'], undefined);
    assert.equal(answer.headers['x-order-id'], 'o-17');
  } finally {
    session.close();
  }
});

test("a value that cannot be extracted removes the header: a client's own x-user never reaches the app", async () => {
  seen.length = 0;
  const answer = await ask('POST', '/v2/orders', '{"items": []}', { authorization: 'Basic YW5uOnB3', 'x-user': 'admin' });
  assert.equal(answer.status, 201, answer.body);
  assert.equal(seen[0]!.headers['x-user'], undefined);
  // Missing values are null in a JSON template, "" inside text.
  assert.deepEqual(JSON.parse(seen[0]!.body), { customer: null, region: null, lines: [], note: 'from POST /v2/orders' });
});

test('a header value taken from a body cannot split the head: what a field value may not hold is dropped', async () => {
  seen.length = 0;
  const answer = await ask('POST', '/v2/orders', JSON.stringify({ items: [{ sku: 'tea\r\nx-evil: 1 \u2615' }] }));
  assert.equal(answer.status, 201, answer.body);
  // (the app's HTTP parser trims the trailing space the dropped character left)
  assert.equal(seen[0]!.headers['x-first-sku'], 'teax-evil: 1');
  assert.equal(seen[0]!.headers['x-evil'], undefined);
});

test('a request body the templates read must be JSON (400), and fit maxBodyBytes (413); the app is not called', async () => {
  seen.length = 0;
  const notJson = await ask('POST', '/v2/orders', 'items=tea', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(notJson.status, 400, notJson.body);
  assert.equal(notJson.headers['weft-reason'], 'WEFT_ERR_TRANSFORMATION');
  assert.match(notJson.body, /not JSON/);
  const tooBig = await ask('POST', '/v2/orders', JSON.stringify({ items: ['x'.repeat(4096)] }));
  assert.equal(tooBig.status, 413, tooBig.body);
  assert.equal(tooBig.headers['weft-reason'], 'WEFT_ERR_TRANSFORMATION');
  assert.equal(seen.length, 0);
});

test('a response that is not JSON passes as it came; one cut short or over maxBodyBytes is a 502', async () => {
  const text = await ask('POST', '/v2/orders/text', '{}');
  assert.equal(text.status, 500);
  assert.equal(text.body, 'the app broke, in plain text');
  assert.equal(text.headers['content-type'], 'text/plain');
  // An answer cut halfway was held, not sent: the client gets the proxy's 502, not a truncated body.
  const cut = await ask('POST', '/v2/orders/cut', '{}');
  assert.equal(cut.status, 502, cut.body);
  assert.equal(cut.headers['weft-reason'], 'WEFT_ERR_UPSTREAM_RESET');
  const big = await ask('POST', '/v2/orders/big', '{}');
  assert.equal(big.status, 502, big.body);
  assert.equal(big.headers['weft-reason'], 'WEFT_ERR_TRANSFORMATION');
  assert.match(big.body, /maxBodyBytes/);
  // The gateway goes on serving.
  assert.equal((await ask('POST', '/v2/orders', '{"items": []}')).status, 201);
});

test("a backendRef's Transformation rewrites the response before its rule's", async () => {
  const answer = await ask('POST', '/nested', '{"items": []}', { authorization: 'Bearer user-bo' });
  assert.equal(answer.status, 201, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { id: 'wrapped-o-17', total: 1, lines: null, version: '7', for: 'bo', sent: 'inner' });
  assert.equal(answer.headers['x-wrapped'], 'by the backendRef');
});

test('the API refuses a Transformation whose templates are wrong, naming the field; the one in force stays', async () => {
  const bad = structuredClone(TRANSFORM) as typeof TRANSFORM & { spec: Record<string, unknown> };
  bad.spec.extract = [{ name: 'user', value: '{{ response.body.id }}', regex: '(' }];
  (bad.spec.request as { headers: unknown }).headers = { set: [{ name: 'content-length', value: '1' }, { name: 'x-a', value: '{{ extract.nobody }}' }, { name: 'x-b', value: '{{ request.bodyx }}' }] };
  const res = await apiCall(api, 'POST', '/weft/v1/apply', { items: [bad] });
  assert.equal(res.status, 422, JSON.stringify(res.json));
  const text = JSON.stringify(res.json);
  for (const expected of [
    'spec.extract[0].value',
    'the response is not known yet on the request side',
    'spec.extract[0].regex',
    'spec.request.headers.set[0].name',
    'content-length is set by the proxy',
    'no extractor \\"nobody\\" is defined before this',
    'spec.request.headers.set[2].value',
    'names no value',
  ]) {
    assert.ok(text.includes(expected), `${expected} in ${text}`);
  }
  // Nothing changed: the route still rewrites as before.
  seen.length = 0;
  assert.equal((await ask('POST', '/v2/orders', '{"items": []}', { authorization: 'Bearer user-cy' })).status, 201);
  assert.equal(seen[0]!.headers['x-user'], 'cy');
  const status = await apiCall(api, 'GET', `/apis/weft.dev/v1alpha1/namespaces/${NS}/transformations/orders-v2`);
  assert.equal(status.status, 200);
  const conditions = (status.json as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? [];
  assert.ok(conditions.some((c) => c.type === 'Accepted' && c.status === 'True'), JSON.stringify(status.json));
});
