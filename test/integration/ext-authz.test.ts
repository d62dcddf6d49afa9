// CUSTOM AuthorizationPolicies with real weft processes and a real external authorization service: checks at a gateway and at a sidecar's inbound side, what passes each way, a provider that cannot be asked (closed and open), one that is not defined, and the API's refusal.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCodes } from '../../src/api/errors.ts';
import { apiCall } from './gateway-helpers.ts';
import { get, NS, startJwtMesh, type JwtMesh } from './jwt-helpers.ts';

/** The checks the authorization service was asked: path, headers and body. */
const checks: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
let authz: Server;
let mesh: JwtMesh;

/** alice may pass (and is named to the app); no user is sent to log in; anyone else is refused with a reason. */
function startAuthz(): Promise<number> {
  authz = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => answerCheck(req.url ?? '', req.headers, body, res));
  });
  return new Promise((resolve) => authz.listen(0, '127.0.0.1', () => resolve((authz.address() as AddressInfo).port)));
}

function answerCheck(path: string, headers: IncomingHttpHeaders, body: string, res: ServerResponse): void {
  {
    checks.push({ path, headers, body });
    const req = { url: path, headers };
    const user = req.headers['x-user'];
    if (body.includes('forbidden')) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('the body asks for something forbidden');
    } else if (user === 'alice' || path.startsWith('/orders/')) {
      res.writeHead(200, { 'x-authz-user': 'alice', 'x-not-passed': 'allowed', 'x-authz-decision': 'ok' });
      res.end();
    } else if (user === undefined) {
      res.writeHead(302, { location: `/login?next=${encodeURIComponent(req.url ?? '')}`, 'x-not-passed': 'denied' });
      res.end();
    } else {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(`no entry for ${String(user)}`);
    }
  }
}

const custom = (name: string, provider: string, paths: string[], target: { group?: string; kind: string; name: string }) => ({
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: NS },
  spec: { targetRefs: [target], action: 'CUSTOM', provider: { name: provider }, rules: [{ to: [{ operation: { paths } }] }] },
});
const GATEWAY = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' };

before(async () => {
  const port = await startAuthz();
  const provider = (name: string, service: string, extra: Record<string, unknown> = {}) => ({
    name,
    envoyExtAuthzHttp: {
      service: `${service}.${NS}`,
      port: 9000,
      timeout: '2s',
      pathPrefix: '/check',
      includeRequestHeadersInCheck: ['x-user'],
      headersToUpstreamOnAllow: ['x-authz-user'],
      headersToDownstreamOnAllow: ['x-authz-decision'],
      headersToDownstreamOnDeny: ['location', 'content-type'],
      includeAdditionalHeadersInCheck: { 'x-check-source': 'weft' },
      ...extra,
    },
  });
  mesh = await startJwtMesh([
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'default' },
      spec: {
        extensionProviders: [
          provider('checker', 'authz'),
          provider('body-checker', 'authz', { pathPrefix: undefined, includeRequestBodyInCheck: { maxRequestBytes: 64 } }),
          provider('gone', 'gone', { statusOnError: 503 }),
          provider('gone-open', 'gone', { failOpen: true }),
        ],
      },
    },
    // The service outside the mesh; "gone" is an address nothing listens on (127.0.0.2).
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'authz', namespace: NS }, spec: { selector: { app: 'authz' }, ports: [{ port: 9000, targetPort: port }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'authz-0', namespace: NS, labels: { app: 'authz' } }, spec: { address: '127.0.0.1', ports: [{ port }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'gone', namespace: NS }, spec: { selector: { app: 'gone' }, ports: [{ port: 9000, targetPort: port }] } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'gone-0', namespace: NS, labels: { app: 'gone' } }, spec: { address: '127.0.0.2', ports: [{ port }] } },
    custom('admin-check', 'checker', ['/admin/*'], GATEWAY),
    custom('beta-check', 'gone', ['/beta/*'], GATEWAY),
    custom('orders-check', 'body-checker', ['/orders/*'], GATEWAY),
    custom('gamma-check', 'gone-open', ['/gamma/*'], GATEWAY),
    custom('lost-check', 'nobody', ['/lost/*'], GATEWAY),
    custom('secure-check', 'checker', ['/private/*'], { kind: 'Service', name: 'secure' }),
    // A portal publishing the edge route: its callers should know that some requests are decided outside.
    { apiVersion: 'weft.dev/v1alpha1', kind: 'ApiPortal', metadata: { name: 'developers', namespace: NS }, spec: { title: 'APIs', apis: [{ name: 'edge', routes: [{ name: 'edge' }] }] } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'portal', namespace: NS },
      spec: { parentRefs: [{ name: 'gw' }], hostnames: ['portal.example'], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'weft.dev', kind: 'ApiPortal', name: 'developers' } }] }] },
    },
  ]);
});

