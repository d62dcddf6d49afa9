// A real control plane, a gateway proxy and a sidecar: TLS passthrough by SNI (openssl s_client), weighted TCPRoute backends, a TCPRoute on a mesh Service.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { freePort } from '../../src/testing/ports.ts';
import { runProcess, startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { selfSignedCertificate } from '../conformance/gateways.ts';
import { apiCall, applyObjects, listenersOf, proxyArgs, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from './gateway-helpers.ts';

const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';

let dir: string;
let controlPlane: RunningProcess;
let gateway: RunningProcess;
let sidecar: RunningProcess | undefined;
let api: string;
let tcpPort: number;
let tlsPort: number;
let upstreamPort: number;
let upstreamTlsPort: number;
const servers: (Server | TlsServer)[] = [];
/** Backend name → its port. */
const ports = new Map<string, number>();

const call = (method: string, path: string, body?: unknown) => apiCall(api, method, path, body);
const apply = (items: unknown[]) => applyObjects(api, items);

function listen<T extends Server | TlsServer>(server: T): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** A TCP server that greets each connection with its name and then echoes. */
function nameServer(name: string): Server {
  return createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
}

/** Connects, reads the first line (the backend's name), closes. */
function firstLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no line from port ${port} within 5 s (read ${JSON.stringify(text)})`));
    }, 5000);
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(text.slice(0, end));
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`port ${port} closed the connection (read ${JSON.stringify(text)})`));
    });
    socket.once('error', () => {});
  });
}

/** A Service whose port `port` targets `targetPort`, where its (static) endpoint really listens. */
function service(name: string, port: number, appProtocol?: string, targetPort?: number) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS },
    spec: { ...(targetPort !== undefined ? { selector: { app: name } } : {}), ports: [{ port, ...(targetPort !== undefined ? { targetPort } : {}), ...(appProtocol ? { appProtocol } : {}) }] },
  };
}

/** A static endpoint outside the mesh for Service `name`, listening on `port`. */
function workload(name: string, port: number) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${name}-1`, namespace: NS, labels: { app: name } }, spec: { address: '127.0.0.1', ports: [{ port }] } };
}

/** Runs openssl s_client with SNI `servername` against the gateway's TLS port; returns its output. */
async function sClient(servername: string, port = tlsPort): Promise<{ code: number | null; out: string }> {
  const result = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-ign_eof'], { input: '', timeoutMs: 10_000 });
  return { code: result.code, out: result.stdout + result.stderr };
}

