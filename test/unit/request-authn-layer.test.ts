// Unit tests of the RequestAuthentication layer with jose-made keys: what verifies, what is refused with 401, where tokens are found, what the app is sent, and the JWKS cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createHash, createHmac } from 'node:crypto';
import { ErrorCodes, isWeftError, type WeftError } from '../../src/api/errors.ts';
import type { SnapshotApiKeyRule, SnapshotJwtRule } from '../../src/api/snapshot.ts';
import { grpcStatusOf, statusOf } from '../../src/proxy/errors.ts';
import { HttpExchange } from '../../src/proxy/exchange.ts';
import { JwksCache, requestAuthentication } from '../../src/proxy/layers/request-authn/index.ts';
import { systemClock } from '../../src/telemetry/clock.ts';

const ISSUER = 'https://issuer.example';
const now = () => Math.floor(Date.now() / 1000);

async function keyPair(alg: string, kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, publicKey, privateKey, jwk };
}

const rsa = await keyPair('RS256', 'rsa-1');
const ec = await keyPair('ES256', 'ec-1');
const ed = await keyPair('EdDSA', 'ed-1');
const rsaRotated = await keyPair('RS256', 'rsa-2');
const stranger = await keyPair('RS256', 'rsa-1'); // same kid, another key: its signatures must not verify

type Key = Awaited<ReturnType<typeof keyPair>>;

function sign(key: Key, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', aud: 'reviews', ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .setIssuer(typeof claims.iss === 'string' ? claims.iss : ISSUER)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? now() + 300)
    .sign(key.privateKey);
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

function rule(fields: Partial<SnapshotJwtRule> = {}): SnapshotJwtRule {
  return {
    id: 'mesh/ra/0',
    issuer: ISSUER,
    audiences: [],
    jwks: JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] }),
    fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }],
    fromParams: ['access_token'],
    fromCookies: [],
    outputClaimToHeaders: [],
    forwardOriginalToken: false,
    algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
    clockSkewMs: 60_000,
    jwksCacheMs: 600_000,
    jwksTimeoutMs: 1000,
    ...fields,
  };
}

interface Outcome {
  ex: HttpExchange;
  passed: boolean;
  error: WeftError | undefined;
  responseHeaders: Record<string, string>;
}

const caches: JwksCache[] = [];
after(() => caches.forEach((c) => c.close()));

function newCache(cooldownMs = 30_000): JwksCache {
  const cache = new JwksCache({ clock: systemClock, unknownKidCooldownMs: cooldownMs });
  caches.push(cache);
  return cache;
}
const sharedCache = newCache();

