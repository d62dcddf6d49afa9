// Last known good with a real control plane (SQLite) and proxy: an HTTPRoute updated into one that cannot compile keeps its previous version in force, across a restart, until deleted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Condition } from '../../src/api/meta.ts';
import type { RunningControlPlane } from '../../src/control/main.ts';
import { LAST_GOOD_KIND } from '../../src/control/last-good.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { api, startTestControlPlane } from './control-helpers.ts';
import { startTestProxy, viaProxy, type TestProxy } from './proxy-helpers.ts';
import { startRecorder, type RecordingServer } from './routing-helpers.ts';

const ROUTE = '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/web';

let dataDir: string;
let cp: RunningControlPlane | undefined;
let client: TestProxy | undefined;
const backends: Record<'web' | 'a' | 'b', RecordingServer> = {} as never;

/** Services web, a and b, each one static endpoint (a recorder answering its name), and the client's template. */
function mesh(): unknown[] {
  const items: unknown[] = [{ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: 'client' }, spec: { serviceAccount: 'client' } }];
  for (const [name, backend] of Object.entries(backends)) {
    items.push({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: backend.port }] } });
    items.push({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name: `${name}-0`, labels: { app: name } }, spec: { address: '127.0.0.1' } });
  }
  return items;
}

/** The route on Service web: /a to `target`, plus any extra rules, and everything else to web. */
function route(target: string, extraRules: unknown[] = []): unknown {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/a' } }], backendRefs: [{ name: target, port: 80 }] },
        ...extraRules,
        { backendRefs: [{ name: 'web', port: 80 }] },
      ],
    },
  };
}

const INVALID_RULE = { matches: [{ path: { type: 'RegularExpression', value: '/broken/([' } }], backendRefs: [{ name: 'b', port: 80 }] };

async function apply(item: unknown): Promise<void> {
  const applied = await api(cp!.apiUrl, 'POST', '/weft/v1/apply', { items: [item] });
  assert.equal(applied.status, 200, applied.text);
}

async function startClient(): Promise<TestProxy> {
  return startTestProxy({ controlPlane: cp!.streamUrl, workload: 'client', instance: `client-${Date.now()}`, token: await cp!.tokens.create({ namespace: 'default', workload: 'client' }) });
}

/** Who answers GET http://web/a/x through the client's sidecar, once it says `expected`. */
async function answersA(expected: string, message: string): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      const res = await viaProxy(client!.proxy.ports.outbound, 'http://web/a/x');
      last = `${res.status} ${res.body}`;
      return res.status === 200 && res.body === expected;
    },
    { timeoutMs: 10_000, message: `${message} (last answer: ${last})` },
  ).catch((error: Error) => assert.fail(`${error.message}; last answer ${last}`));
}

/** The route's conditions (first parent) by type, once `ready` holds for them. */
async function routeConditions(ready: (byType: Record<string, Condition>, generation: number) => boolean, message: string): Promise<{ byType: Record<string, Condition>; generation: number }> {
  return waitFor(
    async () => {
      const res = await api(cp!.apiUrl, 'GET', ROUTE);
      const conditions: Condition[] = res.body?.status?.parents?.[0]?.conditions ?? [];
      const byType = Object.fromEntries(conditions.map((c) => [c.type, c]));
      const generation = res.body?.metadata?.generation as number;
      return ready(byType, generation) ? { byType, generation } : undefined;
    },
    { timeoutMs: 10_000, message },
  );
}

async function records(): Promise<number> {
  const { items } = await cp!.store.list({ group: 'internal.weft.dev', kind: LAST_GOOD_KIND });
  return items.length;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'weft-last-good-'));
  backends.web = await startRecorder('web');
  backends.a = await startRecorder('a');
  backends.b = await startRecorder('b');
  cp = await startTestControlPlane({ dataDir });
  const applied = await api(cp.apiUrl, 'POST', '/weft/v1/apply', { items: mesh() });
  assert.equal(applied.status, 200, applied.text);
  client = await startClient();
});

after(async () => {
  await client?.close();
  await cp?.close();
  for (const backend of Object.values(backends)) await backend?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('an update with an invalid regex leaves the previous version in force and says so in the status; a valid update then takes effect', async () => {
  await apply(route('a'));
  await answersA('a', '/a reaching a (generation 1)');
  await waitFor(async () => (await records()) === 1, { message: 'the last good version recorded in the store' });

  // Generation 2 sends /a to web and has a rule that cannot compile: generation 1 stays in force, whole.
  await apply(route('web', [INVALID_RULE]));
  const { byType, generation } = await routeConditions((c) => c.PartiallyInvalid?.observedGeneration === 2, 'the status of generation 2');
  assert.equal(generation, 2);
  assert.equal(byType.PartiallyInvalid!.status, 'True');
  assert.equal(byType.PartiallyInvalid!.reason, 'UnsupportedValue');
  assert.match(byType.PartiallyInvalid!.message, /^Fall Back: generation 2 is invalid: rules\[1\]\.matches\[0\]\.path: invalid regular expression "\/broken\/\(\["/);
  assert.match(byType.PartiallyInvalid!.message, /generation 1 stays in force$/);
  assert.equal(byType.Accepted!.status, 'True');
  assert.equal(byType.Accepted!.observedGeneration, 1, 'Accepted speaks of the generation in force');
  for (let i = 0; i < 5; i++) {
    const res = await viaProxy(client!.proxy.ports.outbound, 'http://web/a/x');
    assert.equal(res.body, 'a', 'generation 1 still sends /a to a');
  }

  // Generation 3 is valid again: it takes effect, and the status is plain again.
  await apply(route('b'));
  await answersA('b', '/a reaching b (generation 3)');
  const valid = await routeConditions((c) => c.Accepted?.observedGeneration === 3, 'the status of generation 3');
  assert.equal(valid.byType.Accepted!.status, 'True');
  assert.equal(valid.byType.PartiallyInvalid, undefined);
});

test('after a control-plane restart the last good version is still in force, for a proxy that never saw it', async () => {
  await apply(route('web', [INVALID_RULE]));
  await routeConditions((c) => c.PartiallyInvalid?.observedGeneration === 4, 'the status of generation 4');
  await answersA('b', 'generation 3 still in force');

  await client!.close();
  await cp!.close();
  cp = await startTestControlPlane({ dataDir });
  client = await startClient();
  await answersA('b', 'generation 3 in force after the restart');
  const { byType } = await routeConditions((c) => c.PartiallyInvalid?.observedGeneration === 4, 'the status after the restart');
  assert.match(byType.PartiallyInvalid!.message, /generation 3 stays in force$/);
});

test('deleting the route removes its last good version: created again, an invalid rule is only dropped', async () => {
  const deleted = await api(cp!.apiUrl, 'DELETE', ROUTE);
  assert.equal(deleted.status, 200, deleted.text);
  await answersA('web', '/a reaching web once the route is gone');
  await waitFor(async () => (await records()) === 0, { message: 'the last good record deleted' });

  // A new route of the same name that never had a good version: its invalid rule is dropped, its valid ones serve.
  await apply(route('a', [INVALID_RULE]));
  await answersA('a', '/a reaching a through the new route (nothing of the old one back)');
  const { byType } = await routeConditions((c) => c.PartiallyInvalid !== undefined, 'the new route’s status');
  assert.match(byType.PartiallyInvalid!.message, /^Dropped Rule/);
  assert.equal(await records(), 0, 'no good version to record');
});
