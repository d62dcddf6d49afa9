// Bootstrap tokens: creation, verification, expiry, revocation, hashed storage, and the identity-scope rule.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, isWeftError, type ErrorCode } from '../../src/api/errors.ts';
import { ManualClock } from '../../src/telemetry/clock.ts';
import { authorizeIdentity, MemoryTokenStorage, TokenAuthority, tokenHash } from '../../src/control/ca/tokens.ts';

function authority(clock = new ManualClock()) {
  const storage = new MemoryTokenStorage();
  return { clock, storage, tokens: new TokenAuthority({ storage, clock }) };
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => isWeftError(e, code));
}

describe('TokenAuthority', () => {
  it('creates a 256-bit token and verifies it to its scope', async () => {
    const { tokens } = authority();
    const token = await tokens.create({ namespace: 'shop', workload: 'reviews' });
    assert.match(token, /^weft_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token.slice(5), 'base64url').length, 32);
    assert.deepEqual(await tokens.verify(token), { namespace: 'shop', workload: 'reviews' });
    const hostToken = await tokens.create({ namespace: 'shop', host: 'node-1' });
    assert.deepEqual(await tokens.verify(hostToken), { namespace: 'shop', host: 'node-1' });
    assert.notEqual(token, await tokens.create({ namespace: 'shop', workload: 'reviews' }));
  });

  it('stores only the SHA-256 of a token', async () => {
    const { tokens, storage } = authority();
    const token = await tokens.create({ namespace: 'shop', workload: 'reviews' });
    const entries = storage.entries();
    assert.equal(entries.length, 1);
    assert.equal(entries[0]![0], tokenHash(token));
    assert.match(entries[0]![0], /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(entries).includes(token.slice(5)), 'the secret is not stored');
  });

  it('refuses wrong, malformed and tampered tokens', async () => {
    const { tokens } = authority();
    const token = await tokens.create({ namespace: 'shop', workload: 'reviews' });
    const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    assert.equal(await tokens.verify(flipped), undefined);
    assert.equal(await tokens.verify(`weft_${'A'.repeat(43)}`), undefined);
    assert.equal(await tokens.verify(''), undefined);
    assert.equal(await tokens.verify(token + 'x'), undefined);
    assert.equal(await tokens.verify(tokenHash(token)), undefined, 'the stored hash is not a token');
    assert.equal(await tokens.verify(undefined as unknown as string), undefined);
  });

  it('expires tokens with a TTL and forgets revoked ones', async () => {
    const { tokens, clock, storage } = authority();
    const shortLived = await tokens.create({ namespace: 'shop', workload: 'reviews', ttlMs: 60_000 });
    const lasting = await tokens.create({ namespace: 'shop', workload: 'ratings' });
    clock.advance(59_999);
    assert.ok(await tokens.verify(shortLived));
    clock.advance(1);
    assert.equal(await tokens.verify(shortLived), undefined);
    assert.equal(storage.entries().length, 1, 'the expired record is dropped');
    clock.advance(365 * 24 * 3600_000);
    assert.ok(await tokens.verify(lasting), 'no TTL: valid until revoked');
    await tokens.revoke(lasting);
    assert.equal(await tokens.verify(lasting), undefined);
  });

  it('refuses bad scopes at creation', async () => {
    const { tokens } = authority();
    const rejects = (options: Parameters<TokenAuthority['create']>[0]) =>
      assert.rejects(tokens.create(options), (e: unknown) => isWeftError(e, ErrorCodes.INVALID));
    await rejects({ namespace: 'Shop' });
    await rejects({ namespace: 'shop', workload: 'a', host: 'b' });
    await rejects({ namespace: 'shop', workload: '../etc' });
    await rejects({ namespace: 'shop', ttlMs: -1 });
  });
});

describe('authorizeIdentity: what a token may become', () => {
  const td = 'example.org';

  it("gives a workload token only its workload's service account in its namespace", () => {
    const scope = { namespace: 'shop', workload: 'reviews' };
    assert.equal(authorizeIdentity(scope, { namespace: 'shop', workload: 'reviews', serviceAccount: 'reviews-sa' }, td), 'spiffe://example.org/ns/shop/sa/reviews-sa');
    throwsCode(() => authorizeIdentity(scope, { namespace: 'shop', workload: 'payments', serviceAccount: 'payments' }, td), ErrorCodes.FORBIDDEN);
    throwsCode(() => authorizeIdentity(scope, { namespace: 'bank', workload: 'reviews', serviceAccount: 'reviews-sa' }, td), ErrorCodes.FORBIDDEN);
    throwsCode(() => authorizeIdentity(scope, { namespace: 'shop', serviceAccount: 'reviews-sa' }, td), ErrorCodes.FORBIDDEN);
  });

  it('gives a host token any workload of its namespace, and nothing outside it', () => {
    const scope = { namespace: 'shop', host: 'node-1' };
    assert.equal(authorizeIdentity(scope, { namespace: 'shop', workload: 'payments', serviceAccount: 'payments' }, td), 'spiffe://example.org/ns/shop/sa/payments');
    throwsCode(() => authorizeIdentity(scope, { namespace: 'kube-system', workload: 'admin', serviceAccount: 'admin' }, td), ErrorCodes.FORBIDDEN);
  });

  it('refuses a service account that is not a valid name', () => {
    throwsCode(() => authorizeIdentity({ namespace: 'shop' }, { namespace: 'shop', workload: 'w', serviceAccount: 'a/../b' }, td), ErrorCodes.IDENTITY_INVALID);
  });
});