async function send(rules: SnapshotJwtRule[], options: { path?: string; headers?: Record<string, string>; cache?: JwksCache; apiKeys?: SnapshotApiKeyRule[] } = {}): Promise<Outcome> {
  const headers = { host: 'reviews.mesh', ...(options.headers ?? {}) };
  const responseHeaders: Record<string, string> = {};
  const req = { method: 'GET', headers, httpVersionMajor: 1 } as unknown as IncomingMessage;
  const res = { headersSent: false, setHeader: (name: string, value: string) => void (responseHeaders[name] = value) } as unknown as ServerResponse;
  const ex = new HttpExchange('inbound', req, res, options.path ?? '/reviews/1', { ...headers }, 0);
  let passed = false;
  const step = requestAuthentication({ jwks: options.cache ?? sharedCache, clock: systemClock })({ requestAuthentication: rules, apiKeys: options.apiKeys }, async () => {
    passed = true;
  });
  let error: WeftError | undefined;
  try {
    await step(ex);
  } catch (thrown) {
    assert.ok(isWeftError(thrown), `a typed error, not ${String(thrown)}`);
    error = thrown;
  }
  return { ex, passed, error, responseHeaders };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function assertRefused(outcome: Outcome, messagePattern: RegExp, code: string = ErrorCodes.JWT_INVALID): void {
  assert.equal(outcome.passed, false, 'the request must not reach the app');
  assert.equal(outcome.error?.code, code);
  assert.match(outcome.error!.message, messagePattern);
  assert.equal(statusOf(outcome.error!), 401);
  assert.equal(grpcStatusOf(outcome.error!), 16, 'gRPC callers get UNAUTHENTICATED');
  assert.equal(outcome.responseHeaders['www-authenticate'], 'Bearer realm="http://reviews.mesh/reviews/1", error="invalid_token"');
}

test('RS256, ES256 and EdDSA tokens verify: principal iss/sub, claims and audiences on the exchange, token removed', async () => {
  for (const key of [rsa, ec, ed]) {
    const outcome = await send([rule()], { headers: bearer(await sign(key, { aud: ['reviews', 'ratings'], groups: ['dev'] })) });
    assert.equal(outcome.error, undefined, `${key.alg}: ${outcome.error?.message}`);
    assert.equal(outcome.passed, true);
    assert.equal(outcome.ex.requestPrincipal, `${ISSUER}/alice`);
    assert.deepEqual(outcome.ex.jwtAudiences, ['reviews', 'ratings']);
    assert.deepEqual(outcome.ex.jwtClaims?.groups, ['dev']);
    assert.equal(outcome.ex.headers.authorization, undefined, 'the app never sees the token');
  }
});

test('no token: the request passes without a principal; another scheme is not a token', async () => {
  for (const headers of [{}, { authorization: 'Basic YWxpY2U6c2VjcmV0' }] as Record<string, string>[]) {
    const outcome = await send([rule()], { headers });
    assert.equal(outcome.passed, true);
    assert.equal(outcome.ex.requestPrincipal, undefined);
    assert.equal(outcome.ex.jwtClaims, undefined);
  }
});

test('refused with 401: wrong issuer, wrong audience, expired, not yet valid, bad signature, malformed', async () => {
  assertRefused(await send([rule()], { headers: bearer(await sign(rsa, { iss: 'https://evil.example' })) }), /issuer \("https:\/\/evil\.example"\) is not configured/);
  assertRefused(await send([rule({ audiences: ['ratings'] })], { headers: bearer(await sign(rsa)) }), /not for an allowed audience/);
  assert.equal((await send([rule({ audiences: ['ratings', 'reviews'] })], { headers: bearer(await sign(rsa)) })).passed, true);
  assertRefused(await send([rule()], { headers: bearer(await sign(rsa, { exp: now() - 120 })) }), /expired/);
  assertRefused(await send([rule()], { headers: bearer(await sign(rsa, { nbf: now() + 120 })) }), /not valid yet/);
  assertRefused(await send([rule({ clockSkewMs: 0 })], { headers: bearer(await sign(rsa, { exp: now() - 5 })) }), /expired/);
  const [h, , s] = (await sign(rsa)).split('.');
  assertRefused(await send([rule()], { headers: bearer(`${h}.${b64url({ iss: ISSUER, sub: 'admin', exp: now() + 60 })}.${s}`) }), /signature does not verify/);
  assertRefused(await send([rule()], { headers: bearer(await sign(stranger)) }), /signature does not verify/);
  assertRefused(await send([rule()], { headers: bearer('not-a-jwt') }), /not a JWT/);
});

test('within the clock skew leeway: just expired and almost valid tokens pass', async () => {
  assert.equal((await send([rule()], { headers: bearer(await sign(rsa, { exp: now() - 30 })) })).passed, true);
  assert.equal((await send([rule()], { headers: bearer(await sign(ec, { nbf: now() + 30 })) })).passed, true);
});

test('alg none, a disallowed algorithm and key confusion (HS256 keyed with the RSA public key) are refused', async () => {
  const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: ISSUER, sub: 'admin', exp: now() + 60 })}.`;
  assertRefused(await send([rule()], { headers: bearer(unsigned) }), /algorithm is not allowed|invalid/);
  assertRefused(await send([rule({ algorithms: ['RS256'] })], { headers: bearer(await sign(ec)) }), /algorithm is not allowed/);
  // The classic attack: the public key (known to everyone) used as an HMAC secret.
  const pem = await exportSPKI(rsa.publicKey);
  const header = b64url({ alg: 'HS256', typ: 'JWT', kid: rsa.kid });
  const payload = b64url({ iss: ISSUER, sub: 'admin', exp: now() + 60 });
  for (const secret of [pem, Buffer.from(JSON.stringify(rsa.jwk))]) {
    const forged = `${header}.${payload}.${createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')}`;
    assertRefused(await send([rule()], { headers: bearer(forged) }), /algorithm is not allowed/);
    assertRefused(await send([rule({ algorithms: ['HS256'] })], { headers: bearer(forged) }), /no key of the issuer/);
  }
});

