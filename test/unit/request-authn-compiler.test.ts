// Unit tests of RequestAuthentication in the schema and the compiler: field errors, which sidecars and Gateways get which rules, statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Gateway, HTTPRoute, HTTPRouteRule, RequestAuthentication, Secret, Service, Workload } from '../../src/api/resources.ts';
import { withoutPrivateKeys } from '../../src/proxy/gateway/config.ts';
import type { NodeInfo, ProxySnapshot } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';

const NS = 'mesh';
const RSA_JWK = { kty: 'RSA', n: 'sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw', e: 'AQAB' };

function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.resource as T;
}

function issues(spec: unknown): string[] {
  const result = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'ra', namespace: NS }, spec });
  return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
}

function authn(name: string, spec: unknown): RequestAuthentication {
  const p = parsed<RequestAuthentication>({ apiVersion: 'weft.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name, namespace: NS }, spec });
  p.metadata.generation = 3;
  return p;
}

const rule = (issuer: string, extra: Record<string, unknown> = {}) => ({ issuer, jwksUri: `https://${issuer}/jwks.json`, ...extra });

test('schema: exactly one of jwksUri and jwks, never alg none, no HMAC with public keys, no private keys inline', () => {
  assert.deepEqual(issues({ jwtRules: [rule('a.example')] }), []);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a' }] }), ['spec.jwtRules[0].jwksUri: a jwtRule needs jwksUri or jwks (the keys its tokens are verified with)']);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwksUri: 'https://a/k', jwks: JSON.stringify({ keys: [RSA_JWK] }) }] }), ['spec.jwtRules[0].jwks: set jwksUri or jwks, not both']);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwksUri: 'ftp://a/k' }] }), ['spec.jwtRules[0].jwksUri: must be an http:// or https:// URL']);
  assert.deepEqual(issues({ jwtRules: [rule('a', { algorithms: ['none'] })] }), ['spec.jwtRules[0].algorithms[0]: alg "none" is never accepted: an unsigned token proves nothing']);
  assert.match(issues({ jwtRules: [rule('a', { algorithms: ['RS1'] })] })[0]!, /algorithms\[0\]: "RS1" is not one of RS256/);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [RSA_JWK] }), algorithms: ['HS256', 'RS256'] }] }), [
    'spec.jwtRules[0].algorithms: HMAC algorithms (HS*) cannot be mixed with asymmetric ones: a public key would be accepted as an HMAC secret',
    'spec.jwtRules[0].jwks: keys[0] (kty RSA) is a public key: HMAC algorithms are never mixed with public keys (key confusion)',
  ]);
  assert.deepEqual(issues({ jwtRules: [rule('a', { algorithms: ['HS256'] })] }), ['spec.jwtRules[0].algorithms: HMAC algorithms (HS*) need their secret inline in jwks, never fetched from jwksUri']);
  // HS256 with an RSA key inline: the public key would become an HMAC secret.
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [RSA_JWK] }), algorithms: ['HS256'] }] }), [
    'spec.jwtRules[0].jwks: keys[0] (kty RSA) is a public key: HMAC algorithms are never mixed with public keys (key confusion)',
  ]);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }) }] }), [
    'spec.jwtRules[0].jwks: keys[0] is an HMAC secret (kty oct): it is only used when algorithms lists HS256, HS384 or HS512',
  ]);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), algorithms: ['HS256'] }] }), []);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: JSON.stringify({ keys: [{ ...RSA_JWK, d: 'xx' }] }) }] }), ['spec.jwtRules[0].jwks: keys[0] carries private key material ("d"): give public keys only']);
  assert.match(issues({ jwtRules: [{ issuer: 'a', jwks: '{not json' }] })[0]!, /^spec\.jwtRules\[0\]\.jwks: must be a JSON Web Key Set \(JSON\)/);
  assert.deepEqual(issues({ jwtRules: [{ issuer: 'a', jwks: '{"keys":[]}' }] }), ['spec.jwtRules[0].jwks: must be a JSON Web Key Set: an object with a non-empty "keys" array']);
  assert.deepEqual(issues({ selector: { matchLabels: { app: 'x' } }, targetRefs: [{ kind: 'Service', name: 'x' }], jwtRules: [] }), ['spec.selector: use targetRefs or selector, not both']);
  assert.match(issues({ targetRefs: [{ kind: 'HTTPRoute', name: 'x' }] })[0]!, /^spec\.targetRefs\[0\]\.kind/);
  assert.match(issues({ jwtRules: [rule('a', { outputClaimToHeaders: [{ header: 'Host', claim: 'sub' }] })] })[0]!, /outputClaimToHeaders\[0\]\.header: must not be a framing header/);
  assert.match(issues({ jwtRules: [rule('a', { outputPayloadToHeader: 'weft-source' })] })[0]!, /outputPayloadToHeader: must not be/);
  assert.match(issues({ jwtRules: [rule('a', { clockSkew: '1 minute' })] })[0]!, /clockSkew: must be a Gateway API duration/);
});

