// Helpers for the proxy's integration tests: snapshot builder, echo backends, a fake control plane, requests via the proxy.
import http2 from 'node:http2';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type Agent } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  servicePortKey,
  type HttpRouteRule,
  type NodeInfo,
  type PortProtocol,
  type ProxySnapshot,
  type SnapshotEndpoint,
  type SnapshotJwtRule,
  type SnapshotService,
} from '../../src/api/snapshot.ts';
import { STREAM_PATH, type ControlMessage, type ProxyMessage } from '../../src/api/stream.ts';
import { startProxy, type ProxyOptions, type RunningProxy } from '../../src/proxy/main.ts';
import { CertificateAuthority } from '../../src/control/ca/authority.ts';
import type { RenewFunction } from '../../src/proxy/identity/manager.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { TUNNEL_ALPN } from '../../src/proxy/transport/mtls.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { freePort } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';

export interface ServiceSpec {
  name: string;
  namespace?: string;
  ports: { port: number; protocol?: PortProtocol; endpoints: SnapshotEndpoint[]; rules?: HttpRouteRule[]; lb?: 'round-robin' | 'least-request' }[];
}

/** A consistent snapshot for the proxy of `workload` in `namespace`; the version is a hash of the content. */
export function buildSnapshot(options: {
  namespace?: string;
  workload?: string;
  services?: ServiceSpec[];
  inboundPorts?: number[];
  upstreams?: ProxySnapshot['upstreams'];
  /** Extra backends (e.g. targets of split routes that are not services here). */
}): ProxySnapshot {
  const ns = options.namespace ?? 'default';
  const services: SnapshotService[] = [];
  const routes: ProxySnapshot['routes'] = {};
  const backends: ProxySnapshot['backends'] = {};
  for (const spec of options.services ?? []) {
    const sns = spec.namespace ?? 'default';
    const hosts = [`${spec.name}.${sns}`, `${spec.name}.${sns}.svc`, `${spec.name}.${sns}.svc.cluster.local`];
    if (sns === ns) hosts.unshift(spec.name);
    const ports = spec.ports.map((p) => {
      const key = servicePortKey(sns, spec.name, p.port);
      const protocol = p.protocol ?? 'http';
      backends[key] = { key, namespace: sns, service: spec.name, port: p.port, protocol, lb: p.lb ?? 'round-robin', endpoints: p.endpoints };
      routes[key] = { key, rules: p.rules ?? [{ id: 'default', match: {}, filters: [], backends: [{ backend: key, weight: 1, filters: [] }] }] };
      return { port: p.port, protocol, routeKey: key };
    });
    services.push({ namespace: sns, name: spec.name, hosts, ports });
  }
  const node: ProxySnapshot['node'] = { mode: 'sidecar', namespace: ns };
  if (options.workload) node.workload = options.workload;
  const content = {
    node,
    mesh: { trustDomain: 'cluster.local', clusterDomain: 'cluster.local' },
    services,
    routes,
    backends,
    inbound: { ports: options.inboundPorts ?? [] },
    upstreams: options.upstreams ?? [],
  };
  return { version: createHash('sha256').update(JSON.stringify(content)).digest('hex'), ...content };
}

/** Gives a snapshot a fresh version after a test edited it by hand. */
export function reversion(snapshot: ProxySnapshot): ProxySnapshot {
  const { version: _old, ...content } = snapshot;
  return { version: createHash('sha256').update(JSON.stringify(content)).digest('hex'), ...content };
}

/** The identity test proxies get unless a test asks for another, and that tunnelled test endpoints expect. */
/** An inbound JWT rule for issuer https://issuer.example, read from `authorization: Bearer`, RS256; `fields` set the rest (jwks or jwksUri). */
export function testJwtRule(fields: Partial<SnapshotJwtRule> = {}): SnapshotJwtRule {
  return {
    id: 'default/jwt/0',
    issuer: 'https://issuer.example',
    audiences: [],
    fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }],
    fromParams: [],
    fromCookies: [],
    outputClaimToHeaders: [],
    forwardOriginalToken: false,
    algorithms: ['RS256'],
    clockSkewMs: 60_000,
    jwksCacheMs: 300_000,
    jwksTimeoutMs: 5_000,
    ...fields,
  };
}

export const TEST_IDENTITY = 'spiffe://cluster.local/ns/default/sa/default';

export function endpoint(id: string, port: number, tunnelPort?: number, identity = TEST_IDENTITY): SnapshotEndpoint {
  const ep: SnapshotEndpoint = { id, address: '127.0.0.1', port, labels: {} };
  if (tunnelPort !== undefined) {
    ep.tunnelPort = tunnelPort;
    ep.identity = identity;
  }
  return ep;
}

let testCa: Promise<CertificateAuthority> | undefined;

/** The CA test proxies get their certificates from, standing in for a control plane's. */
export function testCertificateAuthority(): Promise<CertificateAuthority> {
  return (testCa ??= CertificateAuthority.generate({ trustDomain: 'cluster.local', clock: systemClock }));
}

