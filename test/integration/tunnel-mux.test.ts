// The mesh tunnel multiplexes TCP: connections between two sidecars travel as HTTP/2 CONNECT streams on a few shared mTLS sessions, with per-stream flow control, half-close, resets and PING health checks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { TUNNEL_ALPN } from '../../src/proxy/transport/mtls.ts';
import { freePorts } from '../../src/testing/ports.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { adminGet, buildSnapshot, createHalfCloseServer, endpoint, startTestProxy, tunnelClientCredentials, type TestProxy } from './proxy-helpers.ts';

/** Declared app ports behind the server sidecar. */
const ECHO = 7201;
const FIREHOSE = 7202;
const BLOB = 7203;
const HALF = 7204;
/** A port the server's workload does not serve: its tunnel refuses streams to it. */
const UNSERVED = 7299;

/** The firehose app's answer: a pattern (byte i is i % 251) the stalled client checks after it resumes. */
const PATTERN_CHUNK = Buffer.from(Array.from({ length: 251 * 1024 }, (_, i) => i % 251));
const FIREHOSE_BYTES = PATTERN_CHUNK.length * 96; // ~24 MiB: more than every buffer on the way holds
const BLOB_BYTES = PATTERN_CHUNK.length * 41; // ~10 MiB

/** PING health checks on the client's tunnel sessions: short, so that a dead peer is found within the test. */
const PING_INTERVAL_MS = 200;
const PING_TIMEOUT_MS = 300;

function listening(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

/** Writes the pattern, `total` bytes, with backpressure, then ends; `progress` sees how far each connection got. */
function startPatternServer(total: number, progress: number[]): Server {
  // Half-open: a client that sends nothing and ends its side still gets everything.
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    const index = progress.push(0) - 1;
    const more = () => {
      while (progress[index]! < total) {
        progress[index]! += PATTERN_CHUNK.length;
        if (!socket.write(PATTERN_CHUNK)) {
          socket.once('drain', more);
          return;
        }
      }
      socket.end();
    };
    more();
  });
}

/**
 * A TCP relay in front of the server's tunnel port that can black-hole its
 * connections (nothing passes either way, nothing closes: a frozen peer) or
 * drop them (both sides closed, as a killed process's kernel would).
 */
function startRelay(targetPort: number) {
  const pairs = new Set<{ a: Socket; b: Socket; frozen: boolean }>();
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (a) => {
    accepted++;
    const b = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    const pair = { a, b, frozen: false };
    pairs.add(pair);
    a.on('data', (chunk: Buffer) => void (pair.frozen || b.write(chunk)));
    b.on('data', (chunk: Buffer) => void (pair.frozen || a.write(chunk)));
    a.on('end', () => pair.frozen || b.end());
    b.on('end', () => pair.frozen || a.end());
    const drop = () => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('error', drop).on('close', drop);
    b.on('error', drop).on('close', drop);
  });
  return {
    server,
    get accepted() {
      return accepted;
    },
    freeze: () => pairs.forEach((p) => (p.frozen = true)),
    kill: () => pairs.forEach((p) => (p.a.destroy(), p.b.destroy())),
  };
}