function svc(name: string, selector: Record<string, string>): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector, ports: [{ protocol: 'TCP', port: 80 }] } };
}

function template(name: string, labels: Record<string, string>): Workload {
  return parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name, namespace: NS, labels }, spec: { ports: [{ port: 8080 }] } });
}

const gateway: Gateway = parsed({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'edge', namespace: NS },
  spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
});
const edgeRoute: HTTPRoute = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'public', namespace: NS },
  spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'reviews', port: 80, weight: 1 }] } as HTTPRouteRule] },
};

function sidecar(workload: string, namespace = NS): NodeInfo {
  return { id: `${namespace}/${workload}-0`, mode: 'sidecar', namespace, workload, address: '127.0.0.1', tunnelPort: 15008, appPorts: [8080] };
}
const edgeNode: NodeInfo = { id: `${NS}/edge-1`, mode: 'gateway', namespace: NS, address: '127.0.0.1', tunnelPort: 15008, appPorts: [], gateway: `${NS}/edge` };

function snapshotOf(input: CompilerInput, node: NodeInfo): ProxySnapshot {
  const s = compile(input, node);
  assert.deepEqual(checkSnapshot(s), []);
  return s;
}

test('compiler: targetRefs, selector and namespace-wide policies reach the right sidecars and Gateways, with defaults filled in', () => {
  const input: CompilerInput = {
    services: [svc('reviews', { app: 'reviews' }), svc('ratings', { app: 'ratings' })],
    workloads: [template('reviews-v1', { app: 'reviews' }), template('ratings-v1', { app: 'ratings' }), template('other', { app: 'other', tier: 'back' })],
    httpRoutes: [edgeRoute],
    namespaces: [],
    gateways: [gateway],
    requestAuthentications: [
      authn('on-reviews', { targetRefs: [{ kind: 'Service', name: 'reviews' }], jwtRules: [rule('svc.example', { audiences: ['reviews'] })] }),
      authn('on-edge', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], jwtRules: [rule('edge.example', { fromHeaders: [{ name: 'X-Token' }], fromCookies: ['session'] })] }),
      authn('by-label', { selector: { matchLabels: { tier: 'back' } }, jwtRules: [rule('label.example')] }),
      authn('everyone', { jwtRules: [rule('ns.example', { clockSkew: '5s', jwksCacheDuration: '1m', forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'X-Sub', claim: 'sub' }] })] }),
      authn('missing', { targetRefs: [{ kind: 'Service', name: 'ghost' }], jwtRules: [rule('ghost.example')] }),
    ],
  };
  const issuers = (rules: { issuer: string }[] | undefined) => (rules ?? []).map((r) => r.issuer);
  // Sorted by policy name: by-label, everyone, missing, on-edge, on-reviews.
  assert.deepEqual(issuers(snapshotOf(input, sidecar('reviews-v1')).inbound.requestAuthentication), ['ns.example', 'svc.example']);
  assert.deepEqual(issuers(snapshotOf(input, sidecar('ratings-v1')).inbound.requestAuthentication), ['ns.example']);
  assert.deepEqual(issuers(snapshotOf(input, sidecar('other')).inbound.requestAuthentication), ['label.example', 'ns.example']);
  const edge = snapshotOf(input, edgeNode);
  assert.deepEqual(issuers(edge.gateway?.requestAuthentication), ['ns.example', 'edge.example']);
  assert.equal(edge.inbound.requestAuthentication, undefined);
  // Another namespace's workloads get nothing.
  assert.equal(snapshotOf({ ...input, workloads: [...input.workloads, parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews-v1', namespace: 'other', labels: { app: 'reviews' } }, spec: {} })] }, sidecar('reviews-v1', 'other')).inbound.requestAuthentication, undefined);

  const reviews = snapshotOf(input, sidecar('reviews-v1')).inbound.requestAuthentication!;
  assert.deepEqual(reviews[1], {
    id: 'mesh/on-reviews/0',
    issuer: 'svc.example',
    audiences: ['reviews'],
    jwksUri: 'https://svc.example/jwks.json',
    // No location given: Envoy's defaults, the Bearer scheme and ?access_token=.
    fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }],
    fromParams: ['access_token'],
    fromCookies: [],
    outputClaimToHeaders: [],
    forwardOriginalToken: false,
    algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
    clockSkewMs: 60_000,
    jwksCacheMs: 600_000,
    jwksTimeoutMs: 5000,
  });
  assert.deepEqual(
    [reviews[0]!.clockSkewMs, reviews[0]!.jwksCacheMs, reviews[0]!.forwardOriginalToken, reviews[0]!.outputClaimToHeaders],
    [5000, 60_000, true, [{ header: 'x-sub', claim: 'sub' }]],
  );
  const edgeRule = edge.gateway!.requestAuthentication![1]!;
  assert.deepEqual([edgeRule.fromHeaders, edgeRule.fromParams, edgeRule.fromCookies], [[{ name: 'x-token', prefix: '' }], [], ['session']]);

  const statuses = computeStatuses(input);
  const status = (name: string) => statuses.get(`weft.dev/RequestAuthentication/${NS}/${name}`) as { ancestors?: { ancestorRef: unknown; conditions: { reason: string; status: string; message: string }[] }[]; conditions?: { reason: string }[] };
  assert.deepEqual(status('on-reviews').ancestors?.map((a) => [a.ancestorRef, a.conditions[0]!.reason]), [[{ group: '', kind: 'Service', namespace: NS, name: 'reviews' }, 'Accepted']]);
  assert.deepEqual(status('on-edge').ancestors?.map((a) => a.conditions[0]!.reason), ['Accepted']);
  assert.deepEqual(status('missing').ancestors?.map((a) => [a.conditions[0]!.status, a.conditions[0]!.reason, a.conditions[0]!.message]), [['False', 'TargetNotFound', 'Service mesh/ghost does not exist']]);
  assert.deepEqual(status('everyone').conditions?.map((c) => c.reason), ['Accepted']);
});

