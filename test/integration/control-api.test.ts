// The control plane's REST API over real HTTP: apply, get, list, put with CAS, post, delete, watch, errors, statuses, restart.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startTestControlPlane, waitFor } from './control-helpers.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';

const SERVICES = '/api/v1/namespaces/default/services';
const WORKLOADS = '/apis/weft.dev/v1alpha1/namespaces/default/workloads';
const ROUTES = '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes';

function service(name: string, port = 9080, labels: Record<string, string> = { app: name }) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, labels }, spec: { selector: { app: name }, ports: [{ name: 'http', port }] } };
}

describe('control plane API', () => {
  let cp: RunningControlPlane;
  let base: string;
  before(async () => {
    cp = await startTestControlPlane();
    base = cp.apiUrl;
  });
  after(async () => {
    await cp.close();
  });

  it('serves an index page and a health check', async () => {
    const index = await api(base, 'GET', '/');
    assert.equal(index.status, 200);
    assert.match(index.text, /<title>weft<\/title>/);
    assert.match(index.text, /\/weft\/v1\/proxies/);
    const health = await api(base, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.text.trim(), 'ok');
  });

  it('applies objects: created, then unchanged, then configured', async () => {
    const items = [service('ratings'), { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'ratings', labels: { app: 'ratings' } }, spec: { ports: [{ port: 9080 }] } }];
    const first = await api(base, 'POST', '/weft/v1/apply', { items });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body.results.map((r: { action: string }) => r.action), ['created', 'created']);
    assert.equal(first.body.results[0].object.metadata.namespace, 'default');
    const again = await api(base, 'POST', '/weft/v1/apply', { items });
    assert.deepEqual(again.body.results.map((r: { action: string }) => r.action), ['unchanged', 'unchanged']);
    assert.equal(again.body.results[0].object.metadata.generation, 1);
    assert.equal(again.body.results[0].object.metadata.uid, first.body.results[0].object.metadata.uid);
    const changed = await api(base, 'POST', '/weft/v1/apply', { items: [service('ratings', 9081)] });
    assert.equal(changed.body.results[0].action, 'configured');
    assert.equal(changed.body.results[0].object.metadata.generation, 2);
  });

  it('applies YAML', async () => {
    const yaml = `apiVersion: v1
kind: Service
metadata:
  name: yaml-svc
  namespace: other
spec:
  ports:
    - port: 80
---
apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  trustDomain: example.org
`;
    const res = await api(base, 'POST', '/weft/v1/apply', yaml, 'application/yaml');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.results.map((r: { action: string }) => r.action), ['created', 'created']);
    const mesh = await api(base, 'GET', '/apis/weft.dev/v1alpha1/meshconfigs/default');
    assert.equal(mesh.status, 200);
    assert.equal(mesh.body.spec.trustDomain, 'example.org');
    const other = await api(base, 'GET', '/api/v1/namespaces/other/services/yaml-svc');
    assert.equal(other.status, 200);
  });

  it('rejects an apply with any invalid object with 422, every problem listed, and writes nothing', async () => {
    const items = [
      service('valid-one'),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'no-ports' }, spec: { ports: [] } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'bad-route' },
        spec: { parentRefs: [{ kind: 'Service', name: 'x' }], rules: [{ matches: [{ path: { type: 'Fuzzy', value: '/' } }] }] },
      },
    ];
    const res = await api(base, 'POST', '/weft/v1/apply', { items });
    assert.equal(res.status, 422, res.text);
    assert.equal(res.body.kind, 'Status');
    assert.equal(res.body.status, 'Failure');
    assert.equal(res.body.reason, 'Invalid');
    assert.equal(res.body.code, 422);
    assert.equal(res.body.weftCode, 'WEFT_ERR_INVALID');
    const causes = res.body.details.causes as { object: string; field: string; message: string }[];
    assert.ok(causes.some((c) => c.object === 'Service no-ports' && c.field === 'spec.ports'), JSON.stringify(causes));
    assert.ok(causes.some((c) => c.object === 'HTTPRoute bad-route' && c.field === 'spec.rules[0].matches[0].path.type'), JSON.stringify(causes));
    assert.equal((await api(base, 'GET', `${SERVICES}/valid-one`)).status, 404, 'the valid object was not written either');
  });

  it('reports YAML problems with line numbers', async () => {
    const yaml = `apiVersion: v1
kind: Service
metadata:
  name: bad
spec:
  ports:
    - port: 99999
`;
    const res = await api(base, 'POST', '/weft/v1/apply', yaml, 'application/yaml');
    assert.equal(res.status, 422);
    const cause = res.body.details.causes[0];
    assert.equal(cause.field, 'spec.ports[0].port');
    assert.equal(cause.line, 7);
  });

  it('gets one object, and answers 404 with a Status', async () => {
    await api(base, 'POST', '/weft/v1/apply', { items: [service('details')] });
    const one = await api(base, 'GET', `${SERVICES}/details`);
    assert.equal(one.status, 200);
    assert.equal(one.body.kind, 'Service');
    assert.equal(one.body.metadata.name, 'details');
    const missing = await api(base, 'GET', `${SERVICES}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.kind, 'Status');
    assert.equal(missing.body.reason, 'NotFound');
    assert.equal(missing.body.weftCode, 'WEFT_ERR_NOT_FOUND');
    assert.deepEqual(missing.body.details.causes, []);
    assert.equal((await api(base, 'GET', '/api/v1/namespaces/default/gizmos')).status, 404);
    assert.equal((await api(base, 'GET', '/apis/weft.dev/v9/namespaces/default/workloads')).status, 404);
    assert.equal((await api(base, 'GET', '/no/such/thing')).status, 404);
  });

  it('lists with a label selector, per namespace and across namespaces', async () => {
    await api(base, 'POST', '/weft/v1/apply', {
      items: [service('l1', 80, { tier: 'web', team: 'a' }), service('l2', 80, { tier: 'web', team: 'b' }), { ...service('l3', 80, { tier: 'web' }), metadata: { name: 'l3', namespace: 'two', labels: { tier: 'web' } } }],
    });
    const web = await api(base, 'GET', `${SERVICES}?labelSelector=tier%3Dweb`);
    assert.equal(web.status, 200);
    assert.equal(web.body.kind, 'ServiceList');
    assert.equal(web.body.apiVersion, 'v1');
    assert.match(web.body.metadata.resourceVersion, /^\d+$/);
    assert.deepEqual(web.body.items.map((s: { metadata: { name: string } }) => s.metadata.name), ['l1', 'l2']);
    const teamA = await api(base, 'GET', `${SERVICES}?labelSelector=${encodeURIComponent('tier=web,team=a')}`);
    assert.deepEqual(teamA.body.items.map((s: { metadata: { name: string } }) => s.metadata.name), ['l1']);
    const notA = await api(base, 'GET', `/api/v1/services?labelSelector=${encodeURIComponent('tier=web,team!=a')}`);
    assert.deepEqual(notA.body.items.map((s: { metadata: { name: string } }) => s.metadata.name), ['l2', 'l3']);
    const bad = await api(base, 'GET', `${SERVICES}?labelSelector=${encodeURIComponent('tier in (web)')}`);
    assert.equal(bad.status, 400);
  });

  it('puts with create-or-update and compare-and-swap', async () => {
    const created = await api(base, 'PUT', `${SERVICES}/cas`, service('cas'));
    assert.equal(created.status, 201, created.text);
    const rv = created.body.metadata.resourceVersion;
    const updated = await api(base, 'PUT', `${SERVICES}/cas`, { ...service('cas', 81), metadata: { name: 'cas', resourceVersion: rv } });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.body.metadata.generation, 2);
    const stale = await api(base, 'PUT', `${SERVICES}/cas`, { ...service('cas', 82), metadata: { name: 'cas', resourceVersion: rv } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, 'Conflict');
    assert.equal(stale.body.weftCode, 'WEFT_ERR_CONFLICT');
    const blind = await api(base, 'PUT', `${SERVICES}/cas`, service('cas', 83));
    assert.equal(blind.status, 200);
    const wrongName = await api(base, 'PUT', `${SERVICES}/cas`, service('other'));
    assert.equal(wrongName.status, 400);
    const wrongNs = await api(base, 'PUT', `${SERVICES}/cas`, { ...service('cas'), metadata: { name: 'cas', namespace: 'elsewhere' } });
    assert.equal(wrongNs.status, 400);
    const invalid = await api(base, 'PUT', `${SERVICES}/cas`, { ...service('cas'), spec: { ports: [{ port: 'x' }] } });
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.details.causes[0].field, 'spec.ports[0].port');
    const cluster = await api(base, 'PUT', '/apis/weft.dev/v1alpha1/meshconfigs/default', { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: {} });
    assert.ok(cluster.status === 200 || cluster.status === 201, cluster.text);
    assert.equal((await api(base, 'PUT', '/apis/weft.dev/v1alpha1/namespaces/default/meshconfigs/default', {})).status, 404);
  });

  it('creates with POST, 409 when it exists; deletes with DELETE, 404 after', async () => {
    const created = await api(base, 'POST', WORKLOADS, { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'posted' }, spec: {} });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.spec.serviceAccount, 'default', 'defaults are filled');
    const again = await api(base, 'POST', WORKLOADS, { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'posted' }, spec: {} });
    assert.equal(again.status, 409);
    assert.equal(again.body.reason, 'AlreadyExists');
    const deleted = await api(base, 'DELETE', `${WORKLOADS}/posted`);
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.metadata.name, 'posted');
    assert.equal((await api(base, 'DELETE', `${WORKLOADS}/posted`)).status, 404);
    assert.equal((await api(base, 'PATCH', `${WORKLOADS}/posted`, {})).status, 405);
  });

  it('answers malformed JSON with 400 and oversized bodies with 413', async () => {
    const malformed = await api(base, 'PUT', `${SERVICES}/x`, '{"kind": ');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.kind, 'Status');
    assert.equal(malformed.body.reason, 'BadRequest');
    const big = await api(base, 'POST', '/weft/v1/apply', JSON.stringify({ items: [], pad: 'x'.repeat(4 * 1024 * 1024 + 10) }));
    assert.equal(big.status, 413);
    assert.equal(big.body.code, 413);
  });

  it('streams watch events from a resourceVersion until the client goes away', async () => {
    const listed = await api(base, 'GET', ROUTES);
    const controller = new AbortController();
    const res = await fetch(`${base}${ROUTES}?watch=true&resourceVersion=${listed.body.metadata.resourceVersion}`, { signal: controller.signal });
    assert.equal(res.status, 200);
    const events: { type: string; object: { apiVersion: string; metadata: { name: string; generation?: number } } }[] = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          buffered += decoder.decode(chunk, { stream: true });
          let newline: number;
          while ((newline = buffered.indexOf('\n')) !== -1) {
            events.push(JSON.parse(buffered.slice(0, newline)));
            buffered = buffered.slice(newline + 1);
          }
        }
      } catch {
        // Aborted.
      }
    })();
    const route = (path: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'HTTPRoute',
      metadata: { name: 'watched' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'details' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }] }] },
    });
    await api(base, 'POST', '/weft/v1/apply', { items: [route('/a')] });
    await api(base, 'POST', '/weft/v1/apply', { items: [route('/b')] });
    await api(base, 'DELETE', `${ROUTES}/watched`);
    await waitFor(() => events.some((e) => e.type === 'DELETED'), 'the deletion, after the other events');
    // The leader's status writes interleave as MODIFIED events of the same generation; the spec changes are these three.
    const ours = events.filter((e) => e.object.metadata.name === 'watched');
    const specChanges = ours.filter((e, i) => e.type !== 'MODIFIED' || e.object.metadata.generation !== ours[i - 1]?.object.metadata.generation);
    assert.deepEqual(specChanges.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
    assert.equal(ours[0]!.object.apiVersion, 'gateway.networking.k8s.io/v1', 'answered in the version of the path');
    controller.abort();
    await reading;
  });

  it('refuses a watch from a resourceVersion that is not a number', async () => {
    const res = await api(base, 'GET', `${SERVICES}?watch=true&resourceVersion=abc`);
    assert.equal(res.status, 400);
  });

  it('writes statuses with lastTransitionTime and does not loop', async () => {
    await api(base, 'POST', '/weft/v1/apply', { items: [service('status-svc')] });
    const withStatus = await waitFor(async () => {
      const res = await api(base, 'GET', `${SERVICES}/status-svc`);
      return res.body?.status?.conditions?.length ? res.body : undefined;
    }, 'a status on the service');
    const accepted = withStatus.status.conditions.find((c: { type: string }) => c.type === 'Accepted');
    assert.equal(accepted.status, 'True');
    assert.match(accepted.lastTransitionTime, /^\d{4}-\d\d-\d\dT/);
    assert.equal(accepted.observedGeneration, 1);
    const before = (await api(base, 'GET', '/weft/v1/status')).body;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const afterwards = (await api(base, 'GET', '/weft/v1/status')).body;
    assert.equal(afterwards.revision, before.revision, 'status writes did not trigger more writes');
    assert.equal(afterwards.store, 'memory');
    assert.ok(afterwards.objects.Service >= 1);
  });

  it('lists proxies (none yet)', async () => {
    const res = await api(base, 'GET', '/weft/v1/proxies');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, []);
  });
});

describe('control plane on sqlite', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-cp-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps applied objects across a restart, and sends an ERROR to a watch from before it', async () => {
    const first = await startTestControlPlane({ dataDir });
    let revision: string;
    try {
      const res = await api(first.apiUrl, 'POST', '/weft/v1/apply', { items: [service('persisted'), service('persisted-2')] });
      assert.equal(res.status, 200, res.text);
      revision = (await api(first.apiUrl, 'GET', SERVICES)).body.metadata.resourceVersion;
    } finally {
      await first.close();
    }
    const second = await startTestControlPlane({ dataDir });
    try {
      const list = await api(second.apiUrl, 'GET', SERVICES);
      assert.deepEqual(list.body.items.map((s: { metadata: { name: string } }) => s.metadata.name), ['persisted', 'persisted-2']);
      assert.ok(Number(list.body.metadata.resourceVersion) >= Number(revision));
      const status = await api(second.apiUrl, 'GET', '/weft/v1/status');
      assert.equal(status.body.store, 'sqlite');
      const watch = await api(second.apiUrl, 'GET', `${SERVICES}?watch=true&resourceVersion=1`);
      const event = JSON.parse(watch.text.split('\n')[0]!);
      assert.equal(event.type, 'ERROR');
      assert.equal(event.object.code, 410);
    } finally {
      await second.close();
    }
  });
});
