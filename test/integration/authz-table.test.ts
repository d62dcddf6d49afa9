// AuthorizationPolicy table: request × policy cases through one real sidecar (its tunnel listener, mTLS, normaliser and inbound stack), policies compiled by the real compiler and pushed between groups.
//
// The proxy runs in this process with a stand-in control plane, so that each
// group's policies can be pushed at once and the caller's identity varied per
// request: every call is an mTLS connection to the tunnel port with a client
// certificate for that identity, as a peer proxy would make. JWT cases
// (requestPrincipals, claims) belong to the RequestAuthentication tests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes } from '../../src/api/errors.ts';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { compile } from '../../src/compiler/compile.ts';
import type { CompilerInput } from '../../src/compiler/types.ts';
import type { Resource } from '../../src/api/meta.ts';
import type { AuditRecord, AuditSink } from '../../src/proxy/audit-log.ts';
import { FakeControlPlane, startTestProxy, tunnelClientCredentials, viaProxy, viaTunnel, type TestProxy } from './proxy-helpers.ts';
import { startRecorder, type RecordingServer } from './routing-helpers.ts';

const NS = 'shop';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const BATCH = 'spiffe://cluster.local/ns/shop/sa/batch';
const OPS = 'spiffe://cluster.local/ns/ops/sa/admin';

interface Case {
  who?: string;
  method?: string;
  path: string;
  port?: number;
  headers?: Record<string, string>;
  status: number;
}

interface Group {
  name: string;
  policies: unknown[];
  mesh?: Record<string, unknown>;
  cases: Case[];
}

const P = (name: string, spec: unknown) => ({ apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: NS }, spec });

