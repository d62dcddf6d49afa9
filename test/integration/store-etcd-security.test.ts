// The control plane on a real etcd that demands TLS client certificates, and on one with auth (users) enabled: the right credentials work, the wrong ones fail with a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../src/testing/etcd.ts';
import { runProcess, runWeft, startWeft } from '../../src/testing/process.ts';
import { startTestControlPlane } from './control-helpers.ts';

const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: secured}\nspec: {ports: [{port: 80}]}\n';

async function openssl(dir: string, args: string[]): Promise<void> {
  const result = await runProcess('openssl', args, { cwd: dir });
  assert.equal(result.code, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl in `dir`. */
async function makeCertificates(dir: string): Promise<void> {
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=etcd test CA']);
  for (const who of ['server', 'client']) {
    await openssl(dir, ['req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'client' ? 'weft' : '127.0.0.1'}`]);
    await openssl(dir, ['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', `${who}.ext`]);
  }
}

test('TLS with client certificates: weft control-plane --store etcds:// --etcd-ca --etcd-cert --etcd-key works; without a client certificate it is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await makeCertificates(dir);
  const file = (name: string) => join(dir, name);
  const etcd = await startEtcd({
    tls: { certFile: file('server.pem'), keyFile: file('server.key'), caFile: file('ca.pem'), clientCertFile: file('client.pem'), clientKeyFile: file('client.key') },
  });
  t.after(() => etcd.stop());
  assert.match(etcd.endpoint, /^https:/);
  const store = `etcds://127.0.0.1:${etcd.clientPort}`;

  const cp = await startWeft([
    'control-plane', '--store', store, '--etcd-prefix', '/weft-tls', '--etcd-ca', file('ca.pem'), '--etcd-cert', file('client.pem'), '--etcd-key', file('client.key'),
    '--api-port', '0', '--stream-port', '0',
  ]);
  t.after(() => cp.stop());
  const applied = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: String(cp.ready.api) }, input: service });
  assert.equal(applied.code, 0, applied.stderr);
  const listed = await runWeft(['get', 'services'], { env: { WEFT_SERVER: String(cp.ready.api) } });
  assert.match(listed.stdout, /secured/);

  // The CA alone (no client certificate): etcd refuses the handshake and the control plane says it cannot reach etcd.
  await assert.rejects(
    startTestControlPlane({ etcd: { endpoints: [`https://127.0.0.1:${etcd.clientPort}`], prefix: '/weft-tls', tls: { ca: readFileSync(file('ca.pem')) } } }),
    /etcd/,
  );
  // Flags that cannot work are refused before anything starts.
  const noCa = await runWeft(['control-plane', '--store', store, '--api-port', '0', '--stream-port', '0']);
  assert.notEqual(noCa.code, 0);
  assert.match(noCa.stderr, /etcds:\/\/ needs --etcd-ca/);
  const half = await runWeft(['control-plane', '--store', store, '--etcd-ca', file('ca.pem'), '--etcd-cert', file('client.pem'), '--api-port', '0', '--stream-port', '0']);
  assert.match(half.stderr, /--etcd-cert and --etcd-key go together/);
});

test('etcd auth: the right user and password work, a wrong password is refused with a clear error', async (t) => {
  const etcd = await startEtcd({});
  t.after(() => etcd.stop());
  const admin = new Etcd3({ hosts: etcd.endpoint });
  try {
    await admin.user('root').create('root-password');
    await admin.role('root').create().catch(() => {}); // built in on some etcd versions
    await admin.user('root').addRole('root');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
  const store = `etcd://127.0.0.1:${etcd.clientPort}`;
  const cp = await startWeft(['control-plane', '--store', store, '--etcd-prefix', '/weft-auth', '--etcd-user', 'root', '--api-port', '0', '--stream-port', '0'], {
    env: { WEFT_ETCD_PASSWORD: 'root-password' },
  });
  t.after(() => cp.stop());
  const applied = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: String(cp.ready.api) }, input: service });
  assert.equal(applied.code, 0, applied.stderr);

  await assert.rejects(
    startTestControlPlane({ etcd: { endpoints: [etcd.endpoint], prefix: '/weft-auth', auth: { username: 'root', password: 'wrong' } } }),
    /etcd/,
  );
  const noAuth = await runWeft(['control-plane', '--store', store, '--etcd-prefix', '/weft-auth', '--api-port', '0', '--stream-port', '0']);
  assert.notEqual(noAuth.code, 0, 'without credentials the control plane does not start');
  const noPassword = await runWeft(['control-plane', '--store', store, '--etcd-user', 'root', '--api-port', '0', '--stream-port', '0'], { env: { WEFT_ETCD_PASSWORD: '' } });
  assert.match(noPassword.stderr, /--etcd-user needs a password/);
});
