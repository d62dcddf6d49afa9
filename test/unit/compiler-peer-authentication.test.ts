// Unit tests of PeerAuthentication: schema errors, the mode each sidecar gets (workload over namespace over MeshConfig, UNSET inherits, oldest wins), statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MeshConfig, PeerAuthentication, Workload } from '../../src/api/resources.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';
import { validateResource } from '../../src/api/validate.ts';
import { checkSnapshot, compile } from '../../src/compiler/compile.ts';
import { computeStatuses } from '../../src/compiler/status.ts';
import type { CompilerInput, ObjectStatus } from '../../src/compiler/types.ts';

function parsed<T>(raw: unknown): T {
  const result = validateResource(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.resource as T;
}

function issues(raw: unknown): string[] {
  const result = validateResource(raw);
  return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
}

function peerAuthn(name: string, namespace: string, spec: unknown, creationTimestamp = '2024-01-01T00:00:00Z'): PeerAuthentication {
  const p = parsed<PeerAuthentication>({ apiVersion: 'weft.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name, namespace }, spec });
  p.metadata.creationTimestamp = creationTimestamp;
  p.metadata.generation = 1;
  return p;
}

function template(name: string, namespace: string, labels: Record<string, string>): Workload {
  return parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'Workload', metadata: { name, namespace, labels }, spec: { serviceAccount: name } });
}

function meshConfig(mode: 'STRICT' | 'PERMISSIVE'): MeshConfig {
  return parsed({ apiVersion: 'weft.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls: { mode } } });
}

const workloads = [
  template('reviews', 'shop', { app: 'reviews', tier: 'back' }),
  template('ratings', 'shop', { app: 'ratings', tier: 'back' }),
  template('legacy', 'shop', { app: 'legacy' }),
  template('billing', 'pay', { app: 'billing' }),
];

function modeOf(input: CompilerInput, namespace: string, workload: string | undefined, mode: NodeInfo['mode'] = 'sidecar'): string | undefined {
  const node: NodeInfo = { id: `${namespace}/${workload ?? 'x'}-0`, mode, namespace, address: '127.0.0.1', tunnelPort: 15008, appPorts: [] };
  if (workload !== undefined) node.workload = workload;
  const snapshot = compile(input, node);
  assert.deepEqual(checkSnapshot(snapshot), []);
  return snapshot.mesh.mtls?.mode;
}

function input(peerAuthentications: PeerAuthentication[], mesh?: MeshConfig): CompilerInput {
  return { services: [], workloads, httpRoutes: [], namespaces: [], peerAuthentications, meshConfig: mesh };
}

test('the schema names the field and why: modes, selectors, no portLevelMtls', () => {
  const base = { apiVersion: 'weft.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'p', namespace: 'shop' } };
  assert.deepEqual(issues({ ...base, spec: { mtls: { mode: 'DISABLE' } } }).length, 1);
  assert.match(issues({ ...base, spec: { mtls: { mode: 'DISABLE' } } })[0]!, /mtls\.mode/);
  assert.match(issues({ ...base, spec: { selector: { matchLabels: {} } } })[0]!, /selector\.matchLabels: must name at least one label/);
  assert.match(issues({ ...base, spec: { portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } } })[0]!, /portLevelMtls/);
  assert.deepEqual(issues({ ...base, spec: {} }), []);
  assert.equal(peerAuthn('p', 'shop', { mtls: {} }).spec.mtls?.mode, 'UNSET', 'an empty mtls is UNSET');
});

test('without any PeerAuthentication every sidecar follows MeshConfig (STRICT by default)', () => {
  assert.equal(modeOf(input([]), 'shop', 'reviews'), 'STRICT');
  assert.equal(modeOf(input([], meshConfig('PERMISSIVE')), 'shop', 'reviews'), 'PERMISSIVE');
});

test('precedence: workload over namespace over MeshConfig; UNSET inherits from the level above', () => {
  const policies = [
    peerAuthn('ns-wide', 'shop', { mtls: { mode: 'PERMISSIVE' } }),
    peerAuthn('reviews-strict', 'shop', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'STRICT' } }),
    peerAuthn('ratings-unset', 'shop', { selector: { matchLabels: { app: 'ratings' } }, mtls: { mode: 'UNSET' } }),
  ];
  const strictMesh = input(policies, meshConfig('STRICT'));
  assert.equal(modeOf(strictMesh, 'shop', 'reviews'), 'STRICT', 'the workload policy beats the namespace-wide one');
  assert.equal(modeOf(strictMesh, 'shop', 'ratings'), 'PERMISSIVE', 'UNSET at the workload takes the namespace-wide mode');
  assert.equal(modeOf(strictMesh, 'shop', 'legacy'), 'PERMISSIVE', 'no workload policy: the namespace-wide mode');
  assert.equal(modeOf(strictMesh, 'shop', undefined), 'PERMISSIVE', 'a sidecar without a template takes the namespace-wide mode');
  assert.equal(modeOf(strictMesh, 'pay', 'billing'), 'STRICT', 'another namespace: MeshConfig');
  assert.equal(modeOf(strictMesh, 'shop', undefined, 'gateway'), 'STRICT', 'gateways follow MeshConfig');

  const unsetNamespace = input([peerAuthn('ns-unset', 'shop', {}), peerAuthn('legacy', 'shop', { selector: { matchLabels: { app: 'legacy' } }, mtls: { mode: 'PERMISSIVE' } })], meshConfig('STRICT'));
  assert.equal(modeOf(unsetNamespace, 'shop', 'reviews'), 'STRICT', 'UNSET namespace-wide: MeshConfig');
  assert.equal(modeOf(unsetNamespace, 'shop', 'legacy'), 'PERMISSIVE', 'one workload in PERMISSIVE in a STRICT mesh');
});

test('at one level the oldest policy wins; a second namespace-wide policy is Conflicted, the others Accepted', () => {
  const policies = [
    peerAuthn('newer-wide', 'shop', { mtls: { mode: 'STRICT' } }, '2024-02-01T00:00:00Z'),
    peerAuthn('older-wide', 'shop', { mtls: { mode: 'PERMISSIVE' } }, '2024-01-01T00:00:00Z'),
    peerAuthn('newer-back', 'shop', { selector: { matchLabels: { tier: 'back' } }, mtls: { mode: 'PERMISSIVE' } }, '2024-03-01T00:00:00Z'),
    peerAuthn('older-back', 'shop', { selector: { matchLabels: { tier: 'back' } }, mtls: { mode: 'STRICT' } }, '2024-01-15T00:00:00Z'),
  ];
  const all = input(policies);
  assert.equal(modeOf(all, 'shop', 'legacy'), 'PERMISSIVE', 'the older namespace-wide policy');
  assert.equal(modeOf(all, 'shop', 'reviews'), 'STRICT', 'the older of two matching workload policies');
  const statuses = computeStatuses(all);
  const conditionOf = (name: string) => (statuses.get(`weft.dev/PeerAuthentication/shop/${name}`) as ObjectStatus | undefined)?.conditions[0];
  assert.equal(conditionOf('older-wide')?.status, 'True');
  assert.equal(conditionOf('newer-wide')?.reason, 'Conflicted');
  assert.match(conditionOf('newer-wide')!.message, /shop\/older-wide/);
  assert.equal(conditionOf('older-back')?.status, 'True');
  assert.equal(conditionOf('newer-back')?.status, 'True');
});