const GROUPS: Group[] = [
  {
    name: 'ALLOW by principal and by namespace',
    policies: [P('callers', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }, { source: { namespaces: ['ops'] } }] }] })],
    cases: [
      { who: WEB, path: '/', status: 200 },
      { who: OPS, path: '/', status: 200 },
      { who: BATCH, path: '/', status: 403 },
    ],
  },
  {
    name: 'DENY by path, with encoded and dot segments normalised first (BASE)',
    policies: [P('allow-all', { rules: [{}] }), P('no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] })],
    cases: [
      { path: '/admin', status: 403 },
      { path: '/admin/users', status: 403 },
      { path: '/public/../admin', status: 403 },
      { path: '/public/%2e%2e/admin', status: 403 },
      { path: '/%61dmin/users', status: 403 },
      { path: '/./admin', status: 403 },
      { path: '/admin?debug=1', status: 403 },
      { path: '/ADMIN', status: 200 },
      { path: '/administrator', status: 200 },
      { path: '/public', status: 200 },
      { path: '/admin%2Fusers', status: 200 },
      { path: '//admin', status: 200 },
      { path: '/a%zz', status: 400 },
      { path: '/a%00b', status: 400 },
    ],
  },
  {
    name: 'the same DENY under DECODE_AND_MERGE_SLASHES',
    mesh: { pathNormalization: 'DECODE_AND_MERGE_SLASHES' },
    policies: [P('allow-all', { rules: [{}] }), P('no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] })],
    cases: [
      { path: '/admin%2Fusers', status: 403 },
      { path: '/admin%2fusers', status: 403 },
      { path: '//admin', status: 403 },
      { path: '/public%2F..%2Fadmin', status: 403 },
      { path: '/public', status: 200 },
    ],
  },
  {
    name: 'methods and paths: read-only API',
    policies: [P('read-only', { rules: [{ to: [{ operation: { methods: ['GET', 'HEAD'], paths: ['/api/*'] } }] }] })],
    cases: [
      { method: 'GET', path: '/api/items', status: 200 },
      { method: 'HEAD', path: '/api/items', status: 200 },
      { method: 'POST', path: '/api/items', status: 403 },
      { method: 'DELETE', path: '/api/items/1', status: 403 },
      { method: 'GET', path: '/other', status: 403 },
      { method: 'GET', path: '/api/../other', status: 403 },
    ],
  },
  {
    name: 'DENY with notMethods and notPaths',
    policies: [P('allow-all', { rules: [{}] }), P('writes-only-to-orders', { action: 'DENY', rules: [{ to: [{ operation: { notMethods: ['GET'], notPaths: ['/orders*'] } }] }] })],
    cases: [
      { method: 'POST', path: '/items', status: 403 },
      { method: 'POST', path: '/orders/1', status: 200 },
      { method: 'GET', path: '/items', status: 200 },
    ],
  },
  {
    name: 'when: request headers',
    policies: [P('env', { rules: [{ when: [{ key: 'request.headers[x-env]', values: ['prod', 'stag*'] }] }] })],
    cases: [
      { path: '/', headers: { 'x-env': 'prod' }, status: 200 },
      { path: '/', headers: { 'x-env': 'staging' }, status: 200 },
      { path: '/', headers: { 'x-env': 'dev' }, status: 403 },
      { path: '/', status: 403 },
    ],
  },
  {
    name: 'ports',
    policies: [P('only-8080', { rules: [{ to: [{ operation: { ports: ['8080'] } }] }] })],
    cases: [
      { path: '/', port: 8080, status: 200 },
      { path: '/', port: 9090, status: 403 },
    ],
  },
  {
    name: 'DENY from other namespaces (notNamespaces), and by principal suffix',
    policies: [
      P('allow-all', { rules: [{}] }),
      P('outsiders', { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['shop'] } }] }] }),
      P('no-batch', { action: 'DENY', rules: [{ from: [{ source: { principals: ['*/sa/batch'] } }] }] }),
    ],
    cases: [
      { who: WEB, path: '/', status: 200 },
      { who: OPS, path: '/', status: 403 },
      { who: BATCH, path: '/', status: 403 },
    ],
  },
  {
    name: 'mesh-wide default deny',
    mesh: { authorization: { defaultAction: 'DENY' } },
    policies: [],
    cases: [
      { who: WEB, path: '/', status: 403 },
      { who: OPS, path: '/', status: 403 },
    ],
  },
  {
    name: 'default deny with an ALLOW policy for one caller',
    mesh: { authorization: { defaultAction: 'DENY' } },
    policies: [P('web-only', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }] })],
    cases: [
      { who: WEB, path: '/', status: 200 },
      { who: BATCH, path: '/', status: 403 },
    ],
  },
  {
    name: 'ipBlocks and hosts',
    policies: [P('local-host', { rules: [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }], to: [{ operation: { hosts: ['reviews.shop', 'reviews.shop:*'] } }] }] })],
    cases: [
      { path: '/', headers: { host: 'reviews.shop:8080' }, status: 200 },
      { path: '/', headers: { host: 'REVIEWS.shop' }, status: 200 },
      { path: '/', headers: { host: 'evil.example' }, status: 403 },
    ],
  },
  {
    name: 'notIpBlocks',
    policies: [P('not-local', { rules: [{ from: [{ source: { notIpBlocks: ['127.0.0.1'] } }] }] })],
    cases: [{ path: '/', status: 403 }],
  },
  {
    name: 'an ALLOW policy with no rules allows nothing; a DENY with no rules denies nothing; AUDIT decides nothing',
    policies: [P('nothing', {}), P('deny-nothing', { action: 'DENY' }), P('audit-all', { action: 'AUDIT', rules: [{}] })],
    cases: [{ path: '/', status: 403 }],
  },
  {
    name: 'AUDIT alone lets everything through',
    policies: [P('audit-all', { action: 'AUDIT', rules: [{}] })],
    cases: [
      { who: WEB, path: '/audited', status: 200 },
      { who: OPS, method: 'DELETE', path: '/audited', status: 200 },
    ],
  },
  {
    name: 'requestPrincipals without a JWT',
    policies: [P('jwt-only', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] })],
    cases: [{ path: '/', status: 403 }],
  },
];

function parsed(raw: unknown): Resource {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.resource;
}