test('compiler: a selector matches a Gateway by its gateway-name label; no policies, no field in the snapshot', () => {
  const input: CompilerInput = {
    services: [svc('reviews', { app: 'reviews' })],
    workloads: [template('reviews-v1', { app: 'reviews' })],
    httpRoutes: [edgeRoute],
    namespaces: [],
    gateways: [gateway],
    requestAuthentications: [authn('edge-by-label', { selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'edge' } }, jwtRules: [rule('edge.example')] })],
  };
  assert.deepEqual(snapshotOf(input, edgeNode).gateway?.requestAuthentication?.map((r) => r.id), ['mesh/edge-by-label/0']);
  assert.equal(snapshotOf(input, sidecar('reviews-v1')).inbound.requestAuthentication, undefined);
  const without = snapshotOf({ ...input, requestAuthentications: [] }, edgeNode);
  assert.equal(without.gateway?.requestAuthentication, undefined);
  assert.equal('requestAuthentication' in without.inbound, false);
});

test('compiler: a policy without targets in the root namespace applies to every namespace; with targetRefs, only to its own', () => {
  const root = (name: string, spec: unknown) => {
    const p = authn(name, spec);
    p.metadata.namespace = 'weft-system';
    return p;
  };
  const input: CompilerInput = {
    services: [svc('reviews', { app: 'reviews' })],
    workloads: [template('reviews-v1', { app: 'reviews' })],
    httpRoutes: [edgeRoute],
    namespaces: [],
    gateways: [gateway],
    requestAuthentications: [root('mesh-wide', { jwtRules: [rule('root.example')] }), root('targeted', { targetRefs: [{ kind: 'Service', name: 'reviews' }], jwtRules: [rule('nowhere.example')] })],
  };
  assert.deepEqual(snapshotOf(input, sidecar('reviews-v1')).inbound.requestAuthentication?.map((r) => r.issuer), ['root.example']);
  assert.deepEqual(snapshotOf(input, edgeNode).gateway?.requestAuthentication?.map((r) => r.issuer), ['root.example']);
  const elsewhere = { ...input, meshConfig: parsed<CompilerInput['meshConfig']>({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { rootNamespace: 'platform' } }) };
  assert.equal(snapshotOf(elsewhere, sidecar('reviews-v1')).inbound.requestAuthentication, undefined);
});

