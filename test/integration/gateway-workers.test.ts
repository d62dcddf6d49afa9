// `weft proxy --mode gateway --workers 2`: two gateway processes share the Gateway's port (SO_REUSEPORT); a worker that dies is started again; SIGTERM stops them all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { freePort } from '../../src/testing/ports.ts';
import { runWeft, startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects, proxyArgs, startControlPlaneProcess, writeTokenFile } from './gateway-helpers.ts';
import { processAlive as alive } from './up-helpers.ts';

const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';
const linuxOnly = process.platform !== 'linux' && 'SO_REUSEPORT load balancing is Linux-only';

interface WorkerFacts {
  worker: number;
  pid: number;
  ports: { admin: number; listeners: Record<string, number> };
}

let dir: string;
let echo: RunningEcho;
let controlPlane: RunningProcess;
let tokenFile: string;

/** One GET on a connection of its own (so the kernel picks a worker for each), bounded; the status. */
function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host: 'www.example.org' }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** The requests a worker's gateway has answered, from its admin /metrics (weft_requests_total, summed). */
async function answered(worker: WorkerFacts): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${worker.ports.admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('weft_requests_total{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-gateway-workers-'));
  echo = await startEcho({ port: 0, namespace: NS, pod: 'web-7d9f8c-abcde', logger: pino({ level: 'silent' }) });
  controlPlane = await startControlPlaneProcess();
  const api = String(controlPlane.ready.api);
  await applyObjects(api, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 8080, targetPort: echo.port }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'web-1', namespace: NS, labels: { app: 'web' } }, spec: { address: '127.0.0.1', ports: [{ port: echo.port }] } },
    { apiVersion: `${GROUP}/v1`, kind: 'HTTPRoute', metadata: { name: 'web', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] } },
  ]);
  tokenFile = await writeTokenFile(api, dir, NS, 'gw.gateway');
});

after(async () => {
  await controlPlane?.stop({ timeoutMs: 5000 });
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('two workers share the Gateway port, both serve it, a killed one is started again, and SIGTERM stops them all', { skip: linuxOnly }, async (t) => {
  const port = await freePort();
  const gateway = await startWeft(['proxy', '--mode', 'gateway', '--gateway', `${NS}/gw`, '--listener-port', `80=${port}`, ...proxyArgs(controlPlane, tokenFile), '--workers', '2'], {
    env: { WEFT_LOG_LEVEL: 'warn' },
    readyTimeoutMs: 30_000,
  });
  t.after(() => gateway.stop({ timeoutMs: 5000 }));
  const workers = gateway.ready.workers as WorkerFacts[];
  assert.equal(workers.length, 2);
  assert.notEqual(workers[0]!.pid, workers[1]!.pid);
  for (const worker of workers) assert.equal(worker.ports.listeners['80'], port, 'every worker listens on the one Gateway port');
  // Whether a dead worker's queued connections go to the other (test/multihost/gateway-workers-handover.test.ts): this namespace's setting.
  let migrate = '0';
  try {
    migrate = readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
  } catch {
    // Before Linux 5.14: no hand-over.
  }
  assert.equal(gateway.ready.queuedHandOver, migrate === '1');
  assert.notEqual(workers[0]!.ports.admin, workers[1]!.ports.admin, 'each worker has an admin port of its own');

  // Each request on a new connection: the kernel hands connections to both workers (bounded: 400 requests at most).
  await waitFor(async () => (await get(port)) === 200, { timeoutMs: 15_000, message: 'the workers to serve the route' });
  let sent = 0;
  await waitFor(
    async () => {
      for (let i = 0; i < 20; i++) assert.equal(await get(port), 200);
      sent += 20;
      const counts = await Promise.all(workers.map(answered));
      return counts.every((count) => count > 0) || sent >= 400;
    },
    { timeoutMs: 30_000, intervalMs: 0, message: 'both workers to answer' },
  );
  const counts = await Promise.all(workers.map(answered));
  assert.ok(counts.every((count) => count > 0), `requests answered per worker: ${counts.join(', ')} of ${sent}`);

  // A worker that dies is started again by the supervisor, and the port keeps answering meanwhile.
  process.kill(workers[1]!.pid, 'SIGKILL');
  // Connections the kernel queued on the dead worker's socket are reset with it unless tcp_migrate_req=1 (the multihost handover test); new ones go to the live worker.
  await waitFor(() => !alive(workers[1]!.pid), { timeoutMs: 5000, message: 'the killed worker to be gone' });
  for (let i = 0; i < 10; i++) assert.equal(await get(port), 200, 'the other worker answers while one is down');
  const restartLine = await waitFor(() => gateway.stdout().split('\n').find((line) => line.includes('"event":"worker-restarted"')), {
    timeoutMs: 15_000,
    message: 'the killed worker to be started again',
  });
  const newPid = (JSON.parse(restartLine) as { pid: number }).pid;
  assert.ok(alive(newPid) && newPid !== workers[1]!.pid);

  // SIGTERM to the supervisor: every worker drains and exits, then the supervisor exits 0.
  const exit = await gateway.stop({ timeoutMs: 10_000 });
  assert.equal(exit.code, 0, `the supervisor's exit: ${JSON.stringify(exit)}; stderr: ${gateway.stderr().slice(-2000)}`);
  await waitFor(() => !alive(workers[0]!.pid) && !alive(newPid), { timeoutMs: 10_000, message: 'the workers to exit with the supervisor' });
});

test('--workers needs a gateway with fixed ports', async () => {
  const sidecar = await runWeft(['proxy', '--mode', 'sidecar', '--workload', 'x', '--workers', '2'], { timeoutMs: 20_000 });
  assert.equal(sidecar.code, 1);
  assert.match(sidecar.stderr, /--workers is for --mode gateway/);
  const ephemeral = await runWeft(['proxy', '--mode', 'gateway', '--gateway', `${NS}/gw`, '--listener-port', '80=0', '--workers', '2'], { timeoutMs: 20_000 });
  assert.equal(ephemeral.code, 1);
  assert.match(ephemeral.stderr, /--workers needs fixed Gateway ports; --listener-port 80=0/);
});
