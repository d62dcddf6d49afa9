// The AuthorizationPolicy schema (weft.dev/v1alpha1), modelled on Istio's security.istio.io AuthorizationPolicy.
import { z } from 'zod';
import { CONDITION_KEYS, isConditionKey } from './authorization-conditions.ts';
import { parseIpBlock } from './ip-blocks.ts';

/** Istio's string match: exact, "prefix*", "*suffix", or "*" (any non-empty value). */
const matchString = z
  .string()
  .min(1, 'must not be empty')
  .max(1024)
  .refine((value) => value === '*' || !value.slice(1, -1).includes('*'), { message: 'a "*" may only start or end the value ("abc*", "*abc" or "*")' })
  .refine((value) => !(value.length > 1 && value.startsWith('*') && value.endsWith('*')), { message: 'use "*abc" or "abc*", not both at once' });
const matchList = z.array(matchString).min(1, 'must list at least one value when given').max(256);

const ipBlock = z
  .string()
  .refine((text) => parseIpBlock(text) !== undefined, { message: 'must be an IP address or a CIDR block ("10.0.0.0/8", "2001:db8::/32")' });
const ipBlocks = z.array(ipBlock).min(1, 'must list at least one value when given').max(256);

/** Istio writes ports as strings; weft takes both. */
const portValue = z.union([
  z.number().int().min(1).max(65535),
  z.string().regex(/^[0-9]{1,5}$/, 'must be a port number').refine((text) => Number(text) >= 1 && Number(text) <= 65535, { message: 'must be a port from 1 to 65535' }),
]);
const portList = z.array(portValue).min(1, 'must list at least one port when given').max(256);

const pathValue = matchString.refine((value) => value.startsWith('/') || value.startsWith('*'), { message: 'must start with "/" (or "*" for a suffix match)' });
const pathList = z.array(pathValue).min(1, 'must list at least one path when given').max(256);

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'requestPrincipals', 'notRequestPrincipals'] as const;
const OPERATION_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths', 'ports', 'notPorts'] as const;

export const AuthorizationSource = z
  .strictObject({
    /** Peer identities: "<trustDomain>/ns/<ns>/sa/<sa>" (Istio's form) or the full "spiffe://..." ID. */
    principals: matchList.optional(),
    notPrincipals: matchList.optional(),
    /** The caller's namespace, from its verified identity. */
    namespaces: matchList.optional(),
    notNamespaces: matchList.optional(),
    /** The caller's address: at a sidecar the calling proxy's, at a gateway the client's. */
    ipBlocks: ipBlocks.optional(),
    notIpBlocks: ipBlocks.optional(),
    /** "<iss>/<sub>" of a JWT verified by a RequestAuthentication. */
    requestPrincipals: matchList.optional(),
    notRequestPrincipals: matchList.optional(),
  })
  .refine((source) => SOURCE_FIELDS.some((field) => source[field] !== undefined), { message: `a source needs at least one of ${SOURCE_FIELDS.join(', ')}` });
export type AuthorizationSource = z.infer<typeof AuthorizationSource>;

export const AuthorizationOperation = z
  .strictObject({
    /** The Host header as sent, port included when sent (case-insensitive): list "example.com" and "example.com:*" to take both. */
    hosts: matchList.optional(),
    notHosts: matchList.optional(),
    methods: matchList.optional(),
    notMethods: matchList.optional(),
    /** The normalised path, without the query. */
    paths: pathList.optional(),
    notPaths: pathList.optional(),
    /** The destination port: the workload's declared port, the gateway's listener port. */
    ports: portList.optional(),
    notPorts: portList.optional(),
  })
  .refine((operation) => OPERATION_FIELDS.some((field) => operation[field] !== undefined), { message: `an operation needs at least one of ${OPERATION_FIELDS.join(', ')}` });
export type AuthorizationOperation = z.infer<typeof AuthorizationOperation>;

export const AuthorizationCondition = z
  .strictObject({
    key: z.string().refine(isConditionKey, { message: `must be one of ${CONDITION_KEYS.join(', ')}` }),
    values: matchList.optional(),
    notValues: matchList.optional(),
  })
  .superRefine((condition, ctx) => {
    if (condition.values === undefined && condition.notValues === undefined) ctx.addIssue({ code: 'custom', path: ['values'], message: 'a condition needs values, notValues or both' });
    if (condition.key === 'source.ip') {
      [...(condition.values ?? []), ...(condition.notValues ?? [])].forEach((value) => {
        if (!ipBlock.safeParse(value).success) ctx.addIssue({ code: 'custom', path: ['values'], message: `"${value}": source.ip takes IP addresses and CIDR blocks` });
      });
    }
    if (condition.key === 'destination.port') {
      [...(condition.values ?? []), ...(condition.notValues ?? [])].forEach((value) => {
        if (!portValue.safeParse(value).success) ctx.addIssue({ code: 'custom', path: ['values'], message: `"${value}": destination.port takes port numbers` });
      });
    }
  });
export type AuthorizationCondition = z.infer<typeof AuthorizationCondition>;

export const AuthorizationRule = z.strictObject({
  /** Any one source may match (an absent `from`: any caller). */
  from: z.array(z.strictObject({ source: AuthorizationSource })).max(64).optional(),
  /** Any one operation may match (an absent `to`: any request). */
  to: z.array(z.strictObject({ operation: AuthorizationOperation })).max(64).optional(),
  /** Every condition must match. */
  when: z.array(AuthorizationCondition).max(64).optional(),
});
export type AuthorizationRule = z.infer<typeof AuthorizationRule>;

export const AuthorizationTargetReference = z.strictObject({
  /** Left out: the kind's own group ("" for Service, gateway.networking.k8s.io for Gateway). */
  group: z.string().optional(),
  kind: z.enum(['Service', 'Gateway'], { error: 'must be Service or Gateway' }),
  name: z.string().min(1),
});

export const AuthorizationPolicySpec = z
  .strictObject({
    /** The Services whose workloads enforce the policy, or Gateways. Not with `selector`. */
    targetRefs: z.array(AuthorizationTargetReference).min(1, 'list at least one targetRef, or leave targetRefs out').max(16).optional(),
    /** The workloads (by label) of the policy's namespace that enforce it. Neither: every workload of the namespace (of the mesh, in the root namespace). */
    selector: z.strictObject({ matchLabels: z.record(z.string(), z.string()).optional() }).optional(),
    action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], { error: 'must be ALLOW, DENY, AUDIT or CUSTOM' }).default('ALLOW'),
    /** CUSTOM: the MeshConfig extensionProvider that decides the requests the rules match (an external authorization service). */
    provider: z.strictObject({ name: z.string().min(1).max(253) }).optional(),
    /**
     * Absent or empty: the policy matches no request (an ALLOW policy with no
     * rules then denies everything: it exists, and nothing matches it). A rule
     * `{}` matches every request.
     */
    rules: z.array(AuthorizationRule).max(256).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.targetRefs !== undefined && spec.selector !== undefined) ctx.addIssue({ code: 'custom', path: ['selector'], message: 'use targetRefs or selector, not both' });
    if (spec.action === 'CUSTOM' && spec.provider === undefined) ctx.addIssue({ code: 'custom', path: ['provider'], message: 'a CUSTOM policy names its extensionProvider (provider.name)' });
    if (spec.action !== 'CUSTOM' && spec.provider !== undefined) ctx.addIssue({ code: 'custom', path: ['provider'], message: 'only a CUSTOM policy has a provider' });
  });
export type AuthorizationPolicySpec = z.infer<typeof AuthorizationPolicySpec>;