test('HS256 with an inline oct key verifies when the rule lists it', async () => {
  const secret = Buffer.from('a shared secret of thirty-two bytes!!');
  const token = await new SignJWT({ sub: 'batch' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setExpirationTime('5m').sign(secret);
  const outcome = await send([rule({ algorithms: ['HS256'], jwks: JSON.stringify({ keys: [{ kty: 'oct', k: secret.toString('base64url') }] }) })], { headers: bearer(token) });
  assert.equal(outcome.ex.requestPrincipal, `${ISSUER}/batch`);
});

test('tokens from a header without prefix, a query parameter and a cookie; each removed from where it was, the rest kept', async () => {
  const token = await sign(rsa);
  const r = rule({ fromHeaders: [{ name: 'x-token', prefix: '' }], fromParams: ['jwt'], fromCookies: ['session'] });
  const inHeader = await send([r], { headers: { 'x-token': token } });
  assert.equal(inHeader.ex.requestPrincipal, `${ISSUER}/alice`);
  assert.equal(inHeader.ex.headers['x-token'], undefined);
  const inParam = await send([r], { path: `/reviews/1?a=1&jwt=${token}&b=2` });
  assert.equal(inParam.ex.requestPrincipal, `${ISSUER}/alice`);
  assert.equal(inParam.ex.path, '/reviews/1?a=1&b=2');
  const inCookie = await send([r], { headers: { cookie: `theme=dark; session=${token}; lang=en` } });
  assert.equal(inCookie.ex.requestPrincipal, `${ISSUER}/alice`);
  assert.equal(inCookie.ex.headers.cookie, 'theme=dark; lang=en');
  // Only the places the rule names are read: a Bearer header is nothing to this rule.
  assert.equal((await send([r], { headers: bearer(token) })).ex.requestPrincipal, undefined);
  // A bad token in any place refuses the request, even next to a good one.
  assert.equal((await send([r], { path: '/reviews/1?jwt=garbage', headers: { 'x-token': token } })).error?.code, ErrorCodes.JWT_INVALID);
  // forwardOriginalToken keeps it.
  assert.equal((await send([rule({ forwardOriginalToken: true })], { headers: bearer(token) })).ex.headers.authorization, `Bearer ${token}`);
});

test('claims and payload to headers; a client cannot send those headers itself', async () => {
  const r = rule({
    outputPayloadToHeader: 'x-jwt-payload',
    outputClaimToHeaders: [
      { header: 'x-sub', claim: 'sub' },
      { header: 'x-groups', claim: 'groups' },
      { header: 'x-tenant', claim: 'org.tenant' },
      { header: 'x-level', claim: 'level' },
      { header: 'x-evil', claim: 'evil' },
      { header: 'x-missing', claim: 'missing' },
    ],
  });
  const token = await sign(rsa, { groups: ['dev', 'ops'], org: { tenant: 'acme' }, level: 3, evil: 'a\r\nx-injected: 1' });
  const outcome = await send([r], { headers: { ...bearer(token), 'x-missing': 'forged', 'x-sub': 'forged' } });
  const h = outcome.ex.headers;
  assert.deepEqual([h['x-sub'], h['x-groups'], h['x-tenant'], h['x-level'], h['x-evil'], h['x-missing']], ['alice', 'dev,ops', 'acme', '3', undefined, undefined]);
  assert.equal(JSON.parse(Buffer.from(String(h['x-jwt-payload']), 'base64url').toString()).org.tenant, 'acme');
  const anonymous = await send([r], { headers: { 'x-sub': 'admin', 'x-jwt-payload': b64url({ sub: 'admin' }) } });
  assert.equal(anonymous.passed, true);
  assert.equal(anonymous.ex.headers['x-sub'], undefined);
  assert.equal(anonymous.ex.headers['x-jwt-payload'], undefined);
});

// A JWKS server on 127.0.0.1:0 whose keys and health the tests change.
let served: JWK[] = [rsa.jwk];
let failing = false;
let fetches = 0;
const jwksServer = createServer((req, res) => {
  fetches++;
  if (failing) {
    res.writeHead(503).end('down');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: served }));
});
await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
after(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));
const jwksUri = (path: string) => `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}${path}`;