after(async () => {
  await mesh?.close();
  await new Promise<void>((resolve) => (authz ? authz.close(() => resolve()) : resolve()));
});

const edge = (path: string, headers: Record<string, string> = {}) => get(mesh.port, 'edge.example', path, headers);

/** A POST with a JSON body to edge.example: the answer, and the content-length the echo app received. */
function send(path: string, body: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; appLength?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mesh.port, path, method: 'POST', agent: false, timeout: 5000, headers: { host: 'edge.example', 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const echo = String(res.headers['content-type']) === 'application/json' ? (JSON.parse(text) as { headers: Record<string, string[]> }) : undefined;
        const length = echo && Object.entries(echo.headers).find(([name]) => name.toLowerCase() === 'content-length')?.[1][0];
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, ...(length !== undefined ? { appLength: length } : {}) });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end(body);
  });
}

test('gateway: an allowed request goes on with the headers the service added; the check carried the method, the prefixed path and the chosen headers', async () => {
  checks.length = 0;
  const answer = await edge('/admin/users?page=2', { 'x-user': 'alice', authorization: 'Bearer abc', 'x-other': 'kept-from-the-check' });
  assert.equal(answer.status, 200, answer.body);
  assert.equal(answer.seen!['x-authz-user'], 'alice');
  assert.equal(answer.seen!['x-not-passed'], undefined, 'only the headers the provider names reach the app');
  assert.equal(answer.headers['x-authz-decision'], 'ok', 'and the caller gets the ones named for it');
  assert.equal(answer.headers['x-not-passed'], undefined);
  assert.equal(checks.length, 1);
  const check = checks[0]!;
  assert.equal(check.path, '/check/admin/users?page=2');
  assert.equal(check.headers.host, `authz.${NS}`);
  assert.equal(check.headers.authorization, 'Bearer abc');
  assert.equal(check.headers['x-user'], 'alice');
  assert.equal(check.headers['x-check-source'], 'weft');
  assert.equal(check.headers['x-other'], undefined);
  assert.equal(check.body, '');
});

test('a provider that reads bodies gets the body with the check, and the app still gets it once allowed; a longer one is refused', async () => {
  checks.length = 0;
  const allowed = await send('/orders/new', '{"item":"tea"}');
  assert.equal(allowed.status, 200, allowed.body);
  assert.equal(checks[0]?.body, '{"item":"tea"}');
  assert.equal(checks[0]?.headers['content-type'], 'application/json');
  assert.equal(allowed.appLength, String('{"item":"tea"}'.length), 'the body went on to the app');
  const refused = await send('/orders/new', '{"item":"forbidden"}');
  assert.equal(refused.status, 403);
  assert.equal(refused.body, 'the body asks for something forbidden');
  const long = await send('/orders/new', JSON.stringify({ item: 'x'.repeat(100) }));
  assert.equal(long.status, 413, long.body);
  assert.equal(long.headers['weft-reason'], ErrorCodes.EXT_AUTHZ_DENIED);
});

