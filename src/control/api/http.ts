// Small HTTP helpers for the API: bounded body reading, JSON answers, Status errors.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes } from '../../api/errors.ts';
import { ApiError, errorAnswer } from './status.ts';

export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Reads the whole request body, refusing (413) anything over the limit without buffering it. */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(limit: number): ApiError {
  // The rest of the body is not read: close the connection after answering.
  return new ApiError(413, 'RequestEntityTooLarge', ErrorCodes.BAD_REQUEST, `request body is larger than ${limit} bytes`, [], { connection: 'close' });
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `request body is not valid JSON: ${(error as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, httpStatus: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(httpStatus, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, httpStatus: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(httpStatus, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendError(res: ServerResponse, error: unknown, details?: { name?: string | undefined; kind?: string | undefined }): void {
  const answer = errorAnswer(error, details);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, answer.httpStatus, answer.body, answer.headers);
}

export function methodNotAllowed(method: string | undefined, allowed: string[]): ApiError {
  return new ApiError(405, 'MethodNotAllowed', ErrorCodes.BAD_REQUEST, `${method ?? '?'} is not allowed here; use ${allowed.join(', ')}`, [], {
    allow: allowed.join(', '),
  });
}

export function notFound(message: string): ApiError {
  return new ApiError(404, 'NotFound', ErrorCodes.NOT_FOUND, message);
}
