// AuthorizationPolicy end to end: a control plane, a server sidecar and two client sidecars over mTLS; ALLOW by principal, DENY by path, default deny, TCP refused, gRPC-style answers, the audit log, and policy status.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCodes } from '../../src/api/errors.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import type { AuditRecord, AuditSink } from '../../src/proxy/audit-log.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { startBackend, startTestProxy, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';

const mesh = [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'reviews' },
    spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }, { name: 'tcp-db', port: 5432 }] },
  },
  {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'reviews', labels: { app: 'reviews' } },
    spec: { serviceAccount: 'reviews', ports: [{ name: 'http', port: 9080 }, { name: 'tcp-db', port: 5432 }] },
  },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'productpage', labels: { app: 'productpage' } }, spec: { serviceAccount: 'productpage' } },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'ratings', labels: { app: 'ratings' } }, spec: { serviceAccount: 'ratings' } },
];

function policy(name: string, spec: unknown) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name }, spec };
}

function meshConfig(defaultAction: 'ALLOW' | 'DENY') {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { authorization: { defaultAction } } };
}

/** CONNECT through a sidecar's outbound port, then one line each way: "echo:<line>" when the connection reached the app, else how it ended. */
function tcpRoundTrip(outboundPort: number, authority: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: outboundPort, method: 'CONNECT', path: authority, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      resolve('timed out');
    }, 5000);
    const done = (outcome: string) => {
      clearTimeout(timer);
      resolve(outcome);
    };
    req.on('connect', (res, socket: Socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        done(`refused ${res.statusCode}`);
        return;
      }
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) {
          socket.destroy();
          done(text.trim());
        }
      });
      socket.on('error', () => done(`error after ${JSON.stringify(text)}`));
      socket.on('close', () => done(`closed after ${JSON.stringify(text)}`));
      socket.write('ping\n');
    });
    req.on('error', (error) => done(`error ${error.message}`));
    req.end();
  });
}

