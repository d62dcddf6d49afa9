// Kubernetes-shaped object metadata, status conditions and object keys shared by every kind.
import { z } from 'zod';

/** RFC 1123 label: what Kubernetes accepts for namespaces and most names. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case letters, digits and "-", starting and ending with a letter or digit');

/** RFC 1123 subdomain: object names may contain dots. */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
  );

export const ObjectMeta = z.looseObject({
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  uid: z.string().optional(),
  creationTimestamp: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

export const Condition = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string().default(''),
  observedGeneration: z.number().int().optional(),
  lastTransitionTime: z.string().optional(),
});
export type Condition = z.infer<typeof Condition>;

/** Any stored object: the envelope every kind shares. `spec` is validated per kind. */
export interface Resource<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** Identifies one object in the store independent of its version. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string | undefined;
  name: string;
}

/** The group of an apiVersion: "" for core v1, "gateway.networking.k8s.io" for "gateway.networking.k8s.io/v1". */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/**
 * The store key of an object. Versions of a group share a key so that an object
 * applied as v1beta1 and later as v1 is one object, as in Kubernetes.
 */
export function objectKey(ref: ObjectRef): string {
  return `${groupOf(ref.apiVersion) || 'core'}/${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;
}

/** "ns/name" (or "name" for cluster-scoped objects), for messages and logs. */
export function displayName(ref: { namespace?: string | undefined; name: string }): string {
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}