/** Connects to a local port; sends `payload`, half-closes, and collects everything until the other side ends. */
function exchange(port: number, payload: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end within 20 s on port ${port}`));
    }, 20_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('connect', () => socket.end(payload));
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** How a connection ended: a clean end (FIN) after `bytes`, or an error (a reset). */
function watchEnding(socket: Socket): Promise<{ how: 'end' | 'error'; code?: string }> {
  return new Promise((resolve) => {
    socket.once('end', () => resolve({ how: 'end' }));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ how: 'error', code: error.code ?? error.message }));
  });
}

/** Sockets tests hold open; destroyed at the end whatever happened. */
const held = new Set<Socket>();

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    held.add(socket);
    socket.on('error', () => {});
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * The way every TCP connection used to travel, and older peers still may: a
 * new mTLS connection to the tunnel, `CONNECT 127.0.0.1:<port>` in HTTP/1.1,
 * then the bytes. Resolves with the echo of `payload` and the milliseconds from dial to echo.
 */
function echoOverHttp1Connect(tunnelPort: number, appPort: number, credentials: { key: string; cert: string; ca: string[] }, payload: string): Promise<{ echo: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = tlsConnect({ host: '127.0.0.1', port: tunnelPort, ...credentials, ALPNProtocols: [TUNNEL_ALPN], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('no echo within 5 s'))), 5000);
    let buffered = '';
    let established = false;
    socket.once('secureConnect', () => socket.write(`CONNECT 127.0.0.1:${appPort} HTTP/1.1\r\nhost: 127.0.0.1:${appPort}\r\n\r\n`));
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      buffered += chunk;
      if (!established) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        if (!buffered.startsWith('HTTP/1.1 200')) return reject(new Error(buffered));
        established = true;
        buffered = buffered.slice(end + 4);
        socket.write(payload);
      }
      if (buffered.length >= payload.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ echo: buffered, ms: performance.now() - started });
      }
    });
    socket.once('error', (error) => (clearTimeout(timer), reject(error)));
  });
}

function metric(text: string, pattern: RegExp): number {
  return Number(pattern.exec(text)?.[1] ?? 0);
}

async function metrics(proxy: TestProxy): Promise<string> {
  return (await adminGet(proxy.proxy.ports.admin, '/metrics')).body;
}

/** mTLS tunnel connections the server sidecar accepted. */
async function acceptedTunnels(server: TestProxy): Promise<number> {
  return metric(await metrics(server), /^weft_tunnel_handshakes_total\{side="server",result="ok"\} (\d+)$/m);
}

async function sessionsClosed(client: TestProxy, reason: string): Promise<number> {
  return metric(await metrics(client), new RegExp(`^weft_tunnel_sessions_total\\{event="closed",reason="${reason}"\\} (\\d+)$`, 'm'));
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

describe('TCP multiplexed on the mesh tunnel (HTTP/2 CONNECT streams)', () => {
  const apps: Server[] = [];
  const firehoseProgress: number[] = [];
  const blobProgress: number[] = [];
  const heard: string[] = [];
  let relay: ReturnType<typeof startRelay>;
  let server: TestProxy;
  let client: TestProxy;
  let pinging: TestProxy;
  let local: { echo: number; firehose: number; blob: number; half: number; relayed: number };

  before(async () => {
    const echo = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    const firehose = startPatternServer(FIREHOSE_BYTES, firehoseProgress);
    const blob = startPatternServer(BLOB_BYTES, blobProgress);
    const half = createHalfCloseServer(heard);
    apps.push(echo, firehose, blob, half);
    const [echoPort, firehosePort, blobPort, halfPort] = await Promise.all(apps.map(listening));
    server = await startTestProxy({
      workload: 'db',
      instance: 'db-0',
      appPorts: [
        { declared: ECHO, actual: echoPort! },
        { declared: FIREHOSE, actual: firehosePort! },
        { declared: BLOB, actual: blobPort! },
        { declared: HALF, actual: halfPort! },
      ],
      snapshot: buildSnapshot({ workload: 'db', inboundPorts: [ECHO, FIREHOSE, BLOB, HALF] }),
    });
    const tunnel = server.proxy.ports.tunnel;
    relay = startRelay(tunnel);
    const relayPort = await listening(relay.server);
    const ports = await freePorts(5);
    local = { echo: ports[0]!, firehose: ports[1]!, blob: ports[2]!, half: ports[3]!, relayed: ports[4]! };
    const tcp = (name: string, port: number, tunnelPort = tunnel) => ({ name, ports: [{ port, protocol: 'tcp' as const, endpoints: [endpoint('default/db-0', port, tunnelPort)] }] });
    client = await startTestProxy({
      workload: 'app',
      snapshot: buildSnapshot({
        workload: 'app',
        services: [tcp('echo', ECHO), tcp('firehose', FIREHOSE), tcp('blob', BLOB), tcp('half', HALF), tcp('unserved', UNSERVED)],
        upstreams: [
          { localPort: local.echo, routeKey: `default/echo:${ECHO}`, host: `echo:${ECHO}` },
          { localPort: local.firehose, routeKey: `default/firehose:${FIREHOSE}`, host: `firehose:${FIREHOSE}` },
          { localPort: local.blob, routeKey: `default/blob:${BLOB}`, host: `blob:${BLOB}` },
          { localPort: local.half, routeKey: `default/half:${HALF}`, host: `half:${HALF}` },
        ],
      }),
    });
    // A second caller, reaching the server through the relay, with PING health checks short enough for a test
    // (kept off the other caller, whose sessions a loaded machine must not lose to a 300 ms timeout).
    pinging = await startTestProxy({
      workload: 'pinger',
      tunnelPingIntervalMs: PING_INTERVAL_MS,
      tunnelPingTimeoutMs: PING_TIMEOUT_MS,
      snapshot: buildSnapshot({
        workload: 'pinger',
        services: [tcp('relayed', ECHO, relayPort)],
        upstreams: [{ localPort: local.relayed, routeKey: `default/relayed:${ECHO}`, host: `relayed:${ECHO}` }],
      }),
    });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await client?.close();
    await pinging?.close();
    await server?.close();
    await Promise.all([...apps, relay?.server].map(closeServer));
  });

  it('100 concurrent TCP connections share at most 4 tunnel connections, each carrying its own bytes', async () => {
    const before = await acceptedTunnels(server);
    const payloads = Array.from({ length: 100 }, (_, i) => Buffer.alloc(64 * 1024 + i, `connection ${i};`));
    const started = performance.now();
    const answers = await Promise.all(payloads.map((payload) => exchange(local.echo, payload)));
    const ms = performance.now() - started;
    answers.forEach((answer, i) => assert.ok(answer.equals(payloads[i]!), `connection ${i} got ${answer.length} bytes back, not its own ${payloads[i]!.length}`));
    const opened = (await acceptedTunnels(server)) - before;
    assert.ok(opened >= 1 && opened <= 4, `${opened} tunnel connections for 100 TCP connections`);
    // Open one at a time now that the session exists: a stream costs a round trip, no handshake.
    const streamMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await exchange(local.echo, 'x');
      streamMs.push(performance.now() - t0);
    }
    assert.equal((await acceptedTunnels(server)) - before, opened, 'sequential connections reuse the session');
    // The old way (still served for older peers): one mTLS connection and an HTTP/1.1 CONNECT per TCP connection,
    // straight to the tunnel, i.e. one proxy hop fewer than the streams above went through.
    const credentials = await tunnelClientCredentials();
    const oldMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const old = await echoOverHttp1Connect(server.proxy.ports.tunnel, ECHO, credentials, `old ${i}`);
      assert.equal(old.echo, `old ${i}`);
      oldMs.push(old.ms);
    }
    console.log(
      `# 100 concurrent TCP connections (64 KiB echoed each) in ${ms.toFixed(0)} ms over ${opened} tunnel connection(s); ` +
        `connect-to-echo, median of 10: ${median(streamMs).toFixed(1)} ms as a stream on the shared session (through both sidecars), ` +
        `${median(oldMs).toFixed(1)} ms with a new mTLS connection and HTTP/1.1 CONNECT (straight to the tunnel)`,
    );
  });

  it('a stalled stream does not slow another on the same connection, and resumes intact', async () => {
    const before = await acceptedTunnels(server);
    const stalled = await openSocket(local.firehose);
    let received = 0;
    let corrupt = -1;
    const check = (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== (received + i) % 251 && corrupt < 0) corrupt = received + i;
      }
      received += chunk.length;
    };
    stalled.on('data', check);
    const ended = watchEnding(stalled);
    await waitFor(() => received > 0, { timeoutMs: 5000, message: 'the firehose to start' });
    stalled.pause();
    // The app writes until every buffer on the way (kernel, proxies, the stream's window) is full, then waits.
    const firehose = firehoseProgress.length - 1;
    let last = -1;
    await waitFor(
      () => {
        const now = firehoseProgress[firehose]!;
        const settled = now === last;
        last = now;
        return settled;
      },
      { timeoutMs: 10_000, intervalMs: 300, message: 'the stalled app to stop writing' },
    );
    const heldBack = firehoseProgress[firehose]!;
    assert.ok(heldBack < FIREHOSE_BYTES, `the app could write everything (${heldBack} bytes) to a client that stopped reading: nothing held it back`);

    const t0 = performance.now();
    const blob = await exchange(local.blob, '');
    const blobMs = performance.now() - t0;
    assert.equal(blob.length, BLOB_BYTES);
    assert.ok(blob.equals(Buffer.concat(Array.from({ length: BLOB_BYTES / PATTERN_CHUNK.length }, () => PATTERN_CHUNK))), 'the second stream carried the right bytes');
    assert.ok(blobMs < 15_000, `10 MiB took ${blobMs.toFixed(0)} ms beside a stalled stream`);
    assert.equal((await acceptedTunnels(server)) - before, 0, 'both streams ran on the existing tunnel connection');
    console.log(`# stalled stream: the app got ${(heldBack / 1048576).toFixed(1)} MiB out before it had to wait; meanwhile 10 MiB moved on the same tunnel connection in ${blobMs.toFixed(0)} ms`);

    stalled.resume();
    assert.deepEqual(await ended, { how: 'end' });
    stalled.destroy();
    assert.equal(received, FIREHOSE_BYTES, 'the stalled stream got all its bytes after resuming');
    assert.equal(corrupt, -1, `byte ${corrupt} of the resumed stream is wrong`);
  });

  it('a stream the peer refuses keeps its reason: CONNECT through the outbound port gets the status and weft-reason', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: client.proxy.ports.outbound });
      let text = '';
      const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no answer; read ${JSON.stringify(text)}`))), 5000);
      socket.once('connect', () => socket.write(`CONNECT unserved:${UNSERVED} HTTP/1.1\r\nhost: unserved:${UNSERVED}\r\n\r\n`));
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      socket.once('close', () => (clearTimeout(timer), resolve(text)));
      socket.once('error', (error) => (clearTimeout(timer), reject(error)));
    });
    assert.match(answer, /^HTTP\/1\.1 404 /);
    assert.match(answer, /\r\nweft-reason: WEFT_ERR_INBOUND_PORT\r\n/i);
  });

  it('half-close both ways across the stream', async () => {
    const payload = 'x'.repeat(100_000);
    const answer = (await exchange(local.half, payload)).toString();
    assert.equal(answer, `got ${payload.length} bytes: ${payload}`);

    heard.length = 0;
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: local.half, allowHalfOpen: true });
      let got = '';
      const timer = setTimeout(() => (socket.destroy(), reject(new Error(`timed out; read ${JSON.stringify(got)}`))), 5000);
      socket.once('connect', () => socket.write('server-first\n'));
      socket.setEncoding('utf8').on('data', (chunk: string) => (got += chunk));
      // The server has ended its side; ours is still open and the server waits for what we say.
      socket.once('end', () => socket.end('after the server ended'));
      socket.once('close', () => (clearTimeout(timer), resolve(got)));
      socket.once('error', (error) => (clearTimeout(timer), reject(error)));
    });
    assert.equal(text, 'banner then goodbye\n');
    await waitFor(() => heard.length === 1, { timeoutMs: 3000, message: 'the server to hear the client after its own end' });
    assert.deepEqual(heard, ['after the server ended']);
  });

  it('a session whose peer stops answering PINGs is replaced; its streams are reset', async () => {
    const idle = await openSocket(local.relayed);
    idle.write('hello');
    await new Promise((resolve) => idle.once('data', resolve));
    const ending = watchEnding(idle);
    const closedBefore = await sessionsClosed(pinging, 'ping_timeout');
    assert.equal(relay.accepted, 1);
    relay.freeze();
    const t0 = performance.now();
    const how = await ending;
    const detectMs = performance.now() - t0;
    assert.equal(how.how, 'error', 'the stream on the dead session ends with a reset, not a clean end');
    assert.equal(how.code, 'ECONNRESET');
    assert.ok(detectMs < 5000, `the dead session was found after ${detectMs.toFixed(0)} ms`);
    assert.equal((await sessionsClosed(pinging, 'ping_timeout')) - closedBefore, 1);
    // The next connection gets a fresh session (a new connection through the relay, which passes it).
    const answer = await exchange(local.relayed, 'after the freeze');
    assert.equal(answer.toString(), 'after the freeze');
    assert.equal(relay.accepted, 2, 'a new tunnel connection replaced the frozen one');
    console.log(`# PING every ${PING_INTERVAL_MS} ms when idle, ${PING_TIMEOUT_MS} ms timeout: a frozen peer was found and its stream reset after ${detectMs.toFixed(0)} ms`);
  });

  it('a peer killed mid-stream resets the client connection', async () => {
    const socket = await openSocket(local.relayed);
    socket.write('before the kill');
    await new Promise((resolve) => socket.once('data', resolve));
    const ending = watchEnding(socket);
    // Both tunnel connections close at once, as a killed process's kernel closes them (a FIN, no END_STREAM).
    relay.kill();
    assert.deepEqual(await ending, { how: 'error', code: 'ECONNRESET' });
    socket.destroy();
  });
});