function remote(path: string, fields: Partial<SnapshotJwtRule> = {}): SnapshotJwtRule {
  const r = rule({ jwksUri: jwksUri(path), ...fields });
  delete r.jwks;
  return r;
}

test('JWKS from a URL: fetched once for many requests; an unknown kid refetches (rate-limited), then is refused', async () => {
  served = [rsa.jwk];
  fetches = 0;
  const cache = newCache(30_000);
  const r = remote('/rotating');
  for (let i = 0; i < 5; i++) assert.equal((await send([r], { headers: bearer(await sign(rsa)), cache })).passed, true);
  assert.equal(fetches, 1);
  // The issuer rotates: a token with the new kid makes the proxy fetch again, and verifies.
  served = [rsa.jwk, rsaRotated.jwk];
  assert.equal((await send([r], { headers: bearer(await sign(rsaRotated)), cache })).ex.requestPrincipal, `${ISSUER}/alice`);
  assert.equal(fetches, 2);
  // A made-up kid within the cooldown: no fetch, refused.
  assertRefused(await send([r], { headers: bearer(await sign(rsaRotated, {}, { kid: 'made-up' })), cache }), /no key of the issuer/);
  assert.equal(fetches, 2);
  // After the cooldown, an unknown kid refetches once, and is still refused.
  const eager = newCache(0);
  assert.equal((await send([r], { headers: bearer(await sign(rsa)), cache: eager })).passed, true);
  const before = fetches;
  assertRefused(await send([r], { headers: bearer(await sign(rsaRotated, {}, { kid: 'made-up' })), cache: eager }), /no key of the issuer/);
  assert.equal(fetches, before + 1);
});