/** Issues `spiffeId` from the test CA, as the control plane's CA would for a proxy with the right token. */
export function testIssuer(spiffeId = TEST_IDENTITY, ttlMs = 3_600_000): RenewFunction {
  return async (csrPem) => {
    const ca = await testCertificateAuthority();
    return { ...(await ca.signCsr(csrPem, { spiffeId, ttlMs })), trustBundle: ca.trustBundle() };
  };
}

export interface Echoed {
  name: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Backend {
  name: string;
  port: number;
  server: Server;
  requests: number;
  close(): Promise<void>;
}

/** An HTTP server answering JSON {name, method, url, headers, body}; `?delay=ms` waits first, `?status=n` sets the status. */
export async function startBackend(name: string): Promise<Backend> {
  const backend: Backend = { name, port: 0, server: undefined as unknown as Server, requests: 0, close: async () => {} };
  const server = createServer((req, res) => {
    backend.requests++;
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const delay = Number(url.searchParams.get('delay') ?? 0);
      const status = Number(url.searchParams.get('status') ?? 200);
      const answer = () => {
        const text = JSON.stringify({ name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, body } satisfies Echoed);
        res.writeHead(status, { 'content-type': 'application/json', 'x-backend': name, 'x-remove-me': 'yes' });
        res.end(text);
      };
      if (delay > 0) {
        const timer = setTimeout(answer, delay);
        res.once('close', () => clearTimeout(timer));
      } else {
        answer();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.server = server;
  backend.port = (server.address() as AddressInfo).port;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return backend;
}

/**
 * A TCP app (not yet listening) that shows half-close: "echo-until-end"
 * answers what it got after the client's end; "server-first" sends a banner
 * and ends at once, then reports (to `heard`) what the client sent after that.
 */
export function createHalfCloseServer(heard: string[]): NetServer {
  const server = createNetServer({ allowHalfOpen: true }, (socket: NetSocket) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text === 'server-first\n') {
        text = '';
        socket.end('banner then goodbye\n');
      }
    });
    socket.on('end', () => {
      if (socket.writableEnded) heard.push(text);
      else socket.end(`got ${text.length} bytes: ${text}`);
    });
    socket.on('error', () => socket.destroy());
  });
  return server;
}

export interface TestProxy {
  proxy: RunningProxy;
  dataDir: string;
  close(): Promise<void>;
}

/**
 * A proxy that starts from `snapshot` on disk, with a control plane address
 * nobody listens on (unless given), and a certificate from the test CA for
 * `identity` (TEST_IDENTITY unless given); resolves once it holds it.
 */
export async function startTestProxy(options: Partial<ProxyOptions> & { snapshot?: ProxySnapshot; identity?: string } = {}): Promise<TestProxy> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-proxy-'));
  if (options.snapshot) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'snapshot.json'), JSON.stringify(options.snapshot));
  }
  const { snapshot: _snapshot, identity, ...rest } = options;
  const proxy = await startProxy({
    mode: 'sidecar',
    controlPlane: options.controlPlane ?? `http://127.0.0.1:${await freePort()}`,
    namespace: 'default',
    appPorts: [],
    outboundPort: 0,
    tunnelPort: 0,
    adminPort: 0,
    drainMs: 2000,
    reconnectBackoff: { initialMs: 50, maxMs: 200 },
    logger: silentLogger(),
    clock: systemClock,
    ...(rest.token === undefined ? { issueCertificate: testIssuer(identity) } : {}),
    ...rest,
    dataDir,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      proxy.identityReady,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the test proxy got no certificate within 5 s')), 5000);
      }),
    ]);
  } catch (error) {
    await proxy.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    proxy,
    dataDir,
    close: async () => {
      await proxy.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface HttpResult {
  status: number;
  /** Whether the request went out on a kept-alive connection. */
  reusedSocket: boolean;
  headers: IncomingHttpHeaders;
  body: string;
  json<T = Echoed>(): T;
}

/** One request to `port` with a raw request target (absolute-form by default, as curl -x sends it). */
export function viaProxy(
  port: number,
  target: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (target.startsWith('http://') && headers.host === undefined) headers.host = new URL(target).host;
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: target, headers, agent: options.agent ?? false, timeout: options.timeoutMs ?? 5000 },
      (res) => collectResult(res, req.reusedSocket, resolve, reject),
    );
    req.on('timeout', () => req.destroy(new Error(`request ${target} via :${port} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A key and certificate for `spiffeId` from `ca` (the test CA by default), and the roots to trust: a client of a tunnel port. */
export async function tunnelClientCredentials(spiffeId = TEST_IDENTITY, ca?: CertificateAuthority): Promise<{ key: string; cert: string; ca: string[] }> {
  const authority = ca ?? (await testCertificateAuthority());
  const { keyPem, csrPem } = await generateKeyAndCsr();
  const signed = await authority.signCsr(csrPem, { spiffeId, ttlMs: 3_600_000 });
  return { key: keyPem, cert: signed.certPem + signed.chainPem, ca: (await testCertificateAuthority()).trustBundle() };
}

/** One HTTP request straight to a proxy's tunnel port over mTLS, as a peer proxy with `credentials` would send it. */
export function viaTunnel(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; credentials: { key: string; cert: string; ca: string[] }; timeoutMs?: number },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    // https.request hands these to tls.connect, ALPN included (its type does not say so).
    const requestOptions: RequestOptions & { ALPNProtocols: string[] } = {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path,
        headers: options.headers ?? {},
        agent: false,
        timeout: options.timeoutMs ?? 5000,
        ...options.credentials,
        ALPNProtocols: [TUNNEL_ALPN],
        minVersion: 'TLSv1.3' as const,
        // The peer's SPIFFE ID is not what these tests are about.
        checkServerIdentity: () => undefined,
    };
    const req = httpsRequest(requestOptions, (res) => collectResult(res, false, resolve, reject));
    req.on('timeout', () => req.destroy(new Error(`request ${path} via tunnel :${port} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Reads a whole response into an HttpResult. */
function collectResult(res: IncomingMessage, reusedSocket: boolean, resolve: (result: HttpResult) => void, reject: (error: Error) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => (body += chunk));
  res.on('end', () =>
    resolve({
      status: res.statusCode ?? 0,
      reusedSocket,
      headers: res.headers,
      body,
      json<T>() {
        return JSON.parse(body) as T;
      },
    }),
  );
  res.on('error', reject);
}

/**
 * Opens CONNECT `authority` through the proxy's outbound `port`; once it is
 * answered 200, sends `payload` and reads until `done` holds for what came
 * after the answer head (or the connection ends).
 */
export function throughConnectTunnel(
  port: number,
  authority: string,
  payload: Buffer | string,
  done: (data: string) => boolean = (data) => data === payload,
): Promise<{ head: string; data: string }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1');
    let text = '';
    let headEnd = -1;
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ head: text.slice(0, headEnd === -1 ? text.length : headEnd), data: headEnd === -1 ? '' : text.slice(headEnd + 4) });
    };
    const timer = setTimeout(() => finish(new Error(`timed out; read ${JSON.stringify(text)}`)), 3000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (headEnd === -1) {
        headEnd = text.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        if (!text.startsWith('HTTP/1.1 200')) return finish();
        socket.write(payload);
      }
      if (done(text.slice(headEnd + 4))) finish();
    });
    socket.on('end', () => finish());
    socket.on('error', (error) => finish(error));
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
  });
}

