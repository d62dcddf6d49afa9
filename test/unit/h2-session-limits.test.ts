// H2Sessions per-peer limits (BackendTrafficPolicy): maxSessions bounds the sessions to a peer, maxStreamsPerSession retires a session after that many streams; other peers keep the defaults.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { DEFAULT_H2_SETTINGS, H2Sessions, type Lease } from '../../src/proxy/transport/h2.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';

describe('H2Sessions per-peer limits', () => {
  let server: Http2Server;
  let authority = '';
  let sessionsOpen = 0;
  let sessionsSeen = 0;
  const leases: Lease[] = [];

  before(async () => {
    server = createServer();
    server.on('session', (session) => {
      sessionsSeen++;
      sessionsOpen++;
      session.once('close', () => sessionsOpen--);
    });
    server.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    authority = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const lease of leases) lease.release();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
    });
  });

  /** One session per stream unless a limit says otherwise: makes every bound visible with a handful of streams. */
  const settings = { ...DEFAULT_H2_SETTINGS, maxSessionsPerPeer: 4, maxStreamsPerSession: 1, pingIntervalMs: 0 };

  it('maxSessions bounds a peer below the default; streams beyond share its sessions; lowering it retires the surplus', async () => {
    const sessions = new H2Sessions(settings, silentLogger());
    sessions.configure('limited', { maxSessions: 2 });
    for (let i = 0; i < 5; i++) leases.push(await sessions.lease('limited', authority, undefined));
    assert.equal(sessions.count('limited'), 2);
    assert.equal(new Set(leases.map((l) => l.session)).size, 2, 'five streams on two sessions');
    // Another peer id (the same server, as another backend's) keeps the defaults.
    const other: Lease[] = [];
    for (let i = 0; i < 5; i++) other.push(await sessions.lease('other', authority, undefined));
    assert.equal(sessions.count('other'), 4);
    other.forEach((l) => l.release());
    sessions.configure('limited', { maxSessions: 1 });
    assert.equal(sessions.count('limited'), 1, 'the surplus session takes no new streams');
    const before = sessionsOpen;
    for (const lease of leases.splice(0)) lease.release();
    await waitFor(() => sessionsOpen < before, { timeoutMs: 3000, message: 'the retired session closes once its streams are released' });
    sessions.destroy();
  });

  it('maxStreamsPerSession: a session takes that many streams in its life, then closes once they end', async () => {
    const sessions = new H2Sessions({ ...settings, maxStreamsPerSession: 1000 }, silentLogger());
    sessions.configure('rotating', { maxStreamsPerSession: 2 });
    const seenBefore = sessionsSeen;
    const a = await sessions.lease('rotating', authority, undefined);
    const b = await sessions.lease('rotating', authority, undefined);
    assert.equal(a.session, b.session);
    const c = await sessions.lease('rotating', authority, undefined);
    assert.notEqual(c.session, a.session, 'the third stream gets a new session');
    assert.equal(sessionsSeen - seenBefore, 2);
    // Still usable for the streams it was given.
    const answer = await new Promise<number>((resolve, reject) => {
      const stream = b.session.request({ ':path': '/' });
      stream.once('response', (headers) => resolve(Number(headers[':status'])));
      stream.once('error', reject);
      stream.resume();
    });
    assert.equal(answer, 200);
    a.release();
    b.release();
    await waitFor(() => a.session.closed || a.session.destroyed, { timeoutMs: 3000, message: 'the spent session closes' });
    c.release();
    sessions.configure('rotating', undefined);
    sessions.destroy();
  });
});
