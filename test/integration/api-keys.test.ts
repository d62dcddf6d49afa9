// RequestAuthentication apiKeys with real weft processes: keys checked at a gateway (header) and at a sidecar's inbound side (query), clients as principals for AuthorizationPolicy, keys removed, Secrets rotated, a missing Secret in the status.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/api/errors.ts';
import { runWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { get, NS, startJwtMesh, type Answer, type JwtMesh } from './jwt-helpers.ts';

const ACME = 'acme-2b7e151628aed2a6abf71588';
const GLOBEX = 'globex-09cf4f3c762e7160f38b4da5';
const ROBOT = 'robot-3243f6a8885a308d313198a2';

const secret = (name: string, stringData: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, stringData });

let mesh: JwtMesh;

before(async () => {
  mesh = await startJwtMesh([
    secret('partners', { acme: ACME, globex: GLOBEX }),
    secret('robots', { robot: ROBOT }),
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'partner-keys', namespace: NS },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
        apiKeys: { credentialRefs: [{ name: 'partners' }], clientIdHeader: 'X-Client-Id' },
      },
    },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'robot-keys', namespace: NS },
      spec: { targetRefs: [{ kind: 'Service', name: 'secure' }], apiKeys: { credentialRefs: [{ name: 'robots' }], fromParams: ['api_key'] } },
    },
    // At the gateway: /partner/* only with a key; anything else for anyone.
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'partners-only', namespace: NS },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
        action: 'ALLOW',
        rules: [
          { from: [{ source: { requestPrincipals: ['api-key/*'] } }], to: [{ operation: { paths: ['/partner/*'] } }] },
          { to: [{ operation: { notPaths: ['/partner/*'] } }] },
        ],
      },
    },
    // At the sidecar: the robot only, on /robot/*.
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'robot-only', namespace: NS },
      spec: {
        targetRefs: [{ kind: 'Service', name: 'secure' }],
        action: 'DENY',
        rules: [{ from: [{ source: { notRequestPrincipals: ['api-key/robot'] } }], to: [{ operation: { paths: ['/robot/*'] } }] }],
      },
    },
  ]);
});

after(async () => {
  await mesh?.close();
});

const edge = (headers: Record<string, string> = {}, path = '/hello') => get(mesh.port, 'edge.example', path, headers);
const inMesh = (path: string, headers: Record<string, string> = {}) => get(mesh.port, 'mesh.example', path, headers);

function assert401(answer: Answer, message: RegExp): void {
  assert.equal(answer.status, 401, answer.body);
  assert.equal(answer.headers['weft-reason'], ErrorCodes.API_KEY_INVALID);
  assert.match(String(answer.headers['www-authenticate']), /^ApiKey realm="http:\/\/(edge|mesh)\.example\/[^"?]*"$/);
  assert.match(answer.body, message);
}

test('gateway: a known key passes as its client, named to the app in X-Client-Id, the key itself removed', async () => {
  for (const [key, client] of [[ACME, 'acme'], [GLOBEX, 'globex']] as const) {
    const ok = await edge({ 'x-api-key': key, 'x-client-id': 'someone-else' }, '/partner/orders');
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.seen!['x-client-id'], client, 'the checked client, not what the request claimed');
    assert.equal(ok.seen!['x-api-key'], undefined, 'the app never sees the key');
  }
});

test('gateway: an unknown key is 401, whatever the path; no key passes where no policy asks for one, and is 403 where one does', async () => {
  assert401(await edge({ 'x-api-key': 'not-a-key-anyone-was-given' }), /the API key in header x-api-key is not one this service accepts/);
  assert401(await edge({ 'x-api-key': `${ACME} ` + 'x' }), /not one this service accepts/);
  const anonymous = await edge({ 'x-client-id': 'acme' });
  assert.equal(anonymous.status, 200, anonymous.body);
  assert.equal(anonymous.seen!['x-client-id'], undefined, 'a client cannot name itself without a key');
  const refused = await edge({}, '/partner/orders');
  assert.equal(refused.status, 403);
  assert.equal(refused.headers['weft-reason'], ErrorCodes.RBAC_DENIED);
});

