// The Gateway API conformance cases and infrastructure as transcribed in cases.json / infra.json: types and loading.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Profile = 'GATEWAY-HTTP' | 'GATEWAY-GRPC' | 'MESH-HTTP' | 'MESH-GRPC';
export const PROFILES: readonly Profile[] = ['GATEWAY-HTTP', 'GATEWAY-GRPC', 'MESH-HTTP', 'MESH-GRPC'];

/** A Kubernetes-shaped object as the cases carry it. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  spec?: unknown;
  [key: string]: unknown;
}

export interface ObjectName {
  apiVersion?: string;
  kind: string;
  namespace?: string;
  name: string;
}

export type CheckTarget =
  | { type: 'gateway'; gateway: string; port: number; scheme?: 'http' | 'https'; sni?: string }
  | { type: 'mesh'; client: string };

export interface CheckRequest {
  host?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  protocol?: 'H2C_PRIOR_KNOWLEDGE' | 'H2' | 'websocket' | 'grpc';
  followRedirects?: boolean;
  echoSetResponseHeaders?: Record<string, string>;
  /** gRPC checks: the service; `method` is then the gRPC method (Echo, EchoTwo, EchoThree). */
  service?: string;
  authority?: string;
  metadata?: Record<string, string>;
}

export interface ExpectedRedirect {
  scheme?: string;
  host?: string | null;
  port?: string | null;
  path?: string;
}

export interface CheckExpect {
  status?: number | number[];
  backend?: string | null;
  backendRequest?: {
    path?: string;
    method?: string;
    host?: string;
    headers?: Record<string, string>;
    absentHeaders?: string[];
  };
  responseHeaders?: Record<string, string>;
  responseHeadersOneOf?: Record<string, string[]>;
  absentResponseHeaders?: string[];
  ignoreWhitespaceInHeaderValues?: boolean;
  redirect?: ExpectedRedirect;
  mirroredTo?: { backend: string; percent?: number }[];
  mirrorDistribution?: { requests: number; concurrency?: number; toleranceStdDevs: number; attempts: number };
  weights?: Record<string, number>;
  distribution?: { requests: number; concurrency?: number; batch?: boolean; tolerance: number; attempts: number };
  answeredByGateway?: boolean;
  podPrefixFromBackendRequestHeader?: string;
  websocket?: unknown;
  grpcStatus?: string;
  grpcCode?: number;
}

export interface Check {
  name: string;
  target: CheckTarget;
  before?: { delete?: ObjectName[] };
  repeat?: number;
  request: CheckRequest;
  expect: CheckExpect;
}

export interface ExpectedCondition {
  type: string;
  status: string;
  reason?: string;
}

export interface StatusCheck {
  kind: string;
  namespace: string;
  name: string;
  parentRef?: { group?: string; kind?: string; namespace?: string; name: string; sectionName?: string; port?: number };
  conditions?: ExpectedCondition[];
  hasAddress?: boolean;
  listeners?: {
    name: string;
    attachedRoutes?: number;
    supportedKinds?: { group?: string; kind: string }[];
    conditions?: ExpectedCondition[];
  }[];
  noAcceptedParents?: boolean;
  zeroAttachedRoutes?: boolean;
  latestObservedGeneration?: boolean;
  after?: { patch: Record<string, unknown> };
  generationChanged?: boolean;
  note?: string;
}

export interface Case {
  name: string;
  description: string;
  feature: string;
  features: string[];
  supportLevel: 'Core' | 'Extended';
  profile: Profile;
  channel: string;
  provisional: boolean;
  resources: K8sObject[];
  backends: string[];
  statusChecks?: StatusCheck[];
  checks: Check[];
  notes?: string[];
  endpointOverrides?: Record<string, string>;
}

export interface InfraPort {
  name?: string;
  port: number;
  targetPort?: number;
  appProtocol?: string;
  protocol?: string;
}

export interface InfraBackend {
  service: string;
  echo: string;
  podNamePrefix: string[];
  replicas: number;
  ports: InfraPort[];
}

export interface Infra {
  namespaces: { name: string; labels: Record<string, string> }[];
  gateways: K8sObject[];
  backends: InfraBackend[];
  meshApps: InfraBackend[];
  runtimeSecrets: { secret: string; type: string; sans: string[] }[];
  meshClients: string[];
}

export interface Suite {
  dir: string;
  cases: Case[];
  infra: Infra;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Where cases.json and infra.json live: $WEFT_CONFORMANCE_DIR, else the
 * shared folder beside the checkout (../shared/conformance/gateway-api, as
 * the routing issue names it), else a copy inside the repository.
 */
export function conformanceDir(explicit?: string): string {
  const candidates = [
    explicit,
    process.env.WEFT_CONFORMANCE_DIR,
    resolve(repoRoot, '..', 'shared', 'conformance', 'gateway-api'),
    join(repoRoot, 'test', 'conformance', 'gateway-api'),
  ].filter((c): c is string => typeof c === 'string' && c !== '');
  for (const dir of candidates) if (existsSync(join(dir, 'cases.json'))) return dir;
  throw new Error(`cases.json not found in any of: ${candidates.join(', ')} (set WEFT_CONFORMANCE_DIR)`);
}

export function loadSuite(dir = conformanceDir()): Suite {
  const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as Case[];
  const infra = JSON.parse(readFileSync(join(dir, 'infra.json'), 'utf8')) as Infra;
  if (!Array.isArray(cases)) throw new Error(`${dir}/cases.json is not a list of cases`);
  return { dir, cases, infra };
}

export const GATEWAY_CLASS_NAME = 'weft';

/** A deep copy of `value` with every "{GATEWAY_CLASS_NAME}" replaced by weft's class name. */
export function withGatewayClass<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('{GATEWAY_CLASS_NAME}', GATEWAY_CLASS_NAME)) as T;
}

/** "ns/name" → [ns, name]. */
export function splitName(qualified: string): [string, string] {
  const slash = qualified.indexOf('/');
  if (slash === -1) return ['', qualified];
  return [qualified.slice(0, slash), qualified.slice(slash + 1)];
}

export function objectId(o: { apiVersion?: string; kind: string; metadata?: { namespace?: string; name: string }; namespace?: string; name?: string }): string {
  const group = o.apiVersion && o.apiVersion.includes('/') ? o.apiVersion.slice(0, o.apiVersion.indexOf('/')) : '';
  const namespace = o.metadata ? o.metadata.namespace : o.namespace;
  const name = o.metadata ? o.metadata.name : o.name;
  return `${group || 'core'}/${o.kind}/${namespace ?? ''}/${name ?? ''}`;
}

/** Whether a case needs a gateway proxy (its profile, or any check aimed at a gateway). */
export function needsGateway(c: Case): boolean {
  return c.profile.startsWith('GATEWAY-') || c.checks.some((check) => check.target.type === 'gateway');
}

/** Whether a case needs gRPC (its profile, or any gRPC check). */
export function needsGrpc(c: Case): boolean {
  return c.profile.endsWith('-GRPC') || c.checks.some((check) => check.request.protocol === 'grpc');
}
