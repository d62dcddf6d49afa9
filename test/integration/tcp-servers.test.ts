// Real TCP servers through two sidecars (upstream port → mesh tunnel → app): Redis, PostgreSQL, MariaDB (server speaks first), half-close both ways.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo, type Server } from 'node:net';
import { freePorts } from '../../src/testing/ports.ts';
import { runProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { startMariadb, startPostgres, startRedis, type RunningServer } from '../../src/testing/servers.ts';
import { adminGet, buildSnapshot, createHalfCloseServer, endpoint, reversion, startTestProxy, type TestProxy } from './proxy-helpers.ts';

/** The mesh's detection timeout (MeshConfig protocolDetectionTimeout): short, so that the test stays fast, long enough to measure. */
const DETECT_MS = 400;

/** Declared app ports on the server side. */
const REDIS = 6379;
const POSTGRES = 5432;
const MARIADB = 3306;
const HALF = 7100;

/** Milliseconds from connect() to the first byte the server sends (the greeting), and the bytes. */
function timeToGreeting(port: number): Promise<{ ms: number; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no greeting on port ${port} within 5 s`));
    }, 5000);
    socket.once('data', (bytes: Buffer) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      socket.destroy();
      resolve({ ms, bytes });
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Through the outbound port: CONNECT `authority`, then milliseconds from the 200 to the server's first byte. */
function connectThenGreeting(outbound: number, authority: string): Promise<{ ms: number; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: outbound });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no greeting through CONNECT ${authority} within 5 s`));
    }, 5000);
    let buffered = Buffer.alloc(0);
    let answeredAt = -1;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (answeredAt < 0) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        if (!buffered.subarray(0, end).toString('latin1').startsWith('HTTP/1.1 200')) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`CONNECT ${authority}: ${buffered.toString('latin1')}`));
          return;
        }
        answeredAt = performance.now();
        buffered = buffered.subarray(end + 4);
      }
      if (buffered.length > 0) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ ms: performance.now() - answeredAt, bytes: buffered });
      }
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
  });
}