test('sidecar inbound: the Service\'s keys come in the query, are removed from it, and name the principal its policy reads', async () => {
  const robot = await inMesh(`/robot/run?api_key=${ROBOT}&job=7`);
  assert.equal(robot.status, 200, robot.body);
  assert.equal(robot.path, '/robot/run?job=7');
  // A partner key passes the gateway (which removes it) and reaches the sidecar as no key: the robot's path refuses it.
  const partner = await inMesh('/robot/run', { 'x-api-key': ACME });
  assert.equal(partner.status, 403, partner.body);
  assert.equal((await inMesh('/hello')).status, 200, 'no key: anonymous');
  assert401(await inMesh(`/robot/run?api_key=${GLOBEX}`), /the API key in query parameter api_key is not one this service accepts/);
});

test('a Secret changed: the new key is taken and the old one refused; a policy naming a missing Secret says so in its status', async () => {
  const rotated = 'acme-rotated-7f3a9c2e5b1d4068a9e1';
  await mesh.apply([secret('partners', { acme: rotated, globex: GLOBEX })]);
  await waitFor(async () => (await edge({ 'x-api-key': rotated })).status === 200, { timeoutMs: 10_000, message: 'the rotated key to be accepted' });
  assert401(await edge({ 'x-api-key': ACME }), /not one this service accepts/);

  await mesh.apply([
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'dangling', namespace: NS },
      spec: { targetRefs: [{ kind: 'Service', name: 'secure' }], apiKeys: { credentialRefs: [{ name: 'robots' }, { name: 'nowhere' }] } },
    },
  ]);
  const status = await waitFor(async () => {
    const res = await fetch(`${mesh.api}/apis/weft.dev/v1alpha1/namespaces/${NS}/requestauthentications/dangling`);
    const body = (await res.json()) as { status?: { ancestors?: { conditions: { type: string; status: string; reason: string; message: string }[] }[] } };
    return body.status?.ancestors?.[0]?.conditions.find((c) => c.type === 'Accepted');
  }, { timeoutMs: 10_000, message: 'the status of the policy with a missing Secret' });
  assert.deepEqual([status.status, status.reason], ['False', 'Invalid']);
  assert.match(status.message, /spec\.apiKeys\.credentialRefs\[1\]: Secret jwt\/nowhere does not exist/);
});

test('weft apikey: a key made for a new client works at the gateway as that client; list names clients, never keys; revoke takes it away', async () => {
  const weft = (args: string[]) => runWeft(['apikey', ...args, '--secret', 'partners', '-n', NS], { env: { WEFT_SERVER: mesh.api } });
  const created = await weft(['create', 'initech']);
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^wk_[A-Za-z0-9_-]{32}$/);
  const ok = await waitFor(async () => {
    const answer = await edge({ 'x-api-key': key });
    return answer.status === 200 ? answer : undefined;
  }, { timeoutMs: 10_000, message: 'the new key to be accepted' });
  assert.equal(ok.seen!['x-client-id'], 'initech');

  const listed = await weft(['list']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(listed.stdout.trim().split('\n'), ['acme', 'globex', 'initech']);
  assert.doesNotMatch(listed.stdout, new RegExp(key));

  const again = await weft(['create', 'initech']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /client initech already has a key in Secret jwt\/partners: revoke it first, or give the new key another client id \(initech-2\)/);

  const revoked = await weft(['revoke', 'initech']);
  assert.equal(revoked.code, 0, revoked.stderr);
  await waitFor(async () => (await edge({ 'x-api-key': key })).status === 401, { timeoutMs: 10_000, message: 'the revoked key to be refused' });
  const gone = await runWeft(['apikey', 'list', '--secret', 'nowhere', '-n', NS], { env: { WEFT_SERVER: mesh.api } });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /there is no Secret jwt\/nowhere/);
});
