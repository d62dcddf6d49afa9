// An upstream response held whole for a layer that rewrites its body (ResponseRewrite), then written at once.
import { ErrorCodes, type WeftError } from '../../api/errors.ts';
import { proxyError } from '../errors.ts';
import type { Headers, HttpExchange, ResponseRewrite } from '../exchange.ts';
import { writeResponseHead } from './response.ts';

export class HeldResponse {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** Set once the body passed the limit: the rest is dropped, and the exchange fails with it. */
  overflow: WeftError | undefined = undefined;

  private readonly rewrite: ResponseRewrite;
  private readonly status: number;
  private readonly statusMessage: string | undefined;
  private readonly headers: Headers;

  constructor(rewrite: ResponseRewrite, status: number, statusMessage: string | undefined, headers: Headers) {
    this.rewrite = rewrite;
    this.status = status;
    this.statusMessage = statusMessage;
    this.headers = headers;
  }

  /** A piece of the body; past the limit, the error the exchange fails with (once). */
  add(chunk: Buffer): WeftError | undefined {
    if (this.overflow) return undefined;
    this.size += chunk.length;
    if (this.size > this.rewrite.limitBytes) {
      this.chunks.length = 0;
      return (this.overflow = proxyError(ErrorCodes.TRANSFORMATION, `the response body is over the Transformation's maxBodyBytes (${this.rewrite.limitBytes})`, 502));
    }
    this.chunks.push(chunk);
    return undefined;
  }

  /**
   * Rewrites the body and writes the response (trailers are not kept); the
   * error to answer with instead when the rewrite fails. A client that is
   * gone gets nothing.
   */
  writeOrFail(ex: HttpExchange): WeftError | undefined {
    const headers = this.headers;
    let body: Buffer;
    try {
      body = this.rewrite.body(this.status, headers, Buffer.concat(this.chunks, this.size));
    } catch (error) {
      return proxyError(ErrorCodes.TRANSFORMATION, `the response could not be transformed: ${(error as Error).message}`, 502);
    }
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.length);
    if (ex.req.httpVersionMajor !== 2 && this.statusMessage) ex.res.statusMessage = this.statusMessage;
    if (writeResponseHead(ex, this.status, headers, false)) ex.res.end(body);
    return undefined;
  }
}
