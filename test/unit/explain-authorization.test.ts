// Unit tests of `weft explain` with AuthorizationPolicies: "denied by policy ns/name" at the destination (by the caller's identity) and at a gateway, path normalisation in the trace, and RequestAuthentication rules with the request's unverified token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/api/errors.ts';
import type { Resource } from '../../src/api/meta.ts';
import { validateResource } from '../../src/api/validate.ts';
import { formatTrace } from '../../src/cli/explain.ts';
import { compile } from '../../src/compiler/compile.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import { explainFromConfig } from '../../src/control/explain.ts';

const FIELDS: Record<string, keyof CompilerInput> = {
  Service: 'services',
  Workload: 'workloads',
  AuthorizationPolicy: 'authorizationPolicies',
  RequestAuthentication: 'requestAuthentications',
  Gateway: 'gateways',
  GatewayClass: 'gatewayClasses',
  HTTPRoute: 'httpRoutes',
  Secret: 'secrets',
};

const NS = 'shop';

function load(objects: Record<string, unknown>[], meshConfig?: Record<string, unknown>): CompilerInput {
  const input: Record<string, unknown> = { services: [], workloads: [], httpRoutes: [], namespaces: [] };
  const base = [
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'client', namespace: NS }, spec: { serviceAccount: 'client' } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'intruder', namespace: NS }, spec: { serviceAccount: 'intruder' } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews', namespace: NS, labels: { app: 'reviews' } }, spec: { serviceAccount: 'reviews', ports: [{ port: 9080 }] } },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'Workload',
      metadata: { name: 'reviews-abc', namespace: NS, labels: { app: 'reviews', 'weft.dev/workload': 'reviews' } },
      spec: { serviceAccount: 'reviews', address: '10.0.0.1', tunnelPort: 15008, ports: [{ port: 9080 }] },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
  ];
  for (const raw of [...base, ...objects]) {
    const result = validateResource(raw);
    if (!result.ok) assert.fail(JSON.stringify(result.issues));
    const resource = result.resource as Resource;
    resource.metadata.generation = 1;
    ((input[FIELDS[resource.kind]!] ??= []) as unknown[]).push(resource);
  }
  if (meshConfig) {
    const result = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: meshConfig });
    assert.ok(result.ok);
    input.meshConfig = result.resource;
  }
  return input as unknown as CompilerInput;
}

const policy = (name: string, spec: unknown) => ({ apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: NS }, spec });

function explain(input: CompilerInput, from: string, url: string, method = 'GET') {
  const trace = explainFromConfig({ from, method, url }, { input: () => input, compile, proxies: () => [] });
  assert.match(formatTrace(trace), /Verdict: /);
  return trace;
}

test('the destination\'s ALLOW policy lets the named caller through and denies another, naming why', () => {
  const input = load([policy('callers', { selector: { matchLabels: { app: 'reviews' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }] })]);
  const ok = explain(input, 'shop/client', 'http://reviews:9080/x');
  assert.equal(ok.verdict.outcome, 'forwarded');
  assert.deepEqual(ok.authorization, [
    { at: 'workload shop/reviews', principal: 'spiffe://cluster.local/ns/shop/sa/client', allowed: true, policy: 'shop/callers', why: 'allowed by ALLOW policy shop/callers', audited: [] },
  ]);
  const no = explain(input, 'shop/intruder', 'http://reviews:9080/x');
  assert.equal(no.verdict.outcome, 'denied');
  assert.equal(no.verdict.status, 403);
  assert.equal(no.verdict.reason, ErrorCodes.RBAC_DENIED);
  assert.match(no.verdict.summary, /denied at workload shop\/reviews: no ALLOW policy matches \(shop\/callers\)/);
  assert.match(formatTrace(no), /✗ DENIED at workload shop\/reviews \(caller spiffe:\/\/cluster\.local\/ns\/shop\/sa\/intruder\)/);
});

