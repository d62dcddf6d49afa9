// What the proxy admin's /config leaves out of a snapshot: listeners' private keys, inline JWKS secrets (inbound and gateway), and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotJwtRule } from '../../src/api/snapshot.ts';
import { withoutPrivateKeys } from '../../src/proxy/gateway/config.ts';
import { buildSnapshot, testJwtRule } from '../integration/proxy-helpers.ts';

function rule(jwks: string): SnapshotJwtRule {
  return testJwtRule({ id: 'edge/jwt/0', jwks, algorithms: ['HS256'], jwksCacheMs: 600_000 });
}

test('a gateway snapshot: listener keys and the gateway rules\' HMAC secrets are not shown; the snapshot itself is not changed', () => {
  const snapshot = buildSnapshot({});
  const hmac = JSON.stringify({ keys: [{ kty: 'oct', kid: 'hs-1', k: 'c2VjcmV0' }] });
  snapshot.gateway = {
    namespace: 'edge',
    name: 'web',
    ports: [{ port: 443, protocol: 'HTTPS', listeners: [{ name: 'https', tls: { certificates: [{ certPem: 'CERT', keyPem: 'PRIVATE KEY' }] }, hosts: [] }] }],
    requestAuthentication: [rule(hmac), rule('not json')],
  };
  const shown = withoutPrivateKeys(snapshot)!;
  assert.equal(shown.gateway?.ports[0]?.listeners[0]?.tls?.certificates[0]?.keyPem, '(not shown)');
  assert.equal(shown.gateway?.ports[0]?.listeners[0]?.tls?.certificates[0]?.certPem, 'CERT');
  assert.deepEqual(JSON.parse(shown.gateway?.requestAuthentication?.[0]?.jwks ?? ''), { keys: [{ kty: 'oct', kid: 'hs-1', k: '(not shown)' }] });
  assert.equal(shown.gateway?.requestAuthentication?.[1]?.jwks, '(not shown)', 'a value that is not a key set is not shown at all');
  assert.equal(snapshot.gateway.requestAuthentication?.[0]?.jwks, hmac, 'the applied snapshot keeps its keys');
  assert.equal(snapshot.gateway.ports[0]?.listeners[0]?.tls?.certificates[0]?.keyPem, 'PRIVATE KEY');
});

test('a snapshot without gateway or inline keys is shown as it is', () => {
  const snapshot = buildSnapshot({});
  assert.deepEqual(withoutPrivateKeys(snapshot), snapshot);
  const withUri = buildSnapshot({});
  const { jwks: _inline, ...fetched } = rule('');
  withUri.inbound.requestAuthentication = [{ ...fetched, algorithms: ['RS256'], jwksUri: 'https://issuer.example/jwks' }];
  assert.deepEqual(withoutPrivateKeys(withUri)?.inbound.requestAuthentication, withUri.inbound.requestAuthentication);
  assert.equal(withoutPrivateKeys(undefined), undefined);
});