async function gatewayMetrics(): Promise<string> {
  const admin = (gateway.ready.ports as { admin: number }).admin;
  return (await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-gateway-l4-'));
  // Two TLS backends, each with its own self-signed certificate; each greets with its name once the handshake is done.
  for (const name of ['a', 'b']) {
    const cert = await selfSignedCertificate(`${name}.example`, [`${name}.example`]);
    const server = createTlsServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => {
      socket.on('error', () => socket.destroy());
      socket.end(`hello from backend ${name}\n`);
    });
    ports.set(`tls-${name}`, await listen(server));
  }
  for (const name of ['tcp-a', 'tcp-b']) ports.set(name, await listen(nameServer(name)));

  controlPlane = await startControlPlaneProcess();
  api = String(controlPlane.ready.api);
  upstreamPort = await freePort();
  upstreamTlsPort = await freePort();
  const objects: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }];
  for (const name of ['tls-a', 'tls-b']) objects.push(service(name, 8443, 'tls', ports.get(name)!), workload(name, ports.get(name)!));
  for (const name of ['tcp-a', 'tcp-b']) objects.push(service(name, 7000, 'tcp', ports.get(name)!), workload(name, ports.get(name)!));
  objects.push(
    {
      apiVersion: `${GROUP}/v1`,
      kind: 'Gateway',
      metadata: { name: 'gw', namespace: NS },
      spec: {
        gatewayClassName: 'weft',
        listeners: [
          { name: 'tcp', port: 9000, protocol: 'TCP' },
          { name: 'tls', port: 9443, protocol: 'TLS', tls: { mode: 'Passthrough' } },
        ],
      },
    },
    ...['a', 'b'].map((name) => ({
      apiVersion: `${GROUP}/v1alpha3`,
      kind: 'TLSRoute',
      metadata: { name: `sni-${name}`, namespace: NS },
      spec: { parentRefs: [{ name: 'gw', sectionName: 'tls' }], hostnames: [`${name}.example`], rules: [{ backendRefs: [{ name: `tls-${name}`, port: 8443 }] }] },
    })),
    {
      apiVersion: `${GROUP}/v1alpha2`,
      kind: 'TCPRoute',
      metadata: { name: 'split', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw', sectionName: 'tcp' }],
        rules: [{ backendRefs: [{ name: 'tcp-a', port: 7000, weight: 80 }, { name: 'tcp-b', port: 7000, weight: 20 }] }],
      },
    },
    // GAMMA: a Service with no endpoints of its own whose TCP goes where its TCPRoute says.
    service('db', 7000, 'tcp'),
    {
      apiVersion: `${GROUP}/v1alpha2`,
      kind: 'TCPRoute',
      metadata: { name: 'db-to-b', namespace: NS },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'db', port: 7000 }], rules: [{ backendRefs: [{ name: 'tcp-b', port: 7000 }] }] },
    },
    // GAMMA for TLS: one Service port, two TLSRoutes, routed by the ClientHello's SNI without terminating.
    service('secure', 8443, 'tls'),
    ...['a', 'b'].map((name) => ({
      apiVersion: `${GROUP}/v1alpha2`,
      kind: 'TLSRoute',
      metadata: { name: `secure-${name}`, namespace: NS },
      spec: { parentRefs: [{ kind: 'Service', name: 'secure', port: 8443 }], hostnames: [`${name}.example`], rules: [{ backendRefs: [{ name: `tls-${name}`, port: 8443 }] }] },
    })),
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'client', namespace: NS },
      spec: {
        upstreams: [
          { service: 'db', port: 7000, localPort: upstreamPort },
          { service: 'secure', port: 8443, localPort: upstreamTlsPort },
        ],
      },
    },
  );
  await apply(objects);

  gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [9000, 9443], await writeTokenFile(api, dir, NS, 'gw.gateway'));
  const listeners = listenersOf(gateway);
  tcpPort = listeners['9000']!;
  tlsPort = listeners['9443']!;
  sidecar = await startWeft(['proxy', '--mode', 'sidecar', '--namespace', NS, '--workload', 'client', ...proxyArgs(controlPlane, await writeTokenFile(api, dir, NS, 'client'))], {
    env: { WEFT_LOG_LEVEL: 'warn' },
  });
  await waitFor(async () => (await firstLine(tcpPort)).startsWith('tcp-'), { timeoutMs: 10_000, message: 'the gateway to serve its TCP listener' }).catch((error: unknown) => {
    throw new Error(`${String(error)}\n--- gateway ---\n${gateway.stdout()}${gateway.stderr()}\n--- control plane ---\n${controlPlane.stderr()}`);
  });
});

after(async () => {
  await sidecar?.stop({ timeoutMs: 5000 });
  await gateway?.stop({ timeoutMs: 5000 });
  await controlPlane?.stop({ timeoutMs: 5000 });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  rmSync(dir, { recursive: true, force: true });
});

test('TLS passthrough: openssl s_client with SNI a.example reaches the backend that owns a.example and sees its certificate; b.example the other', async () => {
  for (const name of ['a', 'b']) {
    const { out } = await sClient(`${name}.example`);
    // openssl 3 prints "subject=CN = a.example" (or "subject=CN=a.example" in newer releases).
    assert.match(out, new RegExp(`subject=\\s*CN\\s*=\\s*${name}\\.example`), out);
    assert.match(out, new RegExp(`hello from backend ${name}`), out);
  }
});

test('TLS passthrough: an SNI no TLSRoute serves is closed without a certificate, and counted', async () => {
  const { out } = await sClient('c.example');
  assert.doesNotMatch(out, /subject=/);
  assert.doesNotMatch(out, /hello from backend/);
  const metrics = await gatewayMetrics();
  assert.match(metrics, /weft_gateway_l4_connections_total\{protocol="TLS",result="unknown_sni"\} [1-9]/);
  assert.match(metrics, /weft_gateway_l4_connections_total\{protocol="TLS",result="routed"\} [1-9]/);
});

test('TCPRoute at a gateway TCP listener: 200 connections split 80/20 between two backends, within tolerance', async () => {
  const counts: Record<string, number> = {};
  for (let batch = 0; batch < 10; batch++) {
    const names = await Promise.all(Array.from({ length: 20 }, () => firstLine(tcpPort)));
    for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  }
  assert.deepEqual(Object.keys(counts).sort(), ['tcp-a', 'tcp-b']);
  const shareA = (counts['tcp-a']! / 200) * 100;
  // Weighted random: 80 % ± 10 points is about 3.5 standard deviations at 200 connections.
  assert.ok(shareA >= 70 && shareA <= 90, `tcp-a got ${shareA} % of 200 connections`);
});

