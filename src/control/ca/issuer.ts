// Who gets which certificate: authenticates a proxy by its bootstrap token, takes the identity from the template Workload, and has the CA sign it.
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { isControlPlaneId } from '../../api/identity.ts';
import { dnsLabel, dnsSubdomain, type Resource } from '../../api/meta.ts';
import type { WorkloadSpec } from '../../api/resources.ts';
import type { CertificateResponse } from '../../api/stream.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { SignedCertificate, SignOptions } from './authority.ts';
import { authorizeIdentity, type TokenAuthority, type TokenScope } from './tokens.ts';

/** What the issuer needs of a CA: a CertificateAuthority, or the control plane's MeshCa (which rotates). */
export interface SigningCa {
  trustBundle(): string[];
  signCsr(csrPem: string, options: SignOptions): Promise<SignedCertificate>;
}

export interface CertificateIssuerOptions {
  ca: SigningCa;
  tokens: TokenAuthority;
  /** The template Workload `<namespace>/<name>` as the store has it, or undefined. */
  template: (namespace: string, name: string) => Resource | undefined;
  /** The mesh's trust domain now (MeshConfig), which identities are minted in. */
  trustDomain: () => string;
  /** Lifetime of a workload certificate. */
  certTtlMs: number;
  logger: Logger;
}

export interface IssueRequest {
  /** As the proxy presented it; undefined when it sent none. */
  token: string | undefined;
  csrPem: string;
  namespace: string;
  workload?: string | undefined;
}

/** The service account of a proxy with no template (or none in the store yet): the same default its registration gets. */
const DEFAULT_SERVICE_ACCOUNT = 'default';

export class CertificateIssuer {
  private readonly options: CertificateIssuerOptions;

  constructor(options: CertificateIssuerOptions) {
    this.options = options;
  }

  get trustBundle(): string[] {
    return this.options.ca.trustBundle();
  }

  /**
   * The token's scope, once it is known to cover `namespace` and `workload`.
   * WEFT_ERR_UNAUTHORIZED for a missing, unknown, revoked or expired token;
   * WEFT_ERR_FORBIDDEN for a token of another namespace or workload.
   */
  async authenticate(token: string | undefined, namespace: string, workload: string | undefined): Promise<TokenScope> {
    if (token === undefined || token === '') throw new WeftError(ErrorCodes.UNAUTHORIZED, 'no bootstrap token: create one with "weft token create" and give it to the proxy (--token-file or WEFT_TOKEN)');
    const scope = await this.options.tokens.verify(token);
    if (!scope) throw new WeftError(ErrorCodes.UNAUTHORIZED, 'the bootstrap token is unknown, revoked or expired');
    // Only the namespace and workload checks; the service account is irrelevant here.
    authorizeIdentity(scope, { namespace, ...(workload !== undefined ? { workload } : {}), serviceAccount: DEFAULT_SERVICE_ACCOUNT }, this.options.trustDomain());
    return scope;
  }

  /**
   * Signs the CSR for the identity the token allows: the service account of
   * the template Workload the proxy serves, in its namespace and the mesh's
   * trust domain. Nothing the proxy claims about its identity is used.
   */
  async issue(request: IssueRequest): Promise<CertificateResponse> {
    if (!dnsLabel.safeParse(request.namespace).success) throw new WeftError(ErrorCodes.BAD_REQUEST, `namespace ${JSON.stringify(request.namespace)} is not a valid name`);
    if (request.workload !== undefined && !dnsSubdomain.safeParse(request.workload).success) {
      throw new WeftError(ErrorCodes.BAD_REQUEST, `workload ${JSON.stringify(request.workload)} is not a valid name`);
    }
    const scope = await this.authenticate(request.token, request.namespace, request.workload);
    const template = request.workload !== undefined ? this.options.template(request.namespace, request.workload) : undefined;
    const serviceAccount = (template?.spec as Partial<WorkloadSpec> | undefined)?.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT;
    const spiffeId = authorizeIdentity(
      scope,
      { namespace: request.namespace, ...(request.workload !== undefined ? { workload: request.workload } : {}), serviceAccount },
      this.options.trustDomain(),
    );
    // The stream port's identity: a workload holding it could pose as the control plane to every proxy.
    if (isControlPlaneId(spiffeId)) throw new WeftError(ErrorCodes.FORBIDDEN, `${spiffeId} is the control plane's identity; no workload gets it`);
    const signed = await this.options.ca.signCsr(request.csrPem, { spiffeId, ttlMs: this.options.certTtlMs });
    this.options.logger.info({ spiffeId, namespace: request.namespace, workload: request.workload, notAfter: new Date(signed.notAfter).toISOString(), serial: signed.serialNumber }, 'workload certificate issued');
    return { spiffeId, certPem: signed.certPem, chainPem: signed.chainPem, notAfter: signed.notAfter, trustBundle: this.options.ca.trustBundle() };
  }
}

/** The HTTP status a certificate or token refusal answers with. */
export function issuerErrorStatus(error: unknown): number {
  if (!(error instanceof WeftError)) return 500;
  switch (error.code) {
    case ErrorCodes.UNAUTHORIZED:
      return 401;
    case ErrorCodes.FORBIDDEN:
      return 403;
    case ErrorCodes.BAD_REQUEST:
    case ErrorCodes.INVALID:
    case ErrorCodes.CSR_INVALID:
    case ErrorCodes.IDENTITY_INVALID:
      return 400;
    default:
      return 500;
  }
}
