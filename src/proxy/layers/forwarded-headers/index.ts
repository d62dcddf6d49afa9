// x-forwarded-proto and x-request-id on every outbound request: what the mesh tells the next hop about the call.
import { randomUUID } from 'node:crypto';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

export const forwardedHeaders: Layer<unknown, HttpExchange> = (_target, next) => (ex) => {
  const headers = ex.headers;
  if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = 'http';
  if (headers['x-request-id'] === undefined) headers['x-request-id'] = randomUUID();
  return next(ex);
};
