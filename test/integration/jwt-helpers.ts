// Helpers for the JWT tests: a JWKS server on 127.0.0.1:0, jose-made keys and tokens, and a mesh of real weft processes (control plane, gateway, a sidecar beside an echo app).
import { createServer, request, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects, listenersOf, proxyArgs, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from './gateway-helpers.ts';

export const NS = 'jwt';
const GROUP = 'gateway.networking.k8s.io';

export interface SigningKey {
  alg: string;
  kid: string;
  jwk: JWK;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
}

export async function signingKey(alg: string, kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A signed JWT: `sub` alice and a 5-minute expiry unless the claims say otherwise. */
export function sign(key: SigningKey, issuer: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'alice', exp: now + 300, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .setIssuer(issuer)
    .setIssuedAt()
    .sign(key.privateKey);
}

/** An unsigned token (alg none). */
export function unsigned(issuer: string, claims: JWTPayload = {}): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iss: issuer, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 300, ...claims })}.`;
}

export interface JwksServer {
  uri(path?: string): string;
  /** The keys served from now on. */
  keys: JWK[];
  /** While true, every fetch gets 503. */
  failing: boolean;
  fetches: number;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const state: JwksServer = {
    keys,
    failing: false,
    fetches: 0,
    uri: (path = '/jwks.json') => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    if (state.failing) res.writeHead(503).end('down');
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return state;
}

/** A port nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The headers the echo app received (lower-case names), when it answered. */
  seen?: Record<string, string>;
  /** The path (with query) the echo app received. */
  path?: string;
}

/** One GET to a gateway port (`host` picks the route), bounded. */
export function get(port: number, host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host, ...headers }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const answer: Answer = { status: res.statusCode ?? 0, headers: res.headers, body };
        if (String(res.headers['content-type']) === 'application/json') {
          const echo = JSON.parse(body) as { path: string; headers: Record<string, string[]> };
          answer.path = echo.path;
          answer.seen = Object.fromEntries(Object.entries(echo.headers).map(([name, values]) => [name.toLowerCase(), values.join(',')]));
        }
        resolve(answer);
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

const SERVED = new Set([200, 401, 403]);

export interface JwtMesh {
  api: string;
  /** The Gateway's HTTP port: host `edge.example` reaches Service `open` (an echo outside the mesh); `mesh.example` reaches Service `secure` through its sidecar. */
  port: number;
  apply(items: unknown[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * A control plane; Gateway `gw` (HTTP on port 80) with routes edge.example →
 * `open` and mesh.example → `secure`; `open` an echo outside the mesh,
 * `secure` an echo beside its own sidecar (workload template `secure-v1`), so
 * that mesh.example requests pass the gateway and then the sidecar's inbound
 * side. `extra` objects are applied with the rest, before the proxies start.
 */
export async function startJwtMesh(extra: unknown[]): Promise<JwtMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-jwt-'));
  const quiet = pino({ level: 'silent' });
  const echoes: RunningEcho[] = [];
  const processes: RunningProcess[] = [];
  const close = async () => {
    for (const p of processes.reverse()) await p.stop({ timeoutMs: 5000 });
    await Promise.all(echoes.map((e) => e.close()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const open = await startEcho({ port: 0, namespace: NS, pod: 'open-0', logger: quiet });
    const secure = await startEcho({ port: 0, namespace: NS, pod: 'secure-0', logger: quiet });
    echoes.push(open, secure);
    const controlPlane = await startControlPlaneProcess();
    processes.push(controlPlane);
    const api = String(controlPlane.ready.api);
    const apply = (items: unknown[]) => applyObjects(api, items);
    const route = (name: string, hostname: string, service: string) => ({
      apiVersion: `${GROUP}/v1`,
      kind: 'HTTPRoute',
      metadata: { name, namespace: NS },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: [hostname], rules: [{ backendRefs: [{ name: service, port: 8080 }] }] },
    });
    await apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'open', namespace: NS }, spec: { selector: { app: 'open' }, ports: [{ port: 8080, targetPort: open.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'open-0', namespace: NS, labels: { app: 'open' } }, spec: { address: '127.0.0.1', ports: [{ port: open.port }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'secure', namespace: NS }, spec: { selector: { app: 'secure' }, ports: [{ name: 'http', port: 8080 }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'secure-v1', namespace: NS, labels: { app: 'secure' } }, spec: { serviceAccount: 'secure', ports: [{ name: 'http', port: 8080 }] } },
      route('edge', 'edge.example', 'open'),
      route('mesh', 'mesh.example', 'secure'),
      ...extra,
    ]);
    const gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80], await writeTokenFile(api, dir, NS, 'gw.gateway'));
    processes.push(gateway);
    const sidecar = await startWeft(
      ['proxy', '--mode', 'sidecar', '--namespace', NS, '--workload', 'secure-v1', '--app-port', `8080=${secure.port}`, ...proxyArgs(controlPlane, await writeTokenFile(api, dir, NS, 'secure-v1'))],
      { env: { WEFT_LOG_LEVEL: 'warn' } },
    );
    processes.push(sidecar);
    const port = listenersOf(gateway)['80']!;
    // Both paths serve once the gateway has its config and certificate and the sidecar has registered
    // (an AuthorizationPolicy of the caller's may refuse /ready: that is served too; 404 and 503 are not yet).
    await waitFor(async () => SERVED.has((await get(port, 'edge.example', '/ready')).status), { timeoutMs: 15_000, message: 'the gateway to serve edge.example' }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- gateway ---\n${gateway.stderr()}${gateway.stdout()}\n--- control plane ---\n${controlPlane.stderr()}`);
    });
    await waitFor(async () => SERVED.has((await get(port, 'mesh.example', '/ready')).status), { timeoutMs: 20_000, message: 'the gateway to reach the sidecar' }).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- gateway ---\n${gateway.stderr()}\n--- sidecar ---\n${sidecar.stderr()}`);
    });
    return {
      api,
      port,
      apply,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
