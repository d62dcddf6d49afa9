// The CLI as a user runs it (real processes) against a scripted API server: local validation, output, errors, exit codes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWeft } from '../../src/testing/process.ts';
import { freePort } from '../../src/testing/ports.ts';

interface Recorded {
  method: string;
  url: string;
  body: string;
}

type Answer = { status: number; body: unknown };

/** A stand-in for the control-plane API: records every request and answers from `routes`. */
const recorded: Recorded[] = [];
let routes: Record<string, (req: Recorded) => Answer> = {};
const server = createServer((req: IncomingMessage, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => {
    const entry = { method: req.method ?? '', url: req.url ?? '', body };
    recorded.push(entry);
    const route = routes[`${entry.method} ${entry.url}`];
    const answer = route ? route(entry) : { status: 404, body: { kind: 'Status', message: `no route ${entry.method} ${entry.url}`, reason: 'NotFound', code: 404 } };
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const address = server.address();
const serverUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
const dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function reset(newRoutes: Record<string, (req: Recorded) => Answer>): void {
  recorded.length = 0;
  routes = newRoutes;
}

const weft = (args: string[], input?: string) =>
  runWeft(['--server', serverUrl, ...args], { cwd: dir, ...(input !== undefined ? { input } : {}), env: { WEFT_SERVER: undefined } });

const validYaml = `apiVersion: v1
kind: Service
metadata:
  name: catalog
spec:
  ports:
    - name: http
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: catalog-split
spec:
  parentRefs:
    - {group: "", kind: Service, name: catalog, port: 8080}
  rules:
    - backendRefs:
        - {name: catalog-v1, port: 8080, weight: 90}
        - {name: catalog-v2, port: 8080, weight: 10}
`;

const invalidYaml = `apiVersion: v1
kind: Service
metadata:
  name: catalog
spec:
  ports:
    - port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: split
spec:
  rules:
    - matches:
        - path:
            type: Prefix
            value: /
`;

const appliedResults = (body: string) => ({
  status: 200,
  body: {
    results: (JSON.parse(body) as { items: { kind: string; metadata: { name: string } }[] }).items.map((object, i) => ({
      object,
      action: i === 0 ? 'created' : 'unchanged',
    })),
  },
});

test('apply of an invalid file prints file:line:col and the field path, exits 1 and sends nothing', async () => {
  await writeFile(join(dir, 'bad.yaml'), invalidYaml);
  reset({});
  const result = await weft(['apply', '-f', 'bad.yaml']);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^bad\.yaml:17:19: HTTPRoute default\/split: spec\.rules\[0\]\.matches\[0\]\.path\.type: /m);
  assert.match(result.stderr, /nothing was applied/);
  assert.equal(recorded.length, 0, 'no request may reach the server');
});

test('apply sends every object in one call and prints what happened to each', async () => {
  await writeFile(join(dir, 'mesh.yaml'), validYaml);
  reset({ 'POST /weft/v1/apply': (req) => appliedResults(req.body) });
  const result = await weft(['apply', '-f', 'mesh.yaml']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'service/catalog created\nhttproute/catalog-split unchanged\n');
  assert.equal(recorded.length, 1);
  const sent = JSON.parse(recorded[0]!.body) as { items: { kind: string; metadata: { namespace?: string } }[] };
  assert.deepEqual(sent.items.map((i) => i.kind), ['Service', 'HTTPRoute']);
  assert.equal(sent.items[0]!.metadata.namespace, 'default', 'defaults are filled locally');
});

test('apply reads stdin and directories', async () => {
  await mkdir(join(dir, 'configs'), { recursive: true });
  await writeFile(join(dir, 'configs', 'a.yaml'), validYaml.split('---')[0]!);
  await writeFile(join(dir, 'configs', 'b.yml'), validYaml.split('---')[1]!);
  await writeFile(join(dir, 'configs', 'notes.txt'), 'not a manifest');
  reset({ 'POST /weft/v1/apply': (req) => appliedResults(req.body) });
  const fromDir = await weft(['apply', '-f', 'configs']);
  assert.equal(fromDir.code, 0, fromDir.stderr);
  assert.equal(fromDir.stdout, 'service/catalog created\nhttproute/catalog-split unchanged\n');
  const fromStdin = await weft(['apply', '-f', '-'], validYaml);
  assert.equal(fromStdin.code, 0, fromStdin.stderr);
  assert.match(fromStdin.stdout, /service\/catalog created/);
  const badStdin = await weft(['apply', '-f', '-'], invalidYaml);
  assert.equal(badStdin.code, 1);
  assert.match(badStdin.stderr, /^<stdin>:17:19: /m);
});

test('a 422 from the server is printed cause by cause, located in the source, exit 1', async () => {
  await writeFile(join(dir, 'mesh.yaml'), validYaml);
  reset({
    'POST /weft/v1/apply': () => ({
      status: 422,
      body: {
        kind: 'Status',
        code: 422,
        reason: 'Invalid',
        weftCode: 'WEFT_ERR_INVALID',
        message: '1 problem in 1 object; nothing was applied',
        details: { causes: [{ field: 'items[1].spec.rules[0].backendRefs[0].name', message: 'Service catalog-v1 does not exist' }] },
      },
    }),
  });
  const result = await weft(['apply', '-f', 'mesh.yaml']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /nothing was applied/);
  assert.match(result.stderr, /^mesh\.yaml: HTTPRoute default\/catalog-split: spec\.rules\[0\]\.backendRefs\[0\]\.name: Service catalog-v1 does not exist$/m);
});

test('an unreachable server is named in a clear message, exit 1', async () => {
  await writeFile(join(dir, 'mesh.yaml'), validYaml);
  const closed = `http://127.0.0.1:${await freePort()}`;
  for (const args of [['apply', '-f', 'mesh.yaml'], ['get', 'services'], ['status']]) {
    const result = await runWeft(['--server', closed, ...args], { cwd: dir });
    assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`cannot reach the weft control plane at ${closed.replace(/\./g, '\\.')} \\(connection refused\\)`));
    assert.doesNotMatch(result.stderr, /    at /, 'no stack trace');
  }
  // WEFT_SERVER is honoured too.
  const viaEnv = await runWeft(['status'], { cwd: dir, env: { WEFT_SERVER: closed } });
  assert.match(viaEnv.stderr, new RegExp(closed.replace(/\./g, '\\.')));
});

