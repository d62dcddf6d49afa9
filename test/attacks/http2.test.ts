// Attacks on HTTP/2, written frame by frame over plain TCP to a sidecar's outbound port and a gateway (h2c): rapid reset, CONTINUATION and HPACK bombs, control-frame and empty-DATA floods, stream limits, Host ≠ :authority, idle sessions.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import {
  continuation,
  data,
  ErrorCode,
  FrameType,
  headers,
  indexed,
  indexedLiteral,
  literal,
  ping,
  priority,
  RawH2,
  requestBlock,
  rstStream,
  settings,
} from '../../src/testing/h2-frames.ts';
import { assertMemoryBounded, attackPaths, duringAttack, metric, rss, startBed, type Bed, type Target } from './bed.ts';

let bed: Bed;

before(async () => {
  bed = await startBed({ 'h2-session-idle-timeout-ms': 1500 });
});

after(async () => {
  await bed?.close();
});

/**
 * The proxy said ENHANCE_YOUR_CALM, or its GOAWAY was lost: a flooding
 * client's unread bytes make the kernel answer the close with a reset, which
 * can drop what the proxy sent last. The refusal metrics are the proof then.
 */
function assertCalm(conn: RawH2): void {
  const code = conn.goaway();
  assert.ok(code === undefined || code === ErrorCode.ENHANCE_YOUR_CALM, `GOAWAY ${code}`);
}

const sent = (bedPaths: string[], prefix: string) => bedPaths.filter((p) => p.startsWith(prefix)).length;

