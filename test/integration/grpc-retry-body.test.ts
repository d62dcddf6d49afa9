// Retries of real grpc-js calls: grpc-js sends its request body without a Content-Length, and the body-buffer layer must still keep it for a retry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../src/testing/ports.ts';
import { buildSnapshot, endpoint, startTestProxy, type TestProxy } from './proxy-helpers.ts';

const FLAKY = 9300;
const METHOD = '/weft.test.Flaky/Call';
const CHAT = '/weft.test.Flaky/Chat';
const identity = (b: Buffer) => b;

/** A grpc-js server whose method fails every odd call with UNAVAILABLE and echoes the request bytes on the others. */
async function startFlaky(calls: { count: number; sizes: number[] }): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(
    {
      Call: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
      Chat: { path: CHAT, requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
    },
    {
      Chat: (stream: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        stream.on('data', (message: Buffer) => stream.write(message));
        stream.on('end', () => stream.end());
      },
      Call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        calls.sizes.push(call.request.length);
        if (++calls.count % 2 === 1) callback({ code: grpc.status.UNAVAILABLE, details: 'odd call' });
        else callback(null, call.request);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

function call(client: grpc.Client, body: Buffer): Promise<{ reply?: Buffer; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(METHOD, identity, identity, body, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error, reply) =>
      resolve(error ? { error } : { reply: reply! }),
    );
  });
}

describe('a route retry with codes [503] and a real grpc-js client', () => {
  const calls = { count: 0, sizes: [] as number[] };
  let app: Awaited<ReturnType<typeof startFlaky>>;
  let server: TestProxy;
  let caller: TestProxy;
  let client: grpc.Client;

  before(async () => {
    app = await startFlaky(calls);
    server = await startTestProxy({
      workload: 'flaky',
      instance: 'flaky-0',
      appPorts: [{ declared: FLAKY, actual: app.port }],
      snapshot: buildSnapshot({ workload: 'flaky', inboundPorts: [FLAKY] }),
    });
    const local = await freePort();
    const key = `default/flaky:${FLAKY}`;
    caller = await startTestProxy({
      workload: 'caller',
      snapshot: buildSnapshot({
        workload: 'caller',
        services: [
          {
            name: 'flaky',
            ports: [
              {
                port: FLAKY,
                protocol: 'grpc',
                endpoints: [endpoint('default/flaky-0', FLAKY, server.proxy.ports.tunnel)],
                rules: [{ id: 'r', match: {}, filters: [], retry: { codes: [503], attempts: 2, backoffMs: 0 }, backends: [{ backend: key, weight: 1, filters: [] }] }],
              },
            ],
          },
        ],
        upstreams: [{ localPort: local, routeKey: key, host: `flaky:${FLAKY}` }],
      }),
    });
    client = new grpc.Client(`127.0.0.1:${local}`, grpc.credentials.createInsecure(), { 'grpc.enable_http_proxy': 0 });
  });

  after(async () => {
    client?.close();
    await caller?.close();
    await server?.close();
    await app?.close();
  });

  it('retries a unary call answered UNAVAILABLE, sending the same body again', async () => {
    const body = Buffer.alloc(10_000, 'retry me;');
    const result = await call(client, body);
    assert.equal(result.error, undefined, result.error?.message);
    assert.ok(result.reply!.equals(body), 'the retried attempt carried the whole body');
    assert.equal(calls.count, 2, 'one retry');
    assert.deepEqual(calls.sizes, [10_000, 10_000]);
  });

  it('a body past the buffer limit is streamed, not kept: the call is not retried, and arrives whole', async () => {
    const body = Buffer.alloc(200 * 1024, 'big;');
    const before = calls.count;
    const result = await call(client, body);
    assert.equal(result.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(calls.count - before, 1, 'no retry without a kept body');
    // The next call is an even one: it succeeds, with every byte of a body that was partly read before being streamed on.
    const again = await call(client, body);
    assert.equal(again.error, undefined, again.error?.message);
    assert.ok(again.reply!.equals(body));
    assert.deepEqual(calls.sizes.slice(-2), [body.length, body.length]);
  });

  it('a bidi call that waits for an answer before sending more is streamed on, not held until its deadline', async () => {
    const stream = client.makeBidiStreamRequest(CHAT, identity, identity, new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    const replies: Buffer[] = [];
    const next = () => new Promise<Buffer>((resolve, reject) => {
      stream.once('data', resolve);
      stream.once('error', reject);
    });
    const started = performance.now();
    const first = next();
    stream.write(Buffer.from('ping 1'));
    replies.push(await first);
    const waited = performance.now() - started;
    const second = next();
    stream.write(Buffer.from('ping 2'));
    replies.push(await second);
    stream.end();
    assert.deepEqual(replies.map(String), ['ping 1', 'ping 2']);
    assert.ok(waited < 3000, `the first answer came after ${Math.round(waited)} ms: the body buffer gave up waiting for the end`);
  });
});
