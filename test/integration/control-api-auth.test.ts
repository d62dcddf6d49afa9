// The REST API with --api-token-file (and --api-tls-cert), on a real `weft control-plane`: bearer tokens and the dashboard's session cookie, what stays open, the CLI's $WEFT_API_TOKEN, bootstrap tokens for token holders, HTTPS.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { runProcess, runWeft, startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

const TOKEN = 'operator-token-0123456789abcdef';
const SECOND = 'ci-robot-token-fedcba9876543210';
const READER = 'dashboard-reader-0011223344556677';
/** A team's robot: everything in namespaces shop and cart, nothing else. */
const SHOP = 'shop-team-robot-00aa11bb22cc33dd';
/** A team's wall screen: reads shop only. */
const SHOP_READER = 'shop-team-screen-44ee55ff66007788';

let dir: string;
let tokensFile: string;
let controlPlane: RunningProcess;
let api: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-api-auth-'));
  tokensFile = join(dir, 'api-tokens');
  writeFileSync(tokensFile, `# operators\n${TOKEN}\n\n${SECOND}\n# wall screens\n${READER}   read-only\n${SHOP} namespaces=shop,cart\n${SHOP_READER} read-only namespaces=shop\n`, { mode: 0o600 });
  controlPlane = await startWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', tokensFile], { env: { WEFT_LOG_LEVEL: 'warn' } });
  api = String(controlPlane.ready.api);
});

after(async () => {
  await controlPlane?.stop({ timeoutMs: 5000 });
  rmSync(dir, { recursive: true, force: true });
});

