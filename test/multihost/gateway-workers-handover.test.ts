// Gateway workers and the connections queued for a worker that dies: handed to the other worker with net.ipv4.tcp_migrate_req=1, reset with 0 (in a namespace of the test's own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bedUnavailable, startBed, type Bed, type BedHost } from '../../src/testing/netns.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { applyObjects } from '../integration/gateway-helpers.ts';

const NS = 'edge';
const GROUP = 'gateway.networking.k8s.io';
const GATEWAY_PORT = 8080;
const APP_PORT = 9080;
/** Connections opened while one worker is stopped: with two workers, all of them landing on the live one has odds of 2^-24. */
const CONNECTIONS = 24;

interface WorkerFacts {
  worker: number;
  pid: number;
}

/** One GET on a connection of its own, read to the end: the status code, or the error the connection ended with. */
function rawGet(address: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    let received = '';
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 20 s')), 20_000);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(`GET / HTTP/1.1\r\nhost: www.example.org\r\nconnection: close\r\n\r\n`));
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(/^HTTP\/1\.1 (\d{3}) /.exec(received)?.[1] ?? `no status line: ${JSON.stringify(received.slice(0, 80))}`);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
  });
}

/** Connections waiting in the accept queue of `pid`'s listening socket on `port` (ss's Recv-Q), inside the host's namespace. */
async function queuedFor(bed: Bed, host: BedHost, pid: number, port: number): Promise<number> {
  const listing = await bed.run(host, 'ss', ['-ltnpH', `sport = :${port}`], { timeoutMs: 10_000 });
  assert.equal(listing.code, 0, listing.stderr);
  const line = listing.stdout.split('\n').find((l) => l.includes(`pid=${pid},`));
  assert.ok(line, `a listening socket of worker ${pid} on :${port} in:\n${listing.stdout}`);
  return Number(line.trim().split(/\s+/)[1]);
}

const unavailable = bedUnavailable();

if (unavailable) {
  test('gateway workers hand over queued connections', (t) => {
    t.diagnostic(`the network-namespace bed could not run here: ${unavailable}`);
  });
} else {
  test('connections queued for a gateway worker that dies go to the other worker with tcp_migrate_req=1, and are reset with 0', { timeout: 180_000 }, async (t) => {
    const bed = await startBed(['gw']);
    t.after(() => bed.close());
    const host = bed.host('gw');
    const dir = mkdtempSync(join(tmpdir(), 'weft-workers-handover-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));

    await bed.startWeft(host, ['echo', '--port', String(APP_PORT), '--namespace', NS, '--pod', 'web-0'], {
      isReady: (line) => line.includes('"ready"') || line.includes('listening'),
    });
    const controlPlane = await bed.startWeft(host, ['control-plane', '--api-host', '0.0.0.0', '--api-port', '15000', '--stream-port', '15010', '--insecure-local-tokens'], {
      env: { WEFT_LOG_LEVEL: 'warn' },
      readyTimeoutMs: 30_000,
    });
    const api = `http://${host.address}:15000`;
    await applyObjects(api, [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: `${GROUP}/v1`, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 8080, targetPort: APP_PORT }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'web-0', namespace: NS, labels: { app: 'web' } }, spec: { address: '127.0.0.1', ports: [{ port: APP_PORT }] } },
      { apiVersion: `${GROUP}/v1`, kind: 'HTTPRoute', metadata: { name: 'web', namespace: NS }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] } },
    ]);
    // Local bootstrap tokens are made on the control plane's own host, as an operator would there.
    const token = await bed.runWeft(host, ['token', 'create', '--namespace', NS, '--workload', 'gw.gateway'], { env: { WEFT_SERVER: 'http://127.0.0.1:15000' } });
    assert.equal(token.code, 0, token.stderr);
    const tokenFile = join(dir, 'gateway.token');
    writeFileSync(tokenFile, token.stdout.trim(), { mode: 0o600 });

    for (const migrate of [true, false]) {
      // The namespace's own setting: the test's, nobody else's.
      const set = await bed.run(host, 'sysctl', ['-qw', `net.ipv4.tcp_migrate_req=${migrate ? 1 : 0}`], { timeoutMs: 10_000 });
      assert.equal(set.code, 0, set.stderr);
      const gateway = await bed.startWeft(
        host,
        [
          'proxy', '--mode', 'gateway', '--gateway', `${NS}/gw`, '--workers', '2',
          '--listener-host', '0.0.0.0', '--listener-port', `80=${GATEWAY_PORT}`,
          '--control-plane', String(controlPlane.ready.stream), '--token-file', tokenFile,
          '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0', '--drain', '1s',
        ],
        { env: { WEFT_LOG_LEVEL: 'warn' }, readyTimeoutMs: 30_000 },
      );
      assert.equal(gateway.ready.queuedHandOver, migrate, 'the ready line says whether queued connections are handed over');
      assert.equal(/tcp_migrate_req=1/.test(gateway.stderr()), !migrate, `a warning names the sysctl exactly when it is off; stderr: ${gateway.stderr().slice(-1000)}`);
      await waitFor(async () => (await rawGet(host.address, GATEWAY_PORT)) === '200', { timeoutMs: 20_000, message: 'the gateway workers to serve the route' });

      const [stopped] = gateway.ready.workers as WorkerFacts[];
      // A stopped worker accepts nothing: the kernel completes the handshakes and queues the connections on its socket.
      process.kill(stopped!.pid, 'SIGSTOP');
      const answers: string[] = [];
      const results = Array.from({ length: CONNECTIONS }, () => rawGet(host.address, GATEWAY_PORT).then((result) => (answers.push(result), result)));
      let queued = 0;
      await waitFor(
        async () => {
          queued = await queuedFor(bed, host, stopped!.pid, GATEWAY_PORT);
          return answers.length + queued === CONNECTIONS;
        },
        { timeoutMs: 20_000, message: 'every connection answered by the live worker or queued for the stopped one' },
      );
      assert.ok(answers.every((answer) => answer === '200'), `the live worker's answers: ${answers.join(', ')}`);
      assert.ok(queued > 0, 'some connections were queued for the stopped worker');
      t.diagnostic(`tcp_migrate_req=${migrate ? 1 : 0}: ${queued} of ${CONNECTIONS} connections queued for the stopped worker`);

      process.kill(stopped!.pid, 'SIGKILL');
      const all = await Promise.all(results);
      const resets = all.filter((result) => result === 'ECONNRESET').length;
      if (migrate) assert.deepEqual(all.filter((result) => result !== '200'), [], `the ${queued} queued connections went to the other worker`);
      else assert.equal(resets, queued, `without the sysctl exactly the ${queued} queued connections are reset: ${all.join(', ')}`);
      assert.equal(all.filter((result) => result === '200').length, CONNECTIONS - (migrate ? 0 : queued));

      const exit = await gateway.stop({ timeoutMs: 15_000 });
      assert.equal(exit.code, 0, `the supervisor's exit: ${JSON.stringify(exit)}`);
    }
  });
}
