// A real control plane and `weft proxy --mode gateway` carrying HTTP/2 and gRPC: grpc-js through the gateway, curl --http2 (TLS, ALPN) and h2c, h2load.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { freePort } from '../../src/testing/ports.ts';
import type { RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { selfSignedCertificate, type Certificate } from '../conformance/gateways.ts';
import { applyObjects, listenersOf, startControlPlaneProcess, startGatewayProcess, tlsSecret, writeTokenFile } from './gateway-helpers.ts';
import { EchoClient, MAX_MESSAGE, startGrpcEcho, unary, type EchoReply, type EchoRequest, type GrpcEchoServer } from '../fixtures/grpc-echo.ts';

const run = promisify(execFile);
const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';

let dir: string;
let controlPlane: RunningProcess;
let gateway: RunningProcess;
let api: string;
let web: RunningEcho;
let grpcApp: GrpcEchoServer;
let cert: Certificate;
let httpPort: number;
let httpsPort: number;
const clients: grpc.Client[] = [];

function service(name: string, port: number, appProtocol?: string) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS },
    spec: { selector: { app: name }, ports: [{ port: 8080, targetPort: port, ...(appProtocol ? { appProtocol } : {}) }] },
  };
}

function workload(name: string, port: number) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${name}-1`, namespace: NS, labels: { app: name } }, spec: { address: '127.0.0.1', ports: [{ port }] } };
}

function route(name: string, hostname: string | undefined, backend: string) {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS },
    spec: { parentRefs: [{ name: 'gw' }], ...(hostname ? { hostnames: [hostname] } : {}), rules: [{ backendRefs: [{ name: backend, port: 8080 }] }] },
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-gateway-grpc-'));
  cert = await selfSignedCertificate('gw', ['*.example.org']);
  web = await startEcho({ port: 0, namespace: NS, pod: 'web-5f6d7c-abcde', logger: pino({ level: 'silent' }) });
  grpcApp = await startGrpcEcho();
  const deadPort = await freePort();
  controlPlane = await startControlPlaneProcess();
  api = String(controlPlane.ready.api);
  const items: unknown[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    tlsSecret(NS, 'cert', cert),
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: NS },
      spec: {
        gatewayClassName: 'weft',
        listeners: [
          { name: 'http', port: 80, protocol: 'HTTP' },
          { name: 'https', port: 443, protocol: 'HTTPS', hostname: '*.example.org', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert' }] } },
        ],
      },
    },
    service('web', web.port),
    workload('web', web.port),
    service('grpc', grpcApp.port, 'kubernetes.io/h2c'),
    workload('grpc', grpcApp.port),
    service('dead', deadPort, 'grpc'),
    workload('dead', deadPort),
    route('grpc', 'grpc.example.org', 'grpc'),
    route('dead', 'dead.example.org', 'dead'),
    route('web', undefined, 'web'),
  ];
  await applyObjects(api, items);
  gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80, 443], await writeTokenFile(api, dir, NS, 'gw.gateway'));
  const listeners = listenersOf(gateway);
  httpPort = listeners['80']!;
  httpsPort = listeners['443']!;
  await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${httpPort}/ready`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      return res?.status === 200;
    },
    { timeoutMs: 10_000, message: 'the gateway to serve its routes' },
  );
});

