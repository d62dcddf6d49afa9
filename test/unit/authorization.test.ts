// Unit tests of AuthorizationPolicy: schema errors, what the compiler gives each workload and gateway (and statuses), and Istio's matching semantics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileAuthorization, type AuthzRequest } from '../../src/api/authorization.ts';
import type { AuthorizationPolicy, Gateway, MeshConfig, Service, Workload } from '../../src/api/resources.ts';
import type { NodeInfo, SnapshotAuthorization, SnapshotAuthzRule } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';

const NS = 'shop';

function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.resource as T;
}

function issues(spec: unknown): string[] {
  const result = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: NS }, spec });
  return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
}

function policy(name: string, spec: unknown, namespace = NS): AuthorizationPolicy {
  const p = parsed<AuthorizationPolicy>({ apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace }, spec });
  p.metadata.generation = 1;
  return p;
}

function workload(name: string, labels: Record<string, string> = {}, namespace = NS): Workload {
  return parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name, namespace, labels }, spec: { ports: [{ port: 8080 }] } });
}

function service(name: string, selector: Record<string, string>): Service {
  return parsed({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector, ports: [{ port: 80, targetPort: 8080 }] } });
}

function input(policies: AuthorizationPolicy[], extra: Partial<CompilerInput> = {}): CompilerInput {
  return {
    services: [service('reviews', { app: 'reviews' })],
    workloads: [workload('reviews', { app: 'reviews', version: 'v1' }), workload('ratings', { app: 'ratings' }), workload('other', { app: 'other' }, 'elsewhere')],
    httpRoutes: [],
    namespaces: [],
    authorizationPolicies: policies,
    ...extra,
  };
}

function sidecar(name: string, namespace = NS): NodeInfo {
  return { id: `${namespace}/${name}-1`, mode: 'sidecar', namespace, workload: name, address: '127.0.0.1', tunnelPort: 15008, appPorts: [8080] };
}

function authzOf(i: CompilerInput, who: NodeInfo): SnapshotAuthorization | undefined {
  const snapshot = compile(i, who);
  assert.deepEqual(checkSnapshot(snapshot), []);
  return snapshot.inbound.authorization;
}

// ------------------------------------------------------------------ schema

