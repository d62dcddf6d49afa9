// `weft ca rotate` under continuous traffic: two sidecars on the mTLS tunnel, two root rotations with a short overlap, zero failed requests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { RunningControlPlane } from '../../src/control/main.ts';
import type { CaState } from '../../src/control/ca/rotating.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { MemoryStore } from '../../src/control/store/memory.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { viaProxy, type TestProxy } from './proxy-helpers.ts';
import { startSidecarPair, type SidecarPair } from './mtls-helpers.ts';

const OVERLAP_MS = 7000;

/** The certificate a proxy presents on its tunnel port (TLS 1.3 shows it before the server has judged ours). */
function presentedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['weft-tunnel/1'], minVersion: 'TLSv1.3' }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      if (raw) resolve(new X509Certificate(raw));
      else reject(new Error('no certificate presented'));
    });
    socket.setTimeout(3000, () => socket.destroy(new Error('timed out')));
    socket.on('error', reject);
  });
}

function savedBundle(dataDir: string): string[] {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'snapshot.json'), 'utf8')) as { mesh: { trustBundle?: string[] } }).mesh.trustBundle ?? [];
  } catch {
    return [];
  }
}

async function issuedBy(port: number, rootPem: string): Promise<boolean> {
  const leaf = await presentedCertificate(port);
  return leaf.verify(new X509Certificate(rootPem).publicKey);
}

describe('root rotation with an overlap window', () => {
  let cp: RunningControlPlane;
  let server: TestProxy;
  let client: TestProxy;
  let pair: SidecarPair | undefined;

  before(async () => {
    pair = await startSidecarPair({ controlPlane: { leaseTtlMs: 3000, localTokens: true } });
    ({ cp, server, client } = pair);
  });

  after(() => pair?.close());

  it('rotates twice under continuous traffic: zero failures, both proxies end on the newest root, old roots leave the bundle', { timeout: 40_000 }, async () => {
    const roots = [cp.trustBundle[0]!];
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        sent++;
        try {
          const res = await viaProxy(client.proxy.ports.outbound, `http://reviews:9080/r${sent}`);
          if (res.status !== 200) failures.push(`request ${sent}: ${res.status} ${res.headers['weft-reason'] ?? ''} ${res.body.slice(0, 120)}`);
        } catch (error) {
          failures.push(`request ${sent}: ${(error as Error).message}`);
        }
      }
    })();

    try {
      for (let round = 1; round <= 2; round++) {
        const rotated = await api(cp.apiUrl, 'POST', '/weft/v1/ca/rotate', { overlapMs: OVERLAP_MS });
        assert.equal(rotated.status, 200, rotated.text);
        const state = rotated.body as CaState;
        const newest = cp.ca.current.certPem;
        roots.push(newest);
        assert.equal(state.signingCa, new X509Certificate(newest).fingerprint256);
        assert.ok(cp.trustBundle.includes(roots[round - 1]!), 'the previous root is still trusted during the overlap');
        assert.ok(state.certificates.some((c) => c.role === 'retiring' && c.trustedUntil !== undefined));
        // Both proxies renew under the new root soon (1-5 s with jitter), not at half life (12 h).
        await waitFor(async () => (await issuedBy(server.proxy.ports.tunnel, newest)) && (await issuedBy(client.proxy.ports.tunnel, newest)), {
          timeoutMs: 10_000,
          message: `both proxies presenting certificates of root ${round + 1}`,
        });
        const before = sent;
        await waitFor(() => sent >= before + 20, { timeoutMs: 5000, message: 'traffic after the renewal' });
      }
      // Each old root leaves the bundle when its own overlap ends: the first one first.
      await waitFor(() => !cp.trustBundle.includes(roots[0]!), { timeoutMs: OVERLAP_MS + 2000, message: 'the first root leaving the bundle' });
      assert.ok(cp.trustBundle.includes(roots[1]!), "the second root's overlap runs on");
      await waitFor(() => cp.trustBundle.length === 1, { timeoutMs: OVERLAP_MS + 2000, message: 'the bundle down to the newest root' });
      assert.deepEqual(cp.trustBundle, [roots[2]]);
      // The proxies' snapshots (as they saved them) carry only the newest root too.
      for (const proxy of [server, client]) {
        await waitFor(() => savedBundle(proxy.dataDir).length === 1, { timeoutMs: 3000, message: `${proxy.proxy.id}'s snapshot down to one root` });
        assert.deepEqual(savedBundle(proxy.dataDir), [roots[2]]);
      }
      const status = await api(cp.apiUrl, 'GET', '/weft/v1/ca');
      assert.deepEqual(
        (status.body as CaState).certificates.map((c) => c.role),
        ['signing'],
      );
      const before = sent;
      await waitFor(() => sent >= before + 20, { timeoutMs: 5000, message: 'traffic after the old roots left' });
    } finally {
      stop = true;
      await traffic;
    }
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 100, `only ${sent} requests were sent`);
  });

  it('refuses a rotation from a control plane not in local mode', async () => {
    const other = await startTestControlPlane();
    try {
      const refused = await api(other.apiUrl, 'POST', '/weft/v1/ca/rotate', {});
      assert.equal(refused.status, 403);
      assert.match(refused.text, /only for holders of an API token \(run it with --api-token-file\) or, with --insecure-local-tokens, for anyone on its own host/);
    } finally {
      await other.close();
    }
  });
});

describe('root rotation with replicas sharing the CA through the store', () => {
  it("another replica adopts the rotation from the store record, with no restart, and serves it in its status", { timeout: 30_000 }, async (t) => {
    const store = new MemoryStore({ clock: systemClock, logger: silentLogger() });
    t.after(() => store.close());
    const secret = Buffer.from('replica-shared-secret-0123456789abcdef');
    const a = await startTestControlPlane({ store, caEncryptionKey: secret, localTokens: true, replicaName: 'a' });
    t.after(() => a.close());
    const b = await startTestControlPlane({ store, caEncryptionKey: secret, replicaName: 'b' });
    t.after(() => b.close());
    assert.deepEqual(b.trustBundle, a.trustBundle);

    const rotated = await api(a.apiUrl, 'POST', '/weft/v1/ca/rotate', { overlapMs: 60_000 });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(a.trustBundle.length, 2);
    await waitFor(() => b.ca.signingFingerprint === a.ca.signingFingerprint, { timeoutMs: 8000, message: 'replica b taking the rotation' });
    assert.deepEqual(b.trustBundle, a.trustBundle);
    const state = (await api(b.apiUrl, 'GET', '/weft/v1/ca')).body as CaState;
    assert.deepEqual(state.certificates.map((c) => c.role), ['signing', 'retiring']);
    assert.equal(state.source, 'store');
  });
});
