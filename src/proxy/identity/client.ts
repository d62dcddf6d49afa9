// Asks the control plane's CA for a certificate: one HTTP/2 request on the stream port, the bootstrap token as a bearer token.
import http2 from 'node:http2';
import { ErrorCodes, WeftError, type ErrorCode } from '../../api/errors.ts';
import { CERTIFICATE_PATH, type CertificateRequest, type CertificateResponse } from '../../api/stream.ts';
import type { IssuedCertificate, RenewFunction } from './manager.ts';
import { connectControlPlane, type ControlPlaneTls } from './control-plane-tls.ts';

/** A certificate answer is a few kilobytes; a bigger one is not from our control plane. */
const MAX_ANSWER_BYTES = 256 * 1024;

export interface CertificateClientOptions {
  /** The control planes' stream URLs, e.g. http://127.0.0.1:15010; any one of them can sign. */
  urls: readonly string[];
  /** For https:// control planes: the roots to verify them with. */
  controlPlaneTls?: ControlPlaneTls | undefined;
  token: string;
  namespace: string;
  workload?: string | undefined;
  /** This proxy's id, so that the control plane can show its certificate in `weft status`. */
  proxy: string;
  timeoutMs?: number;
}

/** Errors that say "this control plane is not there", after which the next one is asked; a refusal is final. */
function isUnreachable(error: unknown): boolean {
  return error instanceof WeftError && (error.code === ErrorCodes.UPSTREAM_CONNECT || error.code === ErrorCodes.UPSTREAM_RESET || error.code === ErrorCodes.TIMEOUT);
}

/** The IdentityManager's renew function for a proxy of these control planes: asks the last one that answered first, then the others. */
export function controlPlaneIssuer(options: CertificateClientOptions): RenewFunction {
  let preferred = 0;
  return async (csrPem) => {
    const request: CertificateRequest = { csr: csrPem, namespace: options.namespace, proxy: options.proxy };
    if (options.workload !== undefined) request.workload = options.workload;
    const { urls } = options;
    let answer: CertificateResponse | undefined;
    let lastError: unknown;
    for (let i = 0; i < urls.length && answer === undefined; i++) {
      const at = (preferred + i) % urls.length;
      try {
        answer = await postCertificateRequest(urls[at]!, options.token, request, options.timeoutMs ?? 10_000, options.controlPlaneTls);
        preferred = at;
      } catch (error) {
        if (!isUnreachable(error)) throw error;
        lastError = error;
      }
    }
    if (answer === undefined) throw lastError ?? new WeftError(ErrorCodes.UPSTREAM_CONNECT, 'no control plane to ask for a certificate');
    const issued: IssuedCertificate = { certPem: answer.certPem, chainPem: answer.chainPem, notAfter: answer.notAfter };
    if (Array.isArray(answer.trustBundle) && answer.trustBundle.length > 0) issued.trustBundle = answer.trustBundle;
    return issued;
  };
}

export function postCertificateRequest(url: string, token: string, request: CertificateRequest, timeoutMs: number, tls?: ControlPlaneTls): Promise<CertificateResponse> {
  return new Promise((resolve, reject) => {
    let session: http2.ClientHttp2Session;
    try {
      session = connectControlPlane(url, tls);
    } catch (error) {
      reject(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `invalid control plane URL ${url}: ${(error as Error).message}`));
      return;
    }
    let settled = false;
    const finish = (error: Error | undefined, answer?: CertificateResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.close();
      if (error) {
        session.destroy();
        reject(error);
      } else {
        resolve(answer!);
      }
    };
    const timer = setTimeout(() => finish(new WeftError(ErrorCodes.TIMEOUT, `the control plane at ${url} did not answer the certificate request in ${timeoutMs} ms`)), timeoutMs);
    session.on('error', (error) => finish(new WeftError(ErrorCodes.UPSTREAM_CONNECT, `cannot reach the control plane at ${url}: ${error.message}`)));
    const body = JSON.stringify(request);
    const stream = session.request({
      ':method': 'POST',
      ':path': CERTIFICATE_PATH,
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
    });
    stream.on('error', (error) => finish(new WeftError(ErrorCodes.UPSTREAM_RESET, `the certificate request failed: ${error.message}`)));
    let status = 0;
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) finish(new WeftError(ErrorCodes.UPSTREAM_RESET, 'the control plane sent an oversized certificate answer'));
      else chunks.push(chunk);
    });
    stream.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        finish(new WeftError(ErrorCodes.UPSTREAM_RESET, `the control plane answered the certificate request with ${status} and no JSON`));
        return;
      }
      if (status !== 200) {
        const refusal = parsed as { code?: unknown; message?: unknown };
        const code = Object.values(ErrorCodes).find((c) => c === refusal.code) as ErrorCode | undefined;
        finish(new WeftError(code ?? ErrorCodes.INTERNAL, `the CA refused the certificate request (${status}): ${String(refusal.message ?? '')}`));
        return;
      }
      const answer = parsed as CertificateResponse;
      if (typeof answer.certPem !== 'string' || typeof answer.notAfter !== 'number') {
        finish(new WeftError(ErrorCodes.UPSTREAM_RESET, 'the certificate answer lacks certPem or notAfter'));
        return;
      }
      finish(undefined, { ...answer, chainPem: typeof answer.chainPem === 'string' ? answer.chainPem : '' });
    });
    stream.end(body);
  });
}
