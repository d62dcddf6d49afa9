// The attack suite's test bed: a control plane, a sidecar (its outbound port) and a gateway in real processes, a recording echo behind both, and the tools the attacks share.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEcho, type ReceivedRequest, type RunningEcho } from '../../src/testing/echo.ts';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects, proxyArgs, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from '../integration/gateway-helpers.ts';

export const NS = 'attack';
/** The mesh name the sidecar's outbound port resolves. */
export const MESH_HOST = 'echo.attack:8080';
/** Any host: the gateway's one route has no hostname. */
export const EDGE_HOST = 'www.example.org';
const GROUP = 'gateway.networking.k8s.io';

export interface Target {
  name: 'sidecar' | 'gateway';
  /** Where clients connect (the sidecar's outbound port, the gateway's HTTP port). */
  port: number;
  /** The Host a request to the echo names there. */
  host: string;
  admin: number;
  process: RunningProcess;
}

export interface Bed {
  sidecar: Target;
  gateway: Target;
  targets: Target[];
  /** Every request the echo received, in order of completion. */
  received: ReceivedRequest[];
  /** Applies objects through the control plane's API. */
  apply(items: unknown[]): Promise<void>;
  close(): Promise<void>;
}

/** Starts everything; `limits` are `--limit` values given to both proxies. */
export async function startBed(limits: Record<string, number> = {}): Promise<Bed> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-attack-'));
  const received: ReceivedRequest[] = [];
  const started: { echo?: RunningEcho; controlPlane?: RunningProcess; gateway?: RunningProcess; sidecar?: RunningProcess } = {};
  const close = async () => {
    await started.sidecar?.stop({ timeoutMs: 5000 });
    await started.gateway?.stop({ timeoutMs: 5000 });
    await started.controlPlane?.stop({ timeoutMs: 5000 });
    await started.echo?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const echo = (started.echo = await startEcho({ port: 0, namespace: NS, pod: 'echo-0', record: (r) => received.push(r) }));
    const controlPlane = (started.controlPlane = await startControlPlaneProcess());
    const api = String(controlPlane.ready.api);
    await applyObjects(api, [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NS }, spec: { selector: { app: 'echo' }, ports: [{ port: 8080, targetPort: echo.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'echo-1', namespace: NS, labels: { app: 'echo' } }, spec: { address: '127.0.0.1', ports: [{ port: echo.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'client', namespace: NS }, spec: {} },
      { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
      { apiVersion: `${GROUP}/v1`, kind: 'HTTPRoute', metadata: { name: 'to-echo', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'echo', port: 8080 }] }] } },
    ]);
    const limitFlags = Object.entries(limits).flatMap(([name, value]) => ['--limit', `${name}=${value}`]);
    const gateway = (started.gateway = await startGatewayProcess(controlPlane, `${NS}/gw`, [80], await writeTokenFile(api, dir, NS, 'gw.gateway'), limitFlags));
    const sidecar = (started.sidecar = await startWeft(['proxy', '--mode', 'sidecar', '--namespace', NS, '--workload', 'client', ...proxyArgs(controlPlane, await writeTokenFile(api, dir, NS, 'client')), ...limitFlags], {
      env: { WEFT_LOG_LEVEL: 'warn' },
    }));
    const ports = (p: RunningProcess) => p.ready.ports as { outbound: number; admin: number; listeners?: Record<string, number> };
    const bed: Bed = {
      sidecar: { name: 'sidecar', port: ports(sidecar).outbound, host: MESH_HOST, admin: ports(sidecar).admin, process: sidecar },
      gateway: { name: 'gateway', port: ports(gateway).listeners!['80']!, host: EDGE_HOST, admin: ports(gateway).admin, process: gateway },
      targets: [],
      received,
      apply: (items) => applyObjects(api, items),
      close,
    };
    bed.targets = [bed.sidecar, bed.gateway];
    for (const target of bed.targets) {
      await waitFor(async () => { const a = await good(target, "/ready-check"); if (a.status !== 200) throw new Error(`${a.status} ${a.body}`); return true; }, { timeoutMs: 15_000, message: `the ${target.name} to route to the echo` });
    }
    return bed;
  } catch (error) {
    const logs = `--- sidecar ---\n${started.sidecar?.stderr() ?? ''}\n--- gateway ---\n${started.gateway?.stderr() ?? ''}\n--- control plane ---\n${started.controlPlane?.stderr() ?? ''}`;
    await close();
    throw new Error(`${String(error)}\n${logs.slice(0, 6000)}`);
  }
}

