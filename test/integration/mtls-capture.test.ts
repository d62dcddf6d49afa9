// A loopback capture (tcpdump) of traffic between two sidecars in STRICT mode: no application plaintext on the tunnel port, while the app-side legs show it; a plaintext client is refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/testing/wait.ts';
import { viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';
import { startSidecarPair, tcpSegments, type CapturedSegment, type SidecarPair } from './mtls-helpers.ts';

const strictMesh = { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls: { mode: 'STRICT' } } };

/** Why a capture cannot run here, or undefined when it can (root and a working tcpdump). */
function cannotCapture(): string | undefined {
  if (process.getuid?.() !== 0) return 'tcpdump needs root to capture on lo (CI runs as root)';
  const probe = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `tcpdump is not installed (${probe.error?.message ?? probe.stderr})`;
  return undefined;
}

/** tcpdump on lo writing `file`, resolved once it says it is listening. */
async function startCapture(file: string, filter: string): Promise<{ stop(): Promise<void> }> {
  // -U and --immediate-mode: each packet is written as it comes (nothing left in a buffer at stop; some VMs never retire a TPACKET_V3 block otherwise).
  const child: ChildProcess = spawn('tcpdump', ['-i', 'lo', '-n', '-U', '--immediate-mode', '-s', '0', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor(() => child.exitCode === null && stderr.includes('listening on'), { timeoutMs: 5000, message: 'tcpdump listening on lo' });
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}: ${stderr}`);
  }
  return { stop };
}

/** The bytes of each one-way flow (source port → destination port) in a capture. */
function flows(segments: CapturedSegment[]): Map<string, Buffer> {
  const parts = new Map<string, Buffer[]>();
  for (const s of segments) {
    const key = `${s.sourcePort}>${s.destinationPort}`;
    let list = parts.get(key);
    if (!list) parts.set(key, (list = []));
    list.push(s.payload);
  }
  return new Map([...parts].map(([key, list]) => [key, Buffer.concat(list)]));
}

function portsOf(key: string): [number, number] {
  const [from, to] = key.split('>').map(Number);
  return [from!, to!];
}

describe('a loopback capture between two sidecars in STRICT mode', () => {
  const skipReason = cannotCapture();
  let app: Backend;
  let server: TestProxy;
  let client: TestProxy;
  let pair: SidecarPair | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'weft-capture-'));

  before(async () => {
    if (skipReason) return;
    pair = await startSidecarPair({ extraItems: [strictMesh] });
    ({ app, server, client } = pair);
  });

  after(async () => {
    await pair?.close();
    if (!process.env.KEEP_PCAP) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the marker on the app legs and the plaintext probe, never on the mTLS tunnel; the plaintext client is refused', { timeout: 20_000 }, async (t) => {
    if (skipReason) {
      t.skip(`no capture: ${skipReason}`);
      return;
    }
    const marker = `weft-secret-${randomBytes(8).toString('hex')}`;
    const probeMarker = `weft-probe-${randomBytes(8).toString('hex')}`;
    const tunnel = server.proxy.ports.tunnel;
    const outbound = client.proxy.ports.outbound;
    const file = join(dir, 'lo.pcap');
    const capture = await startCapture(file, `tcp port ${tunnel} or tcp port ${app.port} or tcp port ${outbound}`);
    let probePort = 0;
    let probeOutcome = '';
    const seen = app.requests;
    try {
      // HTTP/1.1 on kept-alive tunnel connections: marker in the path, a header and the body.
      for (let i = 0; i < 3; i++) {
        const res = await viaProxy(outbound, `http://reviews:9080/${marker}/${i}`, { method: 'POST', headers: { 'x-marker': marker }, body: `body ${marker} ${i}` });
        assert.equal(res.status, 200, res.body);
        assert.equal(res.json().headers['x-marker'], marker);
      }
      // HTTP/2 from the app (h2c): a new h2 tunnel session, so the capture holds a fresh handshake too.
      const h2 = http2.connect(`http://127.0.0.1:${outbound}`);
      try {
        const body = await new Promise<string>((resolve, reject) => {
          // A forged XFCC too: over HTTP/2 as over HTTP/1.1, the app must see only the one the receiving proxy sets.
          const stream = h2.request({
            ':method': 'POST',
            ':path': `/${marker}/h2`,
            ':authority': 'reviews:9080',
            'x-marker': marker,
            'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/default/sa/admin',
          });
          let text = '';
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => (text += chunk));
          stream.on('end', () => resolve(text));
          stream.on('error', reject);
          stream.end(`h2 body ${marker}`);
        });
        assert.match(body, new RegExp(marker));
        const xfcc = String((JSON.parse(body) as { headers: Record<string, string> }).headers['x-forwarded-client-cert']);
        assert.match(xfcc, /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
      } finally {
        h2.close();
      }
      // A client outside the mesh speaking plaintext straight to the tunnel port.
      probeOutcome = await new Promise<string>((resolve) => {
        const socket = netConnect(tunnel, '127.0.0.1');
        let text = '';
        const timer = setTimeout(() => finish(`timed out after ${JSON.stringify(text)}`), 3000);
        function finish(outcome: string) {
          clearTimeout(timer);
          socket.destroy();
          resolve(outcome);
        }
        socket.setEncoding('latin1');
        socket.on('connect', () => {
          probePort = socket.localPort ?? 0;
          socket.write(`GET /${probeMarker} HTTP/1.1\r\nhost: reviews:9080\r\nweft-target-port: 9080\r\nx-marker: ${probeMarker}\r\n\r\n`);
        });
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('error', (error: NodeJS.ErrnoException) => finish(`error ${error.code}`));
        socket.on('close', () => finish(text === '' ? 'closed' : text));
      });
      // Packets reach the file a moment after they were sent: the probe, sent last, shows when all are in.
      await waitFor(() => readFileSync(file).includes(probeMarker), { timeoutMs: 3000, message: 'the capture file holding the plaintext probe' });
    } finally {
      await capture.stop();
    }

    assert.doesNotMatch(probeOutcome, /HTTP\//, `the plaintext client got an answer: ${probeOutcome}`);
    assert.equal(app.requests, seen + 4, 'the app got the four mesh requests and not the plaintext one');

    const byFlow = flows(tcpSegments(readFileSync(file)));
    const onTunnel = [...byFlow].filter(([key]) => portsOf(key).includes(tunnel));
    const onAppLegs = [...byFlow].filter(([key]) => portsOf(key).includes(app.port) || portsOf(key).includes(outbound));
    const probeFlows = onTunnel.filter(([key]) => portsOf(key).includes(probePort));
    const meshFlows = onTunnel.filter(([key]) => !portsOf(key).includes(probePort));

    // The capture works: the app-side legs carry the marker in the clear, and so does the refused plaintext probe.
    assert.ok(onAppLegs.some(([, bytes]) => bytes.includes(marker)), 'the marker is visible on the app-side legs (the capture sees plaintext)');
    assert.ok(probeFlows.some(([key, bytes]) => portsOf(key)[1] === tunnel && bytes.includes(probeMarker)), 'the plaintext probe is visible on the tunnel port');
    assert.equal(probeFlows.find(([key]) => portsOf(key)[0] === tunnel)?.[1].length ?? 0, 0, 'the tunnel answered the plaintext probe with nothing');

    // The tunnel carries TLS records only, and not one copy of the marker in any form we sent it.
    const meshBytes = meshFlows.reduce((sum, [, bytes]) => sum + bytes.length, 0);
    assert.ok(meshBytes > 1000, `the capture holds ${meshBytes} bytes of mesh tunnel traffic`);
    for (const [key, bytes] of meshFlows) {
      assert.ok(!bytes.includes(marker), `the marker is in the clear on the tunnel (${key})`);
      assert.ok(!bytes.includes(Buffer.from(marker).toString('base64').slice(0, 16)), `a base64 copy of the marker on the tunnel (${key})`);
      assert.ok(!bytes.includes('HTTP/1.1'), `plaintext HTTP on the tunnel (${key})`);
      assert.ok(bytes[0] === 0x16 || bytes[0] === 0x17, `flow ${key} does not start with a TLS record (0x${bytes[0]?.toString(16)})`);
    }
    assert.ok(meshFlows.some(([, bytes]) => bytes[0] === 0x16), 'a TLS handshake was captured on the tunnel');
  });
});