test('"denied by policy ns/name" for a DENY policy, on the normalised path', () => {
  const input = load([policy('no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] })]);
  const trace = explain(input, 'shop/client', 'http://reviews:9080/public/%2e%2e/admin');
  assert.equal(trace.verdict.outcome, 'denied');
  assert.equal(trace.verdict.summary, 'denied by policy shop/no-admin at workload shop/reviews');
  assert.equal(trace.request.path, '/admin');
  assert.ok(trace.notes.some((n) => /normalised to \/admin/.test(n)));
  assert.equal(explain(input, 'shop/client', 'http://reviews:9080/public').verdict.outcome, 'forwarded');
});

test('a CUSTOM policy: the trace names the provider that decides first; an undefined provider denies', () => {
  const opa = { name: 'opa', envoyExtAuthzHttp: { service: 'opa.shop', port: 8181 } };
  const input = load(
    [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'opa', namespace: NS }, spec: { selector: { app: 'opa' }, ports: [{ port: 8181 }] } },
      policy('checked', { selector: { matchLabels: { app: 'reviews' } }, action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] }),
      policy('lost', { selector: { matchLabels: { app: 'reviews' } }, action: 'CUSTOM', provider: { name: 'nobody' }, rules: [{ to: [{ operation: { paths: ['/lost/*'] } }] }] }),
    ],
    { extensionProviders: [opa] },
  );
  const checked = explain(input, 'shop/client', 'http://reviews:9080/admin/x');
  assert.equal(checked.verdict.outcome, 'forwarded');
  assert.deepEqual(checked.authorization?.[0]?.externalChecks, [{ policy: 'shop/checked', provider: 'opa' }]);
  assert.match(checked.authorization?.[0]?.why ?? '', /^extension provider opa decides first \(CUSTOM policy shop\/checked; explain cannot ask it\); then: no policy applies/);
  const lost = explain(input, 'shop/client', 'http://reviews:9080/lost/x');
  assert.equal(lost.verdict.outcome, 'denied');
  assert.match(lost.authorization?.[0]?.why ?? '', /CUSTOM policy shop\/lost denies: its provider is not defined/);
  // Neither applies elsewhere.
  assert.equal(explain(input, 'shop/client', 'http://reviews:9080/public').authorization?.[0]?.externalChecks, undefined);
});

test('a path the proxy cannot normalise is a 400 in the trace', () => {
  const trace = explain(load([]), 'shop/client', 'http://reviews:9080/a%zz');
  assert.equal(trace.verdict.outcome, 'bad-request');
  assert.equal(trace.verdict.reason, ErrorCodes.INVALID_PATH);
});

test('the mesh default deny shows as a denial at the destination; no policy means no authorization section', () => {
  assert.equal(explain(load([]), 'shop/client', 'http://reviews:9080/').authorization?.[0]?.why, 'no AuthorizationPolicy applies');
  const trace = explain(load([], { authorization: { defaultAction: 'DENY' } }), 'shop/client', 'http://reviews:9080/');
  assert.equal(trace.verdict.outcome, 'denied');
  assert.match(trace.verdict.summary, /mesh default is DENY/);
});