test('apiKeys: Secrets become SHA-256 digests naming their clients (the keys never reach a snapshot); defaults, clashes and missing Secrets in the status', () => {
  const secret = (name: string, spec: Record<string, unknown>): Secret => parsed({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, ...spec });
  assert.deepEqual(issues({ apiKeys: { credentialRefs: [] } }), ['spec.apiKeys.credentialRefs: Too small: expected array to have >=1 items']);
  assert.match(issues({ apiKeys: { credentialRefs: [{ name: 'k' }], clientIdHeader: 'Content-Length' } })[0]!, /apiKeys\.clientIdHeader: must not be a framing header/);
  assert.match(issues({ apiKeys: { credentialRefs: [{ kind: 'ConfigMap', name: 'k' }] } })[0]!, /apiKeys\.credentialRefs\[0\]\.kind/);
  const input: CompilerInput = {
    services: [svc('reviews', { app: 'reviews' })],
    workloads: [template('reviews-v1', { app: 'reviews' })],
    httpRoutes: [edgeRoute],
    namespaces: [],
    gateways: [gateway],
    secrets: [
      // stringData, and data in base64 (a key that is not ASCII is hashed as its UTF-8 bytes, as the proxy hashes what it reads).
      secret('partners', { stringData: { acme: 'acme-key-1' }, data: { globex: Buffer.from('glöbex-key-2').toString('base64') } }),
      secret('twins', { stringData: { one: 'same-key', two: 'same-key', three: 'own-key' } }),
    ],
    requestAuthentications: [
      authn('edge-keys', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }], apiKeys: { credentialRefs: [{ name: 'partners' }], clientIdHeader: 'X-Client' } }),
      authn('svc-keys', { targetRefs: [{ kind: 'Service', name: 'reviews' }], apiKeys: { credentialRefs: [{ name: 'twins' }, { name: 'ghost' }], fromHeaders: [{ name: 'Authorization', prefix: 'ApiKey ' }], fromParams: ['key'], forwardOriginalKey: true } }),
    ],
  };
  const sha = (text: string) => createHash('sha256').update(text).digest('hex');
  const edge = snapshotOf(input, edgeNode);
  assert.deepEqual(edge.gateway!.apiKeys, [
    { id: `${NS}/edge-keys`, keys: { [sha('acme-key-1')]: 'acme', [sha('glöbex-key-2')]: 'globex' }, fromHeaders: [{ name: 'x-api-key', prefix: '' }], fromParams: [], clientIdHeader: 'x-client', forwardOriginalKey: false },
  ]);
  assert.equal(edge.gateway!.requestAuthentication, undefined, 'no JWT rules: no field');
  assert.doesNotMatch(JSON.stringify(edge), /acme-key-1/);
  const reviews = snapshotOf(input, sidecar('reviews-v1')).inbound.apiKeys!;
  // The shared key is accepted for neither client; the Secret that does not exist adds none.
  assert.deepEqual(reviews[0]!.keys, { [sha('own-key')]: 'three' });
  assert.deepEqual([reviews[0]!.fromHeaders, reviews[0]!.fromParams, reviews[0]!.forwardOriginalKey], [[{ name: 'authorization', prefix: 'ApiKey ' }], ['key'], true]);
  const statuses = computeStatuses(input);
  const accepted = (name: string) => (statuses.get(`weft.dev/RequestAuthentication/${NS}/${name}`) as { ancestors: { conditions: { status: string; reason: string; message: string }[] }[] }).ancestors[0]!.conditions[0]!;
  assert.deepEqual([accepted('edge-keys').status, accepted('edge-keys').reason], ['True', 'Accepted']);
  assert.deepEqual([accepted('svc-keys').status, accepted('svc-keys').reason], ['False', 'Invalid']);
  assert.equal(
    accepted('svc-keys').message,
    'spec.apiKeys.credentialRefs[1]: Secret mesh/ghost does not exist; clients one, two of spec.apiKeys share one key: it is accepted for none of them',
  );
  // What the proxy's admin listener shows: the clients, not the digests.
  const shown = withoutPrivateKeys(edge)!;
  assert.deepEqual(Object.values(shown.gateway!.apiKeys![0]!.keys).sort(), ['acme', 'globex']);
  assert.doesNotMatch(JSON.stringify(shown), new RegExp(sha('acme-key-1')));
});
