// The hand-written HTTP/1.1 client: framing of every kind, refusal of ambiguous responses, keep-alive reuse, the pool's bounds and aborts.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { dialTcp, Http1Pool, type Http1Request } from '../../src/proxy/transport/http1-client.ts';
import type { Headers } from '../../src/proxy/exchange.ts';

interface Outcome {
  status?: number;
  message?: string;
  headers?: Headers;
  body: Buffer;
  trailers?: Headers | undefined;
  error?: Error;
  started?: boolean;
}

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

/** A TCP server that answers each request head it reads with `answer(head)` (raw bytes), and counts connections. */
async function rawServer(answer: (head: string, socket: Socket) => void): Promise<{ port: number; connections: () => number; heads: string[] }> {
  let connections = 0;
  const heads: string[] = [];
  const server = createServer((socket) => {
    connections++;
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString('latin1');
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const length = /content-length: (\d+)/i.exec(head);
        if (length) pending = pending.slice(Number(length[1]));
        heads.push(head);
        answer(head, socket);
      }
    });
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, connections: () => connections, heads };
}

function pool(port: number, connections = 4): Http1Pool {
  return new Http1Pool({ connections, keepAliveTimeoutMs: 5000, connectTimeoutMs: 1000 }, dialTcp('127.0.0.1', port));
}

function send(p: Http1Pool, request: Partial<Http1Request> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const outcome: Outcome = { body: Buffer.alloc(0) };
    p.request(
      { method: 'GET', path: '/', headers: { host: 'test' }, body: null, ...request },
      {
        onHead(status, message, headers) {
          outcome.status = status;
          outcome.message = message;
          outcome.headers = headers;
          return undefined;
        },
        onData(chunk) {
          chunks.push(Buffer.from(chunk));
          return true;
        },
        onEnd(trailers) {
          outcome.body = Buffer.concat(chunks);
          outcome.trailers = trailers;
          resolve(outcome);
        },
        onError(error, started) {
          outcome.body = Buffer.concat(chunks);
          outcome.error = error;
          outcome.started = started;
          resolve(outcome);
        },
      },
    );
  });
}

describe('HTTP/1.1 client: response framing', () => {
  it('reads Content-Length bodies and reuses the connection', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello'));
    const p = pool(server.port);
    for (let i = 0; i < 3; i++) {
      const out = await send(p);
      assert.equal(out.status, 200);
      assert.equal(out.message, 'OK');
      assert.equal(out.body.toString(), 'hello');
      assert.deepEqual(out.headers!['x-a'], ['1', '2']);
    }
    assert.equal(server.connections(), 1, 'one keep-alive connection for three requests');
    await p.close();
  });

  it('trims only spaces and tabs around a value (RFC 9110 OWS), keeping obs-text and empty values', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nX-A: \t a b\xa0 \t\r\nX-Empty:\r\nX-Bare:x\r\nContent-Length: 0\r\n\r\n', 'latin1'));
    const p = pool(server.port);
    const out = await send(p);
    assert.equal(out.status, 200);
    assert.equal(out.headers!['x-a'], 'a b\xa0');
    assert.equal(out.headers!['x-empty'], '');
    assert.equal(out.headers!['x-bare'], 'x');
    await p.close();
  });

  it('reads chunked bodies split anywhere, with trailers', async () => {
    const response = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX-T: y\r\n\r\n';
    const server = await rawServer((_head, socket) => {
      // One byte at a time: every state of the parser meets a boundary.
      let i = 0;
      const tick = (): void => {
        if (i >= response.length) return;
        socket.write(response[i++]!);
        setImmediate(tick);
      };
      tick();
    });
    const p = pool(server.port);
    const out = await send(p);
    assert.equal(out.error, undefined);
    assert.equal(out.body.toString(), 'hello world');
    assert.deepEqual(out.trailers, { 'grpc-status': '0', 'x-t': 'y' });
    const again = await send(p);
    assert.equal(again.body.toString(), 'hello world');
    assert.equal(server.connections(), 1);
    await p.close();
  });

  it('reads a body delimited by the close, and does not reuse that connection', async () => {
    const server = await rawServer((_head, socket) => {
      socket.write('HTTP/1.1 200 OK\r\n\r\npart one, ');
      setImmediate(() => socket.end('part two'));
    });
    const p = pool(server.port);
    assert.equal((await send(p)).body.toString(), 'part one, part two');
    assert.equal((await send(p)).body.toString(), 'part one, part two');
    assert.equal(server.connections(), 2);
    await p.close();
  });

  it('skips 1xx heads, and knows HEAD, 204 and 304 have no body', async () => {
    const server = await rawServer((head, socket) => {
      if (head.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
      else if (head.includes('/204')) socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (head.includes('/304')) socket.write('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n');
      else socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
    });
    const p = pool(server.port, 1);
    const informational = await send(p);
    assert.equal(informational.status, 201);
    assert.equal(informational.body.toString(), 'ok');
    const head = await send(p, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal((await send(p, { path: '/204' })).status, 204);
    assert.equal((await send(p, { path: '/304' })).status, 304);
    assert.equal(server.connections(), 1, 'every one of them left the connection reusable');
    await p.close();
  });

  it('sends buffered bodies with their length and streamed ones chunked unless the client gave a length', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const p = pool(server.port, 1);
    await send(p, { method: 'POST', headers: { host: 'test', 'content-length': '99' }, body: Buffer.from('abc') });
    assert.match(server.heads[0]!, /content-length: 3/);
    assert.doesNotMatch(server.heads[0]!, /content-length: 99/);
    await send(p, { method: 'POST', headers: { host: 'test', 'content-length': '0' } });
    assert.match(server.heads[1]!, /content-length: 0/);
    await send(p, { method: 'POST', headers: { host: 'test', 'content-length': '6' }, body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
    assert.match(server.heads[2]!, /content-length: 6/);
    await p.close();

    // A streamed body without a length goes chunked; a real HTTP server reads it whole.
    const echo = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`${req.headers['transfer-encoding']}:${Buffer.concat(chunks).toString()}`));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPool = pool((echo.address() as { port: number }).port);
    const out = await send(echoPool, { method: 'POST', body: Readable.from([Buffer.from('one '), Buffer.from('two')]) });
    assert.equal(out.body.toString(), 'chunked:one two');
    await echoPool.close();
    echo.close();
  });
});