test("gateway: a denial is the service's answer (status, body, the headers it may pass), and the app is not called", async () => {
  const login = await edge('/admin/users');
  assert.equal(login.status, 302, login.body);
  assert.equal(login.headers.location, `/login?next=${encodeURIComponent('/check/admin/users')}`);
  assert.equal(login.headers['x-not-passed'], undefined);
  assert.equal(login.headers['weft-reason'], ErrorCodes.EXT_AUTHZ_DENIED);
  assert.equal(login.seen, undefined);
  const refused = await edge('/admin/users', { 'x-user': 'bob' });
  assert.equal(refused.status, 403);
  assert.equal(refused.body, 'no entry for bob');
  assert.equal(refused.headers['content-type'], 'text/plain');
});

test('a request no CUSTOM rule matches is not checked', async () => {
  checks.length = 0;
  const answer = await edge('/hello', { 'x-user': 'bob' });
  assert.equal(answer.status, 200, answer.body);
  assert.equal(checks.length, 0);
});

test('a provider that cannot be asked answers statusOnError, or lets the request pass when it fails open', async () => {
  const closed = await edge('/beta/feature');
  assert.equal(closed.status, 503, closed.body);
  assert.equal(closed.headers['weft-reason'], ErrorCodes.EXT_AUTHZ_DENIED);
  assert.match(closed.body, /extension provider gone could not be asked/);
  const open = await edge('/gamma/feature');
  assert.equal(open.status, 200, open.body);
});

test('a CUSTOM policy whose provider is not defined denies what it matches, and its status says why', async () => {
  const denied = await edge('/lost/thing', { 'x-user': 'alice' });
  assert.equal(denied.status, 403, denied.body);
  assert.equal(denied.headers['weft-reason'], ErrorCodes.EXT_AUTHZ_DENIED);
  const policy = await apiCall(mesh.api, 'GET', `/apis/weft.dev/v1alpha1/namespaces/${NS}/authorizationpolicies/lost-check`);
  const conditions = (policy.json as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } }).status?.conditions ?? [];
  const accepted = conditions.find((c) => c.type === 'Accepted');
  assert.equal(accepted?.status, 'False', JSON.stringify(policy.json));
  assert.equal(accepted?.reason, 'InvalidProvider');
  assert.match(accepted?.message ?? '', /MeshConfig has no extensionProvider named "nobody"/);
});

test("sidecar inbound: the workload's CUSTOM policy is checked by its own proxy, over the mesh", async () => {
  checks.length = 0;
  const allowed = await get(mesh.port, 'mesh.example', '/private/report', { 'x-user': 'alice' });
  assert.equal(allowed.status, 200, allowed.body);
  assert.equal(allowed.seen!['x-authz-user'], 'alice');
  assert.equal(checks.length, 1, 'one check, by the sidecar (the gateway has no policy for /private)');
  const refused = await get(mesh.port, 'mesh.example', '/private/report', { 'x-user': 'mallory' });
  assert.equal(refused.status, 403);
  assert.equal(refused.body, 'no entry for mallory');
  assert.equal(refused.headers['weft-reason'], ErrorCodes.EXT_AUTHZ_DENIED);
});

test("the developer portal names the external authorization among an API's authentication", async () => {
  const catalog = await get(mesh.port, 'portal.example', '/apis.json');
  assert.equal(catalog.status, 200, catalog.body);
  const api = (JSON.parse(catalog.body) as { apis: { name: string; authentication: string[] }[] }).apis.find((a) => a.name === 'edge')!;
  assert.ok(api.authentication.includes(`requests matching ${NS}/admin-check are checked by the external authorization service checker`), api.authentication.join('; '));
});

test('the API refuses a CUSTOM policy without a provider, and a provider on another action, naming the field', async () => {
  const bad = (spec: Record<string, unknown>) => apiCall(mesh.api, 'POST', '/weft/v1/apply', { items: [{ apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'bad', namespace: NS }, spec }] });
  const noProvider = await bad({ action: 'CUSTOM', rules: [{}] });
  assert.equal(noProvider.status, 422);
  assert.match(JSON.stringify(noProvider.json), /spec\.provider.*a CUSTOM policy names its extensionProvider/);
  const stray = await bad({ action: 'DENY', provider: { name: 'checker' }, rules: [{}] });
  assert.equal(stray.status, 422);
  assert.match(JSON.stringify(stray.json), /spec\.provider.*only a CUSTOM policy has a provider/);
});
