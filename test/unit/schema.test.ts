// The JSON Schemas and CRDs derived from the zod schemas: every kind has one, and CRDs are structural for Kubernetes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KINDS } from '../../src/api/resources.ts';
import { crdOf, jsonSchemaOf } from '../../src/api/schema.ts';
import { runWeft } from '../../src/testing/process.ts';

function everySchemaNode(node: unknown, visit: (n: Record<string, unknown>, path: string) => void, path = ''): void {
  if (!node || typeof node !== 'object') return;
  const n = node as Record<string, unknown>;
  visit(n, path);
  for (const [key, child] of Object.entries((n.properties as Record<string, unknown>) ?? {})) everySchemaNode(child, visit, `${path}.${key}`);
  if (n.items) everySchemaNode(n.items, visit, `${path}[]`);
  if (n.additionalProperties && typeof n.additionalProperties === 'object') everySchemaNode(n.additionalProperties, visit, `${path}{}`);
}

test('every kind has a JSON Schema with its apiVersions, kind and the spec fields of its zod schema', () => {
  for (const info of KINDS) {
    const schema = jsonSchemaOf(info) as { properties: Record<string, Record<string, unknown>> };
    assert.deepEqual(schema.properties.kind, { const: info.kind });
    assert.ok((schema.properties.apiVersion!.enum as string[]).length === info.versions.length);
    assert.equal(typeof schema.properties.spec, 'object');
  }
  const workload = jsonSchemaOf(KINDS.find((k) => k.kind === 'Workload')!) as { properties: { spec: { properties: Record<string, unknown> } } };
  for (const field of ['serviceAccount', 'address', 'ports', 'command', 'replicas', 'upstreams']) assert.ok(field in workload.properties.spec.properties, field);
});

test('CRDs of weft kinds are structural: a type at every level, no $schema, const or additionalProperties:false', () => {
  for (const info of KINDS.filter((k) => k.group === 'weft.dev')) {
    const crd = crdOf(info) as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
    everySchemaNode(crd.spec.versions[0]!.schema.openAPIV3Schema, (n, path) => {
      assert.ok(!('$schema' in n) && !('const' in n), `${info.kind}${path}`);
      assert.notEqual(n.additionalProperties, false, `${info.kind}${path}`);
      assert.ok(n.type || n['x-kubernetes-preserve-unknown-fields'] || n['x-kubernetes-int-or-string'], `${info.kind}${path} has no type`);
    });
  }
  assert.throws(() => crdOf(KINDS.find((k) => k.kind === 'HTTPRoute')!), /not a weft kind/);
});

test('weft schema prints a kind\'s schema, a CRD, and refuses unknown kinds', async () => {
  const schema = await runWeft(['schema', 'httproutes']);
  assert.equal(schema.code, 0, schema.stderr);
  assert.equal((JSON.parse(schema.stdout) as { properties: { kind: unknown } }).properties.kind && true, true);
  const crd = await runWeft(['schema', 'Workload', '--crd']);
  assert.equal(crd.code, 0, crd.stderr);
  assert.match(crd.stdout, /name: workloads\.weft\.dev/);
  const unknown = await runWeft(['schema', 'Pod']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown kind "Pod"/);
});