const workloads = [
  {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'catalog-v1', namespace: 'default', labels: { app: 'catalog', version: 'v1' }, creationTimestamp: new Date(Date.now() - 300_000).toISOString() },
    spec: { command: 'node services/catalog.ts', replicas: 1, ports: [{ name: 'http', port: 8080 }] },
  },
  {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'catalog-v1-0', namespace: 'default', labels: { app: 'catalog' }, creationTimestamp: new Date().toISOString() },
    spec: { address: '127.0.0.1', tunnelPort: 41000, ports: [{ name: 'http', port: 8080 }] },
  },
];

test('get lists a kind as a table with its own columns, or as JSON/YAML', async () => {
  reset({
    'GET /apis/weft.dev/v1alpha1/namespaces/default/workloads': () => ({ status: 200, body: { items: workloads } }),
    'GET /apis/weft.dev/v1alpha1/workloads': () => ({ status: 200, body: { items: workloads } }),
    'GET /apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/catalog-split': () => ({
      status: 200,
      body: {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'catalog-split', namespace: 'default' },
        spec: { parentRefs: [{ kind: 'Service', name: 'catalog', port: 8080 }], rules: [] },
        status: { parents: [{ parentRef: { name: 'catalog' }, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted' }] }] },
      },
    }),
  });
  const tableOut = await weft(['get', 'workloads']);
  assert.equal(tableOut.code, 0, tableOut.stderr);
  const lines = tableOut.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME\s+NAMESPACE\s+ADDRESS\s+PORTS\s+AGE$/);
  assert.match(lines[1]!, /^catalog-v1\s+default\s+<template ×1>\s+http:8080\s+5m$/);
  assert.match(lines[2]!, /^catalog-v1-0\s+default\s+127\.0\.0\.1 \(tunnel 41000\)\s+http:8080\s+[0-9]+s$/);

  const all = await weft(['get', 'wl', '-A', '-o', 'json']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal((JSON.parse(all.stdout) as { items: unknown[] }).items.length, 2);
  assert.equal(recorded.at(-1)!.url, '/apis/weft.dev/v1alpha1/workloads');

  const route = await weft(['get', 'httproute', 'catalog-split']);
  assert.equal(route.code, 0, route.stderr);
  assert.match(route.stdout, /^NAME\s+NAMESPACE\s+PARENTS\s+ACCEPTED\s+AGE\ncatalog-split\s+default\s+Service\/catalog:8080\s+True\s+<unknown>\n$/);

  const yamlOut = await weft(['get', 'HTTPRoute', 'catalog-split', '-o', 'yaml']);
  assert.match(yamlOut.stdout, /^apiVersion: gateway\.networking\.k8s\.io\/v1\nkind: HTTPRoute\n/);

  const unknown = await weft(['get', 'gizmos']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown kind "gizmos"; weft knows namespaces, services, workloads/);
});

test('get and delete report the server\'s Status, exit 1', async () => {
  const notFound = { status: 404, body: { kind: 'Status', code: 404, reason: 'NotFound', message: 'Service default/nope not found', weftCode: 'WEFT_ERR_NOT_FOUND' } };
  reset({
    'GET /api/v1/namespaces/default/services/nope': () => notFound,
    'DELETE /api/v1/namespaces/default/services/nope': () => notFound,
    'DELETE /api/v1/namespaces/shop/services/cart': () => ({ status: 200, body: { kind: 'Service', metadata: { name: 'cart' } } }),
  });
  const get = await weft(['get', 'svc', 'nope']);
  assert.equal(get.code, 1);
  assert.match(get.stderr, /^Error from server \(NotFound\): Service default\/nope not found$/m);

  const del = await weft(['delete', 'service', 'nope']);
  assert.equal(del.code, 1);
  assert.match(del.stderr, /service\/nope: Error from server \(NotFound\)/);
  assert.equal((await weft(['delete', 'service', 'nope', '--ignore-not-found'])).code, 0);

  const ok = await weft(['delete', 'svc', 'cart', '-n', 'shop']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'service/cart deleted\n');
});

test('delete -f deletes every object of the file', async () => {
  await writeFile(join(dir, 'mesh.yaml'), validYaml);
  const gone = () => ({ status: 200, body: {} });
  reset({
    'DELETE /api/v1/namespaces/default/services/catalog': gone,
    'DELETE /apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/catalog-split': gone,
  });
  const result = await weft(['delete', '-f', 'mesh.yaml']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'service/catalog deleted\nhttproute/catalog-split deleted\n');
});

test('status lists the proxies with a summary', async () => {
  const now = new Date().toISOString();
  reset({
    'GET /weft/v1/status': () => ({ status: 200, body: { store: 'sqlite', revision: 42 } }),
    'GET /weft/v1/proxies': () => ({
      status: 200,
      body: [
        { id: 'default/cart-0', mode: 'sidecar', namespace: 'default', workload: 'cart', instance: 'cart-0', address: '127.0.0.1', tunnelPort: 4100, connected: true, ready: true, sentVersion: 'sha256:0123456789abcdef', ackedVersion: 'sha256:0123456789abcdef', lastSeen: now },
        {
          id: 'default/catalog-v2-0', mode: 'sidecar', namespace: 'default', workload: 'catalog-v2', address: '127.0.0.1', tunnelPort: 4101, connected: true, ready: false,
          sentVersion: 'sha256:fedcba9876543210', ackedVersion: 'sha256:0123456789abcdef',
          lastNack: { version: 'sha256:fedcba9876543210', code: 'WEFT_ERR_SNAPSHOT_INVALID', message: 'backend default/x:80 has no port', at: now },
          lastSeen: now,
        },
      ],
    }),
  });
  const result = await weft(['status']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^Control plane ${serverUrl.replace(/\./g, '\\.')} \\(store=sqlite revision=42\\)`));
  assert.match(result.stdout, /^ID\s+WORKLOAD\s+CONNECTED\s+READY\s+ACKED\s+SENT\s+LAST NACK$/m);
  assert.match(result.stdout, /^default\/cart-0\s+cart\s+yes\s+yes\s+0123456789\s+0123456789\s+-$/m);
  assert.match(result.stdout, /^default\/catalog-v2-0\s+catalog-v2\s+yes\s+no\s+0123456789\s+fedcba9876\s+WEFT_ERR_SNAPSHOT_INVALID: backend default\/x:80 has no port$/m);
  assert.match(result.stdout, /^2 proxies: 2 connected, 1 ready, 1 up to date, 1 rejecting their config$/m);
});

test('bad flags are refused with a message, exit 1', async () => {
  const badPort = await weft(['proxy', '--app-port', 'http']);
  assert.equal(badPort.code, 1);
  assert.match(badPort.stderr, /--app-port.*must be DECLARED or DECLARED=ACTUAL/);
  const badDuration = await weft(['control-plane', '--lease-ttl', '10']);
  assert.equal(badDuration.code, 1);
  assert.match(badDuration.stderr, /must be a duration such as "10s"/);
});

test('up refuses an invalid mesh file before starting anything', async () => {
  await writeFile(join(dir, 'broken-mesh.yaml'), invalidYaml);
  const result = await runWeft(['up', '-f', 'broken-mesh.yaml', '--data-dir', 'up-data', '--api-port', '0'], { cwd: dir });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^broken-mesh\.yaml:17:19: HTTPRoute default\/split: spec\.rules\[0\]\.matches\[0\]\.path\.type: /m);
  assert.match(result.stderr, /nothing was started/);
  assert.equal(existsSync(join(dir, 'up-data')), false, 'no data directory was created');
});

test('weft up: plain commands are exec\'d by the shell, shell syntax runs as written', async () => {
  const { shellCommand } = await import('../../src/cli/up.ts');
  assert.equal(shellCommand('node services/cart.ts'), 'exec node services/cart.ts');
  assert.equal(shellCommand('node --max-old-space-size=64 app.ts'), 'exec node --max-old-space-size=64 app.ts');
  assert.equal(shellCommand('FOO=1 node app.ts'), 'FOO=1 node app.ts');
  assert.equal(shellCommand('npm run build && node dist/app.js'), 'npm run build && node dist/app.js');
  assert.equal(shellCommand('python3 -m http.server $PORT'), 'python3 -m http.server $PORT');
});

test('weft up: the environment of an app', async () => {
  const { workloadEnv } = await import('../../src/cli/up.ts');
  const env = workloadEnv({
    base: { PATH: '/usr/bin', HOME: '/home/me', WEFT_LOG_LEVEL: 'warn', PORT: '1' },
    namespace: 'shop',
    workload: 'catalog',
    instance: 'catalog-1',
    appPorts: [
      { name: 'http', declared: 8080, actual: 41000 },
      { name: 'grpc-api', declared: 9090, actual: 41001 },
    ],
    outboundPort: 42000,
    spec: { serviceAccount: 'default', ports: [], replicas: 2, upstreams: [], env: { VERSION: 'v2', PORT_HTTP: 'overridden' } },
  });
  assert.equal(env.PATH, `${process.execPath.replace(/\/node$/, '')}:/usr/bin`);
  assert.equal(env.HOME, '/home/me');
  assert.equal(env.PORT, '41000');
  assert.equal(env.PORT_HTTP, 'overridden', 'spec.env comes last');
  assert.equal(env.PORT_GRPC_API, '41001');
  assert.equal(env.HTTP_PROXY, 'http://127.0.0.1:42000');
  assert.equal(env.http_proxy, 'http://127.0.0.1:42000');
  assert.equal(env.NODE_USE_ENV_PROXY, '1');
  assert.equal(env.NO_PROXY, 'localhost,127.0.0.1');
  assert.equal(env.no_proxy, 'localhost,127.0.0.1');
  assert.deepEqual([env.WEFT_NAMESPACE, env.NAMESPACE, env.WEFT_WORKLOAD, env.WEFT_INSTANCE, env.POD_NAME], ['shop', 'shop', 'catalog', 'catalog-1', 'catalog-1']);
  assert.equal(env.VERSION, 'v2');
  assert.equal(env.WEFT_LOG_LEVEL, undefined, "weft up's own log level is not the app's business");
});

test('weft up shows proxy logs as readable lines', async () => {
  const { humanizeLogLine } = await import('../../src/cli/supervisor.ts');
  assert.equal(
    humanizeLogLine('{"level":40,"time":1,"pid":2,"name":"proxy","proxy":"default/a-0","msg":"control plane unreachable","retryMs":200}'),
    'WARN control plane unreachable proxy=default/a-0 retryMs=200',
  );
  assert.equal(humanizeLogLine('plain text'), 'plain text');
});
