// `weft status`'s identity table: each proxy's SPIFFE ID and how long its certificate has left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { expiresIn, formatIdentities } from '../../src/cli/status.ts';

const now = Date.parse('2026-01-01T12:00:00Z');

function proxy(id: string, extra: Partial<ProxyStatus> = {}): ProxyStatus {
  return { id, mode: 'sidecar', namespace: 'default', address: '127.0.0.1', tunnelPort: 1, connected: true, ready: true, lastSeen: new Date(now).toISOString(), ...extra };
}

test('lists identities and expiries, a dash for a proxy without a certificate', () => {
  const text = formatIdentities(
    [
      proxy('default/reviews-0', { identity: 'spiffe://cluster.local/ns/default/sa/reviews', certExpiresAt: '2026-01-02T00:00:00.000Z' }),
      proxy('default/legacy-0'),
    ],
    now,
  );
  assert.match(text, /^ID\s+IDENTITY\s+CERT EXPIRES$/m);
  assert.match(text, /^default\/reviews-0\s+spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\s+2026-01-02T00:00:00\.000Z\s+in 12h$/m);
  assert.match(text, /^default\/legacy-0\s+-\s+-\s+-$/m);
  assert.equal(formatIdentities([], now), '');
});

test('says how long a certificate has left, or how long ago it expired', () => {
  assert.equal(expiresIn('2026-01-01T12:00:45Z', now), 'in 45s');
  assert.equal(expiresIn('2026-01-01T12:30:00Z', now), 'in 30m');
  assert.equal(expiresIn('2026-01-04T12:00:00Z', now), 'in 3d');
  assert.equal(expiresIn('2026-01-01T11:50:00Z', now), 'expired 10m ago');
  assert.equal(expiresIn(undefined, now), '-');
  assert.equal(expiresIn('not a time', now), '-');
});
