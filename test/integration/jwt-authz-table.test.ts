// RequestAuthentication with AuthorizationPolicy, request × policy table through real weft processes: a gateway and a sidecar, JWT principals and claims, 401 before 403.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { ErrorCodes } from '../../src/api/errors.ts';
import { deadPort, get, NS, sign, signingKey, startJwksServer, startJwtMesh, unsigned, type JwksServer, type JwtMesh, type SigningKey } from './jwt-helpers.ts';

const EDGE = 'https://edge-idp.example';
const MESH = 'https://mesh-idp.example';
const GONE = 'https://gone-idp.example';
const AUTHN = 'weft.dev/v1alpha1';

let jwks: JwksServer;
let mesh: JwtMesh;
let edgeKey: SigningKey;
let meshKey: SigningKey;
let stranger: SigningKey;

before(async () => {
  [edgeKey, meshKey, stranger] = await Promise.all([signingKey('RS256', 'edge-1'), signingKey('ES256', 'mesh-1'), signingKey('RS256', 'edge-1')]);
  jwks = await startJwksServer([edgeKey.jwk, meshKey.jwk]);
  const gatewayRef = [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }];
  const serviceRef = [{ kind: 'Service', name: 'secure' }];
  mesh = await startJwtMesh([
    // At the gateway: tokens of EDGE in X-Edge-Jwt (so that Bearer tokens travel on to the sidecar untouched).
    { apiVersion: AUTHN, kind: 'RequestAuthentication', metadata: { name: 'edge', namespace: NS }, spec: { targetRefs: gatewayRef, jwtRules: [{ issuer: EDGE, jwksUri: jwks.uri('/edge'), fromHeaders: [{ name: 'X-Edge-Jwt' }] }] } },
    {
      apiVersion: AUTHN,
      kind: 'AuthorizationPolicy',
      metadata: { name: 'edge-allow', namespace: NS },
      spec: {
        targetRefs: gatewayRef,
        action: 'ALLOW',
        rules: [
          { from: [{ source: { requestPrincipals: [`${EDGE}/*`] } }], to: [{ operation: { paths: ['/api/*'] } }] },
          { to: [{ operation: { paths: ['/public/*'] } }] },
          { from: [{ source: { requestPrincipals: ['*'] } }], to: [{ operation: { paths: ['/admin/*'] } }], when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] },
          { to: [{ operation: { paths: ['/nested/*'] } }], when: [{ key: 'request.auth.claims[org][tier]', values: ['gold'] }] },
          // mesh.example is the sidecar's to decide.
          { to: [{ operation: { hosts: ['mesh.example', 'mesh.example:*'] } }] },
        ],
      },
    },
    {
      apiVersion: AUTHN,
      kind: 'AuthorizationPolicy',
      metadata: { name: 'edge-deny', namespace: NS },
      spec: { targetRefs: gatewayRef, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/api/*'] } }], when: [{ key: 'request.auth.claims[role]', values: ['banned'] }] }] },
    },
    // At the sidecar: tokens of MESH (Bearer), and an issuer whose keys cannot be fetched.
    {
      apiVersion: AUTHN,
      kind: 'RequestAuthentication',
      metadata: { name: 'secure', namespace: NS },
      spec: {
        targetRefs: serviceRef,
        jwtRules: [
          { issuer: MESH, jwksUri: jwks.uri('/mesh') },
          { issuer: GONE, jwksUri: `http://127.0.0.1:${await deadPort()}/jwks`, timeout: '500ms' },
        ],
      },
    },
    {
      apiVersion: AUTHN,
      kind: 'AuthorizationPolicy',
      metadata: { name: 'secure-allow', namespace: NS },
      spec: {
        targetRefs: serviceRef,
        action: 'ALLOW',
        rules: [
          { from: [{ source: { requestPrincipals: [`${MESH}/bob`] } }] },
          { to: [{ operation: { paths: ['/healthz'] } }] },
          { to: [{ operation: { paths: ['/aud/*'] } }], when: [{ key: 'request.auth.audiences', values: ['secure-api'] }] },
          { from: [{ source: { notRequestPrincipals: ['*'] } }], to: [{ operation: { paths: ['/anonymous-only'] } }] },
        ],
      },
    },
  ]);
});

after(async () => {
  await mesh?.close();
  await jwks?.close();
});

/** HS256 signed with the issuer's public RSA key as the HMAC secret: the key confusion attack. */
function keyConfused(issuer: string, kid: string): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT', kid })}.${part({ iss: issuer, sub: 'admin', exp: Math.floor(Date.now() / 1000) + 300 })}`;
  return `${body}.${createHmac('sha256', JSON.stringify(edgeKey.jwk)).update(body).digest('base64url')}`;
}

interface Case {
  name: string;
  host: 'edge.example' | 'mesh.example';
  path: string;
  /** Builds the token (or nothing). */
  token?: () => Promise<string> | string;
  status: 200 | 401 | 403;
  reason?: string;
}

const now = () => Math.floor(Date.now() / 1000);
const edgeToken = (claims: Record<string, unknown> = {}) => () => sign(edgeKey, EDGE, claims);
const meshToken = (claims: Record<string, unknown> = {}) => () => sign(meshKey, MESH, claims);

const CASES: Case[] = [
  // Gateway: RequestAuthentication EDGE, ALLOW edge-allow, DENY edge-deny.
  { name: 'public path, no token', host: 'edge.example', path: '/public/page', status: 200 },
  { name: 'api, no token', host: 'edge.example', path: '/api/items', status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'api, valid token', host: 'edge.example', path: '/api/items', token: edgeToken(), status: 200 },
  { name: 'api, expired token', host: 'edge.example', path: '/api/items', token: edgeToken({ exp: now() - 600 }), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, token not yet valid', host: 'edge.example', path: '/api/items', token: edgeToken({ nbf: now() + 600 }), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, wrong issuer', host: 'edge.example', path: '/api/items', token: () => sign(edgeKey, 'https://evil.example'), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, alg none', host: 'edge.example', path: '/api/items', token: () => unsigned(EDGE), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, key confusion (HS256 with the public key)', host: 'edge.example', path: '/api/items', token: () => keyConfused(EDGE, edgeKey.kid), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, signed by another key with the same kid', host: 'edge.example', path: '/api/items', token: () => sign(stranger, EDGE), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'api, valid token with a banned role (DENY)', host: 'edge.example', path: '/api/items', token: edgeToken({ role: 'banned' }), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'admin, token without the admin group', host: 'edge.example', path: '/admin/users', token: edgeToken({ groups: ['dev'] }), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'admin, token in the admin group', host: 'edge.example', path: '/admin/users', token: edgeToken({ groups: ['dev', 'admin'] }), status: 200 },
  { name: 'admin, no token', host: 'edge.example', path: '/admin/users', status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'nested claim org.tier gold', host: 'edge.example', path: '/nested/x', token: edgeToken({ org: { tier: 'gold' } }), status: 200 },
  { name: 'nested claim org.tier silver', host: 'edge.example', path: '/nested/x', token: edgeToken({ org: { tier: 'silver' } }), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'a path no rule allows, valid token', host: 'edge.example', path: '/other', token: edgeToken(), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'public path, invalid token: authentication comes first', host: 'edge.example', path: '/public/page', token: () => sign(stranger, EDGE), status: 401, reason: ErrorCodes.JWT_INVALID },
  // Sidecar: RequestAuthentication MESH (+ GONE, whose keys cannot be fetched), ALLOW secure-allow.
  { name: 'sidecar, bob', host: 'mesh.example', path: '/data', token: meshToken({ sub: 'bob' }), status: 200 },
  { name: 'sidecar, alice', host: 'mesh.example', path: '/data', token: meshToken(), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'sidecar, no token', host: 'mesh.example', path: '/data', status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'sidecar, health without a token', host: 'mesh.example', path: '/healthz', status: 200 },
  { name: 'sidecar, audience secure-api', host: 'mesh.example', path: '/aud/x', token: meshToken({ aud: ['other', 'secure-api'] }), status: 200 },
  { name: 'sidecar, another audience', host: 'mesh.example', path: '/aud/x', token: meshToken({ aud: 'other' }), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'sidecar, anonymous-only path without a token', host: 'mesh.example', path: '/anonymous-only', status: 200 },
  { name: 'sidecar, anonymous-only path with a token', host: 'mesh.example', path: '/anonymous-only', token: meshToken(), status: 403, reason: ErrorCodes.RBAC_DENIED },
  { name: 'sidecar, the gateway issuer’s token', host: 'mesh.example', path: '/data', token: edgeToken(), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'sidecar, bob with an expired token', host: 'mesh.example', path: '/data', token: meshToken({ sub: 'bob', exp: now() - 600 }), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'sidecar, bob with alg none', host: 'mesh.example', path: '/data', token: () => unsigned(MESH, { sub: 'bob' }), status: 401, reason: ErrorCodes.JWT_INVALID },
  { name: 'sidecar, issuer whose JWKS is missing', host: 'mesh.example', path: '/data', token: () => sign(meshKey, GONE, { sub: 'bob' }), status: 401, reason: ErrorCodes.JWKS_UNAVAILABLE },
];

test(`${CASES.length} request × policy cases give the expected status`, async () => {
  assert.ok(CASES.length >= 15);
  const failures: string[] = [];
  for (const c of CASES) {
    const token = c.token ? await c.token() : undefined;
    const headers: Record<string, string> = token === undefined ? {} : c.host === 'edge.example' ? { 'x-edge-jwt': token } : { authorization: `Bearer ${token}` };
    const answer = await get(mesh.port, c.host, c.path, headers);
    const reason = answer.headers['weft-reason'];
    if (answer.status !== c.status || (c.reason !== undefined && reason !== c.reason)) {
      failures.push(`${c.name}: expected ${c.status}${c.reason ? ` ${c.reason}` : ''}, got ${answer.status} ${String(reason ?? '')} ${answer.body.slice(0, 200)}`);
      continue;
    }
    if (c.status === 200) assert.ok(answer.seen, `${c.name}: the app answered`);
    if (c.status === 401) assert.match(String(answer.headers['www-authenticate']), /^Bearer realm=".*", error="invalid_token"$/, c.name);
  }
  assert.deepEqual(failures, []);
});
