// Replicas on one real etcd share one CA through the store: the key sealed with the operator's secret, a race to create it won by one, a wrong secret refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { sharedCaKey } from '../../src/control/ca/shared.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { startEtcd } from '../../src/testing/etcd.ts';
import { runWeft } from '../../src/testing/process.ts';
import { startTestControlPlane } from './control-helpers.ts';

const secret = Buffer.from('f3kq1S0m3-0perator-s3cret-for-the-ca');

test('replicas started at once on one etcd sign under one root, whose key is never in the store in the clear', async (t) => {
  const etcd = await startEtcd({});
  t.after(() => etcd.stop());
  const etcdOptions = { endpoints: [etcd.endpoint.replace(/^http:\/\//, '')], prefix: '/weft-shared-ca' };
  const started: RunningControlPlane[] = [];
  t.after(async () => {
    for (const cp of started) await cp.close();
  });
  // Both race to create the CA: one wins the create-only write, the other loads the winner's.
  const startReplica = async () => {
    const cp = await startTestControlPlane({ etcd: etcdOptions, caEncryptionKey: secret });
    started.push(cp);
    return cp;
  };
  const replicas = await Promise.all([startReplica(), startReplica()]);
  const [a, b] = replicas as [RunningControlPlane, RunningControlPlane];
  assert.equal(a.trustBundle.length, 1);
  assert.deepEqual(a.trustBundle, b.trustBundle, 'both replicas trust the same root');

  const stored = await a.store.get(sharedCaKey());
  assert.ok(stored, 'the CA is in the store');
  const text = JSON.stringify(stored);
  assert.doesNotMatch(text, /PRIVATE KEY/, 'no PEM private key in the clear');
  assert.match(text, /aes-256-gcm/);
  assert.equal(new X509Certificate((stored.spec as { certPem: string }).certPem).ca, true);

  // A later replica (a restart, a new host) loads the same root.
  const later = await startReplica();
  assert.deepEqual(later.trustBundle, a.trustBundle);

  // The wrong secret is an error that says so, never a second root that would split the mesh.
  await assert.rejects(
    startTestControlPlane({ etcd: etcdOptions, caEncryptionKey: Buffer.from('another-secret-of-enough-length') }),
    /does not open the shared CA/,
  );
});

test('weft control-plane refuses a short CA encryption key and one beside --ca-cert/--ca-key', async () => {
  const short = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0'], { env: { WEFT_CA_ENCRYPTION_KEY: 'short' } });
  assert.notEqual(short.code, 0);
  assert.match(short.stderr, /at least 16 bytes/);
  const both = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--ca-cert', '/nonexistent', '--ca-key', '/nonexistent'], {
    env: { WEFT_CA_ENCRYPTION_KEY: secret.toString() },
  });
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /cannot read the CA certificate|exclusive/);
});
