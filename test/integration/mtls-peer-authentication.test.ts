// PeerAuthentication end to end: in a STRICT mesh, one workload set to PERMISSIVE accepts plaintext on its tunnel while its STRICT neighbour refuses it; mTLS keeps working for both.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { startBackend, viaProxy, type Backend, type TestProxy } from './proxy-helpers.ts';
import { plaintextTunnelRequest, rawTunnelHead, startMeshSidecar } from './mtls-helpers.ts';

const PA_PATH = '/apis/weft.dev/v1alpha1/namespaces/default/peerauthentications';

function workload(name: string) {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name, labels: { app: name } }, spec: { serviceAccount: name, ports: [{ name: 'http', port: 9080 }] } };
}

function service(name: string) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] } };
}

const mesh = [
  service('reviews'),
  service('ratings'),
  workload('reviews'),
  workload('ratings'),
  { apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'productpage', labels: { app: 'productpage' } }, spec: { serviceAccount: 'productpage' } },
  { apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls: { mode: 'STRICT' } } },
];

const ratingsPermissive = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name: 'ratings-migration', namespace: 'default' },
  spec: { selector: { matchLabels: { app: 'ratings' } }, mtls: { mode: 'PERMISSIVE' } },
};

describe('PeerAuthentication: per-workload mTLS modes', () => {
  let cp: RunningControlPlane;
  const started: { close(): Promise<void> }[] = [];
  const backends: Record<string, Backend> = {};
  const proxies: Record<string, TestProxy> = {};

  before(async () => {
    cp = await startTestControlPlane();
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [...mesh, ratingsPermissive] });
    assert.equal(applied.status, 200, applied.text);
    for (const name of ['reviews', 'ratings']) {
      const app = await startBackend(`${name}-app`);
      started.push(app);
      backends[name] = app;
      const proxy = await startMeshSidecar(cp, name, app.port);
      started.push(proxy);
      proxies[name] = proxy;
    }
    const client = await startMeshSidecar(cp, 'productpage');
    started.push(client);
    proxies.productpage = client;
    for (const name of ['reviews', 'ratings']) {
      await waitFor(async () => (await viaProxy(client.proxy.ports.outbound, `http://${name}:9080/warm-up`)).status === 200, { timeoutMs: 10_000, message: `the client reaching ${name}` });
    }
  });

  after(async () => {
    for (const s of started.reverse()) await s.close();
    await cp?.close();
  });

  it('accepts plaintext at the PERMISSIVE workload, refuses it at its STRICT neighbour, and the policy is Accepted', async () => {
    const permissive = await waitFor(
      async () => {
        const outcome = await plaintextTunnelRequest(proxies.ratings!.proxy.ports.tunnel);
        return outcome.startsWith('HTTP/1.1 200') ? outcome : undefined;
      },
      { timeoutMs: 5000, message: 'plaintext accepted by ratings' },
    );
    assert.match(permissive, /x-backend: ratings-app/i);
    const seen = backends.reviews!.requests;
    const strict = await plaintextTunnelRequest(proxies.reviews!.proxy.ports.tunnel);
    assert.doesNotMatch(strict, /^HTTP\//, `reviews answered plaintext: ${strict}`);
    assert.equal(backends.reviews!.requests, seen);

    // mTLS from a mesh client works for both, and the PERMISSIVE one still sees the verified caller.
    for (const name of ['reviews', 'ratings']) {
      const res = await viaProxy(proxies.productpage!.proxy.ports.outbound, `http://${name}:9080/mtls`);
      assert.equal(res.status, 200, res.body);
      assert.match(String(res.json().headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    }

    const stored = await api(cp.apiUrl, 'GET', `${PA_PATH}/ratings-migration`);
    await waitFor(async () => (await api(cp.apiUrl, 'GET', `${PA_PATH}/ratings-migration`)).body?.status?.conditions?.[0]?.status === 'True', {
      timeoutMs: 5000,
      message: `the PeerAuthentication Accepted (was ${JSON.stringify(stored.body?.status)})`,
    });
  });

  it('checks a CONNECT head on the tunnel as the outbound port does: a duplicate Host is refused with 400, a clean one is spliced', async () => {
    const port = proxies.ratings!.proxy.ports.tunnel;
    const refused = await rawTunnelHead(port, 'CONNECT ratings:9080 HTTP/1.1\r\nhost: ratings:9080\r\nhost: elsewhere:9080\r\n\r\n');
    assert.match(refused, /^HTTP\/1\.1 400 /, refused);
    assert.match(refused, /weft-reason: WEFT_ERR_BAD_REQUEST/i);
    const spliced = await rawTunnelHead(port, 'CONNECT ratings:9080 HTTP/1.1\r\nhost: ratings:9080\r\n\r\n');
    assert.match(spliced, /^HTTP\/1\.1 200 /, spliced);
  });

  it('takes effect live: setting the workload back to UNSET inherits STRICT again and plaintext is refused', async () => {
    const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: [{ ...ratingsPermissive, spec: { ...ratingsPermissive.spec, mtls: { mode: 'UNSET' } } }] });
    assert.equal(applied.status, 200, applied.text);
    await waitFor(async () => !(await plaintextTunnelRequest(proxies.ratings!.proxy.ports.tunnel)).startsWith('HTTP/'), { timeoutMs: 5000, message: 'ratings refusing plaintext again' });
  });
});