/** Connects, sends `payload`, half-closes, and collects everything until the other side ends. */
function sendThenShutdown(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end within 5 s; read ${JSON.stringify(text)}`));
    }, 5000);
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.once('connect', () => socket.end(payload));
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * The other way round: the server says its piece and half-closes first; the
 * client, having seen the end, still sends, and the server must get it.
 */
function receiveEndThenSend(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; read ${JSON.stringify(text)}`));
    }, 5000);
    socket.once('connect', () => socket.write('server-first\n'));
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.once('end', () => {
      // Our sending side is still open: the server is waiting for this.
      socket.end(payload);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function startHalfCloseServer(heard: string[]): Promise<Server> {
  const server = createHalfCloseServer(heard);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('real TCP servers through two sidecars', () => {
  let redis: RunningServer;
  let postgres: RunningServer;
  let mariadb: RunningServer;
  let halfServer: Server;
  const heard: string[] = [];
  let server: TestProxy;
  let client: TestProxy;
  /** Upstream (local) ports on the client sidecar. */
  let local: { redis: number; postgres: number; mariadbUndeclared: number; mariadbTcp: number; halfTcp: number; halfUndeclared: number };

  before(async () => {
    [redis, postgres, mariadb, halfServer] = await Promise.all([startRedis(), startPostgres(), startMariadb(), startHalfCloseServer(heard)]);
    server = await startTestProxy({
      workload: 'db',
      instance: 'db-0',
      appPorts: [
        { declared: REDIS, actual: redis.port },
        { declared: POSTGRES, actual: postgres.port },
        { declared: MARIADB, actual: mariadb.port },
        { declared: HALF, actual: (halfServer.address() as AddressInfo).port },
      ],
      snapshot: buildSnapshot({ workload: 'db', inboundPorts: [MARIADB, POSTGRES, REDIS, HALF] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    const ports = await freePorts(6);
    local = { redis: ports[0]!, postgres: ports[1]!, mariadbUndeclared: ports[2]!, mariadbTcp: ports[3]!, halfTcp: ports[4]!, halfUndeclared: ports[5]! };
    const ep = (port: number) => [endpoint('default/db-0', port, tunnel)];
    const snapshot = buildSnapshot({
        workload: 'app',
        services: [
          // No declared protocol (the snapshot's default, "http"): detection decides.
          { name: 'redis', ports: [{ port: REDIS, endpoints: ep(REDIS) }] },
          { name: 'postgres', ports: [{ port: POSTGRES, protocol: 'tcp', endpoints: ep(POSTGRES) }] },
          { name: 'mariadb', ports: [{ port: MARIADB, endpoints: ep(MARIADB) }] },
          { name: 'mariadb-tcp', ports: [{ port: MARIADB, protocol: 'tcp', endpoints: ep(MARIADB) }] },
          { name: 'half-tcp', ports: [{ port: HALF, protocol: 'tcp', endpoints: ep(HALF) }] },
          { name: 'half', ports: [{ port: HALF, endpoints: ep(HALF) }] },
        ],
        upstreams: [
          { localPort: local.redis, routeKey: `default/redis:${REDIS}`, host: `redis:${REDIS}` },
          { localPort: local.postgres, routeKey: `default/postgres:${POSTGRES}`, host: `postgres:${POSTGRES}` },
          { localPort: local.mariadbUndeclared, routeKey: `default/mariadb:${MARIADB}`, host: `mariadb:${MARIADB}` },
          { localPort: local.mariadbTcp, routeKey: `default/mariadb-tcp:${MARIADB}`, host: `mariadb-tcp:${MARIADB}` },
          { localPort: local.halfTcp, routeKey: `default/half-tcp:${HALF}`, host: `half-tcp:${HALF}` },
          { localPort: local.halfUndeclared, routeKey: `default/half:${HALF}`, host: `half:${HALF}` },
        ],
      });
    // The mesh-wide setting (MeshConfig protocolDetectionTimeout), as the control plane would send it.
    snapshot.mesh.protocolDetectionTimeoutMs = DETECT_MS;
    client = await startTestProxy({ workload: 'app', snapshot: reversion(snapshot) });
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await Promise.all([redis?.close(), postgres?.close(), mariadb?.close(), new Promise((resolve) => halfServer?.close(resolve))]);
  });

  it('redis-cli sets and gets through an upstream port with no declared protocol', async () => {
    const set = await runProcess('redis-cli', ['-h', '127.0.0.1', '-p', String(local.redis), 'SET', 'weft:key', 'through the mesh'], { timeoutMs: 10_000 });
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout.trim(), 'OK');
    const get = await runProcess('redis-cli', ['-h', '127.0.0.1', '-p', String(local.redis), 'GET', 'weft:key'], { timeoutMs: 10_000 });
    assert.equal(get.stdout.trim(), 'through the mesh');
    // The value really is in the server the test started.
    const direct = await runProcess('redis-cli', ['-h', '127.0.0.1', '-p', String(redis.port), 'GET', 'weft:key'], { timeoutMs: 10_000 });
    assert.equal(direct.stdout.trim(), 'through the mesh');
  });

  it('psql runs queries through an upstream port declared tcp', async () => {
    const env = { PGCONNECT_TIMEOUT: '5', PGSSLMODE: 'disable' };
    const args = ['-h', '127.0.0.1', '-p', String(local.postgres), '-U', 'postgres', '-d', 'postgres', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1'];
    const create = await runProcess('psql', [...args, '-c', "CREATE TABLE t (v text); INSERT INTO t VALUES ('mesh');"], { env, timeoutMs: 15_000 });
    assert.equal(create.code, 0, create.stderr);
    const select = await runProcess('psql', [...args, '-c', 'SELECT v, current_setting(\'port\') FROM t;'], { env, timeoutMs: 15_000 });
    assert.equal(select.code, 0, select.stderr);
    assert.equal(select.stdout.trim(), `mesh|${postgres.port}`);
  });

  it('MariaDB (server speaks first): with no declared protocol the greeting waits for the detection timeout, no longer', async () => {
    const direct = await timeToGreeting(mariadb.port);
    const undeclared = await timeToGreeting(local.mariadbUndeclared);
    // The MySQL protocol greeting: protocol version 10 after the 4-byte packet header.
    assert.equal(undeclared.bytes[4], 10, 'the greeting came through unchanged');
    assert.ok(undeclared.ms >= DETECT_MS - 20, `the greeting came after ${undeclared.ms.toFixed(0)} ms, before detection could have given up`);
    assert.ok(undeclared.ms < DETECT_MS + 600, `the greeting took ${undeclared.ms.toFixed(0)} ms: a stall beyond the ${DETECT_MS} ms detection timeout`);
    const metrics = (await adminGet(client.proxy.ports.admin, '/metrics')).body;
    assert.match(metrics, /weft_protocol_detect_total\{listener="upstream",result="timeout"\} [1-9]/);
    const query = await runProcess(
      'mariadb',
      ['--no-defaults', '-h', '127.0.0.1', '-P', String(local.mariadbUndeclared), '-u', 'root', '--connect-timeout=5', '-N', '-B', '-e', 'SELECT 40 + 2'],
      { timeoutMs: 15_000 },
    );
    assert.equal(query.code, 0, query.stderr);
    assert.equal(query.stdout.trim(), '42');
    console.log(`# MariaDB connect-to-greeting: direct ${direct.ms.toFixed(1)} ms, undeclared port ${undeclared.ms.toFixed(1)} ms (detection timeout ${DETECT_MS} ms)`);
  });

  it('MariaDB on a port declared tcp: no detection, the greeting comes about as fast as directly', async () => {
    await timeToGreeting(local.mariadbTcp); // the first connection between the proxies pays the mTLS handshake
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) samples.push((await timeToGreeting(local.mariadbTcp)).ms);
    const direct: number[] = [];
    for (let i = 0; i < 5; i++) direct.push((await timeToGreeting(mariadb.port)).ms);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`# MariaDB connect-to-greeting, median of 5: direct ${median(direct).toFixed(1)} ms, port declared tcp ${median(samples).toFixed(1)} ms`);
    // Waiting for detection would take at least DETECT_MS; what remains is the proxies' own cost (a CONNECT
    // stream on the shared tunnel session: a round trip, no handshake; see tunnel-mux.test.ts).
    assert.ok(median(samples) < DETECT_MS, `median ${median(samples).toFixed(0)} ms: the tcp port must not wait for detection`);
    const query = await runProcess(
      'mariadb',
      ['--no-defaults', '-h', '127.0.0.1', '-P', String(local.mariadbTcp), '-u', 'root', '--connect-timeout=5', '-N', '-B', '-e', 'SELECT @@port'],
      { timeoutMs: 15_000 },
    );
    assert.equal(query.code, 0, query.stderr);
    assert.equal(query.stdout.trim(), String(mariadb.port));
  });

  it('MariaDB through CONNECT: detection waits for the timeout on the undeclared port, not at all on the tcp one', async () => {
    const outbound = client.proxy.ports.outbound;
    const undeclared = await connectThenGreeting(outbound, `mariadb:${MARIADB}`);
    assert.equal(undeclared.bytes[4], 10);
    assert.ok(undeclared.ms >= DETECT_MS - 20 && undeclared.ms < DETECT_MS + 600, `greeting ${undeclared.ms.toFixed(0)} ms after the 200`);
    const declared = await connectThenGreeting(outbound, `mariadb-tcp:${MARIADB}`);
    assert.equal(declared.bytes[4], 10);
    // Declared tcp: the proxy connected before it answered 200, so the greeting is already on its way.
    assert.ok(declared.ms < DETECT_MS / 2, `greeting ${declared.ms.toFixed(0)} ms after the 200`);
    const metrics = (await adminGet(client.proxy.ports.admin, '/metrics')).body;
    assert.match(metrics, /weft_protocol_detect_total\{listener="outbound",result="timeout"\} [1-9]/);
    console.log(`# MariaDB through CONNECT, 200-to-greeting: undeclared ${undeclared.ms.toFixed(1)} ms, declared tcp ${declared.ms.toFixed(1)} ms`);
  });

  it('half-close: a client that ends its side still gets the whole answer (declared tcp and detected)', async () => {
    for (const port of [local.halfTcp, local.halfUndeclared]) {
      const payload = 'x'.repeat(100_000);
      const answer = await sendThenShutdown(port, payload);
      assert.equal(answer, `got ${payload.length} bytes: ${payload}`);
    }
  });

  it('half-close: a server that ends first still hears the client', async () => {
    heard.length = 0;
    for (const port of [local.halfTcp, local.halfUndeclared]) {
      const text = await receiveEndThenSend(port, `after the server's end via ${port}`);
      assert.equal(text, 'banner then goodbye\n');
    }
    // The client's last bytes may still be on their way through both proxies when it closes.
    await waitFor(() => heard.length === 2, { timeoutMs: 3000, message: 'the server to hear both clients' });
    assert.deepEqual(heard, [`after the server's end via ${local.halfTcp}`, `after the server's end via ${local.halfUndeclared}`]);
  });
});
