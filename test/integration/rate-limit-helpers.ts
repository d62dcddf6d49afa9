// Helpers for the rate limit tests: a real control plane, gateway proxies and an echo backend as processes, and a fixed-rate load.
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import type { RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects, startControlPlaneProcess, startGatewayProcess, writeTokenFile } from './gateway-helpers.ts';

export const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';

/** A RateLimitPolicy `name` in NS on `target` (Gateway gw unless given) with these `limits`. */
export function rateLimitPolicy(name: string, limits: Record<string, unknown>[], target: { kind: string; name: string } = { kind: 'Gateway', name: 'gw' }) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'RateLimitPolicy', metadata: { name, namespace: NS }, spec: { targetRefs: [target], limits } };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** One GET through a gateway port, on `agent`'s kept-alive connections. */
export function get(port: number, path: string, agent: Agent | false, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host: 'api.example.org', ...headers }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

export interface Edge {
  api: string;
  controlPlane: RunningProcess;
  gateways: { process: RunningProcess; port: number; admin: number }[];
  apply(items: unknown[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * A control plane, an echo backend behind Service `web`, Gateway `gw` with
 * an HTTP listener and route `api` to `web`, the given extra objects, and
 * `replicas` gateway proxies serving `gw`; resolves once every replica serves.
 */
export async function startEdge(extra: unknown[], replicas: number): Promise<Edge> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ratelimit-'));
  const echo: RunningEcho = await startEcho({ port: 0, namespace: NS, pod: 'web-0', logger: pino({ level: 'silent' }) });
  const started: RunningProcess[] = [];
  const edge: Edge = {
    api: '',
    controlPlane: undefined as unknown as RunningProcess,
    gateways: [],
    apply: (items) => applyObjects(edge.api, items),
    close: async () => {
      for (const p of started.reverse()) await p.stop({ timeoutMs: 5000 });
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    edge.controlPlane = await startControlPlaneProcess();
    started.push(edge.controlPlane);
    edge.api = String(edge.controlPlane.ready.api);
    await edge.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 8080, targetPort: echo.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'web-0', namespace: NS, labels: { app: 'web' } }, spec: { address: '127.0.0.1', ports: [{ port: echo.port }] } },
      {
        apiVersion: `${GROUP}/v1`,
        kind: 'HTTPRoute',
        metadata: { name: 'api', namespace: NS },
        spec: { parentRefs: [{ name: 'gw' }], hostnames: ['api.example.org'], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] },
      },
      ...extra,
    ]);
    const tokenFile = await writeTokenFile(edge.api, dir, NS, 'gw.gateway');
    for (let i = 0; i < replicas; i++) {
      const process = await startGatewayProcess(edge.controlPlane, `${NS}/gw`, [80], tokenFile);
      started.push(process);
      const ports = process.ready.ports as { listeners: Record<string, number>; admin: number };
      edge.gateways.push({ process, port: ports.listeners['80']!, admin: ports.admin });
    }
    for (const gateway of edge.gateways) {
      await waitFor(async () => (await get(gateway.port, '/ready', false)).status === 200, { timeoutMs: 10_000, message: 'the gateway to serve its route' });
      // Its first key pair and certificate cost a burst of CPU: let that pass before any load is timed.
      await waitFor(
        async () => {
          const config = (await (await fetch(`http://127.0.0.1:${gateway.admin}/config`, { signal: AbortSignal.timeout(5000) })).json()) as { identity?: unknown };
          return config.identity ? true : undefined;
        },
        { timeoutMs: 15_000, message: 'the gateway’s workload certificate' },
      );
    }
    return edge;
  } catch (error) {
    await edge.close();
    throw error;
  }
}

export interface LoadResult {
  /** Statuses of the requests sent within the measured window, by status. */
  byStatus: Map<number, number>;
  /** Requests the concurrency bound kept from being sent on time. */
  skipped: number;
  /** One 429, for its headers. */
  limited?: Answer;
}

/**
 * Sends GETs at a fixed rate (spread over `ports` in turn) for warmupMs +
 * windowMs, at most `concurrency` in flight, and counts the answers to the
 * requests sent within the window (after the warm-up has emptied the buckets).
 */
export async function fixedRateLoad(ports: readonly number[], perSecond: number, warmupMs: number, windowMs: number, concurrency = 64): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const result: LoadResult = { byStatus: new Map(), skipped: 0 };
  const interval = 1000 / perSecond;
  const start = performance.now();
  const end = start + warmupMs + windowMs;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  let sent = 0;
  try {
    for (;;) {
      const due = start + sent * interval;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const measured = due >= start + warmupMs;
      const port = ports[sent % ports.length]!;
      sent++;
      if (inFlight >= concurrency) {
        if (measured) result.skipped++;
        continue;
      }
      inFlight++;
      const p = get(port, '/load', agent)
        .then(
          (answer) => {
            if (!measured) return;
            result.byStatus.set(answer.status, (result.byStatus.get(answer.status) ?? 0) + 1);
            if (answer.status === 429) result.limited ??= answer;
          },
          () => {
            if (measured) result.byStatus.set(0, (result.byStatus.get(0) ?? 0) + 1);
          },
        )
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await Promise.all(pending);
  } finally {
    agent.destroy();
  }
  return result;
}

/** The proxy's weft_proxy_responses_total for one reason, from its admin /metrics. */
export async function proxyResponses(adminPort: number, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`weft_proxy_responses_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}