const ISSUER = 'https://issuer.example';
const NOW = Date.parse('2026-01-01T00:00:00Z');
const jwtPolicy = { apiVersion: 'weft.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: NS }, spec: { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [{ issuer: ISSUER, audiences: ['reviews'], jwksUri: 'https://issuer.example/jwks' }] } };

/** A JWT-shaped token with these claims; its signature is junk, which explain never checks. */
function unsignedToken(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'k1' })}.${part(claims)}.not-a-signature`;
}

function explainWith(input: CompilerInput, url: string, headers: Record<string, string>) {
  const trace = explainFromConfig({ from: 'shop/client', method: 'GET', url, headers }, { input: () => input, compile, proxies: () => [], now: () => NOW });
  return { trace, text: formatTrace(trace) };
}

test('the destination\'s RequestAuthentication rules are listed: issuer, audiences, where the token is looked for', () => {
  const { trace, text } = explainWith(load([jwtPolicy]), 'http://reviews:9080/x', {});
  assert.equal(trace.verdict.outcome, 'forwarded');
  assert.deepEqual(trace.authentication, [
    {
      at: 'workload shop/reviews',
      rules: [{ id: 'shop/jwt/0', issuer: ISSUER, audiences: ['reviews'], from: ['header authorization (prefix "Bearer ")', 'query parameter access_token'], keys: 'https://issuer.example/jwks' }],
      tokens: [],
    },
  ]);
  assert.match(text, /issuer https:\/\/issuer\.example \(shop\/jwt\/0\): token from header authorization \(prefix "Bearer "\), query parameter access_token; audiences reviews/);
  assert.match(text, /carries no token there: it passes with no request principal/);
});

test('a Bearer token is shown unverified (iss, sub, aud, exp), its issuer accepted, and requestPrincipals evaluated with it, marked unverified', () => {
  const onlyAlice = policy('alice-only', { selector: { matchLabels: { app: 'reviews' } }, rules: [{ from: [{ source: { requestPrincipals: [`${ISSUER}/alice`] } }] }] });
  const input = load([jwtPolicy, onlyAlice]);
  const exp = NOW / 1000 + 3600;
  const alice = explainWith(input, 'http://reviews:9080/x', { Authorization: `Bearer ${unsignedToken({ iss: ISSUER, sub: 'alice', aud: 'reviews', exp })}` });
  assert.equal(alice.trace.verdict.outcome, 'forwarded');
  const token = alice.trace.authentication?.[0]?.tokens[0];
  assert.equal(token?.verified, false);
  assert.equal(token?.foundIn, 'header authorization (prefix "Bearer ")');
  assert.deepEqual([token?.iss, token?.sub, token?.aud, token?.expiresAt, token?.expired], [ISSUER, 'alice', ['reviews'], '2026-01-01T01:00:00.000Z', false]);
  assert.equal(token?.issuerAccepted, true);
  assert.deepEqual(token?.acceptedBy, ['shop/jwt/0']);
  assert.equal(alice.trace.authorization?.[0]?.allowed, true);
  assert.equal(alice.trace.authorization?.[0]?.unverifiedRequestPrincipal, `${ISSUER}/alice`);
  assert.ok(alice.trace.notes.some((n) => /does not verify JWT signatures/.test(n)));
  assert.ok(alice.trace.risks.some((r) => r.status === 401 && r.reason === ErrorCodes.JWT_INVALID));
  assert.match(alice.text, /Authentication \(RequestAuthentication; tokens NOT verified by explain\)/);
  assert.match(alice.text, /token in header authorization \(prefix "Bearer "\), unverified: iss https:\/\/issuer\.example, sub alice, aud reviews, exp 2026-01-01T01:00:00\.000Z/);
  assert.match(alice.text, /✓ allowed at workload shop\/reviews \(caller spiffe:\/\/cluster\.local\/ns\/shop\/sa\/client, request principal https:\/\/issuer\.example\/alice UNVERIFIED\)/);

  // The same token for bob, in the default query parameter: found there, and the ALLOW policy does not match him.
  const bob = explainWith(input, `http://reviews:9080/x?access_token=${unsignedToken({ iss: ISSUER, sub: 'bob', aud: ['reviews'], exp })}`, {});
  assert.equal(bob.trace.authentication?.[0]?.tokens[0]?.foundIn, 'query parameter access_token');
  assert.equal(bob.trace.verdict.outcome, 'denied');
  assert.equal(bob.trace.verdict.status, 403);
  assert.equal(bob.trace.authorization?.[0]?.unverifiedRequestPrincipal, `${ISSUER}/bob`);

  // No token: no request principal, so the ALLOW policy on requestPrincipals denies.
  assert.equal(explainWith(input, 'http://reviews:9080/x', {}).trace.verdict.status, 403);
});

test('a token the destination refuses whatever its signature is a 401: unknown issuer, expired, wrong audience, not a JWT', () => {
  const input = load([jwtPolicy]);
  const exp = NOW / 1000 + 3600;
  const cases: [string, RegExp][] = [
    [unsignedToken({ iss: 'https://evil.example', sub: 'alice', aud: 'reviews', exp }), /issuer \("https:\/\/evil\.example"\) is not configured/],
    [unsignedToken({ iss: ISSUER, sub: 'alice', aud: 'reviews', exp: NOW / 1000 - 3600 }), /the token expired/],
    [unsignedToken({ iss: ISSUER, sub: 'alice', aud: 'ratings', exp }), /not for an allowed audience \(reviews\)/],
    ['opaque-session-id', /not a JWT/],
  ];
  for (const [token, why] of cases) {
    const { trace, text } = explainWith(input, 'http://reviews:9080/x', { authorization: `Bearer ${token}` });
    assert.equal(trace.verdict.outcome, 'denied', String(why));
    assert.equal(trace.verdict.status, 401);
    assert.equal(trace.verdict.reason, ErrorCodes.JWT_INVALID);
    assert.match(trace.verdict.summary, /^refused at workload shop\/reviews: /);
    assert.match(trace.verdict.summary, why);
    assert.match(text, /→ 401/);
  }
  assert.equal(explainWith(input, 'http://reviews:9080/x', { authorization: `Bearer ${unsignedToken({ iss: 'https://evil.example' })}` }).trace.authentication?.[0]?.tokens[0]?.issuerAccepted, false);
});