after(async () => {
  for (const c of clients) c.close();
  await gateway?.stop({ timeoutMs: 5000 });
  await controlPlane?.stop({ timeoutMs: 5000 });
  await web?.close();
  await grpcApp?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A grpc-js client of the gateway's HTTP port, naming `authority` as the host it calls. */
function gatewayClient(authority: string): grpc.Client {
  // grpc-js takes :authority from the target unless told otherwise.
  const client = new EchoClient(`127.0.0.1:${httpPort}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
    'grpc.enable_http_proxy': 0,
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
  });
  clients.push(client);
  return client;
}

test('gRPC through the gateway: unary with metadata and trailers, status codes, streaming, 8 MiB, deadlines', async () => {
  const c = gatewayClient('grpc.example.org');
  const ok = await waitFor(
    async () => {
      const result = await unary(c, { message: 'hi' }, { metadata: { 'x-caller': 'gw-test' } });
      return result.error ? undefined : result;
    },
    { timeoutMs: 5000, message: 'a gRPC answer through the gateway' },
  );
  assert.equal(ok.reply!.message, 'hi');
  assert.ok(ok.reply!.metadata.includes('x-caller=gw-test'));
  assert.deepEqual(ok.headers!.get('x-header'), ['from-server']);
  assert.deepEqual(ok.trailers!.get('x-trailer'), ['from-server']);

  const failed = await unary(c, { status: grpc.status.ALREADY_EXISTS });
  assert.equal(failed.error?.code, grpc.status.ALREADY_EXISTS);
  assert.equal(failed.error?.details, `asked for status ${grpc.status.ALREADY_EXISTS}`);

  const late = await unary(c, { delayMs: 2000 }, { deadlineMs: 200 });
  assert.equal(late.error?.code, grpc.status.DEADLINE_EXCEEDED);

  const streams = c as unknown as {
    serverStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply>;
    clientStream(cb: (e: grpc.ServiceError | null, r?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
    bidi(): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
  };
  const sizes = await new Promise<number[]>((resolve, reject) => {
    const got: number[] = [];
    const stream = streams.serverStream({ count: 1, replyBytes: 8 * 1024 * 1024 });
    stream.on('data', (r: EchoReply) => got.push(r.payload.length));
    stream.on('error', reject);
    stream.on('end', () => resolve(got));
  });
  assert.deepEqual(sizes, [8 << 20]);
  const summary = await new Promise<EchoReply>((resolve, reject) => {
    const stream = streams.clientStream((error, reply) => (error ? reject(error) : resolve(reply!)));
    stream.write({ payload: Buffer.alloc(8 << 20, 1) });
    stream.write({ payload: Buffer.alloc(10) });
    stream.end();
  });
  assert.equal(summary.receivedBytes, (8 << 20) + 10);
  const echoed = await new Promise<string[]>((resolve, reject) => {
    const got: string[] = [];
    const stream = streams.bidi();
    stream.on('data', (r: EchoReply) => got.push(r.message));
    stream.on('error', reject);
    stream.on('end', () => resolve(got));
    for (let i = 0; i < 50; i++) stream.write({ message: `b${i}` });
    stream.end();
  });
  assert.deepEqual(echoed, [...Array(50).keys()].map((i) => `b${i}`));
});

test('gRPC through the gateway: 1,000 concurrent streams; UNAVAILABLE from the gateway when nothing listens', async () => {
  const c = gatewayClient('grpc.example.org');
  const results = await Promise.all([...Array(1000).keys()].map((i) => unary(c, { message: `n${i}` })));
  assert.deepEqual(results.filter((r) => r.error).map((r) => r.error!.message), []);
  assert.ok(results.every((r, i) => r.reply!.message === `n${i}`));

  const dead = await unary(gatewayClient('dead.example.org'), { message: 'x' });
  assert.equal(dead.error?.code, grpc.status.UNAVAILABLE);
  assert.deepEqual(dead.trailers!.get('weft-reason'), ['WEFT_ERR_UPSTREAM_CONNECT']);
});

test('curl --http2 over TLS (ALPN h2) and --http2-prior-knowledge (h2c) reach an HTTP/1.1 backend', async () => {
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, cert.certPem);
  const tls = await run(
    'curl',
    ['-sS', '--http2', '--cacert', caFile, '--resolve', `web.example.org:${httpsPort}:127.0.0.1`, `https://web.example.org:${httpsPort}/tls`, '-w', '\n%{http_version}'],
    { timeout: 10_000 },
  );
  assert.match(tls.stdout, /\n2$/);
  assert.match(tls.stdout, /"path": "\/tls"/);
  const h2c = await run('curl', ['-sS', '--http2-prior-knowledge', `http://127.0.0.1:${httpPort}/h2c`, '-w', '\n%{http_version}'], { timeout: 10_000 });
  assert.match(h2c.stdout, /\n2$/);
  assert.match(h2c.stdout, /"path": "\/h2c"/);
});

test('h2load -n 20000 -c 10 -m 50 (h2c) through the gateway completes with zero errors', async () => {
  const { stdout } = await run('h2load', ['-n', '20000', '-c', '10', '-m', '50', `http://127.0.0.1:${httpPort}/load`], { timeout: 60_000 });
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  assert.ok(requests, stdout);
  assert.equal(Number(requests[4]), 20_000, stdout);
  assert.equal(Number(requests[5]), 0, stdout);
  assert.equal(Number(requests[6]), 0, stdout);
  assert.match(stdout, /status codes: 20000 2xx/, stdout);
});
