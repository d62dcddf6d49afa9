// The proxy's snapshot shape checks (src/proxy/config/shape.ts) and what validateSnapshot and the gateway say with them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, isWeftError } from '../../src/api/errors.ts';
import { array, bool, check, num, object, oneOf, optional, record, str, tagged } from '../../src/proxy/config/shape.ts';
import { validateSnapshot } from '../../src/proxy/config/validate.ts';
import { compileGatewayConfig } from '../../src/proxy/gateway/config.ts';
import { BalancerRegistry } from '../../src/proxy/layers/balancer/balancers.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { buildSnapshot, endpoint } from '../integration/proxy-helpers.ts';

/** A WEFT_ERR_SNAPSHOT_INVALID whose message matches `message`. */
function invalidSnapshot(message: RegExp): (error: unknown) => boolean {
  return (error) => isWeftError(error, ErrorCodes.SNAPSHOT_INVALID) && message.test((error as Error).message);
}

test('each check names the path and the reason; a value that fits gives no issue', () => {
  assert.deepEqual(check(str(), 'a'), []);
  assert.deepEqual(check(str(), 5, 'x'), [{ path: 'x', message: 'expected a string, got number 5' }]);
  assert.deepEqual(check(str({ min: 1 }), ''), [{ path: '', message: 'must be at least 1 character(s) long' }]);
  assert.deepEqual(check(str({ pattern: /^[a-z]+$/ }), 'A', 'name'), [{ path: 'name', message: 'must match /^[a-z]+$/' }]);
  assert.deepEqual(check(num({ int: true, min: 1, max: 65535 }), 80), []);
  assert.deepEqual(check(num({ int: true }), 1.5), [{ path: '', message: 'expected an integer, got 1.5' }]);
  assert.deepEqual(check(num({ max: 100 }), 101), [{ path: '', message: 'must be at most 100, got 101' }]);
  assert.deepEqual(check(num({ positive: true }), 0), [{ path: '', message: 'must be greater than 0, got 0' }]);
  assert.deepEqual(check(num(), Number.NaN), [{ path: '', message: 'expected a number, got number NaN' }]);
  assert.deepEqual(check(num(), '3'), [{ path: '', message: 'expected a number, got a string' }]);
  assert.deepEqual(check(bool, 'true'), [{ path: '', message: 'expected a boolean, got a string' }]);
  assert.deepEqual(check(oneOf([301, 302]), 303), [{ path: '', message: 'must be one of 301, 302, got number 303' }]);
  assert.deepEqual(check(oneOf(['http', 'tcp']), 'udp'), [{ path: '', message: 'must be one of http, tcp, got "udp"' }]);
});

test('objects: required and optional fields, extra fields allowed, every issue in order', () => {
  const shape = object({ name: str(), port: num({ int: true }), tags: optional(array(str())) });
  assert.deepEqual(check(shape, { name: 'a', port: 1, newerField: { anything: true } }), []);
  assert.deepEqual(check(shape, { port: 1.5, tags: ['x', 2] }, 'svc'), [
    { path: 'svc.name', message: 'is required' },
    { path: 'svc.port', message: 'expected an integer, got 1.5' },
    { path: 'svc.tags.1', message: 'expected a string, got number 2' },
  ]);
  assert.deepEqual(check(shape, null), [{ path: '', message: 'expected an object, got null' }]);
  assert.deepEqual(check(shape, []), [{ path: '', message: 'expected an object, got an array' }]);
  assert.deepEqual(check(record(num()), { a: 1, b: 'x' }, 'm'), [{ path: 'm.b', message: 'expected a number, got a string' }]);
});

test('a tagged object is checked by its kind; an unknown kind is refused by name', () => {
  const filter = tagged('type', { Redirect: object({ code: oneOf([301, 302]) }), Mirror: object({ percent: num() }) });
  assert.deepEqual(check(filter, { type: 'Mirror', percent: 5 }), []);
  assert.deepEqual(check(filter, { type: 'Redirect', code: 200 }, 'f'), [{ path: 'f.code', message: 'must be one of 301, 302, got number 200' }]);
  assert.deepEqual(check(filter, { type: 'Teleport' }, 'f'), [{ path: 'f.type', message: 'must be one of Redirect, Mirror, got "Teleport"' }]);
  // A long string is not quoted back: it could be a key or a certificate.
  assert.match(check(oneOf(['a']), 'k'.repeat(100))[0]!.message, /got a string$/);
});

test('validateSnapshot names the field: a filter kind this proxy does not know, a bad port, a missing field', () => {
  const good = buildSnapshot({ services: [{ name: 'a', ports: [{ port: 80, endpoints: [endpoint('x', 1)] }] }] });
  assert.equal(validateSnapshot(good), good, 'the caller keeps its own object, unknown fields and all');
  const unknownFilter = structuredClone(good);
  (unknownFilter.routes['default/a:80']!.rules[0]!.filters as unknown[]).push({ type: 'Teleport' });
  assert.throws(() => validateSnapshot(unknownFilter), invalidSnapshot(/malformed snapshot: routes\.default\/a:80\.rules\.0\.filters\.0\.type: must be one of RequestHeaderModifier, .*got "Teleport"/));
  // A GraphQL filter and API keys are checked too: a resolver path must start with /, a key rule needs its fields.
  const graphql = structuredClone(good);
  const resolver = { backend: 'default/a:80', host: 'a', method: 'GET', path: 'products', forwardHeaders: [] };
  (graphql.routes['default/a:80']!.rules[0]!.filters as unknown[]).push({ type: 'GraphQL', graphql: { name: 'default/api', schema: 'type Query { a: Int }', resolvers: { 'Query.a': resolver }, maxDepth: 5, introspection: true, timeoutMs: 1000 } });
  assert.throws(() => validateSnapshot(graphql), invalidSnapshot(/filters\.0\.graphql\.resolvers\.Query\.a\.path: must match/));
  const keys = structuredClone(good);
  (keys.inbound as unknown as Record<string, unknown>).apiKeys = [{ id: 'default/keys', keys: {}, fromHeaders: [{ name: 'x api key', prefix: '' }], fromParams: [], forwardOriginalKey: false }];
  assert.throws(() => validateSnapshot(keys), invalidSnapshot(/inbound\.apiKeys\.0\.fromHeaders\.0\.name: must match/));
  const badPort = structuredClone(good);
  (badPort.backends['default/a:80']!.endpoints[0] as { port: number }).port = 70000;
  assert.throws(() => validateSnapshot(badPort), invalidSnapshot(/backends\.default\/a:80\.endpoints\.0\.port: must be at most 65535, got 70000/));
  const { mesh: _mesh, ...noMesh } = good;
  assert.throws(() => validateSnapshot(noMesh), invalidSnapshot(/malformed snapshot: mesh: is required/));
  assert.throws(() => validateSnapshot('nope'), invalidSnapshot(/malformed snapshot: \(root\): expected an object, got a string/));
});

test('a malformed gateway section is refused with its path under gateway', () => {
  const snapshot = buildSnapshot({ services: [] });
  snapshot.gateway = { namespace: 'default', name: 'edge', ports: [{ port: 80, protocol: 'QUIC', listeners: [] }] } as unknown as typeof snapshot.gateway;
  const context = { backends: snapshot.backends, balancers: new BalancerRegistry(), forward: {} as never, clock: systemClock };
  assert.throws(() => compileGatewayConfig(snapshot, context), invalidSnapshot(/malformed snapshot: gateway\.ports\.0\.protocol: must be one of HTTP, HTTPS, TCP, TLS, got "QUIC"/));
});
