// POST /weft/v1/explain: a hypothetical request in, the decision trace of the proxy that would send it out (`weft explain`, the dashboard).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ErrorCodes } from '../../api/errors.ts';
import type { ExplainRequest, ExplainTrace } from '../../api/explain.ts';
import { parseJson, readBody, sendJson } from './http.ts';
import { ApiError } from './status.ts';

const LiveSchema = z.looseObject({
  proxy: z.string().optional(),
  readAt: z.string(),
  backends: z.array(z.looseObject({ key: z.string(), requests: z.number(), pending: z.number(), retries: z.number(), healthChecked: z.boolean(), endpoints: z.array(z.looseObject({ id: z.string() })) })),
  rateLimits: z.array(z.looseObject({ id: z.string(), size: z.number(), buckets: z.array(z.object({ key: z.string(), tokens: z.number() })) })),
});

const ExplainRequestSchema = z.object({
  from: z.string().min(1).optional(),
  gateway: z.string().min(1).optional(),
  method: z.string().min(1).max(32).regex(/^[A-Za-z]+$/, 'an HTTP method'),
  url: z.string().min(1).max(8192),
  headers: z.record(z.string(), z.string()).optional(),
  sni: z.string().min(1).optional(),
  sourceIp: z.string().refine((text) => isIP(text) !== 0, 'must be an IPv4 or IPv6 address').optional(),
  live: LiveSchema.optional(),
  liveUnavailable: z.string().optional(),
});

/** `permit` throws unless the caller may look at the namespace the request comes from (a namespaced API token). */
export async function handleExplain(req: IncomingMessage, res: ServerResponse, explain: (request: ExplainRequest) => ExplainTrace, permit: (namespace: string) => void = () => {}): Promise<void> {
  const parsed = ExplainRequestSchema.safeParse(parseJson(await readBody(req, 1024 * 1024)));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
    throw new ApiError(422, 'Invalid', ErrorCodes.INVALID, `invalid explain request: ${problems.join('; ')}`);
  }
  // "<namespace>/<name>"; anything else is refused by the explain itself.
  const namespace = (parsed.data.from ?? parsed.data.gateway)?.split('/')[0];
  if (namespace) permit(namespace);
  sendJson(res, 200, explain(parsed.data as ExplainRequest), { 'cache-control': 'no-store' });
}
