// SPIFFE IDs of mesh workloads (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>): build and parse, both validating.
import { ErrorCodes, WeftError } from './errors.ts';

export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** The SPIFFE spec's trust-domain characters; no port, no user info, no upper case. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
/** Kubernetes namespace names (RFC 1123 label). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Kubernetes service-account names (RFC 1123 subdomain). */
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** The SPIFFE spec caps an ID at 2048 bytes; ours are ASCII, so characters are bytes. */
const MAX_ID_LENGTH = 2048;
const PREFIX = 'spiffe://';

export function isValidTrustDomain(trustDomain: string): boolean {
  return TRUST_DOMAIN.test(trustDomain);
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`; throws WEFT_ERR_IDENTITY_INVALID on a bad part. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  if (!TRUST_DOMAIN.test(trustDomain)) throw invalid(`trust domain ${JSON.stringify(trustDomain)} must be 1-255 of a-z 0-9 . _ -`);
  if (!NAMESPACE.test(namespace)) throw invalid(`namespace ${JSON.stringify(namespace)} is not a DNS label`);
  if (!SERVICE_ACCOUNT.test(serviceAccount)) throw invalid(`service account ${JSON.stringify(serviceAccount)} is not a DNS subdomain`);
  return `${PREFIX}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * The parts of a mesh SPIFFE ID, or undefined when `uri` is anything else.
 * Returns undefined rather than throwing because its input is usually what a
 * peer presented, and a refusal is an ordinary outcome there.
 */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  if (typeof uri !== 'string' || uri.length > MAX_ID_LENGTH || !uri.startsWith(PREFIX)) return undefined;
  const rest = uri.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  const segments = rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') return undefined;
  const namespace = segments[1]!;
  const serviceAccount = segments[3]!;
  if (!TRUST_DOMAIN.test(trustDomain) || !NAMESPACE.test(namespace) || !SERVICE_ACCOUNT.test(serviceAccount)) return undefined;
  return { trustDomain, namespace, serviceAccount };
}

/** The trust domain's own ID (`spiffe://<td>`), which a CA certificate carries as its URI SAN. */
export function trustDomainId(trustDomain: string): string {
  if (!TRUST_DOMAIN.test(trustDomain)) throw invalid(`trust domain ${JSON.stringify(trustDomain)} must be 1-255 of a-z 0-9 . _ -`);
  return `${PREFIX}${trustDomain}`;
}

/** The control plane's own identity on its stream port: spiffe://<td>/ns/weft-system/sa/weft-control-plane. The CA never grants it to a workload. */
export const CONTROL_PLANE_NAMESPACE = 'weft-system';
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'weft-control-plane';

export function controlPlaneSpiffeId(trustDomain: string): string {
  return spiffeId(trustDomain, CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT);
}

/** Whether a (parsed) ID is a control plane's, in any trust domain: what a proxy accepts on the stream port. */
export function isControlPlaneId(id: string): boolean {
  const parsed = parseSpiffeId(id);
  return parsed?.namespace === CONTROL_PLANE_NAMESPACE && parsed.serviceAccount === CONTROL_PLANE_SERVICE_ACCOUNT;
}

function invalid(message: string): WeftError {
  return new WeftError(ErrorCodes.IDENTITY_INVALID, message);
}
