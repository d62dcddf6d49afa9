// Requests addressed to an endpoint (pod) address go straight to that endpoint through the sidecar, past every route and filter (MeshFrontend's "Send to pod IP").
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { freePort } from '../../src/testing/ports.ts';
import { buildSnapshot, endpoint, startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';
import { headerFilter, prefixRule } from './routing-helpers.ts';

describe('requests to an endpoint address', () => {
  let v1: Backend;
  let v2: Backend;
  let tcpApp: Server;
  let tcpPort: number;
  let proxy: TestProxy;
  let out: number;

  before(async () => {
    v1 = await startBackend('web-v1');
    v2 = await startBackend('web-v2');
    tcpApp = createServer((socket) => {
      // A client that resets its end reaches the app as a reset (the mesh passes resets on).
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
    tcpPort = (tcpApp.address() as AddressInfo).port;
    proxy = await startTestProxy({
      snapshot: buildSnapshot({
        services: [
          {
            name: 'web',
            ports: [
              {
                port: 80,
                endpoints: [endpoint('default/web-v1-0', v1.port), endpoint('default/web-v2-0', v2.port)],
                // The route sends everything to v2 and marks the response: a pod-address request must see neither.
                rules: [prefixRule('to-v2', '/', { filters: [headerFilter('ResponseHeaderModifier', { 'X-Header-Set': 'set' })], backends: [{ backend: 'default/web-v2:80', weight: 1, filters: [] }] })],
              },
            ],
          },
          { name: 'web-v2', ports: [{ port: 80, endpoints: [endpoint('default/web-v2-0', v2.port)] }] },
          { name: 'echo-tcp', ports: [{ port: 7000, protocol: 'tcp', endpoints: [endpoint('default/echo-tcp-0', tcpPort)] }] },
        ],
      }),
    });
    out = proxy.proxy.ports.outbound;
  });

  after(async () => {
    await proxy?.close();
    await v1?.close();
    await v2?.close();
    await new Promise((resolve) => tcpApp?.close(resolve));
  });

  it('the service goes through its route; the endpoint address reaches that endpoint as it is', async () => {
    const viaService = await viaProxy(out, 'http://web/');
    assert.equal(viaService.json().name, 'web-v2');
    assert.equal(viaService.headers['x-header-set'], 'set');

    const viaAddress = await viaProxy(out, `http://127.0.0.1:${v1.port}/pods/direct?x=1`);
    assert.equal(viaAddress.status, 200, viaAddress.body);
    const seen = viaAddress.json();
    assert.equal(seen.name, 'web-v1', 'the addressed endpoint answers, although the route sends everything to v2');
    assert.equal(seen.url, '/pods/direct?x=1');
    assert.equal(seen.headers.host, `127.0.0.1:${v1.port}`);
    assert.equal(viaAddress.headers['x-header-set'], undefined, 'no filter applies');
  });

  it('answers 502 WEFT_ERR_NO_ROUTE for an address and port that is no endpoint', async () => {
    const res = await viaProxy(out, `http://127.0.0.1:${await freePort()}/`);
    assert.equal(res.status, 502);
    assert.equal(res.headers['weft-reason'], 'WEFT_ERR_NO_ROUTE');
  });

  it('carries CONNECT to an endpoint address as TCP', async () => {
    const socket = connect(out, '127.0.0.1');
    try {
      socket.write(`CONNECT 127.0.0.1:${tcpPort} HTTP/1.1\r\nHost: 127.0.0.1:${tcpPort}\r\n\r\n`);
      let text = '';
      socket.setEncoding('utf8');
      const established = await new Promise<string>((resolve, reject) => {
        socket.on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\r\n\r\n')) resolve(text);
        });
        socket.once('error', reject);
        setTimeout(() => reject(new Error(`no answer to CONNECT: ${text}`)), 3000).unref();
      });
      assert.match(established, /^HTTP\/1\.1 200 /);
      text = '';
      socket.write('ping');
      await new Promise<void>((resolve, reject) => {
        const check = () => (text.endsWith('ping') ? resolve() : undefined);
        socket.on('data', check);
        setTimeout(() => reject(new Error(`no echo: ${text}`)), 3000).unref();
      });
    } finally {
      socket.destroy();
    }
  });
});