describe('AuthorizationPolicy at real sidecars over mTLS', () => {
  let cp: RunningControlPlane;
  let app: Backend;
  let db: Server;
  let dbConnections = 0;
  let server: TestProxy;
  let productpage: TestProxy;
  let ratings: TestProxy;
  const audit: AuditRecord[] = [];
  const sink: AuditSink = { write: (r) => void audit.push(r), dropped: 0, close: () => Promise.resolve() };

  const apply = async (...items: unknown[]) => {
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items });
    assert.equal(applied.status, 200, applied.text);
  };
  const get = (client: TestProxy, path: string, headers: Record<string, string> = {}) => viaProxy(client.proxy.ports.outbound, `http://reviews:9080${path}`, { headers });
  /** Policies reach the server sidecar with its next snapshot: poll until the expected answer. */
  const until = (client: TestProxy, path: string, status: number) =>
    waitFor(async () => (await get(client, path)).status === status, { timeoutMs: 10_000, message: `${path} answering ${status}` });

  before(async () => {
    cp = await startTestControlPlane({ leaseTtlMs: 3000 });
    await apply(...mesh);
    app = await startBackend('reviews-app');
    db = createServer((socket) => {
      dbConnections++;
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => socket.write(`echo:${chunk}`));
      socket.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => db.listen(0, '127.0.0.1', resolve));
    const dbPort = (db.address() as { port: number }).port;
    server = await startTestProxy({
      controlPlane: cp.streamUrl,
      workload: 'reviews',
      instance: 'reviews-0',
      appPorts: [
        { declared: 9080, actual: app.port },
        { declared: 5432, actual: dbPort },
      ],
      // One readiness round at start (both apps already listen), then none for the test's length: a probe is a TCP
      // connection to the app's ports, and the TCP case counts every connection the db app receives.
      readinessIntervalMs: 60_000,
      auditLog: sink,
      token: await cp.tokens.create({ namespace: 'default', workload: 'reviews' }),
    });
    productpage = await startTestProxy({
      controlPlane: cp.streamUrl,
      workload: 'productpage',
      instance: 'productpage-0',
      token: await cp.tokens.create({ namespace: 'default', workload: 'productpage' }),
    });
    ratings = await startTestProxy({
      controlPlane: cp.streamUrl,
      workload: 'ratings',
      instance: 'ratings-0',
      token: await cp.tokens.create({ namespace: 'default', workload: 'ratings' }),
    });
    await until(productpage, '/warm-up', 200);
    await until(ratings, '/warm-up', 200);
  });

  after(async () => {
    await ratings?.close();
    await productpage?.close();
    await server?.close();
    await app?.close();
    await new Promise<void>((resolve) => (db ? db.close(() => resolve()) : resolve()));
    await cp?.close();
  });

  it('ALLOW by principal: productpage gets through, ratings gets 403 with weft-reason; the app never sees the refused call', async () => {
    await apply(policy('reviews-callers', { selector: { matchLabels: { app: 'reviews' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/productpage'] } }] }] }));
    await until(ratings, '/probe', 403);
    const seen = app.requests;
    const refused = await get(ratings, '/from-ratings');
    assert.equal(app.requests, seen, 'the app never saw the refused call');
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['weft-reason'], ErrorCodes.RBAC_DENIED);
    assert.match(refused.body, /RBAC: access denied/);
    const allowed = await get(productpage, '/from-productpage');
    assert.equal(allowed.status, 200, allowed.body);
    assert.match(String(allowed.json().headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    const grpc = await get(ratings, '/pkg.Svc/Call', { 'content-type': 'application/grpc' });
    assert.equal(grpc.headers['grpc-status'], '7', 'a gRPC caller gets PERMISSION_DENIED');
    const status = await api(cp.apiUrl, 'GET', '/apis/weft.dev/v1alpha1/namespaces/default/authorizationpolicies/reviews-callers');
    await waitFor(async () => (await api(cp.apiUrl, 'GET', '/apis/weft.dev/v1alpha1/namespaces/default/authorizationpolicies/reviews-callers')).body?.status?.conditions?.[0]?.reason === 'Accepted', {
      timeoutMs: 5000,
      message: `the policy's status to say Accepted (${status.text})`,
    });
  });

  it('TCP: a denied caller\'s connection is closed before the app is dialled; an allowed one reaches it', async () => {
    assert.equal(await tcpRoundTrip(productpage.proxy.ports.outbound, 'reviews:5432'), 'echo:ping');
    const dialled = dbConnections;
    const outcome = await tcpRoundTrip(ratings.proxy.ports.outbound, 'reviews:5432');
    assert.equal(dbConnections, dialled, 'the app was never dialled for the denied caller');
    // The calling sidecar answers its client's CONNECT with the peer's refusal and closes it; no byte reached the app.
    assert.equal(outcome, 'refused 403');
    assert.ok(audit.some((r) => r.principal === 'spiffe://cluster.local/ns/default/sa/ratings' && r.port === 5432 && r.decision === 'deny' && r.method === undefined));
  });

  it('DENY by path wins over ALLOW, after normalisation; the audit log gets a line naming the policy', async () => {
    await apply(policy('no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }));
    await until(productpage, '/admin', 403);
    for (const path of ['/admin', '/public/../admin/x', '/%61dmin']) {
      const res = await get(productpage, path);
      assert.equal(res.status, 403, path);
      assert.equal(res.headers['weft-reason'], ErrorCodes.RBAC_DENIED);
    }
    assert.equal((await get(productpage, '/public')).status, 200);
    const line = audit.find((r) => r.action === 'DENY' && r.path === '/admin');
    assert.ok(line, JSON.stringify(audit.slice(-3)));
    assert.equal(line.policy, 'default/no-admin');
    assert.equal(line.principal, 'spiffe://cluster.local/ns/default/sa/productpage');
    assert.equal(line.method, 'GET');
    assert.equal(line.decision, 'deny');
    assert.equal(line.at, 'inbound');
    assert.ok(!Number.isNaN(Date.parse(line.time)));
    assert.ok(line.sourceIp);
  });

  it('the mesh-wide default deny refuses what no ALLOW policy allows', async () => {
    await apply(policy('reviews-callers', { selector: { matchLabels: { app: 'ratings' } }, rules: [{}] }), policy('no-admin', { action: 'DENY' }), meshConfig('DENY'));
    await until(productpage, '/default-deny', 403);
    const res = await get(productpage, '/default-deny');
    assert.equal(res.headers['weft-reason'], ErrorCodes.RBAC_DENIED);
    assert.ok(audit.some((r) => r.action === 'DEFAULT' && r.path === '/default-deny'));
    await apply(meshConfig('ALLOW'));
    await until(productpage, '/default-deny', 200);
  });
});