test('a TCPRoute on a mesh Service sends its opaque TCP (through a sidecar upstream port) to the route’s backend', async () => {
  await waitFor(async () => (await firstLine(upstreamPort)) === 'tcp-b', { timeoutMs: 10_000, message: 'the sidecar upstream port to reach tcp-b' });
  for (let i = 0; i < 5; i++) assert.equal(await firstLine(upstreamPort), 'tcp-b');
});

/** A TLS handshake with SNI `servername` inside a CONNECT tunnel through the sidecar's outbound port; resolves with the peer's CN and first line. */
function tlsThroughConnect(outbound: number, authority: string, servername: string): Promise<{ cn: string; line: string }> {
  return new Promise((resolve, reject) => {
    const raw = connect({ host: '127.0.0.1', port: outbound });
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error('no TLS answer through CONNECT within 5 s'));
    }, 5000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(error);
    };
    raw.once('error', fail);
    raw.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
    let head = '';
    const onHead = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      raw.off('data', onHead);
      if (!head.startsWith('HTTP/1.1 200')) return fail(new Error(`CONNECT answered ${head}`));
      const secure = tlsConnect({ socket: raw, servername, rejectUnauthorized: false });
      let text = '';
      secure.on('error', fail);
      secure.setEncoding('utf8').on('data', (c: string) => (text += c));
      secure.on('end', () => {
        clearTimeout(timer);
        const cn = String(secure.getPeerCertificate().subject?.CN ?? '');
        secure.destroy();
        resolve({ cn, line: text.trim() });
      });
    };
    raw.on('data', onHead);
  });
}

test('TLSRoutes on a mesh Service route by SNI through a sidecar: upstream port (openssl s_client) and CONNECT (Node TLS)', async () => {
  await waitFor(async () => /subject=\s*CN\s*=\s*a\.example/.test((await sClient('a.example', upstreamTlsPort)).out), { timeoutMs: 10_000, message: 'the sidecar to route a.example' });
  const b = await sClient('b.example', upstreamTlsPort);
  assert.match(b.out, /subject=\s*CN\s*=\s*b\.example/, b.out);
  assert.match(b.out, /hello from backend b/, b.out);
  const outbound = (sidecar!.ready.ports as { outbound: number }).outbound;
  assert.deepEqual(await tlsThroughConnect(outbound, `secure.${NS}:8443`, 'a.example'), { cn: 'a.example', line: 'hello from backend a' });
  assert.deepEqual(await tlsThroughConnect(outbound, `secure.${NS}:8443`, 'b.example'), { cn: 'b.example', line: 'hello from backend b' });
  // No TLSRoute serves c.example (and no TCPRoute catches the rest): the connection is closed.
  const none = await sClient('c.example', upstreamTlsPort);
  assert.doesNotMatch(none.out, /subject=/);
});

test('status: the routes are Accepted with ResolvedRefs; each L4 listener counts its routes', async () => {
  const routeConditions = async (plural: string, version: string, name: string) => {
    const { json } = await call('GET', `/apis/${GROUP}/${version}/namespaces/${NS}/${plural}/${name}`);
    return (json as { status?: { parents?: { controllerName: string; conditions: { type: string; status: string }[] }[] } }).status?.parents ?? [];
  };
  const parents = await waitFor(async () => {
    const p = await routeConditions('tlsroutes', 'v1alpha3', 'sni-a');
    return p.length > 0 ? p : undefined;
  }, { timeoutMs: 5000, message: 'TLSRoute status' });
  assert.equal(parents[0]!.controllerName, 'weft.dev/gateway-controller');
  assert.deepEqual(parents[0]!.conditions.map((c) => [c.type, c.status]), [['Accepted', 'True'], ['ResolvedRefs', 'True']]);
  const mesh = await routeConditions('tcproutes', 'v1alpha2', 'db-to-b');
  assert.equal(mesh[0]!.controllerName, 'weft.dev/mesh');
  assert.deepEqual(mesh[0]!.conditions.map((c) => [c.type, c.status]), [['Accepted', 'True'], ['ResolvedRefs', 'True']]);
  const { json } = await call('GET', `/apis/${GROUP}/v1/namespaces/${NS}/gateways/gw`);
  const listeners = (json as { status: { listeners: { name: string; attachedRoutes: number }[] } }).status.listeners;
  assert.deepEqual(Object.fromEntries(listeners.map((l) => [l.name, l.attachedRoutes])), { tcp: 1, tls: 2 });
});