for (const which of ['sidecar', 'gateway'] as const) {
  test(`${which}: rapid reset — 2,000 streams opened and reset at once get GOAWAY ENHANCE_YOUR_CALM; almost none reaches the echo`, async () => {
    const target = bed[which];
    const memoryBefore = await rss(target);
    const before = attackPaths(bed).length;
    const conn = await duringAttack(target, async () => {
      const conn = await new RawH2(target.port).start();
      for (let batch = 0; batch < 20 && !conn.closed; batch++) {
        const frames: Buffer[] = [];
        for (let i = 0; i < 100; i++) {
          const id = 1 + 2 * (batch * 100 + i);
          frames.push(headers(id, requestBlock('GET', `/attack-rr/${id}`, target.host), { endStream: true }), rstStream(id));
        }
        await conn.writeDrained(Buffer.concat(frames));
        // Bursts of 100, each read on its own: one read of over 1,000 would meet nghttp2's own limit (GOAWAY INTERNAL_ERROR) before the proxy sees it.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(await conn.closedWithin(5000), 'the proxy kept the connection');
      return conn;
    });
    // Bursts that pile up unread on a busy machine reach the proxy as one read; over 1,000 resets in one read meet
    // nghttp2's own limit first (GOAWAY INTERNAL_ERROR, counted as h2_session_error). Either way the session ends.
    const code = conn.goaway();
    assert.ok(code === undefined || code === ErrorCode.ENHANCE_YOUR_CALM || code === ErrorCode.INTERNAL_ERROR, `GOAWAY ${code}`);
    // Give stragglers time to arrive before counting what the echo saw.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reached = sent(attackPaths(bed).slice(before), '/attack-rr/');
    assert.ok(reached <= 10, `${reached} reset streams reached the echo`);
    const ended = (await metric(target, 'weft_proxy_refused_total', { reason: 'h2_rapid_reset' })) + (await metric(target, 'weft_proxy_refused_total', { reason: 'h2_session_error' }));
    assert.ok(ended >= 1);
    await assertMemoryBounded(target, memoryBefore);
  });

  test(`${which}: a CONTINUATION flood and an HPACK bomb are cut; nothing reaches the echo`, async () => {
    const target = bed[which];
    const memoryBefore = await rss(target);
    const before = attackPaths(bed).length;
    await duringAttack(target, async () => {
      // Headers that never end: CONTINUATION after CONTINUATION, each a few hundred bytes of fields.
      const flood = await new RawH2(target.port).start();
      flood.write(headers(1, requestBlock('GET', '/attack-continuation', target.host), { endHeaders: false }));
      const chunk = Buffer.concat(Array.from({ length: 20 }, (_, i) => literal(`x-c${i}`, 'v'.repeat(16))));
      for (let i = 0; i < 5000 && !flood.closed; i++) await flood.writeDrained(continuation(1, chunk));
      assert.ok(await flood.closedWithin(5000), 'a CONTINUATION flood kept its connection');
      // HPACK bomb: one 4 KiB field in the dynamic table, then referenced 4,000 times (16 MB of headers from 8 KiB).
      const bomb = await new RawH2(target.port).start();
      const block = Buffer.concat([requestBlock('GET', '/attack-bomb', target.host), indexedLiteral('x-bomb', 'b'.repeat(4000)), ...Array.from({ length: 4000 }, () => indexed(62))]);
      bomb.write(headers(1, block, { endStream: true }));
      const cut = await Promise.race([
        bomb.closedWithin(3000),
        (async () => {
          for (let i = 0; i < 60 && !bomb.resets().has(1); i++) await new Promise((resolve) => setTimeout(resolve, 50));
          return bomb.resets().has(1);
        })(),
      ]);
      bomb.destroy();
      assert.ok(cut, 'the HPACK bomb was neither reset nor closed');
      assert.ok(!bomb.answered().has(1) || bomb.resets().has(1));
    });
    assert.equal(sent(attackPaths(bed).slice(before), '/attack-'), 0);
    await assertMemoryBounded(target, memoryBefore);
  });

  test(`${which}: SETTINGS, PING and empty-DATA floods end the session; a PRIORITY flood stays bounded`, async () => {
    const target = bed[which];
    const memoryBefore = await rss(target);
    const before = attackPaths(bed).length;
    await duringAttack(target, async () => {
      const settingsFlood = await new RawH2(target.port).start();
      for (let i = 0; i < 2000 && !settingsFlood.closed; i++) await settingsFlood.writeDrained(Buffer.concat(Array.from({ length: 10 }, () => settings({ 4: 65535 }))));
      assert.ok(await settingsFlood.closedWithin(5000), 'a SETTINGS flood kept its connection');
      assertCalm(settingsFlood);

      const pingFlood = await new RawH2(target.port).start();
      for (let i = 0; i < 2000 && !pingFlood.closed; i++) await pingFlood.writeDrained(Buffer.concat(Array.from({ length: 10 }, (_, j) => ping(i * 10 + j))));
      assert.ok(await pingFlood.closedWithin(5000), 'a PING flood kept its connection');
      assertCalm(pingFlood);

      // A POST whose body is an endless run of empty DATA frames (CVE-2019-9518).
      const empty = await new RawH2(target.port).start();
      empty.write(headers(1, requestBlock('POST', '/attack-empty-data', target.host)));
      for (let i = 0; i < 2000 && !empty.closed; i++) await empty.writeDrained(Buffer.concat(Array.from({ length: 10 }, () => data(1))));
      assert.ok(await empty.closedWithin(5000), 'an empty-DATA flood kept its connection');

      // PRIORITY frames are legal and cheap: 100,000 of them must cost nothing lasting.
      const prio = await new RawH2(target.port).start();
      for (let i = 0; i < 100 && !prio.closed; i++) {
        await prio.writeDrained(Buffer.concat(Array.from({ length: 1000 }, (_, j) => priority(2 * (i * 1000 + j) + 1, j === 0 ? 0 : 2 * (i * 1000 + j) - 1))));
      }
      prio.destroy();
    });
    // The empty-DATA request may have been forwarded before its session ended; it must not have completed.
    assert.ok(bed.received.slice(0).filter((r) => r.url.endsWith('/attack-empty-data')).every((r) => !r.complete));
    assert.equal(sent(attackPaths(bed).slice(before).filter((p) => p !== '/attack-empty-data'), '/attack-'), 0);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'h2_control_flood' })) >= 2);
    await assertMemoryBounded(target, memoryBefore);
  });

  test(`${which}: streams over the concurrency limit are refused; a session left idle gets GOAWAY`, async () => {
    const target = bed[which];
    const limit = which === 'gateway' ? 100 : 1000;
    const conn = await new RawH2(target.port).start();
    // Requests whose bodies never come and whose answers are slow: each holds its stream open.
    const frames: Buffer[] = [];
    for (let i = 0; i < limit + 20; i++) frames.push(headers(1 + 2 * i, requestBlock('POST', `/attack-open/${i}?delay=3s`, target.host)));
    await conn.writeDrained(Buffer.concat(frames));
    const deadline = performance.now() + 5000;
    while ([...conn.resets().values()].filter((c) => c === ErrorCode.REFUSED_STREAM).length < 20 && !conn.closed && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const refused = [...conn.resets().entries()].filter(([, code]) => code === ErrorCode.REFUSED_STREAM).map(([id]) => id);
    assert.ok(refused.length >= 20 || conn.closed, `refused ${refused.length} streams`);
    assert.ok(refused.every((id) => id > 2 * limit - 1), 'a stream within the limit was refused');
    conn.destroy();

    // An idle session (preface, settings, then nothing) is told to go away after the idle timeout (1.5 s here).
    const idle = await new RawH2(target.port).start();
    assert.ok(await idle.closedWithin(6000), 'an idle HTTP/2 session was kept');
    assert.equal(idle.goaway(), ErrorCode.NO_ERROR);
  });

  test(`${which}: Host ≠ :authority and duplicate Host are 400; an oversized :path is 414`, async () => {
    const target = bed[which];
    const before = attackPaths(bed).length;
    const ask = (extra: Record<string, string>, path = '/attack-host') =>
      new Promise<{ status: number; reason: string | undefined }>((resolve, reject) => {
        const session = http2Connect(`http://127.0.0.1:${target.port}`);
        session.on('error', reject);
        const stream = session.request({ ':path': path, ':authority': target.host, ...extra }, { endStream: true });
        stream.on('response', (h) => {
          resolve({ status: Number(h[':status']), reason: h['weft-reason'] as string | undefined });
          session.close();
        });
        stream.on('error', reject);
        stream.resume();
      });
    const mismatch = await ask({ host: 'other.example' });
    assert.deepEqual(mismatch, { status: 400, reason: 'WEFT_ERR_BAD_REQUEST' });
    assert.equal((await ask({ host: target.host })).status, 200);
    assert.equal((await ask({}, `/attack-uri?${'q'.repeat(9000)}`)).status, 414);
    assert.deepEqual(attackPaths(bed).slice(before), ['/attack-host']);
    assert.ok((await metric(target, 'weft_proxy_refused_total', { reason: 'host_mismatch' })) >= 1);
  });
}

test('raw frames: the writer produces what node parses (a sanity check of the attack tools)', async () => {
  const target: Target = bed.gateway;
  const conn = await new RawH2(target.port).start();
  conn.write(headers(1, requestBlock('GET', '/raw-ok', target.host), { endStream: true }));
  const deadline = performance.now() + 5000;
  while (!conn.frames.some((f) => f.type === FrameType.DATA && f.streamId === 1) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(conn.answered().has(1), 'no response to a well-formed raw request');
  conn.destroy();
});
