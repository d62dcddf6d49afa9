// A small demo-like mesh for the traffic-metrics tests (frontend → catalog ×2 through real sidecars) and a fixed-rate load generator.
import assert from 'node:assert/strict';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { startProxy, type RunningProxy } from '../../src/proxy/main.ts';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { api, startTestControlPlane, waitFor } from './control-helpers.ts';
import { viaProxy } from './proxy-helpers.ts';

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: shop}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: catalog, namespace: shop, labels: {app: catalog}}
spec:
  serviceAccount: catalog
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: frontend, namespace: shop, labels: {app: frontend}}
spec:
  serviceAccount: frontend
  ports: [{name: http, port: 8080}]
`;

export interface TrafficMesh {
  cp: RunningControlPlane;
  frontend: RunningProxy;
  catalogs: RunningProxy[];
  close(): Promise<void>;
}

/** Control plane, two catalog replicas (echo apps behind sidecars) and a frontend sidecar, all pushing telemetry every `telemetryIntervalMs`. */
export async function startTrafficMesh(options: { telemetryIntervalMs: number }): Promise<TrafficMesh> {
  const logger = silentLogger();
  const cp = await startTestControlPlane({ leaseTtlMs: 5000 });
  const closers: (() => Promise<void>)[] = [() => cp.close()];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', MESH, 'application/yaml');
    assert.equal(applied.status, 200, applied.text);
    const sidecar = async (workload: string, instance: string, app: RunningEcho | undefined) => {
      const proxy = await startProxy({
        mode: 'sidecar',
        controlPlane: cp.streamUrl,
        namespace: 'shop',
        workload,
        instance,
        appPorts: app ? [{ declared: 8080, actual: app.port }] : [],
        token: await cp.tokens.create({ namespace: 'shop', workload }),
        outboundPort: 0,
        tunnelPort: 0,
        adminPort: 0,
        readinessIntervalMs: 100,
        telemetryIntervalMs: options.telemetryIntervalMs,
        logger,
        clock: systemClock,
      });
      closers.push(() => proxy.close());
      return proxy;
    };
    const catalogs: RunningProxy[] = [];
    for (const name of ['catalog-0', 'catalog-1']) {
      const app = await startEcho({ port: 0, namespace: 'shop', pod: name });
      closers.push(() => app.close());
      catalogs.push(await sidecar('catalog', name, app));
    }
    const frontend = await sidecar('frontend', 'frontend-0', undefined);
    await frontend.identityReady;
    // Both replicas registered and pushed to the frontend: answers come from each.
    const seen = new Set<string>();
    await waitFor(
      async () => {
        const res = await viaProxy(frontend.ports.outbound, 'http://catalog.shop/warm');
        if (res.status === 200) seen.add(res.json<{ pod: string }>().pod);
        return seen.size === 2;
      },
      'frontend reaches both catalog replicas',
      15_000,
    );
    return { cp, frontend, catalogs, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface LoadResult {
  sent: number;
  failed: number;
  /** Requests that got no answer at all (counted as sent). */
  errors: number;
  elapsedMs: number;
}

/**
 * The generator, run in a process of its own so that the proxies and control
 * plane under test (in this process) cannot stall it: open-loop, request i
 * leaves at start + i/rps whatever happened to the earlier ones, and every
 * failEvery-th asks the echo for a 503. Prints its LoadResult as JSON.
 */
const GENERATOR = `
const http = require('node:http');
const [port, target, rps, durationMs, failEvery] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const total = Math.round((Number(rps) * Number(durationMs)) / 1000);
const result = { sent: 0, failed: 0, errors: 0, elapsedMs: 0 };
const started = performance.now();
let done = 0;
const finish = () => {
  if (++done < total) return;
  result.elapsedMs = performance.now() - started;
  agent.destroy();
  process.stdout.write(JSON.stringify(result) + '\\n');
};
const fire = (i) => {
  const fail = (i + 1) % Number(failEvery) === 0;
  result.sent++;
  const req = http.request({ host: '127.0.0.1', port: Number(port), path: target + (fail ? '/status/503' : '/ok'), agent, headers: { host: new URL(target).host } }, (res) => {
    if (res.statusCode >= 500) result.failed++;
    res.resume();
    res.on('end', finish);
  });
  req.setTimeout(5000, () => req.destroy(new Error('timed out')));
  req.on('error', () => { result.errors++; finish(); });
  req.end();
};
let next = 0;
const tick = () => {
  const now = performance.now();
  while (next < total && started + (next * 1000) / Number(rps) <= now) fire(next++);
  if (next < total) setTimeout(tick, Math.max(0, started + (next * 1000) / Number(rps) - performance.now()));
};
tick();
`;

export async function fixedRateLoad(outboundPort: number, target: string, options: { rps: number; durationMs: number; failEvery: number }): Promise<LoadResult> {
  const result = await runProcess(nodeBinary(), ['-e', GENERATOR, String(outboundPort), target, String(options.rps), String(options.durationMs), String(options.failEvery)], {
    timeoutMs: options.durationMs + 15_000,
  });
  if (result.code !== 0) throw new Error(`the load generator failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as LoadResult;
}