test('JWKS unavailable: no keys ever fetched fails closed (401); keys fetched before are kept while refreshes fail', async () => {
  served = [rsa.jwk];
  failing = true;
  const cache = newCache();
  assertRefused(await send([remote('/down')], { headers: bearer(await sign(rsa)), cache }), /no keys from http:\/\/127\.0\.0\.1:\d+\/down: HTTP 503/, ErrorCodes.JWKS_UNAVAILABLE);
  // Nothing listens there at all.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const dead = rule({ jwksUri: `http://127.0.0.1:${deadPort}/jwks` });
  delete dead.jwks;
  assertRefused(await send([dead], { headers: bearer(await sign(rsa)), cache }), /no keys from/, ErrorCodes.JWKS_UNAVAILABLE);
  // Requests without a token still pass: only tokens need keys.
  assert.equal((await send([dead], { cache })).passed, true);

  failing = false;
  const short = remote('/flaky', { jwksCacheMs: 20 });
  assert.equal((await send([short], { headers: bearer(await sign(rsa)), cache })).passed, true);
  failing = true;
  const deadline = Date.now() + 2000;
  const start = fetches;
  // The keys are stale now and every refresh fails; tokens keep verifying with the keys fetched before.
  while (fetches < start + 2 && Date.now() < deadline) {
    assert.equal((await send([short], { headers: bearer(await sign(rsa)), cache })).passed, true);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.ok(fetches >= start + 2, 'the stale keys were refreshed (and failed) in the background');
  assert.match(cache.describe().find((e) => e.uri.endsWith('/flaky'))!.lastError ?? '', /HTTP 503/);
  failing = false;
});

test('a JWKS endpoint that never answers: the first request waits at most the timeout, then 401', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer(() => {});
  silent.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const r = rule({ jwksUri: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/jwks`, jwksTimeoutMs: 200 });
  delete r.jwks;
  const started = Date.now();
  assertRefused(await send([r], { headers: bearer(await sign(rsa)), cache: newCache() }), /no answer within 200 ms/, ErrorCodes.JWKS_UNAVAILABLE);
  assert.ok(Date.now() - started < 1500);
  sockets.forEach((s) => s.destroy());
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

test('two rules of two issuers: each token goes to its issuer’s rule', async () => {
  const other = rule({ issuer: 'https://other.example', jwks: JSON.stringify({ keys: [ec.jwk] }), id: 'mesh/ra/1' });
  assert.equal((await send([rule({ jwks: JSON.stringify({ keys: [rsa.jwk] }) }), other], { headers: bearer(await sign(ec, { iss: 'https://other.example', sub: 'bob' })) })).ex.requestPrincipal, 'https://other.example/bob');
  // An ES256 token claiming the first issuer is checked against the first issuer's keys only.
  assertRefused(await send([rule({ jwks: JSON.stringify({ keys: [rsa.jwk] }) }), other], { headers: bearer(await sign(ec)) }), /no key of the issuer/);
});

test('API keys: a key two rules read passes by either; with a JWT the token names the principal; a bad key anywhere refuses; each key removed unless forwarded', async () => {
  const digest = (key: string) => createHash('sha256').update(key).digest('hex');
  const keyRule = (id: string, keys: Record<string, string>, fields: Partial<SnapshotApiKeyRule> = {}): SnapshotApiKeyRule => ({
    id,
    keys: Object.fromEntries(Object.entries(keys).map(([client, key]) => [digest(key), client])),
    fromHeaders: [{ name: 'x-api-key', prefix: '' }],
    fromParams: [],
    forwardOriginalKey: false,
    ...fields,
  });
  const partners = keyRule('mesh/partners', { acme: 'acme-0123456789' }, { clientIdHeader: 'x-client' });
  const robots = keyRule('mesh/robots', { robot: 'robot-0123456789' }, { fromHeaders: [{ name: 'x-api-key', prefix: '' }, { name: 'authorization', prefix: 'ApiKey ' }], fromParams: ['key'], forwardOriginalKey: true });

  const byEither = await send([], { apiKeys: [partners, robots], headers: { 'x-api-key': 'robot-0123456789', 'x-client': 'forged' } });
  assert.equal(byEither.passed, true);
  assert.equal(byEither.ex.requestPrincipal, 'api-key/robot');
  assert.equal(byEither.ex.headers['x-client'], undefined, 'a client id header is the checked client\'s or none');
  assert.equal(byEither.ex.headers['x-api-key'], 'robot-0123456789', 'the robots rule forwards its keys');

  const withPrefix = await send([], { apiKeys: [partners, robots], headers: { authorization: 'apikey robot-0123456789' }, path: '/reviews/1?key=robot-0123456789&x=1' });
  assert.equal(withPrefix.passed, true);
  assert.equal(withPrefix.ex.path, '/reviews/1?key=robot-0123456789&x=1');

  const partner = await send([], { apiKeys: [partners], headers: { 'x-api-key': 'acme-0123456789' } });
  assert.deepEqual([partner.ex.requestPrincipal, partner.ex.headers['x-client'], partner.ex.headers['x-api-key']], ['api-key/acme', 'acme', undefined]);

  // A token and a key: the token's principal; the key still names its client.
  const both = await send([rule()], { apiKeys: [partners], headers: { ...bearer(await sign(rsa)), 'x-api-key': 'acme-0123456789' } });
  assert.equal(both.passed, true);
  assert.deepEqual([both.ex.requestPrincipal, both.ex.headers['x-client']], [`${ISSUER}/alice`, 'acme']);

  // A bad key refuses the request even beside a good token, with its own code and challenge.
  const bad = await send([rule()], { apiKeys: [partners, robots], headers: { ...bearer(await sign(rsa)), 'x-api-key': 'guess' } });
  assert.equal(bad.passed, false);
  assert.equal(bad.error?.code, ErrorCodes.API_KEY_INVALID);
  assert.equal(statusOf(bad.error!), 401);
  assert.equal(grpcStatusOf(bad.error!), 16);
  assert.equal(bad.responseHeaders['www-authenticate'], 'ApiKey realm="http://reviews.mesh/reviews/1"');
  // No key, no token: passes without a principal.
  const none = await send([], { apiKeys: [partners] });
  assert.deepEqual([none.passed, none.ex.requestPrincipal], [true, undefined]);
});