/** A streamed answer's text, read until `done` says it holds enough (then the stream is cancelled); bounded by `timeoutMs`. */
async function readUntil(response: Response, done: (text: string) => boolean, timeoutMs = 5000): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  let text = '';
  try {
    while (!done(text)) {
      const { value, done: ended } = await reader.read();
      if (ended) throw new Error(`the stream ended before it held what was awaited: ${text.slice(0, 300)}`);
      text += decoder.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(api + path, { headers, signal: AbortSignal.timeout(5000) });

test('every API path asks for a token; either token in the file opens it; health and the dashboard\'s files stay open', async () => {
  const refused = await get('/weft/v1/kinds');
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="weft"');
  const status = (await refused.json()) as { weftCode: string; message: string };
  assert.equal(status.weftCode, 'WEFT_ERR_UNAUTHORIZED');
  assert.match(status.message, /asks for an API token.*WEFT_API_TOKEN/);
  for (const path of ['/apis/gateway.networking.k8s.io/v1/httproutes', '/api/v1/services', '/weft/v1/proxies', '/weft/v1/events', '/api/v1/topology']) {
    assert.equal((await get(path)).status, 401, path);
  }
  const wrong = await get('/weft/v1/kinds', { authorization: 'Bearer not-the-operator-token-at-all' });
  assert.equal(wrong.status, 401);
  assert.match(((await wrong.json()) as { message: string }).message, /not one this control plane accepts/);
  assert.equal((await get('/weft/v1/kinds', { authorization: 'Basic b3BlcmF0b3I6eA==' })).status, 401, 'only bearer tokens');
  for (const token of [TOKEN, SECOND]) assert.equal((await get('/weft/v1/kinds', { authorization: `Bearer ${token}` })).status, 200);
  assert.equal((await get('/healthz')).status, 200);
  const index = await get('/');
  assert.equal(index.status, 200, 'the dashboard page itself holds no data');
  await index.arrayBuffer();
});

test('the dashboard\'s session: a token traded for an HttpOnly SameSite=Strict cookie, which opens the API; signing out clears it', async () => {
  const session = async (headers: Record<string, string> = {}) => (await get('/weft/v1/session', headers)).json();
  assert.deepEqual(await session(), { tokenRequired: true, signedIn: false });
  const post = (token: string) =>
    fetch(`${api}/weft/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }), signal: AbortSignal.timeout(5000) });
  const bad = await post('guessing-a-token-here-0000');
  assert.equal(bad.status, 401);
  assert.equal(bad.headers.get('set-cookie'), null);
  const good = await post(TOKEN);
  assert.equal(good.status, 200);
  const cookie = good.headers.get('set-cookie') ?? '';
  assert.match(cookie, /^weft-api-token=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
  const pair = cookie.split(';')[0]!;
  assert.deepEqual(await session({ cookie: pair }), { tokenRequired: true, signedIn: true });
  assert.equal((await get('/weft/v1/proxies', { cookie: `theme=dark; ${pair}` })).status, 200);
  const garbled = await get('/weft/v1/proxies', { cookie: 'weft-api-token=%E0%A4%A' });
  assert.equal(garbled.status, 401, 'a cookie that is not percent-encoding is no token, not a server error');
  await garbled.arrayBuffer();
  const out = await fetch(`${api}/weft/v1/session`, { method: 'DELETE', signal: AbortSignal.timeout(5000) });
  assert.match(out.headers.get('set-cookie') ?? '', /^weft-api-token=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
  await out.arrayBuffer();
});

test('the CLI sends $WEFT_API_TOKEN, and says what is missing without it; a token holder may create bootstrap tokens', async () => {
  const without = await runWeft(['get', 'services'], { env: { WEFT_SERVER: api, WEFT_API_TOKEN: undefined } });
  assert.equal(without.code, 1);
  assert.match(without.stderr, /Unauthorized.*WEFT_API_TOKEN/);
  const listed = await runWeft(['get', 'services'], { env: { WEFT_SERVER: api, WEFT_API_TOKEN: TOKEN } });
  assert.equal(listed.code, 0, listed.stderr);
  // Without --insecure-local-tokens, only holders of an API token get bootstrap tokens.
  const created = await runWeft(['token', 'create', '--namespace', 'default', '--workload', 'web'], { env: { WEFT_SERVER: api, WEFT_API_TOKEN: SECOND } });
  assert.equal(created.code, 0, created.stderr);
  assert.ok(created.stdout.trim().length > 20, 'a bootstrap token was printed');
});

test('a read-only token reads everything (GETs, an explain, an apply\'s dry run) and changes nothing', async () => {
  const as = (token: string, method: string, path: string, body?: string, type = 'application/json') =>
    fetch(api + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': type } : {}) }, ...(body ? { body } : {}), signal: AbortSignal.timeout(5000) });
  assert.equal((await as(READER, 'GET', '/weft/v1/proxies')).status, 200);
  assert.equal((await as(READER, 'GET', '/api/v1/services')).status, 200);
  const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  ports: [{port: 80}]\n';
  const dryRun = await as(READER, 'POST', '/weft/v1/apply?dryRun=All', service, 'application/yaml');
  assert.equal(dryRun.status, 200, await dryRun.text());
  const explained = await as(READER, 'POST', '/weft/v1/explain', JSON.stringify({ from: 'default/nobody', method: 'GET', url: 'http://web/' }));
  assert.notEqual(explained.status, 403, 'an explain only reads');
  await explained.arrayBuffer();
  for (const [method, path, body] of [
    ['POST', '/weft/v1/apply', service],
    ['POST', '/weft/v1/apply?dryRun=Some', service],
    ['DELETE', '/api/v1/namespaces/default/services/web', undefined],
    ['POST', '/weft/v1/tokens', JSON.stringify({ namespace: 'default', workload: 'web' })],
    ['POST', '/weft/v1/ca/rotate', '{}'],
  ] as const) {
    const refused = await as(READER, method, path, body, path.includes('apply') ? 'application/yaml' : 'application/json');
    assert.equal(refused.status, 403, `${method} ${path}`);
    assert.match(((await refused.json()) as { message: string }).message, /a read-only API token may not/);
  }
  const written = await as(TOKEN, 'POST', '/weft/v1/apply', service, 'application/yaml');
  assert.equal(written.status, 200, 'a full token writes');
  await written.arrayBuffer();
});

test('a token for some namespaces sees and changes only theirs: objects, applies, lists, watches, proxies, tokens, traffic, tap; nothing cluster-wide', async () => {
  const as = (token: string, method: string, path: string, body?: string, type = 'application/json') =>
    fetch(api + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': type } : {}) }, ...(body ? { body } : {}), signal: AbortSignal.timeout(5000) });
  const service = (namespace: string, name: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n  ports: [{name: http, port: 80}]\n`;
  // The operator puts one Service in each of three namespaces.
  const seeded = await as(TOKEN, 'POST', '/weft/v1/apply', [service('shop', 'front'), service('cart', 'basket'), service('bank', 'vault')].join('---\n'), 'application/yaml');
  assert.equal(seeded.status, 200, await seeded.clone().text());
  await seeded.arrayBuffer();
  const messageOf = async (response: Response) => ((await response.json()) as { message: string }).message;

  // Applies: in its namespaces, yes; one object elsewhere refuses the whole apply and names it.
  const mine = await as(SHOP, 'POST', '/weft/v1/apply', service('shop', 'front-v2'), 'application/yaml');
  assert.equal(mine.status, 200, await mine.clone().text());
  await mine.arrayBuffer();
  const mixed = await as(SHOP, 'POST', '/weft/v1/apply', [service('cart', 'basket-v2'), service('bank', 'heist')].join('---\n'), 'application/yaml');
  assert.equal(mixed.status, 403);
  const refusal = (await mixed.json()) as { message: string; details: { causes: { object: string; item: number }[] } };
  assert.match(refusal.message, /an API token for namespaces shop, cart may not apply Service bank\/heist: namespace bank is not one of them; nothing was applied/);
  assert.deepEqual(refusal.details.causes.map((c) => [c.object, c.item]), [['Service bank/heist', 1]]);
  assert.equal((await as(TOKEN, 'GET', '/api/v1/namespaces/cart/services/basket-v2')).status, 404, 'nothing of the refused apply was written');
  // A cluster-scoped object: read, never written.
  const mesh = 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\nspec: {}\n';
  const clusterWide = await as(SHOP, 'POST', '/weft/v1/apply', mesh, 'application/yaml');
  assert.equal(clusterWide.status, 403);
  assert.match(await messageOf(clusterWide), /may not apply MeshConfig default: it is cluster-wide/);
  const meshConfigs = await as(SHOP, 'GET', '/apis/weft.dev/v1alpha1/meshconfigs');
  assert.equal(meshConfigs.status, 200);
  await meshConfigs.arrayBuffer();

  // Reads: one object elsewhere is refused; a list across namespaces shows only its own.
  const elsewhere = await as(SHOP, 'GET', '/api/v1/namespaces/bank/services/vault');
  assert.equal(elsewhere.status, 403);
  assert.match(await messageOf(elsewhere), /may not read services in namespace bank/);
  const listed = (await (await as(SHOP, 'GET', '/api/v1/services')).json()) as { items: { metadata: { namespace: string; name: string } }[] };
  assert.deepEqual(listed.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`).sort(), ['cart/basket', 'shop/front', 'shop/front-v2']);
  const deleteElsewhere = await as(SHOP, 'DELETE', '/api/v1/namespaces/bank/services/vault');
  assert.equal(deleteElsewhere.status, 403);
  await deleteElsewhere.arrayBuffer();
  const postElsewhere = await as(SHOP, 'POST', '/api/v1/services', JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'sneaky', namespace: 'bank' }, spec: { ports: [{ port: 80 }] } }));
  assert.equal(postElsewhere.status, 403, 'a POST to the collection of every namespace is judged by the namespace in its body');
  await postElsewhere.arrayBuffer();

  // A watch across namespaces and the events stream: only its own namespaces' objects.
  const watched = await readUntil(await as(SHOP_READER, 'GET', '/api/v1/services?watch=true'), (text) => text.includes('front-v2\"'));
  const seen = watched.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { object: { metadata: { namespace: string } } }).object.metadata.namespace);
  assert.deepEqual([...new Set(seen)], ['shop']);
  const events = await readUntil(await as(SHOP_READER, 'GET', '/weft/v1/events'), (text) => /event: sync\ndata: .*\n\n/.test(text));
  const sync = JSON.parse(/event: sync\ndata: (.*)\n/.exec(events)![1]!) as { items: { kind: string; metadata: { namespace?: string } }[] };
  assert.deepEqual([...new Set(sync.items.filter((i) => i.kind === 'Service').map((i) => i.metadata.namespace))], ['shop']);

  // Bootstrap tokens, tap, traffic, explain and the CA: its namespaces only, and nothing cluster-wide.
  const tokenHere = await as(SHOP, 'POST', '/weft/v1/tokens', JSON.stringify({ namespace: 'cart', workload: 'basket' }));
  assert.equal(tokenHere.status, 201);
  await tokenHere.arrayBuffer();
  for (const [method, path, body, pattern] of [
    ['POST', '/weft/v1/tokens', JSON.stringify({ namespace: 'bank', workload: 'vault' }), /may not create bootstrap tokens in namespace bank/],
    ['GET', '/api/v1/tap?target=svc/vault&namespace=bank', undefined, /may not tap: namespace bank/],
    ['GET', '/api/v1/services/bank/vault?window=1m', undefined, /may not read the traffic of Service bank\/vault/],
    ['POST', '/weft/v1/explain', JSON.stringify({ from: 'bank/vault', method: 'GET', url: 'http://front.shop/' }), /may not explain requests from namespace bank/],
    ['POST', '/weft/v1/ca/rotate', '{}', /may not rotate the CA: it is cluster-wide/],
    ['GET', '/weft/v1/proxies/bank/vault-0/config', undefined, /may not read proxy bank\/vault-0/],
  ] as const) {
    const refused = await as(SHOP, method, path, body);
    assert.equal(refused.status, 403, `${method} ${path}`);
    assert.match(await messageOf(refused), pattern);
  }
  // Status: its namespaces' proxies, and nothing that spans the others.
  const status = (await (await as(SHOP, 'GET', '/weft/v1/status')).json()) as Record<string, unknown>;
  assert.deepEqual([status.objects, status.snapshots, status.compileErrors], [undefined, undefined, undefined]);
  assert.deepEqual(status.proxies, []);
  assert.ok(((await (await as(TOKEN, 'GET', '/weft/v1/status')).json()) as Record<string, unknown>).objects, 'the operator sees the counts');
  // Its read-only sibling is still read-only inside its namespace.
  const readOnly = await as(SHOP_READER, 'POST', '/weft/v1/apply', service('shop', 'front-v3'), 'application/yaml');
  assert.equal(readOnly.status, 403);
  assert.match(await messageOf(readOnly), /a read-only API token may not/);
});

test('an edited token file takes effect without a restart; a broken edit is logged and the tokens in force stay', async (t) => {
  const file = join(dir, 'rotating-tokens');
  const [first, second] = ['rotation-first-0123456789', 'rotation-second-9876543210'];
  writeFileSync(file, `${first}\n`);
  const rotating = await startWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', file], { env: { WEFT_LOG_LEVEL: 'warn' } });
  t.after(() => rotating.stop({ timeoutMs: 5000 }));
  const statusWith = async (token: string) => {
    const response = await fetch(`${String(rotating.ready.api)}/weft/v1/kinds`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    return response.status;
  };
  assert.equal(await statusWith(first), 200);
  assert.equal(await statusWith(second), 401);
  // Rotation: the second token in, the first out.
  writeFileSync(file, `${second}\n`);
  await waitFor(async () => (await statusWith(second)) === 200, { timeoutMs: 15_000, message: 'the new token to be taken' });
  assert.equal(await statusWith(first), 401, 'the removed token is refused');
  // A broken edit changes nothing.
  writeFileSync(file, 'short\n');
  await waitFor(() => rotating.stderr().includes('API token file not reloaded'), { timeoutMs: 15_000, message: 'the broken file to be logged' });
  assert.match(rotating.stderr(), /line 1: a token must be at least 16 characters long/);
  assert.equal(await statusWith(second), 200, 'the tokens in force stay');
});

test('a token file that cannot be used stops the control plane with the file and line', async () => {
  const short = join(dir, 'short-tokens');
  writeFileSync(short, `${TOKEN}\ntoo-short\n`);
  const refused = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', short], { timeoutMs: 20_000 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`--api-token-file ${short} line 2: a token must be at least 16 characters long`));
  const scoped = join(dir, 'scoped-tokens');
  writeFileSync(scoped, `${TOKEN} admin\n`);
  const unknownScope = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', scoped], { timeoutMs: 20_000 });
  assert.equal(unknownScope.code, 1);
  assert.match(unknownScope.stderr, /line 1: after the token only "read-only" and "namespaces=a,b" may follow \(each once\), not "admin"/);
  writeFileSync(scoped, `${TOKEN} namespaces=shop,Bad_Name\n`);
  const badNamespace = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', scoped], { timeoutMs: 20_000 });
  assert.equal(badNamespace.code, 1);
  assert.match(badNamespace.stderr, /line 1: namespaces= takes namespace names separated by commas, and "Bad_Name" is none/);
  const empty = join(dir, 'empty-tokens');
  writeFileSync(empty, '# nobody yet\n');
  const none = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', empty], { timeoutMs: 20_000 });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no token in it/);
});

/** A self-signed P-256 certificate for 127.0.0.1 (Debian's openssl, as an operator would make one), and its key. */
async function certificateFor127(name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const made = await runProcess('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { timeoutMs: 20_000 });
  assert.equal(made.code, 0, made.stderr);
  return { cert, key };
}

/** A POST over HTTPS trusting `ca`: the status and Set-Cookie. */
function postOverTls(url: string, ca: string, body: string): Promise<{ status: number; cookie: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca: readFileSync(ca), headers: { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0] }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end(body);
  });
}

test('with --api-tls-cert and --api-tls-key the API serves HTTPS: the CLI trusts it through NODE_EXTRA_CA_CERTS and says why when not; the cookie is Secure', async (t) => {
  const { cert, key } = await certificateFor127('weft-api');
  const secure = await startWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', tokensFile, '--api-tls-cert', cert, '--api-tls-key', key], {
    env: { WEFT_LOG_LEVEL: 'warn' },
  });
  t.after(() => secure.stop({ timeoutMs: 5000 }));
  const url = String(secure.ready.api);
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const untrusted = await runWeft(['get', 'services'], { env: { WEFT_SERVER: url, WEFT_API_TOKEN: TOKEN, NODE_EXTRA_CA_CERTS: undefined } });
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /TLS certificate is not trusted here .*NODE_EXTRA_CA_CERTS/);
  const trusted = await runWeft(['get', 'services'], { env: { WEFT_SERVER: url, WEFT_API_TOKEN: TOKEN, NODE_EXTRA_CA_CERTS: cert } });
  assert.equal(trusted.code, 0, trusted.stderr);
  const signedIn = await postOverTls(`${url}/weft/v1/session`, cert, JSON.stringify({ token: TOKEN }));
  assert.equal(signedIn.status, 200);
  assert.match(signedIn.cookie ?? '', /; HttpOnly; SameSite=Strict; Secure$/);

  // A key that is not the certificate's: refused at start, naming both files.
  const other = await certificateFor127('other');
  const mismatched = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-tls-cert', cert, '--api-tls-key', other.key], { timeoutMs: 20_000 });
  assert.equal(mismatched.code, 1);
  assert.match(mismatched.stderr, new RegExp(`--api-tls-cert ${cert} with --api-tls-key ${other.key}: .*key values mismatch`));
  const alone = await runWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-tls-cert', cert], { timeoutMs: 20_000 });
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /--api-tls-cert and --api-tls-key go together/);
});