describe('HTTP/1.1 client: refuses what is ambiguous or broken', () => {
  const cases: [string, string][] = [
    ['both Transfer-Encoding and Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n'],
    ['conflicting Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n'],
    ['a bare LF inside a field', 'HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 0\r\n\r\n'],
    ['a NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n'],
    ['a control character at the end of a value', 'HTTP/1.1 200 OK\r\nX-A: a\x0b\r\nContent-Length: 0\r\n\r\n'],
    ['a header line with no name', 'HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n'],
    ['a name that is not a token', 'HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 0\r\n\r\n'],
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
    ['a malformed status', 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n'],
    ['a malformed chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n'],
    ['an unasked 101', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
  ];
  for (const [what, response] of cases) {
    it(`refuses a response with ${what}`, async () => {
      const server = await rawServer((_head, socket) => socket.write(response));
      const p = pool(server.port);
      const out = await send(p);
      assert.ok(out.error, `no error; got status ${out.status} and body ${JSON.stringify(out.body.toString())}`);
      assert.match(out.error.message, /malformed response/);
      await p.close();
    });
  }

  it('refuses a response head over its size limit', async () => {
    const server = await rawServer((_head, socket) => socket.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`));
    const p = pool(server.port);
    const out = await send(p);
    assert.match(out.error?.message ?? '', /too large/);
    await p.close();
  });

  it('refuses to send a header value that would split the request', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const p = pool(server.port);
    const out = await send(p, { headers: { host: 'test', 'x-a': 'one\r\nx-injected: 1' } });
    assert.match(out.error?.message ?? '', /x-a/);
    assert.equal(server.heads.length, 0, 'nothing was sent');
    await p.close();
  });

  it('reports a connection cut in the middle of a body as started, and a refused connect as not', async () => {
    const server = await rawServer((_head, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf');
      setImmediate(() => socket.destroy());
    });
    const p = pool(server.port);
    const cut = await send(p);
    assert.equal(cut.started, true);
    assert.equal(cut.body.toString(), 'half');
    await p.close();

    const closed = await rawServer(() => {});
    const gone = closed.port;
    servers.pop()!.close();
    await new Promise((resolve) => setImmediate(resolve));
    const refused = await send(pool(gone));
    assert.equal(refused.started, false);
    assert.equal((refused.error as { code?: string }).code, 'ECONNREFUSED');
  });
});

describe('HTTP/1.1 client: the pool', () => {
  it('opens at most `connections` connections and queues the rest in order', async () => {
    const waiting: Socket[] = [];
    const server = await rawServer((_head, socket) => waiting.push(socket));
    const p = pool(server.port, 2);
    const results = [send(p, { path: '/1' }), send(p, { path: '/2' }), send(p, { path: '/3' }), send(p, { path: '/4' })];
    const deadline = Date.now() + 5000;
    while (waiting.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(server.connections(), 2);
    for (let answered = 0; answered < 4; answered++) {
      while (waiting.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      waiting.shift()!.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    }
    const out = await Promise.all(results);
    assert.deepEqual(out.map((o) => o.status), [200, 200, 200, 200]);
    assert.deepEqual(server.heads.map((h) => h.split(' ')[1]), ['/1', '/2', '/3', '/4']);
    assert.equal(server.connections(), 2);
    await p.close();
  });

  it('closes a connection after maxRequestsPerConnection, and after Connection: close', async () => {
    const server = await rawServer((head, socket) =>
      socket.write(head.includes('/close') ? 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
    );
    const limited = new Http1Pool({ connections: 1, keepAliveTimeoutMs: 5000, connectTimeoutMs: 1000, maxRequestsPerConnection: 2 }, dialTcp('127.0.0.1', server.port));
    for (let i = 0; i < 4; i++) await send(limited);
    assert.equal(server.connections(), 2);
    await limited.close();
    const p = pool(server.port, 1);
    await send(p, { path: '/close' });
    await send(p, { path: '/close' });
    assert.equal(server.connections(), 4);
    await p.close();
  });

  it('an aborted request frees its slot: the connection is closed and the next request gets a new one', async () => {
    const sockets: Socket[] = [];
    const server = await rawServer((head, socket) => {
      sockets.push(socket);
      if (!head.includes('/slow')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    const p = pool(server.port, 1);
    const heard: string[] = [];
    const attempt = p.request(
      { method: 'GET', path: '/slow', headers: { host: 'test' }, body: null },
      { onHead: () => (heard.push('head'), undefined), onData: () => true, onEnd: () => heard.push('end'), onError: () => heard.push('error') },
    );
    const deadline = Date.now() + 5000;
    while (sockets.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    attempt.abort(new Error('given up'));
    const next = await send(p, { path: '/fast' });
    assert.equal(next.status, 200);
    assert.deepEqual(heard, [], 'an aborted attempt hears nothing more');
    assert.equal(server.connections(), 2);
    await p.close();
  });

  for (const [framing, answer] of [
    ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef'],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n'],
  ] as const) {
    it(`an attempt aborted from within onData on its last bytes (${framing}) hears nothing more, and the pool goes on`, async () => {
      const server = await rawServer((head, socket) => socket.write(head.includes('/next') ? 'HTTP/1.1 204 No Content\r\n\r\n' : answer));
      const p = pool(server.port, 1);
      const heard: string[] = [];
      await new Promise<void>((resolve) => {
        const attempt = p.request(
          { method: 'GET', path: '/', headers: { host: 'test' }, body: null },
          {
            onHead: () => undefined,
            onData: () => {
              // As a reader over its size limit does: the whole body came in one read, and the attempt is given up in the middle of it.
              heard.push('data');
              attempt.abort(new Error('too large'));
              resolve();
              return false;
            },
            onEnd: () => heard.push('end'),
            onError: () => heard.push('error'),
          },
        );
      });
      const next = await send(p, { path: '/next' });
      assert.equal(next.status, 204);
      assert.deepEqual(heard, ['data']);
      await p.close();
    });
  }

  it('a refused head cuts the attempt and reports the refusal', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad'));
    const p = pool(server.port);
    const refusal = new Error('retry it');
    const out = await new Promise<{ error: Error; started: boolean }>((resolve) =>
      p.request(
        { method: 'GET', path: '/', headers: { host: 'test' }, body: null },
        { onHead: () => refusal, onData: () => true, onEnd: () => assert.fail('ended'), onError: (error, started) => resolve({ error, started }) },
      ),
    );
    assert.equal(out.error, refusal);
    assert.equal(out.started, false);
    await p.close();
  });

  it('honours backpressure: a paused flow resumes', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 'b');
    const server = await rawServer((_head, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`);
      socket.write(big);
    });
    const p = pool(server.port);
    let received = 0;
    let pauses = 0;
    await new Promise<void>((resolve, reject) => {
      const attempt = p.request(
        { method: 'GET', path: '/', headers: { host: 'test' }, body: null },
        {
          onHead: () => undefined,
          onData(chunk) {
            received += chunk.length;
            pauses++;
            setTimeout(() => attempt.resume(), 1);
            return false;
          },
          onEnd: () => resolve(),
          onError: reject,
        },
      );
    });
    assert.equal(received, big.length);
    assert.ok(pauses > 1);
    await p.close();
  });
});
