// A real control plane and a real `weft proxy`: a route change reaches the proxy as a delta and it serves it, saving the whole snapshot; after a reconnect the next change comes whole.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { snapshotVersion } from '../../src/compiler/compile.ts';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { apiCall, applyObjects, proxyArgs, writeTokenFile } from './gateway-helpers.ts';
import { startBackend, type Backend } from './proxy-helpers.ts';
import { getWithHost } from './up-helpers.ts';

let dir: string;
let controlPlane: RunningProcess | undefined;
let proxy: RunningProcess | undefined;
const backends: Backend[] = [];
let api: string;
let outbound: number;

function startControlPlane(apiPort = 0, streamPort = 0): Promise<RunningProcess> {
  return startWeft(
    ['control-plane', '--api-port', String(apiPort), '--stream-port', String(streamPort), '--data-dir', join(dir, 'cp'), '--insecure-local-tokens'],
    { env: { WEFT_LOG_LEVEL: 'warn' } },
  );
}

function service(name: string, port: number) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ name: 'http', port }] } };
}

function workload(name: string, port: number) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${name}-1`, namespace: 'default', labels: { app: name } }, spec: { address: '127.0.0.1', ports: [{ port }] } };
}

/** HTTPRoute on Service echo:80 (GAMMA) sending everything to `backend`. */
function routeTo(backend: Backend) {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'echo', namespace: 'default' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 80 }], rules: [{ backendRefs: [{ name: backend.name, port: backend.port }] }] },
  };
}

/** Which backend answers a GET to echo.default through the sidecar's outbound port. */
async function answeringBackend(): Promise<string> {
  const res = await getWithHost(outbound, 'http://echo.default/', { host: 'echo.default' }, 5000);
  return res.status === 200 ? (JSON.parse(res.body) as { name: string }).name : `${res.status} ${String(res.reason)}`;
}

async function proxyStatus(): Promise<ProxyStatus | undefined> {
  const { json } = await apiCall(api, 'GET', '/weft/v1/proxies');
  return (json as ProxyStatus[]).find((p) => p.workload === 'client' && p.connected);
}

/** The proxy's status once it has acked what was last sent to it. */
async function settled(): Promise<ProxyStatus> {
  return waitFor(
    async () => {
      const status = await proxyStatus();
      return status?.sentVersion !== undefined && status.ackedVersion === status.sentVersion ? status : undefined;
    },
    { timeoutMs: 10_000, message: 'the proxy to ack what it was sent' },
  );
}

async function serves(name: string): Promise<void> {
  await waitFor(async () => (await answeringBackend()) === name, { timeoutMs: 10_000, message: `echo.default to be served by ${name}` }).catch(async (error: unknown) => {
    throw new Error(`${String(error)} (last answer: ${await answeringBackend().catch(String)})\n--- proxy ---\n${proxy?.stderr()}\n--- control plane ---\n${controlPlane?.stderr()}`);
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-delta-'));
  controlPlane = await startControlPlane();
  api = String(controlPlane.ready.api);
  backends.push(await startBackend('a'), await startBackend('b'));
  const [a, b] = backends as [Backend, Backend];
  await applyObjects(api, [service('echo', 80), service('a', a.port), service('b', b.port), workload('a', a.port), workload('b', b.port), routeTo(a)]);
  proxy = await startWeft(['proxy', '--mode', 'sidecar', '--namespace', 'default', '--workload', 'client', '--data-dir', join(dir, 'proxy'), ...proxyArgs(controlPlane, await writeTokenFile(api, dir, 'default', 'client'))], {
    env: { WEFT_LOG_LEVEL: 'warn' },
  });
  outbound = (proxy.ready.ports as { outbound: number }).outbound;
});

after(async () => {
  await proxy?.stop({ timeoutMs: 5000 });
  await controlPlane?.stop({ timeoutMs: 5000 });
  await Promise.all(backends.map((b) => b.close()));
  rmSync(dir, { recursive: true, force: true });
});

test('a route change arrives as a delta, the proxy serves it and saves the whole snapshot; after a reconnect a change comes whole', async () => {
  const [a, b] = backends as [Backend, Backend];
  await serves('a');
  const first = await settled();
  assert.equal(first.sentAsDelta, false, 'the first snapshot on a stream is whole');

  await applyObjects(api, [routeTo(b)]);
  await serves('b');
  const changed = await waitFor(async () => {
    const status = await settled();
    return status.ackedVersion !== first.ackedVersion ? status : undefined;
  }, { timeoutMs: 10_000, message: 'the ack of the change' });
  assert.equal(changed.sentAsDelta, true, 'the change went as a delta, and the proxy acked it');
  assert.equal(changed.lastNack, undefined);
  // What the proxy keeps on disk is the whole applied snapshot, the very one the control plane compiled.
  const saved = await waitFor(
    () => {
      const file = JSON.parse(readFileSync(join(dir, 'proxy', 'snapshot.json'), 'utf8')) as ProxySnapshot;
      return file.version === changed.ackedVersion ? file : undefined;
    },
    { timeoutMs: 5000, message: 'the applied snapshot on disk' },
  );
  assert.equal(snapshotVersion(saved), saved.version, 'the saved snapshot hashes to its version');
  assert.ok(saved.services.some((s) => s.name === 'echo'));
  assert.ok(Object.values(saved.backends).some((backend) => backend.service === 'b'));

  // The control plane restarts on the same ports; the proxy reconnects, says which version it runs, and is sent nothing.
  const apiPort = Number(new URL(api).port);
  const streamPort = Number(new URL(String(controlPlane!.ready.stream)).port);
  await controlPlane!.stop({ timeoutMs: 5000 });
  controlPlane = await startControlPlane(apiPort, streamPort);
  const reconnected = await waitFor(async () => await proxyStatus().catch(() => undefined), { timeoutMs: 10_000, message: 'the proxy to reconnect' });
  assert.equal(reconnected.ackedVersion, changed.ackedVersion);
  await applyObjects(api, [routeTo(a)]);
  await serves('a');
  const afterReconnect = await waitFor(async () => {
    const status = await settled();
    return status.ackedVersion !== changed.ackedVersion ? status : undefined;
  }, { timeoutMs: 10_000, message: 'the ack of the change after the reconnect' });
  assert.equal(afterReconnect.sentAsDelta, false, 'the first change on a new stream is sent whole');

  // Acked on this stream: the next change is a delta again.
  await applyObjects(api, [routeTo(b)]);
  await serves('b');
  const again = await waitFor(async () => {
    const status = await settled();
    return status.ackedVersion !== afterReconnect.ackedVersion ? status : undefined;
  }, { timeoutMs: 10_000, message: 'the ack of the next change' });
  assert.equal(again.sentAsDelta, true);
});