function snapshotFor(group: Group): ProxySnapshot {
  const input: CompilerInput = {
    services: [parsed({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ port: 8080 }] } })] as CompilerInput['services'],
    workloads: [
      parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews', namespace: NS, labels: { app: 'reviews' } }, spec: { ports: [{ port: 8080 }, { port: 9090 }] } }),
    ] as CompilerInput['workloads'],
    httpRoutes: [],
    namespaces: [],
    authorizationPolicies: group.policies.map(parsed) as CompilerInput['authorizationPolicies'],
  };
  if (group.mesh) input.meshConfig = parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: group.mesh }) as CompilerInput['meshConfig'];
  return compile(input, { id: `${NS}/reviews-0`, mode: 'sidecar', namespace: NS, workload: 'reviews', address: '127.0.0.1', tunnelPort: 0, appPorts: [8080, 9090] });
}

describe('AuthorizationPolicy table at a real sidecar', () => {
  let cp: FakeControlPlane;
  let app: RecordingServer;
  let server: TestProxy;
  const audit: AuditRecord[] = [];
  const sink: AuditSink = { write: (r) => void audit.push(r), dropped: 0, close: () => Promise.resolve() };
  const credentials = new Map<string, Awaited<ReturnType<typeof tunnelClientCredentials>>>();

  before(async () => {
    cp = await FakeControlPlane.start();
    app = await startRecorder('reviews');
    server = await startTestProxy({
      controlPlane: cp.url,
      namespace: NS,
      workload: 'reviews',
      identity: 'spiffe://cluster.local/ns/shop/sa/reviews',
      appPorts: [
        { declared: 8080, actual: app.port },
        { declared: 9090, actual: app.port },
      ],
      auditLog: sink,
    });
    for (const who of [WEB, BATCH, OPS]) credentials.set(who, await tunnelClientCredentials(who));
  });

  after(async () => {
    await server?.close();
    await app?.close();
    await cp?.close();
  });

  let total = 0;
  for (const group of GROUPS) {
    it(group.name, async () => {
      const nonce = cp.push(snapshotFor(group));
      const answer = await cp.answerTo(nonce);
      assert.equal(answer.type, 'ack', JSON.stringify(answer));
      const failures: string[] = [];
      for (const c of group.cases) {
        const port = c.port ?? 8080;
        const res = await viaTunnel(server.proxy.ports.tunnel, c.path, {
          method: c.method ?? 'GET',
          headers: { host: 'reviews.shop', 'weft-target-port': String(port), ...c.headers },
          credentials: credentials.get(c.who ?? WEB)!,
        });
        total++;
        const reason = res.headers['weft-reason'];
        const expectedReason = c.status === 403 ? ErrorCodes.RBAC_DENIED : c.status === 400 ? ErrorCodes.INVALID_PATH : undefined;
        if (res.status !== c.status || reason !== expectedReason) {
          failures.push(`${c.method ?? 'GET'} ${c.path} :${port} as ${(c.who ?? WEB).split('/ns/')[1]}: expected ${c.status} ${expectedReason ?? ''}, got ${res.status} ${String(reason ?? '')} ${res.body.trim()}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  }

  it('covers at least 40 cases; the audit log holds the AUDIT matches and the denials', () => {
    assert.ok(total >= 40, `${total} cases`);
    const audited = audit.filter((r) => r.action === 'AUDIT' && r.path === '/audited');
    assert.equal(audited.length, 2);
    assert.deepEqual(
      audited.map((r) => [r.principal, r.method, r.decision, r.policy]),
      [
        [WEB, 'GET', 'allow', 'shop/audit-all'],
        [OPS, 'DELETE', 'allow', 'shop/audit-all'],
      ],
    );
    const denied = audit.find((r) => r.action === 'DENY' && r.path === '/admin');
    assert.ok(denied, 'a DENY decision is logged');
    assert.equal(denied.policy, 'shop/no-admin');
    assert.equal(denied.decision, 'deny');
    assert.equal(denied.sourceIp?.endsWith('127.0.0.1'), true);
    // Requests an app answered went through; the ones refused never reached it.
    assert.deepEqual(app.requests.filter((r) => r.url === '/admin' || r.url.startsWith('/admin/')), []);
  });
});

describe('AuthorizationPolicy table at a real gateway (targetRef Gateway)', () => {
  let app: RecordingServer;
  let gateway: TestProxy;
  let port = 0;
  const audit: AuditRecord[] = [];
  const sink: AuditSink = { write: (r) => void audit.push(r), dropped: 0, close: () => Promise.resolve() };

  before(async () => {
    app = await startRecorder('web');
    const objects = [
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: NS }, spec: { gatewayClassName: 'weft', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } },
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web', namespace: NS }, spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: app.port }] } },
      { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'web-0', namespace: NS, labels: { app: 'web' } }, spec: { address: '127.0.0.1', ports: [{ port: app.port }] } },
      P('edge-deny', { targetRefs: [{ kind: 'Gateway', name: 'edge' }], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }, { when: [{ key: 'request.headers[x-block]', values: ['*'] }] }] }),
      P('edge-allow', { targetRefs: [{ kind: 'Gateway', name: 'edge' }], rules: [{ from: [{ source: { ipBlocks: ['127.0.0.0/8'] } }], to: [{ operation: { methods: ['GET', 'POST'] } }] }] }),
      P('edge-audit', { targetRefs: [{ kind: 'Gateway', name: 'edge' }], action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
    ].map(parsed);
    const input: CompilerInput = { services: [], workloads: [], httpRoutes: [], namespaces: [], gateways: [], authorizationPolicies: [] };
    const lists: Record<string, unknown[]> = input as unknown as Record<string, unknown[]>;
    const field: Record<string, string> = { Gateway: 'gateways', HTTPRoute: 'httpRoutes', Service: 'services', Workload: 'workloads', AuthorizationPolicy: 'authorizationPolicies' };
    for (const o of objects) lists[field[o.kind]!]!.push(o);
    const snapshot = compile(input, { id: `${NS}/edge-0`, mode: 'gateway', namespace: NS, gateway: `${NS}/edge`, address: '127.0.0.1', tunnelPort: 0, appPorts: [] });
    assert.ok(snapshot.gateway?.authorization, 'the Gateway carries its policies');
    gateway = await startTestProxy({
      mode: 'gateway',
      namespace: NS,
      snapshot,
      gateway: { name: `${NS}/edge`, portMap: new Map([[80, 0]]) },
      auditLog: sink,
    });
    port = Number(gateway.proxy.gatewayPorts()['80']);
    assert.ok(port > 0);
  });

  after(async () => {
    await gateway?.close();
    await app?.close();
  });

  const cases: { method?: string; path: string; headers?: Record<string, string>; status: number }[] = [
    { path: '/', status: 200 },
    { method: 'POST', path: '/orders', status: 200 },
    { method: 'DELETE', path: '/orders/1', status: 403 },
    { path: '/admin', status: 403 },
    { path: '/shop/../admin/panel', status: 403 },
    { path: '/%61dmin', status: 403 },
    { path: '/', headers: { 'x-block': 'yes' }, status: 403 },
    { path: '/bad%2', status: 400 },
  ];
  it('denies, allows and audits at the edge, on the normalised path', async () => {
    const failures: string[] = [];
    for (const c of cases) {
      const res = await viaProxy(port, c.path, { method: c.method ?? 'GET', headers: { host: 'shop.example', ...c.headers } });
      const reason = res.headers['weft-reason'];
      const expectedReason = c.status === 403 ? ErrorCodes.RBAC_DENIED : c.status === 400 ? ErrorCodes.INVALID_PATH : undefined;
      if (res.status !== c.status || reason !== expectedReason) failures.push(`${c.method ?? 'GET'} ${c.path}: expected ${c.status}, got ${res.status} ${String(reason ?? '')} ${res.body.trim()}`);
    }
    assert.deepEqual(failures, []);
    assert.equal(app.requests.filter((r) => r.url.includes('admin')).length, 0);
    const audited = audit.find((r) => r.action === 'AUDIT');
    assert.ok(audited);
    assert.deepEqual([audited.at, audited.proxy, audited.policy, audited.method, audited.principal], ['gateway', `${NS}/edge`, `${NS}/edge-audit`, 'POST', null]);
    assert.ok(audit.some((r) => r.action === 'ALLOW' && r.method === 'DELETE' && r.decision === 'deny'), 'a denial for want of a matching ALLOW is logged');
  });
});
