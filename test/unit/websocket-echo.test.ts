// The conformance echo's WebSocket on /ws (echo-basic's), checked with the `ws` client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import { startEcho, type RunningEcho } from '../../src/testing/echo.ts';
import { websocketAccept } from '../../src/testing/websocket-echo.ts';

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: 3000 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 3 s')), 3000);
    ws.once('message', (data: RawData, binary: boolean) => {
      clearTimeout(timer);
      resolve({ data: data as Buffer, binary });
    });
  });
}

describe('echo /ws', () => {
  let echo: RunningEcho;
  before(async () => {
    echo = await startEcho({ port: 0, namespace: 'ns', pod: 'pod-a-b' });
  });
  after(() => echo.close());

  it('computes the RFC 6455 accept value', () => {
    assert.equal(websocketAccept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('echoes text and binary frames, small and large, and answers pings', async () => {
    const ws = await open(`ws://127.0.0.1:${echo.port}/ws`);
    ws.send('Websocket Support!');
    assert.deepEqual(await next(ws), { data: Buffer.from('Websocket Support!'), binary: false });
    ws.send(Buffer.from([1, 2, 3, 4, 5, 6, 7]), { binary: true });
    assert.deepEqual(await next(ws), { data: Buffer.from([1, 2, 3, 4, 5, 6, 7]), binary: true });
    for (const size of [200, 70_000]) {
      const big = Buffer.alloc(size, 0x61);
      ws.send(big, { binary: true });
      assert.equal((await next(ws)).data.length, size);
    }
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('hi'));
    assert.equal((await pong).toString(), 'hi');
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    ws.close(1000);
    assert.equal(await closed, 1000);
  });

  it('serves an Upgrade on another path as a plain request', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${echo.port}/other`, { handshakeTimeout: 3000 });
      ws.once('open', () => reject(new Error('upgraded')));
      ws.once('error', () => {});
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
    });
    assert.equal(status, 200);
  });
});
