// Slow and many: heads and bodies trickled or left unfinished, silent connections, and more connections than a listener takes, against a sidecar's outbound port and a gateway.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { assertMemoryBounded, attackPaths, duringAttack, good, metric, requestLine, rss, startBed, type Bed, type Target } from './bed.ts';

const HEADERS_TIMEOUT_MS = 1000;
const IDLE_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 3000;
const MAX_CONNECTIONS = 40;

let bed: Bed;

before(async () => {
  bed = await startBed({
    'headers-timeout-ms': HEADERS_TIMEOUT_MS,
    'idle-timeout-ms': IDLE_TIMEOUT_MS,
    'request-timeout-ms': REQUEST_TIMEOUT_MS,
    'max-connections': MAX_CONNECTIONS,
  });
});

after(async () => {
  await bed?.close();
});

interface Slow {
  socket: Socket;
  /** What the proxy sent back. */
  text: () => string;
  /** Resolves with the milliseconds from open to the proxy closing the connection (or rejects after `withinMs`). */
  closed: (withinMs: number) => Promise<number>;
  /** Stops any trickle. */
  stop: () => void;
}

/** Opens a connection, writes `first`, then `trickle` one byte every `everyMs` (if given). */
function slow(port: number, first: string, trickle?: { text: string; everyMs: number }): Slow {
  const socket = connect(port, '127.0.0.1');
  const opened = performance.now();
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => {});
  socket.write(first);
  let timer: NodeJS.Timeout | undefined;
  if (trickle) {
    let i = 0;
    timer = setInterval(() => {
      if (socket.destroyed || i >= trickle.text.length) return clearInterval(timer);
      socket.write(trickle.text[i++]!);
    }, trickle.everyMs);
  }
  const gone = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
  return {
    socket,
    text: () => text,
    stop: () => clearInterval(timer),
    closed: (withinMs) =>
      Promise.race([
        gone,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`still open after ${withinMs} ms`)), withinMs).unref()),
      ]).finally(() => {
        clearInterval(timer);
        socket.destroy();
      }),
  };
}

for (const which of ['sidecar', 'gateway'] as const) {
  test(`${which}: a head trickled byte by byte gets 408 at the header timeout; a silent connection is closed; a stalled or trickled body is cut`, async () => {
    const target: Target = bed[which];
    const memoryBefore = await rss(target);
    const before = attackPaths(bed).length;
    await duringAttack(target, async () => {
      const line = requestLine(target, 'GET', '/attack-slow-head');
      const trickled = slow(target.port, `${line}\r\nHost: ${target.host}\r\n`, { text: 'X-Slow: ' + 'a'.repeat(100), everyMs: 100 });
      const silent = slow(target.port, '');
      // A body announced as 100 bytes of which 10 come, to a request that is answered late: nothing moves either way.
      const stalled = slow(target.port, `${requestLine(target, 'POST', '/attack-stalled?delay=10s')}\r\nHost: ${target.host}\r\nContent-Length: 100\r\n\r\n0123456789`);
      // A body that keeps coming, a byte every 200 ms: never idle, but over the request timeout.
      const dribbled = slow(target.port, `${requestLine(target, 'POST', '/attack-dribble?delay=10s')}\r\nHost: ${target.host}\r\nContent-Length: 1000\r\n\r\n`, { text: 'b'.repeat(1000), everyMs: 200 });

      const headMs = await trickled.closed(HEADERS_TIMEOUT_MS + 2500);
      assert.match(trickled.text(), /^HTTP\/1\.1 408 /);
      assert.ok(headMs >= HEADERS_TIMEOUT_MS - 50, `closed after ${headMs} ms`);
      const silentMs = await silent.closed(2 * HEADERS_TIMEOUT_MS + 2500);
      assert.ok(silentMs >= HEADERS_TIMEOUT_MS - 50, `a silent connection closed after ${silentMs} ms`);
      const stalledMs = await stalled.closed(IDLE_TIMEOUT_MS + 2500);
      assert.ok(stalledMs >= IDLE_TIMEOUT_MS - 50, `a stalled body was cut after ${stalledMs} ms`);
      const dribbledMs = await dribbled.closed(REQUEST_TIMEOUT_MS + 2500);
      assert.ok(dribbledMs >= REQUEST_TIMEOUT_MS - 50, `a dribbled body was cut after ${dribbledMs} ms`);
    });
    // The slow head never reached the echo; the slow bodies may have started there but never completed.
    const reached = attackPaths(bed).slice(before);
    assert.ok(!reached.includes('/attack-slow-head'));
    assert.ok(bed.received.filter((r) => /\/attack-(stalled|dribble)/.test(r.url)).every((r) => !r.complete));
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'headers_timeout' })) >= 2);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'idle_timeout' })) >= 1);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'request_timeout' })) >= 1);
    await assertMemoryBounded(target, memoryBefore);
  });

  test(`${which}: connections over the listener's limit are closed at once and counted; an open keep-alive client carries on; freed slots serve again`, async () => {
    const target: Target = bed[which];
    const held: Socket[] = [];
    const refusedBefore = await metric(target, 'weft_proxy_refused_total', { reason: 'connection_limit' });
    try {
      await duringAttack(target, async () => {
        const closedEarly: number[] = [];
        for (let i = 0; i < MAX_CONNECTIONS + 10; i++) {
          const socket = connect(target.port, '127.0.0.1');
          socket.on('error', () => {});
          socket.once('close', () => closedEarly.push(i));
          // A partial head keeps each one busy without finishing a request (and within the header timeout).
          socket.write(`${requestLine(target, 'GET', '/attack-hold')}\r\n`);
          held.push(socket);
        }
        const deadline = performance.now() + 3000;
        while (closedEarly.length < 10 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
        // The good client's connection counts too: at least the 10 over the limit were closed at accept.
        assert.ok(closedEarly.length >= 10, `only ${closedEarly.length} connections were refused`);
        assert.ok(closedEarly.length <= 12, `${closedEarly.length} connections were refused`);
      });
    } finally {
      for (const socket of held) socket.destroy();
    }
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'connection_limit' })) - refusedBefore >= 10);
    // Once they are gone, new connections are served again.
    const deadline = performance.now() + 5000;
    let status = 0;
    while (status !== 200 && performance.now() < deadline) {
      status = await good(target, '/after-limit').then((a) => a.status, () => 0);
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(status, 200);
  });
}

test('MeshConfig limits reach both proxies with the next snapshot (here: a shorter URI limit → 414); a proxy’s own --limit still wins', async () => {
  await bed.apply([{ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { limits: { maxUriBytes: 1000, headersTimeout: '30s' } } }]);
  try {
    for (const target of bed.targets) {
      const path = `/attack-mesh-uri?${'q'.repeat(1200)}`;
      const deadline = performance.now() + 10_000;
      let status = 0;
      while (status !== 414 && performance.now() < deadline) {
        status = await good(target, path).then((a) => a.status, () => 0);
        if (status !== 414) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(status, 414, `${target.name} did not take the MeshConfig limit`);
      // --limit headers-timeout-ms=1000 wins over the mesh's 30s: a silent connection is still closed within seconds.
      const silent = slow(target.port, '');
      assert.ok((await silent.closed(2 * HEADERS_TIMEOUT_MS + 2500)) < 2 * HEADERS_TIMEOUT_MS + 2500);
    }
  } finally {
    await bed.apply([{ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: {} }]);
  }
});
