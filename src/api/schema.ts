// JSON Schema and Kubernetes CRDs derived from the zod schemas, so that editors, kubectl and weft validate alike.
import { z } from 'zod';
import { apiVersionOf, type KindInfo } from './resources.ts';

type JsonSchema = Record<string, unknown>;

/** The JSON Schema of a whole object of this kind (envelope and spec), as a user writes it. */
export function jsonSchemaOf(info: KindInfo): JsonSchema {
  // "input": defaults make fields optional for the writer; "any" for what JSON Schema can't say (none today).
  const spec = z.toJSONSchema(info.spec, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete spec.$schema;
  const metadataRequired = ['name'];
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `${info.kind} (${apiVersionOf(info)})`,
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata'],
    properties: {
      apiVersion: { enum: info.versions.map((v) => apiVersionOf(info, v)) },
      kind: { const: info.kind },
      metadata: {
        type: 'object',
        required: metadataRequired,
        properties: {
          name: { type: 'string' },
          ...(info.namespaced ? { namespace: { type: 'string' } } : {}),
          labels: { type: 'object', additionalProperties: { type: 'string' } },
          annotations: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
      spec,
      status: { type: 'object' },
    },
  };
}

/**
 * A CustomResourceDefinition for a weft kind, so the same YAML can be applied to
 * Kubernetes. Kubernetes' structural schemas don't take `$schema`, `const` or
 * `additionalProperties: false` next to `properties`, so those are adapted.
 */
export function crdOf(info: KindInfo): JsonSchema {
  if (!info.group || info.group.endsWith('k8s.io')) throw new Error(`${info.kind} is not a weft kind: its CRD comes from its own project`);
  const spec = structural(z.toJSONSchema(info.spec, { io: 'input', unrepresentable: 'any' }) as JsonSchema);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${info.plural}.${info.group}` },
    spec: {
      group: info.group,
      scope: info.namespaced ? 'Namespaced' : 'Cluster',
      names: { kind: info.kind, plural: info.plural, singular: info.kind.toLowerCase(), listKind: `${info.kind}List` },
      versions: info.versions.map((version, i) => ({
        name: version,
        served: true,
        storage: i === 0,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { spec, status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        },
      })),
    },
  };
}

function structural(node: unknown): JsonSchema {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return {};
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    if (key === '$schema' || key === 'additionalProperties' && value === false) continue;
    if (key === 'const') out.enum = [value];
    else if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, structural(v)]));
    } else if ((key === 'items' || key === 'additionalProperties') && value && typeof value === 'object') out[key] = structural(value);
    else if ((key === 'anyOf' || key === 'oneOf' || key === 'allOf') && Array.isArray(value)) {
      // Structural schemas need a type at every level; a union of types becomes "any value", checked by weft itself.
      out['x-kubernetes-int-or-string'] = value.every((v) => ['integer', 'string', 'number'].includes(String((v as JsonSchema).type))) || undefined;
      if (!out['x-kubernetes-int-or-string']) {
        delete out['x-kubernetes-int-or-string'];
        out['x-kubernetes-preserve-unknown-fields'] = true;
      }
    } else out[key] = value;
  }
  return out;
}
