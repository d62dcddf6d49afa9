// Session persistence (Gateway API sessionPersistence): requests bringing the session token back go to the backend and endpoint that served the session.
//
// The token names the backend ("ns/name:port") and the endpoint that
// answered, with the session's start and last use, so that every replica of
// every proxy can honour it without shared state. It pins routing, it does
// not authenticate: a client that forges one can only pick among the rule's
// own endpoints. A token whose backend or endpoint is gone, or whose session
// has timed out, is ignored, and the answer carries a new one.
import type { HttpMatch, SessionPersistence } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import type { Headers, HttpExchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

interface Session {
  backend: string;
  endpoint: string;
  /** Epoch milliseconds. */
  startedAt: number;
  lastSeen: number;
}

const MAX_TOKEN_CHARS = 2048;

export function encodeSessionToken(session: Session): string {
  return Buffer.from(JSON.stringify([session.backend, session.endpoint, session.startedAt, session.lastSeen])).toString('base64url');
}

export function decodeSessionToken(token: string): Session | undefined {
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (!Array.isArray(parsed) || parsed.length !== 4) return undefined;
    const [backend, endpoint, startedAt, lastSeen] = parsed as unknown[];
    if (typeof backend !== 'string' || typeof endpoint !== 'string' || typeof startedAt !== 'number' || typeof lastSeen !== 'number') return undefined;
    return { backend, endpoint, startedAt, lastSeen };
  } catch {
    return undefined;
  }
}

/** The value of cookie `name` in a Cookie header, if any. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq === -1) continue;
      if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function appendSetCookie(headers: Headers, cookie: string): void {
  const existing = headers['set-cookie'];
  if (existing === undefined) headers['set-cookie'] = cookie;
  else headers['set-cookie'] = [...(Array.isArray(existing) ? existing : [existing]), cookie];
}

/** The cookie's Path: the rule's path (an exact one, or a prefix), so that the browser sends it only where it matters. */
function cookiePathOf(match: HttpMatch | undefined): string {
  const path = match?.path;
  if (path && (path.type === 'PathPrefix' || path.type === 'Exact') && path.value.startsWith('/')) return path.value;
  return '/';
}

export function sessionPersistence(clock: Clock): Layer<{ sessionPersistence?: SessionPersistence; match?: HttpMatch }, HttpExchange> {
  return (target, next) => {
    const policy = target.sessionPersistence;
    if (!policy) return next;
    const isCookie = policy.type === 'Cookie';
    const headerName = policy.name.toLowerCase();
    const cookieAttributes = `; Path=${cookiePathOf(target.match)}; HttpOnly`;
    const absolute = policy.absoluteTimeoutMs;
    const idle = policy.idleTimeoutMs;
    const permanent = isCookie && policy.cookieLifetime === 'Permanent' && absolute !== undefined;

    const alive = (session: Session, now: number) =>
      (absolute === undefined || now - session.startedAt < absolute) && (idle === undefined || now - session.lastSeen < idle);

    return (ex) => {
      const now = clock.now();
      const token = isCookie ? cookieValue(ex.req.headers.cookie, policy.name) : single(ex.req.headers[headerName]);
      const presented = token === undefined ? undefined : decodeSessionToken(token);
      const session = presented && alive(presented, now) ? presented : undefined;
      if (session) ex.session = { backend: session.backend, endpoint: session.endpoint };
      ex.addResponseEdit((headers) => {
        const backend = ex.backend?.key;
        const endpoint = ex.endpoint?.id;
        if (backend === undefined || endpoint === undefined) return;
        const same = session !== undefined && session.backend === backend && session.endpoint === endpoint;
        // A cookie the browser keeps needs no resending unless its idle clock must be moved on.
        if (isCookie && same && idle === undefined) return;
        const startedAt = same ? session.startedAt : now;
        const value = encodeSessionToken({ backend, endpoint, startedAt, lastSeen: now });
        if (!isCookie) {
          headers[headerName] = value;
          return;
        }
        const maxAge = permanent ? `; Max-Age=${Math.max(1, Math.ceil((startedAt + absolute! - now) / 1000))}` : '';
        appendSetCookie(headers, `${policy.name}=${value}${cookieAttributes}${maxAge}`);
      });
      return next(ex);
    };
  };
}
