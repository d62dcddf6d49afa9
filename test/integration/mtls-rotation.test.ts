// Rotation under load: two sidecars with short-lived certificates from a real control plane renew three times each during continuous traffic, and not one request fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { Agent, request } from 'node:http';
import { waitFor } from '../../src/testing/wait.ts';
import { adminGet, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { startSidecarPair, type SidecarPair } from './mtls-helpers.ts';

/**
 * The issue asks for certificates of 2 minutes; at half-life renewal three
 * rotations would take 3+ minutes, too long for the suite. The control
 * plane's --cert-ttl takes any duration (the CA's floor is 1 s), so this test
 * uses 12 s: a renewal every ~6 s, three in ~19 s. The mechanism is the same
 * at any lifetime (IdentityManager renews at half life; the TLS server and
 * client take the new SecureContext for new handshakes).
 */
const CERT_TTL_MS = 12_000;
const ROTATIONS = 3;

interface AdminIdentity {
  identity: { spiffeId: string; expiresAt: string; serialNumber: string } | null;
}

describe(`rotation under load with ${CERT_TTL_MS / 1000} s certificates (the issue's 2 min, shortened so ${ROTATIONS} half-life rotations fit in the suite)`, () => {
  let server: TestProxy;
  let client: TestProxy;
  let pair: SidecarPair | undefined;

  before(async () => {
    pair = await startSidecarPair({ controlPlane: { certTtlMs: CERT_TTL_MS } });
    ({ server, client } = pair);
  });

  after(() => pair?.close());

  it(`renews both proxies' certificates ${ROTATIONS} times during keep-alive, HTTP/2 and streaming traffic with zero failed requests`, { timeout: 40_000 }, async () => {
    const serials = { server: [] as string[], client: [] as string[] };
    const record = async (which: 'server' | 'client', proxy: TestProxy) => {
      const { identity } = (await adminGet(proxy.proxy.ports.admin, '/config')).json<AdminIdentity>();
      const list = serials[which];
      if (identity && list.at(-1) !== identity.serialNumber) list.push(identity.serialNumber);
    };
    await record('server', server);
    await record('client', client);
    const initialExpiry = Date.parse((await adminGet(server.proxy.ports.admin, '/config')).json<AdminIdentity>().identity!.expiresAt);
    assert.ok(initialExpiry - Date.now() <= CERT_TTL_MS, `the control plane issued ${CERT_TTL_MS} ms certificates (expires ${new Date(initialExpiry).toISOString()})`);

    let running = true;
    const failures: string[] = [];
    const counts = { keepAlive: 0, h2: 0 };
    const pause = () => new Promise((resolve) => setTimeout(resolve, 20));

    // 1. HTTP/1.1 keep-alive: one app connection reused throughout.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const keepAlive = (async () => {
      while (running) {
        try {
          const res = await viaProxy(client.proxy.ports.outbound, `http://reviews:9080/keep-alive/${counts.keepAlive}`, { agent });
          if (res.status === 200) counts.keepAlive++;
          else failures.push(`keep-alive: ${res.status} ${String(res.headers['weft-reason'])}`);
        } catch (error) {
          failures.push(`keep-alive: ${String(error)}`);
        }
        await pause();
      }
    })();

    // 2. One HTTP/2 session from the app for the whole test (an HTTP/2 tunnel session behind it).
    const session = http2.connect(`http://127.0.0.1:${client.proxy.ports.outbound}`);
    let sessionClosed = false;
    session.on('close', () => (sessionClosed = true));
    session.on('error', (error) => failures.push(`h2 session: ${error.message}`));
    const h2 = (async () => {
      while (running) {
        try {
          const status = await new Promise<number>((resolve, reject) => {
            const stream = session.request({ ':path': `/h2/${counts.h2}`, ':authority': 'reviews:9080' });
            let code = 0;
            stream.on('response', (headers) => (code = Number(headers[':status'])));
            stream.on('data', () => {});
            stream.on('end', () => resolve(code));
            stream.on('error', reject);
            stream.end();
          });
          if (status === 200) counts.h2++;
          else failures.push(`h2: ${status}`);
        } catch (error) {
          failures.push(`h2: ${String(error)}`);
        }
        await pause();
      }
    })();

    // 3. One request whose body streams for the whole test: a tunnel connection held open across every rotation.
    let chunksSent = 0;
    let streamingRequest!: ReturnType<typeof request>;
    const streaming = new Promise<{ status: number; bodyLength: number }>((resolve, reject) => {
      streamingRequest = request(
        { host: '127.0.0.1', port: client.proxy.ports.outbound, method: 'POST', path: 'http://reviews:9080/streaming', headers: { host: 'reviews:9080' }, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bodyLength: (JSON.parse(text) as { body: string }).body.length }));
          res.on('error', reject);
        },
      );
      streamingRequest.on('error', reject);
    });
    const streamer = (async () => {
      while (running) {
        streamingRequest.write('0123456789');
        chunksSent++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      streamingRequest.end();
    })();

    try {
      await waitFor(
        async () => {
          await record('server', server);
          await record('client', client);
          return serials.server.length > ROTATIONS && serials.client.length > ROTATIONS;
        },
        { timeoutMs: (ROTATIONS + 1) * (CERT_TTL_MS / 2) + 5000, intervalMs: 200, message: `${ROTATIONS} rotations of each proxy's certificate` },
      );
    } finally {
      running = false;
      await Promise.all([keepAlive, h2, streamer]);
    }
    const streamed = await streaming;
    session.close();
    agent.destroy();

    assert.deepEqual(failures, [], `${failures.length} failures`);
    assert.ok(serials.server.length > ROTATIONS, `server serials: ${serials.server.join(', ')}`);
    assert.ok(serials.client.length > ROTATIONS, `client serials: ${serials.client.join(', ')}`);
    assert.ok(counts.keepAlive > 100 && counts.h2 > 100, `requests: ${JSON.stringify(counts)}`);
    assert.equal(sessionClosed, false, 'the HTTP/2 session lasted through every rotation');
    assert.equal(streamed.status, 200);
    assert.equal(streamed.bodyLength, chunksSent * 10, 'the streamed body arrived whole over a connection older than every certificate in use');

    // The server still serves the current certificate to new connections, and the expiry metric follows it.
    const config = (await adminGet(server.proxy.ports.admin, '/config')).json<AdminIdentity>();
    const metrics = (await adminGet(server.proxy.ports.admin, '/metrics')).body;
    assert.equal(Number(/^weft_certificate_expiry_timestamp_seconds (\d+)$/m.exec(metrics)?.[1]), Math.floor(Date.parse(config.identity!.expiresAt) / 1000));
  });
});