export async function adminGet(port: number, path: string): Promise<HttpResult> {
  return viaProxy(port, path, { headers: { host: `127.0.0.1:${port}` } });
}

/** A control plane that speaks the stream protocol and lets a test push snapshots and read what the proxy said. */
export class FakeControlPlane {
  readonly server: http2.Http2Server;
  readonly received: ProxyMessage[] = [];
  readonly streams = new Set<http2.ServerHttp2Stream>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  port = 0;
  heartbeatMs = 1000;
  /** When false, hellos go unanswered (a wedged control plane). */
  welcomes = true;
  private nonce = 0;

  private constructor() {
    this.server = http2.createServer();
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => {});
    });
    this.server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (headers[':path'] !== STREAM_PATH) {
        stream.respond({ ':status': 404 });
        stream.end();
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
      this.streams.add(stream);
      stream.on('close', () => this.streams.delete(stream));
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        let i: number;
        while ((i = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, i);
          buffered = buffered.slice(i + 1);
          if (!line.trim()) continue;
          const message = JSON.parse(line) as ProxyMessage;
          this.received.push(message);
          if (message.type === 'hello' && this.welcomes) this.send({ type: 'welcome', leaseTtlMs: this.heartbeatMs * 3, heartbeatMs: this.heartbeatMs }, stream);
        }
      });
      stream.on('end', () => stream.end());
    });
  }

  static async start(port = 0): Promise<FakeControlPlane> {
    const cp = new FakeControlPlane();
    await new Promise<void>((resolve) => cp.server.listen(port, '127.0.0.1', resolve));
    cp.port = (cp.server.address() as AddressInfo).port;
    return cp;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  send(message: ControlMessage, only?: http2.ServerHttp2Stream): void {
    for (const stream of only ? [only] : this.streams) if (!stream.destroyed && stream.writable) stream.write(`${JSON.stringify(message)}\n`);
  }

  /** Pushes a snapshot to every stream; returns its nonce. */
  push(snapshot: ProxySnapshot): string {
    const nonce = `n${++this.nonce}`;
    this.send({ type: 'snapshot', version: snapshot.version, nonce, snapshot });
    return nonce;
  }

  /** Waits for the proxy's answer (ack or nack) to a nonce. */
  answerTo(nonce: string, timeoutMs = 5000): Promise<Extract<ProxyMessage, { type: 'ack' | 'nack' }>> {
    return waitFor(
      () => this.received.find((m): m is Extract<ProxyMessage, { type: 'ack' | 'nack' }> => (m.type === 'ack' || m.type === 'nack') && m.nonce === nonce),
      { timeoutMs, message: `an answer to ${nonce}` },
    );
  }

  hellos(): NodeInfo[] {
    return this.received.flatMap((m) => (m.type === 'hello' ? [m.node] : []));
  }

  /** Cuts every stream and session (as a crashed control plane would) and stops listening. */
  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
