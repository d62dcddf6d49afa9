// RequestAuthentication with real weft processes and a real JWKS server: tokens verified at a gateway and at a sidecar's inbound side, 401s, claims to headers, key rotation, fail closed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import { ErrorCodes } from '../../src/api/errors.ts';
import { deadPort, get, NS, sign, signingKey, startJwksServer, startJwtMesh, unsigned, type JwksServer, type JwtMesh, type SigningKey } from './jwt-helpers.ts';

const EDGE_ISSUER = 'https://edge-idp.example';
const MESH_ISSUER = 'https://mesh-idp.example';
const DOWN_ISSUER = 'https://down-idp.example';

let jwks: JwksServer;
let mesh: JwtMesh;
let edgeKey: SigningKey;
let meshKey: SigningKey;
let rotated: SigningKey;

before(async () => {
  [edgeKey, meshKey, rotated] = await Promise.all([signingKey('ES256', 'edge-1'), signingKey('RS256', 'mesh-1'), signingKey('EdDSA', 'mesh-2')]);
  jwks = await startJwksServer([edgeKey.jwk, meshKey.jwk]);
  mesh = await startJwtMesh([
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'edge-jwt', namespace: NS },
      spec: {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
        jwtRules: [
          {
            issuer: EDGE_ISSUER,
            audiences: ['edge'],
            jwksUri: jwks.uri('/edge'),
            fromHeaders: [{ name: 'X-Edge-Token' }],
            outputClaimToHeaders: [{ header: 'X-User', claim: 'sub' }],
          },
          { issuer: DOWN_ISSUER, jwksUri: `http://127.0.0.1:${await deadPort()}/jwks`, fromHeaders: [{ name: 'X-Edge-Token' }], timeout: '500ms' },
        ],
      },
    },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'RequestAuthentication',
      metadata: { name: 'secure-jwt', namespace: NS },
      spec: {
        targetRefs: [{ kind: 'Service', name: 'secure' }],
        jwtRules: [{ issuer: MESH_ISSUER, jwksUri: jwks.uri('/mesh'), outputClaimToHeaders: [{ header: 'X-Jwt-Sub', claim: 'sub' }] }],
      },
    },
  ]);
});

after(async () => {
  await mesh?.close();
  await jwks?.close();
});

const edge = (headers: Record<string, string> = {}, path = '/hello') => get(mesh.port, 'edge.example', path, headers);
const inMesh = (headers: Record<string, string> = {}, path = '/hello') => get(mesh.port, 'mesh.example', path, headers);

function assert401(answer: Awaited<ReturnType<typeof get>>, code: string = ErrorCodes.JWT_INVALID, body?: RegExp): void {
  assert.equal(answer.status, 401, answer.body);
  assert.equal(answer.headers['weft-reason'], code);
  assert.match(String(answer.headers['www-authenticate']), /^Bearer realm="http:\/\/(edge|mesh)\.example\/hello", error="invalid_token"$/);
  assert.equal(answer.seen, undefined, 'the app never saw the request');
  if (body) assert.match(answer.body, body);
}

test('gateway: no token passes anonymously; a valid token passes with its claim as a header and without the token', async () => {
  const anonymous = await edge({ 'x-user': 'forged-admin' });
  assert.equal(anonymous.status, 200);
  assert.equal(anonymous.seen!['x-user'], undefined, 'a client cannot claim to be someone');
  const ok = await edge({ 'x-edge-token': await sign(edgeKey, EDGE_ISSUER, { aud: 'edge' }) });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.seen!['x-user'], 'alice');
  assert.equal(ok.seen!['x-edge-token'], undefined, 'the token is not forwarded');
});

test('gateway: expired, wrong audience, wrong issuer, alg none and a bad signature are 401', async () => {
  const now = Math.floor(Date.now() / 1000);
  assert401(await edge({ 'x-edge-token': await sign(edgeKey, EDGE_ISSUER, { aud: 'edge', exp: now - 600 }) }), ErrorCodes.JWT_INVALID, /expired/);
  assert401(await edge({ 'x-edge-token': await sign(edgeKey, EDGE_ISSUER, { aud: 'billing' }) }), ErrorCodes.JWT_INVALID, /audience/);
  assert401(await edge({ 'x-edge-token': await sign(edgeKey, 'https://evil.example', { aud: 'edge' }) }), ErrorCodes.JWT_INVALID, /not configured/);
  assert401(await edge({ 'x-edge-token': unsigned(EDGE_ISSUER, { aud: 'edge' }) }));
  const forged = await signingKey('ES256', 'edge-1');
  assert401(await edge({ 'x-edge-token': await sign(forged, EDGE_ISSUER, { aud: 'edge' }) }), ErrorCodes.JWT_INVALID, /signature/);
});

test('gateway: an issuer whose JWKS cannot be fetched fails closed', async () => {
  assert401(await edge({ 'x-edge-token': await sign(edgeKey, DOWN_ISSUER) }), ErrorCodes.JWKS_UNAVAILABLE, /no keys from/);
});

test('sidecar inbound: the Service’s policy verifies the Bearer token the gateway passed on', async () => {
  const ok = await inMesh({ authorization: `Bearer ${await sign(meshKey, MESH_ISSUER, { sub: 'bob' })}` });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.seen!['x-jwt-sub'], 'bob');
  assert.equal(ok.seen!.authorization, undefined);
  assert.equal((await inMesh()).status, 200, 'no token: anonymous');
  // The gateway's rules read X-Edge-Token only; this token is the sidecar's to refuse.
  assert401(await inMesh({ authorization: `Bearer ${await sign(edgeKey, EDGE_ISSUER, { aud: 'edge' })}` }), ErrorCodes.JWT_INVALID, /not configured/);
  assert401(await inMesh({ authorization: `Bearer ${await sign(meshKey, MESH_ISSUER, { nbf: Math.floor(Date.now() / 1000) + 600 })}` }), ErrorCodes.JWT_INVALID, /not valid yet/);
  // The token in the query string works too (Envoy's default locations), and is removed from the path.
  const inQuery = await inMesh({}, `/hello?access_token=${await sign(meshKey, MESH_ISSUER)}&keep=1`);
  assert.equal(inQuery.status, 200, inQuery.body);
  assert.equal(inQuery.path, '/hello?keep=1');
});

test('sidecar inbound: a key the issuer rotated in is fetched when a token names it', async () => {
  const before = jwks.fetches;
  jwks.keys = [edgeKey.jwk, meshKey.jwk, rotated.jwk];
  const ok = await inMesh({ authorization: `Bearer ${await sign(rotated, MESH_ISSUER, { sub: 'carol' })}` });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.seen!['x-jwt-sub'], 'carol');
  assert.ok(jwks.fetches > before, 'the unknown kid made the sidecar fetch the JWKS again');
});

test('gateway: a gRPC caller with an invalid token gets UNAUTHENTICATED (HTTP 200, trailers-only)', async () => {
  const session = http2Connect(`http://127.0.0.1:${mesh.port}`);
  session.on('error', () => {});
  try {
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
      const stream = session.request(
        { ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'edge.example', 'content-type': 'application/grpc', te: 'trailers', 'x-edge-token': 'not-a-jwt' },
        { endStream: true },
      );
      stream.on('response', (h) => {
        clearTimeout(timer);
        resolve(h as Record<string, unknown>);
      });
      stream.on('error', reject);
      stream.resume();
    });
    assert.equal(headers[':status'], 200);
    assert.equal(headers['grpc-status'], '16');
    assert.equal(headers['weft-reason'], ErrorCodes.JWT_INVALID);
  } finally {
    session.close();
  }
});