test('the schema names the field and why', () => {
  assert.deepEqual(issues({ action: 'PERMIT' }), ['spec.action: must be ALLOW, DENY, AUDIT or CUSTOM']);
  assert.deepEqual(issues({ action: 'CUSTOM' }), ['spec.provider: a CUSTOM policy names its extensionProvider (provider.name)']);
  assert.match(issues({ rules: [{ from: [{ source: {} }] }] }).join(), /spec\.rules\[0\]\.from\[0\]\.source: a source needs at least one of principals/);
  assert.match(issues({ rules: [{ to: [{ operation: { paths: ['/a*b'] } }] }] }).join(), /spec\.rules\[0\]\.to\[0\]\.operation\.paths\[0\]: a "\*" may only start or end the value/);
  assert.match(issues({ rules: [{ to: [{ operation: { paths: ['admin'] } }] }] }).join(), /paths\[0\]: must start with "\/"/);
  assert.match(issues({ rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] }).join(), /ipBlocks\[0\]: must be an IP address or a CIDR block/);
  assert.match(issues({ rules: [{ to: [{ operation: { ports: ['http'] } }] }] }).join(), /ports\[0\]/);
  assert.match(issues({ rules: [{ when: [{ key: 'request.foo', values: ['x'] }] }] }).join(), /when\[0\]\.key: must be one of request\.headers\[<name>\]/);
  assert.match(issues({ rules: [{ when: [{ key: 'request.headers[x-a]' }] }] }).join(), /when\[0\]\.values: a condition needs values, notValues or both/);
  assert.match(issues({ rules: [{ when: [{ key: 'source.ip', values: ['nope'] }] }] }).join(), /source\.ip takes IP addresses/);
  assert.match(issues({ selector: { matchLabels: { app: 'a' } }, targetRefs: [{ kind: 'Service', name: 'a' }] }).join(), /spec\.selector: use targetRefs or selector, not both/);
  assert.match(issues({ targetRefs: [{ kind: 'HTTPRoute', name: 'a' }] }).join(), /targetRefs\[0\]\.kind: must be Service or Gateway/);
  assert.match(issues({ rules: [{ from: [{ source: { principals: [] } }] }] }).join(), /principals: must list at least one value/);
  assert.deepEqual(issues({}), [], 'an empty spec is a valid (deny-all) ALLOW policy');
  assert.deepEqual(
    issues({
      action: 'DENY',
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/a/sa/*'], notNamespaces: ['x'], ipBlocks: ['10.0.0.0/8', '::1'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/admin*', '*.php'], ports: ['8080', 9090] } }],
          when: [
            { key: 'request.headers[X-Env]', values: ['prod'] },
            { key: 'request.auth.claims[realm][role]', notValues: ['guest'] },
            { key: 'destination.port', values: ['8080'] },
          ],
        },
      ],
    }),
    [],
  );
  const p = policy('defaults', {});
  assert.equal(p.spec.action, 'ALLOW');
});

test('MeshConfig takes the default-deny switch, path normalisation and the root namespace', () => {
  const ok = validateResource({
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'MeshConfig',
    metadata: { name: 'default' },
    spec: { authorization: { defaultAction: 'DENY' }, pathNormalization: 'MERGE_SLASHES', rootNamespace: 'mesh-root' },
  });
  assert.equal(ok.ok, true);
  const bad = validateResource({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { pathNormalization: 'DECODE' } });
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.issues[0]!.path, /spec\.pathNormalization/);
});

// ------------------------------------------------------------------ compiler

test('a namespace-wide policy applies to every workload of its namespace, and to none elsewhere', () => {
  const i = input([policy('ns-wide', { action: 'DENY', rules: [{}] })]);
  assert.deepEqual(authzOf(i, sidecar('reviews')), { deny: [{ name: 'shop/ns-wide', rules: [{}] }], audit: [] });
  assert.ok(authzOf(i, sidecar('ratings')));
  assert.equal(authzOf(i, sidecar('other', 'elsewhere')), undefined);
});

test('a node proxy\'s workload gets the same policies as its sidecar would', () => {
  const i = input([policy('ns-wide', { action: 'DENY', rules: [{}] })]);
  const node = { ...sidecar('reviews'), mode: 'node' as const };
  assert.deepEqual(authzOf(i, node), authzOf(i, sidecar('reviews')));
});

test('selector policies apply to the workloads whose labels match', () => {
  const i = input([policy('v1-only', { selector: { matchLabels: { app: 'reviews', version: 'v1' } }, rules: [{}] })]);
  assert.equal(authzOf(i, sidecar('reviews'))?.allow?.[0]?.name, 'shop/v1-only');
  assert.equal(authzOf(i, sidecar('ratings')), undefined);
});

test('a Service targetRef applies to the workloads the Service selects; statuses say Accepted or TargetNotFound', () => {
  const i = input([policy('on-reviews', { targetRefs: [{ kind: 'Service', name: 'reviews' }, { kind: 'Service', name: 'ghost' }], action: 'AUDIT', rules: [{}] })]);
  assert.equal(authzOf(i, sidecar('reviews'))?.audit[0]?.name, 'shop/on-reviews');
  assert.equal(authzOf(i, sidecar('ratings')), undefined);
  const status = computeStatuses(i).get('weft.dev/AuthorizationPolicy/shop/on-reviews') as { conditions: { reason: string }[]; ancestors: { ancestorRef: { name: string }; conditions: { status: string; reason: string }[] }[] };
  assert.equal(status.conditions[0]!.reason, 'Accepted');
  assert.deepEqual(
    status.ancestors.map((a) => [a.ancestorRef.name, a.conditions[0]!.status, a.conditions[0]!.reason]),
    [
      ['reviews', 'True', 'Accepted'],
      ['ghost', 'False', 'TargetNotFound'],
    ],
  );
  const none = computeStatuses(input([policy('lost', { targetRefs: [{ kind: 'Gateway', name: 'nope' }] })])).get('weft.dev/AuthorizationPolicy/shop/lost') as { conditions: { reason: string }[] };
  assert.equal(none.conditions[0]!.reason, 'TargetNotFound');
});

test('policies in the root namespace apply mesh-wide; MeshConfig may name another root', () => {
  const root = policy('mesh-deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/debug*'] } }] }] }, 'weft-system');
  assert.equal(authzOf(input([root]), sidecar('other', 'elsewhere'))?.deny[0]?.name, 'weft-system/mesh-deny');
  const meshConfig = parsed<MeshConfig>({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { rootNamespace: 'mesh-root' } });
  assert.equal(authzOf(input([root], { meshConfig }), sidecar('other', 'elsewhere')), undefined);
});

test('the default-deny switch reaches every workload, with or without policies; pathNormalization reaches the mesh part', () => {
  const meshConfig = parsed<MeshConfig>({
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'MeshConfig',
    metadata: { name: 'default' },
    spec: { authorization: { defaultAction: 'DENY' }, pathNormalization: 'DECODE_AND_MERGE_SLASHES' },
  });
  const i = input([], { meshConfig });
  assert.deepEqual(authzOf(i, sidecar('ratings')), { deny: [], audit: [], defaultDeny: true });
  assert.equal(compile(i, sidecar('ratings')).mesh.pathNormalization, 'DECODE_AND_MERGE_SLASHES');
  assert.equal(compile(input([]), sidecar('ratings')).mesh.pathNormalization, undefined, 'BASE is the default and is left out');
  assert.equal(compile(input([]), sidecar('ratings')).inbound.authorization, undefined);
});

test('the compiled rules are plain JSON: principals without spiffe://, hosts lower-case, ports as numbers', () => {
  const i = input([
    policy('shape', {
      rules: [
        {
          from: [{ source: { principals: ['spiffe://cluster.local/ns/shop/sa/web', 'cluster.local/ns/shop/sa/api'] } }],
          to: [{ operation: { hosts: ['Reviews.Shop'], ports: ['8080'] } }],
          when: [{ key: 'source.principal', values: ['spiffe://cluster.local/ns/x/sa/y'] }],
        },
      ],
    }),
  ]);
  const rule = authzOf(i, sidecar('reviews'))?.allow?.[0]?.rules[0];
  assert.deepEqual(rule, {
    from: [{ principals: ['cluster.local/ns/shop/sa/web', 'cluster.local/ns/shop/sa/api'] }],
    to: [{ hosts: ['reviews.shop'], ports: [8080] }],
    when: [{ key: 'source.principal', values: ['cluster.local/ns/x/sa/y'] }],
  });
});

test('gateways get the policies that target their Gateway and the namespace-wide ones', () => {
  const gateway = parsed<Gateway>({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: NS },
    spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
  });
  const i = input(
    [
      policy('on-edge', { targetRefs: [{ kind: 'Gateway', name: 'edge' }], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
      policy('on-svc', { targetRefs: [{ kind: 'Service', name: 'reviews' }], rules: [{}] }),
      policy('selected', { selector: { matchLabels: { app: 'reviews' } }, rules: [{}] }),
    ],
    { gateways: [gateway] },
  );
  const snapshot = compile(i, { id: `${NS}/edge-1`, mode: 'gateway', namespace: NS, gateway: `${NS}/edge`, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] });
  assert.deepEqual(snapshot.gateway?.authorization, { deny: [{ name: 'shop/on-edge', rules: [{ to: [{ paths: ['/admin*'] }] }] }], audit: [] });
});

// ------------------------------------------------------------------ matching semantics

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const ADMIN = 'spiffe://cluster.local/ns/ops/sa/admin';

function req(over: Partial<AuthzRequest> & { path?: string; method?: string; headers?: Record<string, string>; host?: string; claims?: Record<string, unknown>; principal?: string } = {}): AuthzRequest {
  const headers = over.headers ?? {};
  return {
    peerIdentity: 'peerIdentity' in over ? over.peerIdentity : WEB,
    sourceIp: over.sourceIp ?? '10.1.2.3',
    port: over.port ?? 8080,
    http: {
      method: over.method ?? 'GET',
      host: over.host ?? 'reviews.shop',
      path: over.path ?? '/',
      header: (name) => headers[name],
      requestPrincipal: over.principal,
      jwtClaims: over.claims,
    },
  };
}

function allows(authorization: SnapshotAuthorization, request: AuthzRequest, tcp = false): boolean {
  return compileAuthorization(authorization, tcp)(request).allowed;
}

const allowOnly = (...rules: SnapshotAuthzRule[]): SnapshotAuthorization => ({ deny: [], audit: [], allow: [{ name: 'shop/allow', rules }] });
const denyOnly = (...rules: SnapshotAuthzRule[]): SnapshotAuthorization => ({ deny: [{ name: 'shop/deny', rules }], audit: [] });

test('Istio edge cases: ALLOW with no rules denies all, ALLOW with {} allows all, DENY with no rules matches nothing', () => {
  assert.equal(allows(allowOnly(), req()), false);
  assert.equal(allows(allowOnly({}), req()), true);
  assert.equal(allows(denyOnly(), req()), true);
  assert.equal(allows(denyOnly({}), req()), false);
  assert.equal(allows({ deny: [], audit: [], defaultDeny: true }, req()), false);
  assert.equal(allows({ deny: [], audit: [], defaultDeny: true, allow: [{ name: 'a', rules: [{}] }] }, req()), true);
});

test('DENY wins over ALLOW; AUDIT decides nothing but is reported', () => {
  const decision = compileAuthorization({ deny: [{ name: 'shop/d', rules: [{ to: [{ paths: ['/admin*'] }] }] }], allow: [{ name: 'shop/a', rules: [{}] }], audit: [{ name: 'shop/au', rules: [{}] }] })(
    req({ path: '/admin/x' }),
  );
  assert.deepEqual({ allowed: decision.allowed, policy: decision.policy, audited: decision.audited }, { allowed: false, policy: 'shop/d', audited: ['shop/au'] });
  assert.equal(allows({ deny: [], audit: [{ name: 'x', rules: [{}] }] }, req()), true);
});

test('string matches: exact, prefix, suffix and "*" (present and non-empty)', () => {
  const a = allowOnly({ to: [{ paths: ['/exact', '/api/*', '*.json'] }] });
  assert.equal(allows(a, req({ path: '/exact' })), true);
  assert.equal(allows(a, req({ path: '/exact/' })), false);
  assert.equal(allows(a, req({ path: '/api/v1' })), true);
  assert.equal(allows(a, req({ path: '/api' })), false);
  assert.equal(allows(a, req({ path: '/x/data.json' })), true);
  const anyPrincipal = allowOnly({ from: [{ principals: ['*'] }] });
  assert.equal(allows(anyPrincipal, req()), true);
  assert.equal(allows(anyPrincipal, req({ peerIdentity: undefined })), false, 'a plaintext caller has no principal');
  assert.equal(allows(allowOnly({ from: [{ principals: ['cluster.local/ns/shop/*'] }] }), req()), true);
  assert.equal(allows(allowOnly({ from: [{ principals: ['cluster.local/ns/shop/*'] }] }), req({ peerIdentity: ADMIN })), false);
});

test('not-fields: the value must match none; an absent value matches every not', () => {
  const a = allowOnly({ from: [{ notNamespaces: ['ops'] }] });
  assert.equal(allows(a, req()), true);
  assert.equal(allows(a, req({ peerIdentity: ADMIN })), false);
  assert.equal(allows(a, req({ peerIdentity: undefined })), true);
  const noJwt = denyOnly({ from: [{ notRequestPrincipals: ['*'] }] });
  assert.equal(allows(noJwt, req()), false, 'no JWT: denied');
  assert.equal(allows(noJwt, req({ principal: 'https://issuer/alice' })), true);
});

test('fields of a source are ANDed, sources and operations ORed, conditions ANDed', () => {
  const a = allowOnly({
    from: [{ namespaces: ['shop'], ipBlocks: ['10.0.0.0/8'] }, { principals: ['cluster.local/ns/ops/sa/admin'] }],
    to: [{ methods: ['GET'] }, { methods: ['POST'], paths: ['/orders'] }],
  });
  assert.equal(allows(a, req()), true);
  assert.equal(allows(a, req({ sourceIp: '192.168.1.1' })), false);
  assert.equal(allows(a, req({ peerIdentity: ADMIN, sourceIp: '192.168.1.1' })), true);
  assert.equal(allows(a, req({ method: 'POST', path: '/orders' })), true);
  assert.equal(allows(a, req({ method: 'POST', path: '/other' })), false);
  assert.equal(allows(a, req({ method: 'DELETE' })), false);
});

test('ipBlocks take CIDRs and single addresses, v4-mapped v6 included', () => {
  const a = allowOnly({ from: [{ ipBlocks: ['127.0.0.0/8', '2001:db8::/32'] }] });
  assert.equal(allows(a, req({ sourceIp: '127.0.0.1' })), true);
  assert.equal(allows(a, req({ sourceIp: '::ffff:127.0.0.1' })), true);
  assert.equal(allows(a, req({ sourceIp: '2001:db8::5' })), true);
  assert.equal(allows(a, req({ sourceIp: '10.0.0.1' })), false);
});

test('when: headers, claims (nested and lists), audiences, source and destination keys', () => {
  assert.equal(allows(allowOnly({ when: [{ key: 'request.headers[x-env]', values: ['prod*'] }] }), req({ headers: { 'x-env': 'production' } })), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.headers[x-env]', values: ['prod*'] }] }), req()), false);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.headers[x-env]', notValues: ['dev'] }] }), req()), true);
  const claims = { groups: ['dev', 'admin'], realm: { role: 'editor' }, aud: ['a', 'b'], level: 3 };
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] }), req({ claims })), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.claims[realm][role]', values: ['editor'] }] }), req({ claims })), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.claims[realm][role]', values: ['admin'] }] }), req({ claims })), false);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.claims[level]', values: ['3'] }] }), req({ claims })), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.audiences', values: ['b'] }] }), req({ claims })), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] }), req()), false, 'no token, no claims');
  assert.equal(allows(allowOnly({ when: [{ key: 'source.namespace', values: ['shop'] }] }), req()), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'source.principal', values: ['cluster.local/ns/shop/sa/web'] }] }), req()), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }), req()), true);
  assert.equal(allows(allowOnly({ when: [{ key: 'destination.port', values: ['9090'] }] }), req()), false);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.auth.principal', values: ['https://issuer/*'] }] }), req({ principal: 'https://issuer/alice' })), true);
});

test('hosts match the Host header case-insensitively, port as sent', () => {
  const a = allowOnly({ to: [{ hosts: ['reviews.shop', 'reviews.shop:*'] }] });
  assert.equal(allows(a, req({ host: 'Reviews.Shop' })), true);
  assert.equal(allows(a, req({ host: 'reviews.shop:80' })), true);
  assert.equal(allows(a, req({ host: 'ratings.shop' })), false);
});

test('TCP: ALLOW rules with HTTP-only fields never match; DENY rules drop those fields and deny more', () => {
  const tcp: AuthzRequest = { peerIdentity: WEB, sourceIp: '10.1.2.3', port: 5432 };
  assert.equal(allows(allowOnly({ from: [{ namespaces: ['shop'] }], to: [{ ports: [5432] }] }), tcp, true), true);
  assert.equal(allows(allowOnly({ to: [{ methods: ['GET'] }] }), tcp, true), false);
  assert.equal(allows(allowOnly({ when: [{ key: 'request.headers[x]', values: ['y'] }] }), tcp, true), false);
  assert.equal(allows(denyOnly({ from: [{ namespaces: ['shop'] }], to: [{ paths: ['/admin'] }] }), tcp, true), false);
  assert.equal(allows(denyOnly({ from: [{ namespaces: ['ops'] }], to: [{ paths: ['/admin'] }] }), tcp, true), true);
});

test('IP parsing without node:net: v4, v6 with ::, embedded v4, and what is not an address', async () => {
  const { compileIpBlocks, parseIp, parseIpBlock } = await import('../../src/api/ip-blocks.ts');
  assert.deepEqual([...parseIp('10.1.2.3')!], [10, 1, 2, 3]);
  assert.deepEqual([...parseIp('::ffff:10.1.2.3')!], [10, 1, 2, 3]);
  assert.equal(parseIp('::1')!.length, 16);
  assert.equal(parseIp('2001:db8::1:2')![15], 2);
  for (const bad of ['10.1.2', '256.1.1.1', '1::2::3', 'x', '1:2:3:4:5:6:7:8:9', '']) assert.equal(parseIp(bad), undefined, bad);
  assert.equal(parseIpBlock('10.0.0.0/33'), undefined);
  assert.equal(parseIpBlock('::/129'), undefined);
  const match = compileIpBlocks(['10.0.0.0/8', '192.168.1.128/25', '2001:db8::/32', '::ffff:172.16.0.0/108']);
  assert.equal(match('10.255.0.1'), true);
  assert.equal(match('11.0.0.1'), false);
  assert.equal(match('192.168.1.200'), true);
  assert.equal(match('192.168.1.100'), false);
  assert.equal(match('2001:db8:ffff::1'), true);
  assert.equal(match('2001:db9::1'), false);
  assert.equal(match('172.16.5.5'), true);
  assert.equal(match('::ffff:10.0.0.1'), true);
});

// ------------------------------------------------------------------ CUSTOM (external authorization)

test('CUSTOM: the provider resolves to a backend with its settings, an unknown one keeps the policy closed, and weft get shows both', async () => {
  const meshConfig = parsed<MeshConfig>({
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'MeshConfig',
    metadata: { name: 'default' },
    spec: { extensionProviders: [{ name: 'opa', envoyExtAuthzHttp: { service: 'reviews.shop.svc.cluster.local', port: 80, includeRequestHeadersInCheck: ['X-User'], includeAdditionalHeadersInCheck: { 'X-From': 'weft' } } }] },
  });
  const checked = policy('checked', { selector: { matchLabels: { app: 'reviews' } }, action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] });
  const lost = policy('lost', { selector: { matchLabels: { app: 'reviews' } }, action: 'CUSTOM', provider: { name: 'nobody' }, rules: [{}] });
  const i = input([checked, lost], { meshConfig });
  const authz = authzOf(i, sidecar('reviews'))!;
  assert.deepEqual(authz.custom, [
    {
      name: 'shop/checked',
      rules: [{}],
      provider: {
        name: 'opa',
        backend: 'shop/reviews:80',
        host: 'reviews.shop',
        timeoutMs: 1000,
        pathPrefix: '',
        includeRequestHeaders: ['x-user'],
        additionalHeaders: { 'x-from': 'weft' },
        headersToUpstreamOnAllow: [],
        headersToDownstreamOnAllow: [],
        headersToDownstreamOnDeny: [],
        failOpen: false,
        statusOnError: 403,
      },
    },
    { name: 'shop/lost', rules: [{}] },
  ]);
  // CUSTOM policies are not among the ALLOW policies: they do not make the workload deny what no ALLOW matches.
  assert.equal(authz.allow, undefined);
  const statuses = computeStatuses(i);
  const status = (name: string) => (statuses.get(`weft.dev/AuthorizationPolicy/shop/${name}`) as { conditions: { status: string; reason: string; message: string }[] }).conditions[0]!;
  assert.equal(status('checked').status, 'True');
  assert.deepEqual([status('lost').status, status('lost').reason], ['False', 'InvalidProvider']);

  const { formatTable } = await import('../../src/cli/get.ts');
  const shown = [checked, lost].map((p) => ({ ...p, status: statuses.get(`weft.dev/AuthorizationPolicy/shop/${p.metadata.name}`) }));
  const text = formatTable({ kind: 'AuthorizationPolicy', namespaced: true }, shown, false, Date.now());
  assert.match(text, /^NAME\s+NAMESPACE\s+ACTION\s+APPLIES TO\s+ACCEPTED\s+AGE$/m);
  assert.match(text, /^checked\s+shop\s+CUSTOM \(opa\)\s+app=reviews\s+True\s/m);
  assert.match(text, /^lost\s+shop\s+CUSTOM \(nobody\)\s+app=reviews\s+False \(InvalidProvider\)\s/m);
});