test('without a RequestAuthentication at the destination a token is not read, and the trace says so', () => {
  const { trace } = explainWith(load([]), 'http://reviews:9080/x', { authorization: `Bearer ${unsignedToken({ iss: ISSUER, sub: 'alice' })}` });
  assert.equal(trace.authentication, undefined);
  assert.equal(trace.authorization?.[0]?.unverifiedRequestPrincipal, undefined);
  assert.ok(trace.notes.some((n) => /No RequestAuthentication applies/.test(n)));
});

test('at a gateway: its RequestAuthentication reads the token first and removes it; an issuer it does not accept is a 401 there', () => {
  const input = load([
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'weft' }, spec: { controllerName: 'weft.dev/gateway-controller' } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'web', port: 80, protocol: 'HTTP' }] } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'site', namespace: NS }, spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] } },
    { ...jwtPolicy, metadata: { name: 'edge-jwt', namespace: NS }, spec: { targetRefs: [{ kind: 'Gateway', name: 'edge' }], jwtRules: [{ issuer: 'https://edge-issuer.example', jwksUri: 'https://edge-issuer.example/jwks', fromHeaders: [{ name: 'x-token' }] }] } },
    { ...jwtPolicy, spec: { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [{ issuer: 'https://edge-issuer.example', jwksUri: 'https://edge-issuer.example/jwks', fromHeaders: [{ name: 'x-token' }] }] } },
  ]);
  const at = (headers: Record<string, string>) => explainFromConfig({ gateway: `${NS}/edge`, method: 'GET', url: 'http://shop.example.com/', headers }, { input: () => input, compile, proxies: () => [], now: () => NOW });
  const good = at({ 'x-token': unsignedToken({ iss: 'https://edge-issuer.example', sub: 'carol' }) });
  assert.equal(good.verdict.outcome, 'forwarded');
  assert.deepEqual(good.authentication?.map((a) => [a.at, a.rules.map((r) => r.from.join()), a.tokens.map((t) => `${t.iss}/${t.sub} accepted ${t.issuerAccepted}`)]), [
    [`gateway ${NS}/edge`, ['header x-token'], ['https://edge-issuer.example/carol accepted true']],
    // The gateway removed the token it verified (forwardOriginalToken false): the destination sees none.
    [`workload ${NS}/reviews`, ['header x-token'], []],
  ]);
  assert.equal(good.authorization?.[0]?.unverifiedRequestPrincipal, 'https://edge-issuer.example/carol');
  const bad = at({ 'x-token': unsignedToken({ iss: ISSUER, sub: 'carol' }) });
  assert.equal(bad.verdict.status, 401);
  assert.match(bad.verdict.summary, /^refused at gateway shop\/edge: the token's issuer \("https:\/\/issuer\.example"\) is not configured/);
});

