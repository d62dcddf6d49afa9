// H2Sessions health: a session that receives GOAWAY takes no new streams, finishes the ones it carries, and is replaced; the session metric hears why.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { DEFAULT_H2_SETTINGS, H2Sessions } from '../../src/proxy/transport/h2.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { waitFor } from '../../src/testing/wait.ts';

function dialer(port: number) {
  return () =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
}

describe('H2Sessions', () => {
  const held: ServerHttp2Stream[] = [];
  let server: Http2Server;

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('drains a session that got GOAWAY: its stream finishes, the next stream opens a new session', async () => {
    let sessionsSeen = 0;
    server = createServer();
    server.on('session', () => sessionsSeen++);
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (headers[':path'] === '/hold') {
        stream.respond({ ':status': 200 });
        stream.write('held;');
        held.push(stream);
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end('quick');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const events: string[] = [];
    const sessions = new H2Sessions({ ...DEFAULT_H2_SETTINGS, pingIntervalMs: 0 }, silentLogger(), (event, reason) => events.push(`${event}:${reason}`));
    const dial = dialer(port);

    const first = await sessions.lease('peer', `127.0.0.1:${port}`, dial);
    const stream = first.session.request({ ':path': '/hold' });
    let body = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    const ended = new Promise((resolve) => stream.once('end', resolve));
    await waitFor(() => held.length === 1, { timeoutMs: 3000 });
    // The server goes away gracefully: GOAWAY, and streams in flight may finish.
    held[0]!.session!.close();
    await waitFor(() => sessions.count('peer') === 0, { timeoutMs: 3000, message: 'the session to be dropped on GOAWAY' });

    const second = await sessions.lease('peer', `127.0.0.1:${port}`, dial);
    assert.notEqual(second.session, first.session, 'a new stream gets a new session');
    const quick = second.session.request({ ':path': '/quick' });
    let answer = '';
    quick.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    await new Promise((resolve) => quick.once('end', resolve));
    assert.equal(answer, 'quick');
    second.release();

    // The old session's stream was not cut: it finishes.
    held[0]!.end('done');
    await ended;
    assert.equal(body, 'held;done');
    first.release();
    assert.equal(sessionsSeen, 2);
    await waitFor(() => events.includes('closed:goaway'), { timeoutMs: 3000, message: 'the drained session to close' });
    assert.deepEqual(events.filter((e) => e.startsWith('opened')), ['opened:dial', 'opened:dial']);
    sessions.destroy();
  });
});
