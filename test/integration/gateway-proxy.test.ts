// A real control plane and `weft proxy --mode gateway`: listener ports, host routing, TLS with SNI across listeners, 421, h2c, status.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import type { RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { selfSignedCertificate, type Certificate } from '../conformance/gateways.ts';
import { apiCall, applyObjects, listenersOf, startControlPlaneProcess, startGatewayProcess, tlsSecret, writeTokenFile } from './gateway-helpers.ts';

const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The echo's JSON, when a backend answered. */
  echo?: { host: string; path: string; pod: string; headers: Record<string, string[]> };
}

function parse(status: number, headers: Answer['headers'], body: string): Answer {
  const answer: Answer = { status, headers, body };
  if (String(headers['content-type']) === 'application/json') answer.echo = JSON.parse(body) as Answer['echo'];
  return answer;
}

/** One HTTP/1.1 request on its own connection, plain or over TLS (with SNI), bounded. */
function get(port: number, host: string, path = '/', tls?: { servername: string; ca: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, headers: { host }, agent: false as const, setHost: false, timeout: 5000 };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(parse(res.statusCode ?? 0, res.headers, body)));
    };
    const req = tls ? httpsRequest({ ...options, servername: tls.servername, ca: tls.ca }, onResponse) : httpRequest(options, onResponse);
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** One HTTP/2 request on its own connection: h2c with prior knowledge, or over TLS with SNI; :authority from `authority`. */
function get2(port: number, authority: string, path = '/', tls?: { servername: string; ca: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = tls
      ? http2Connect(`https://127.0.0.1:${port}`, { servername: tls.servername, ca: tls.ca })
      : http2Connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => session.destroy(new Error('no answer within 5 s')), 5000);
    session.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    const stream = session.request({ ':path': path, ':authority': authority }, { endStream: true });
    let headers: Answer['headers'] = {};
    let body = '';
    stream.on('response', (h) => (headers = h as Answer['headers']));
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      resolve(parse(Number(headers[':status']), headers, body));
    });
    stream.on('error', reject);
  });
}

/** The certificate a TLS handshake with `servername` (none when empty) is answered with. */
function peerCertificate(port: number, servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('no handshake within 5 s')));
    socket.on('error', reject);
  });
}

let dir: string;
let controlPlane: RunningProcess;
let gateway: RunningProcess;
let api: string;
const echoes: RunningEcho[] = [];
let certA: Certificate;
let certAny: Certificate;
let trusted: string;
let httpPort: number;
let httpsPort: number;

const call = (method: string, path: string, body?: unknown) => apiCall(api, method, path, body);
const apply = (items: unknown[]) => applyObjects(api, items);

const secret = (name: string, cert: Certificate) => tlsSecret(NS, name, cert);

function gatewayObject(extraListeners: unknown[] = []) {
  const tls = (name: string) => ({ mode: 'Terminate', certificateRefs: [{ name }] });
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: NS },
    spec: {
      gatewayClassName: 'weft',
      listeners: [
        { name: 'http-a', port: 80, protocol: 'HTTP', hostname: 'a.example.org' },
        { name: 'http-any', port: 80, protocol: 'HTTP' },
        { name: 'https-a', port: 443, protocol: 'HTTPS', hostname: 'a.example.org', tls: tls('cert-a') },
        { name: 'https-any', port: 443, protocol: 'HTTPS', tls: tls('cert-any') },
        ...extraListeners,
      ],
    },
  };
}