/** One well-behaved HTTP/1.1 GET through a target (keep-alive on `agent` when given). */
export function good(target: Target, path: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // The sidecar is an HTTP proxy: absolute-form targets; the gateway takes origin-form.
    const requestPath = target.name === 'sidecar' ? `http://${target.host}${path}` : path;
    const req = httpRequest({ host: '127.0.0.1', port: target.port, path: requestPath, headers: { host: target.host }, agent: agent ?? false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A well-behaved client beside an attack: sequential keep-alive GETs on
 * `/good/<n>` until stop() (at most `max`), each of which must succeed.
 */
export function goodClient(target: Target, max = 200): { started: Promise<void>; stop(): Promise<{ ok: number; failed: string[] }> } {
  let stopping = false;
  const failed: string[] = [];
  let ok = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const loop = (async () => {
    for (let i = 0; i < max && !stopping; i++) {
      try {
        const answer = await good(target, `/good/${i}`, agent);
        if (answer.status === 200) ok++;
        else failed.push(`#${i}: ${answer.status}`);
      } catch (error) {
        failed.push(`#${i}: ${(error as Error).message}`);
      }
      markStarted();
    }
    markStarted();
  })();
  return {
    started,
    async stop() {
      stopping = true;
      await loop;
      agent.destroy();
      return { ok, failed };
    },
  };
}

/** Runs `attack` while a good client keeps calling the same target; asserts every good call succeeded (and that there were some). */
export async function duringAttack<T>(target: Target, attack: () => Promise<T>): Promise<T> {
  const client = goodClient(target);
  // Its keep-alive connection is open before the attack starts (as a real client's would be).
  await client.started;
  let result: T;
  try {
    result = await attack();
  } finally {
    const { ok, failed } = await client.stop();
    assert.deepEqual(failed, [], `well-behaved requests to the ${target.name} failed during the attack`);
    assert.ok(ok > 0, `no well-behaved request to the ${target.name} completed during the attack`);
  }
  return result;
}

export interface RawAnswer {
  /** Everything the proxy sent back. */
  text: string;
  /** The status of each response in it, in order. */
  statuses: number[];
  /** Whether the proxy closed the connection (within the wait). */
  closed: boolean;
}

/** Sends raw bytes on a new connection and gathers the answer until the proxy closes it or `waitMs` passes. */
export function raw(port: number, bytes: string | Buffer, waitMs = 2000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => {});
    socket.on('end', () => (closed = true));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])), closed });
    });
    socket.write(bytes);
  });
}

/** A metric's value from a proxy's admin /metrics (0 when the series does not exist). */
export async function metric(target: Target, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${target.admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The proxy process's resident memory, in bytes (weft_process_memory_bytes). */
export function rss(target: Target): Promise<number> {
  return metric(target, 'weft_process_memory_bytes', { kind: 'rss' });
}

/** Asserts the proxy's RSS grew by less than `maxGrowthBytes` since `before`. */
export async function assertMemoryBounded(target: Target, before: number, maxGrowthBytes = 64 * 1024 * 1024): Promise<void> {
  const after = await rss(target);
  assert.ok(after - before < maxGrowthBytes, `the ${target.name}'s RSS grew by ${((after - before) / 1048576).toFixed(1)} MiB (from ${(before / 1048576).toFixed(1)} MiB)`);
}

/** The paths the echo received, except the well-behaved client's and readiness checks. */
export function attackPaths(bed: Bed): string[] {
  return bed.received.map((r) => r.url.replace(/^http:\/\/[^/]+/, '')).filter((url) => !url.startsWith('/good/') && !url.startsWith('/ready-check'));
}

/** The request's first line and Host for a target: absolute-form through the sidecar, origin-form at the gateway. */
export function requestLine(target: Target, method: string, path: string): string {
  return target.name === 'sidecar' ? `${method} http://${target.host}${path} HTTP/1.1` : `${method} ${path} HTTP/1.1`;
}