test('API keys are checked for real (the snapshot holds their digests): a known key names its client for requestPrincipals, an unknown one is a 401, and the gateway removes the key it checked', () => {
  const input = load([
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'weft' }, spec: { controllerName: 'weft.dev/gateway-controller' } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'web', port: 80, protocol: 'HTTP' }] } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'site', namespace: NS }, spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'partners', namespace: NS }, stringData: { acme: 'acme-secret-key-1' } },
    { apiVersion: 'weft.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'edge-keys', namespace: NS }, spec: { targetRefs: [{ kind: 'Gateway', name: 'edge' }], apiKeys: { credentialRefs: [{ name: 'partners' }] } } },
    policy('partners-only', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], rules: [{ from: [{ source: { requestPrincipals: ['api-key/acme'] } }] }] }),
  ]);
  const at = (headers: Record<string, string>) => explainFromConfig({ gateway: `${NS}/edge`, method: 'GET', url: 'http://shop.example.com/', headers }, { input: () => input, compile, proxies: () => [], now: () => NOW });
  const good = at({ 'X-API-Key': 'acme-secret-key-1' });
  assert.equal(good.verdict.outcome, 'forwarded');
  assert.deepEqual(good.authentication?.[0]?.apiKeys, [{ foundIn: 'header x-api-key', client: 'acme', acceptedBy: `${NS}/edge-keys` }]);
  assert.deepEqual(good.authentication?.[0]?.apiKeyRules, [{ id: `${NS}/edge-keys`, from: ['header x-api-key'], clients: 1 }]);
  assert.deepEqual([good.authorization?.[0]?.allowed, good.authorization?.[0]?.requestPrincipal, good.authorization?.[0]?.unverifiedRequestPrincipal], [true, 'api-key/acme', undefined]);
  const text = formatTrace(good);
  assert.match(text, /API key in header x-api-key: client acme \(shop\/edge-keys\)/);
  assert.match(text, /request principal api-key\/acme[):,]/);
  const bad = at({ 'x-api-key': 'guessed' });
  assert.equal(bad.verdict.status, 401);
  assert.equal(bad.verdict.reason, ErrorCodes.API_KEY_INVALID);
  assert.match(bad.verdict.summary, /^refused at gateway shop\/edge: the API key in header x-api-key is not one this service accepts/);
  const none = at({});
  assert.equal(none.verdict.status, 403, 'no key: no principal, and the policy wants one');
});

test('policies on addresses are evaluated with --source-ip: the caller\'s at a sidecar\'s destinations, the client\'s at a gateway; unknown, a note says where', () => {
  const gatewayObjects = [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'weft' }, spec: { controllerName: 'weft.dev/gateway-controller' } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'web', port: 80, protocol: 'HTTP' }] } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'site', namespace: NS }, spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] } },
  ];
  const input = load([
    ...gatewayObjects,
    // At the workload: only callers from 10.0.0.0/8. At the gateway: not from 203.0.113.0/24.
    policy('reviews-from-pods', { selector: { matchLabels: { app: 'reviews' } }, action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] }),
    policy('edge-block', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'edge' }], action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['203.0.113.0/24'] } }] }] }),
  ]);
  const from = (sourceIp?: string) =>
    explainFromConfig({ from: `${NS}/client`, method: 'GET', url: 'http://reviews.shop:9080/', ...(sourceIp ? { sourceIp } : {}) }, { input: () => input, compile, proxies: () => [] });
  assert.equal(from('10.1.2.3').verdict.outcome, 'forwarded');
  assert.equal(from('10.1.2.3').notes.some((n) => /ipBlocks/.test(n)), false, 'the address was known: no note');
  assert.match(formatTrace(from('10.1.2.3')), /from workload shop\/client \(caller 10\.1\.2\.3\)/);
  assert.equal(from('192.168.0.9').verdict.status, 403);
  const unknown = from();
  assert.equal(unknown.verdict.status, 403, 'an unknown address matches no ipBlocks');
  assert.ok(unknown.notes.some((n) => n.includes(`at workload ${NS}/reviews matches on addresses`) && n.includes('--source-ip')), unknown.notes.join('\n'));

  const atGateway = (sourceIp: string) =>
    explainFromConfig({ gateway: `${NS}/edge`, method: 'GET', url: 'http://shop.example.com/', sourceIp }, { input: () => input, compile, proxies: () => [] });
  const blocked = atGateway('203.0.113.7');
  assert.equal(blocked.verdict.status, 403);
  assert.match(blocked.verdict.summary, /denied by policy shop\/edge-block at gateway shop\/edge/);
  // Past the gateway, the workload sees the gateway's address, which explain does not know: its ipBlocks ALLOW cannot match.
  const passed = atGateway('198.51.100.1');
  assert.equal(passed.authorization?.find((a) => a.at === `gateway ${NS}/edge`)?.allowed, true);
  assert.equal(passed.authorization?.find((a) => a.at === `workload ${NS}/reviews`)?.allowed, false);
  assert.ok(passed.notes.some((n) => n.startsWith(`Behind the gateway, workload ${NS}/reviews sees the gateway's address`)), passed.notes.join('\n'));
});