function routeTo(name: string, sectionName: string, service: string) {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS },
    spec: { parentRefs: [{ name: 'gw', sectionName }], rules: [{ backendRefs: [{ name: service, port: 8080 }] }] },
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-gateway-'));
  [certA, certAny] = await Promise.all([selfSignedCertificate('a', ['a.example.org']), selfSignedCertificate('any', ['*.example.org'])]);
  trusted = certA.certPem + certAny.certPem;
  const quiet = pino({ level: 'silent' });
  for (const app of ['alpha', 'beta']) echoes.push(await startEcho({ port: 0, namespace: NS, pod: `${app}-7d9f8c-abcde`, logger: quiet }));
  controlPlane = await startControlPlaneProcess();
  api = String(controlPlane.ready.api);
  const objects: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, secret('cert-a', certA), secret('cert-any', certAny), gatewayObject()];
  ['alpha', 'beta'].forEach((app, i) => {
    objects.push(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: NS }, spec: { selector: { app }, ports: [{ port: 8080, targetPort: echoes[i]!.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${app}-1`, namespace: NS, labels: { app } }, spec: { address: '127.0.0.1', ports: [{ port: echoes[i]!.port }] } },
    );
  });
  objects.push(routeTo('to-alpha', 'http-a', 'alpha'), routeTo('to-beta', 'http-any', 'beta'), routeTo('secure-alpha', 'https-a', 'alpha'), routeTo('secure-beta', 'https-any', 'beta'));
  await apply(objects);
  gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80, 443], await writeTokenFile(api, dir, NS, 'gw.gateway'));
  const listeners = listenersOf(gateway);
  httpPort = listeners['80']!;
  httpsPort = listeners['443']!;
  // Served once the first config is in: the catch-all route answers.
  await waitFor(async () => (await get(httpPort, 'x.example.org')).status === 200, { timeoutMs: 10_000, message: 'the gateway to serve its routes' });
});

after(async () => {
  await gateway?.stop({ timeoutMs: 5000 });
  await controlPlane?.stop({ timeoutMs: 5000 });
  await Promise.all(echoes.map((e) => e.close()));
  rmSync(dir, { recursive: true, force: true });
});

test('the ready line maps every Gateway port to the local port serving it; the Gateway is Programmed at the proxy’s address', async () => {
  assert.ok(httpPort > 0 && httpsPort > 0 && httpPort !== httpsPort);
  const status = await waitFor(
    async () => {
      const { json } = await call('GET', `/apis/${GROUP}/v1/namespaces/${NS}/gateways/gw`);
      const s = (json as { status?: { conditions?: { type: string; status: string }[]; addresses?: { value: string }[]; listeners?: { name: string; attachedRoutes: number }[] } }).status;
      return s?.conditions?.find((c) => c.type === 'Programmed')?.status === 'True' ? s : undefined;
    },
    { timeoutMs: 10_000, message: 'the Gateway to be Programmed' },
  );
  assert.deepEqual(status.addresses, [{ type: 'IPAddress', value: '127.0.0.1' }]);
  assert.deepEqual(
    Object.fromEntries((status.listeners ?? []).map((l) => [l.name, l.attachedRoutes])),
    { 'http-a': 1, 'http-any': 1, 'https-a': 1, 'https-any': 1 },
  );
  const { json } = await call('GET', `/apis/${GROUP}/v1/namespaces/${NS}/httproutes/to-alpha`);
  const parents = (json as { status: { parents: { controllerName: string; conditions: { type: string; status: string }[] }[] } }).status.parents;
  assert.equal(parents[0]!.controllerName, 'weft.dev/gateway-controller');
  assert.equal(parents[0]!.conditions.find((c) => c.type === 'Accepted')?.status, 'True');
});

test('HTTP: the host picks the most specific listener; a port in Host plays no part in matching and is forwarded as sent', async () => {
  const a = await get(httpPort, 'a.example.org:80', '/x?y=1');
  assert.equal(a.status, 200);
  assert.match(a.echo!.pod, /^alpha-/);
  assert.equal(a.echo!.host, 'a.example.org:80');
  assert.equal(a.echo!.path, '/x?y=1');
  assert.deepEqual(a.echo!.headers['X-Forwarded-Proto'], ['http']);
  const other = await get(httpPort, 'B.Example.org');
  assert.match(other.echo!.pod, /^beta-/);
});

test('HTTP/2 with prior knowledge (h2c) is served on an HTTP listener', async () => {
  const answer = await get2(httpPort, 'a.example.org', '/h2c');
  assert.equal(answer.status, 200);
  assert.match(answer.echo!.pod, /^alpha-/);
  assert.equal(answer.echo!.host, 'a.example.org');
});

test('HTTPS: SNI picks the listener’s certificate; a handshake without SNI gets the catch-all listener’s', async () => {
  assert.equal((await peerCertificate(httpsPort, 'a.example.org')).subject.CN, 'a');
  assert.equal((await peerCertificate(httpsPort, 'b.example.org')).subject.CN, 'any');
  assert.equal((await peerCertificate(httpsPort, '')).subject.CN, 'any');
  const h1 = await get(httpsPort, 'a.example.org', '/secure', { servername: 'a.example.org', ca: trusted });
  assert.match(h1.echo!.pod, /^alpha-/);
  assert.deepEqual(h1.echo!.headers['X-Forwarded-Proto'], ['https']);
  const h2 = await get2(httpsPort, 'b.example.org', '/secure', { servername: 'b.example.org', ca: trusted });
  assert.equal(h2.status, 200);
  assert.match(h2.echo!.pod, /^beta-/);
});

test('the admin /config shows the gateway config without its private keys', async () => {
  const admin = (gateway.ready.ports as { admin: number }).admin;
  const config = (await (await fetch(`http://127.0.0.1:${admin}/config`, { signal: AbortSignal.timeout(5000) })).json()) as {
    gatewayPorts: Record<string, number>;
    snapshot: { gateway: { ports: { listeners: { tls?: { certificates: { certPem: string; keyPem: string }[] } }[] }[] } };
  };
  assert.deepEqual(config.gatewayPorts['443'], httpsPort);
  const certificates = config.snapshot.gateway.ports.flatMap((p) => p.listeners.flatMap((l) => l.tls?.certificates ?? []));
  assert.ok(certificates.length >= 2);
  for (const c of certificates) {
    assert.match(c.certPem, /BEGIN CERTIFICATE/);
    assert.equal(c.keyPem, '(not shown)');
  }
});

test('HTTPS: a request for a host of another listener than its connection’s is misdirected (421), over HTTP/2 and HTTP/1.1', async () => {
  const h2 = await get2(httpsPort, 'b.example.org', '/', { servername: 'a.example.org', ca: trusted });
  assert.equal(h2.status, 421);
  assert.equal(h2.headers['weft-reason'], 'WEFT_ERR_MISDIRECTED_REQUEST');
  const h1 = await get(httpsPort, 'a.example.org', '/', { servername: 'b.example.org', ca: trusted });
  assert.equal(h1.status, 421);
  assert.equal(h1.headers['weft-reason'], 'WEFT_ERR_MISDIRECTED_REQUEST');
  // The same host on the right connection is served.
  assert.equal((await get2(httpsPort, 'a.example.org:443', '/', { servername: 'a.example.org', ca: trusted })).status, 200);
});

test('a Gateway port added later is bound and announced; one without routes for a host answers 404 with its reason', async () => {
  await apply([gatewayObject([{ name: 'extra', port: 8080, protocol: 'HTTP', hostname: 'extra.example.org' }]), routeTo('extra', 'extra', 'beta')]);
  const line = await waitFor(
    () => gateway.stdout().split('\n').find((l) => l.includes('"event":"listeners"') && l.includes('"8080"')),
    { timeoutMs: 10_000, message: 'the gateway to announce port 8080' },
  );
  const extraPort = (JSON.parse(line) as { listeners: Record<string, number> }).listeners['8080']!;
  const answer = await waitFor(async () => {
    const a = await get(extraPort, 'extra.example.org');
    return a.status === 200 ? a : undefined;
  }, { timeoutMs: 10_000, message: 'port 8080 to serve its route' });
  assert.match(answer.echo!.pod, /^beta-/);
  const unknown = await get(extraPort, 'nobody.example.org');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
});
