// Who may use the REST API: a bearer token from the control plane's --api-token-file, or the cookie the dashboard's sign-in sets.
//
// Without a token file the API is open, as before, to whoever reaches --api-host (loopback by default: `weft up`).
// With one, every path under /api/, /apis/ and /weft/ asks for a token; /healthz, the dashboard's files and this
// module's own session path do not (the files hold no data: the dashboard reads everything through the API). The
// dashboard cannot put a header on an EventSource, so it trades the token for an HttpOnly, SameSite=Strict cookie:
// another site's page cannot send it, nor a script read it.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { isLoopbackAddress } from '../../api/loopback.ts';
import { methodNotAllowed, parseJson, readBody, sendJson } from './http.ts';
import { ApiError } from './status.ts';

/** GET: whether this API asks for a token and whether the caller has one; POST {token}: sign in; DELETE: sign out. */
export const SESSION_PATH = '/weft/v1/session';
export const SESSION_COOKIE = 'weft-api-token';
/** Shorter tokens are refused when the file is read: a guessable token is no lock. */
export const MIN_API_TOKEN_LENGTH = 16;

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * What a token may do. `readOnly`: read (GET and HEAD, an explain, an
 * apply's dry run) without changing anything. `namespaces`: only objects,
 * proxies, traffic and taps of these namespaces, and no cluster-wide change
 * (cluster-scoped objects are read, never written; the CA is not rotated).
 * Absent: every namespace.
 */
export interface ApiGrant {
  readOnly: boolean;
  namespaces?: ReadonlySet<string> | undefined;
}

export interface ApiToken {
  token: string;
  grant: ApiGrant;
}

function digested(tokens: readonly ApiToken[]): { digest: Buffer; grant: ApiGrant }[] {
  return tokens.map(({ token, grant }) => ({ digest: digest(token), grant }));
}

/** A namespace name as Kubernetes spells one (an RFC 1123 label). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The accepted tokens, kept as SHA-256 digests and compared in constant time. */
export class ApiTokens {
  private known: readonly { digest: Buffer; grant: ApiGrant }[];

  /** Tokens as readFile checked them. */
  private constructor(tokens: readonly ApiToken[]) {
    this.known = digested(tokens);
  }

  static fromFile(path: string): ApiTokens {
    return new ApiTokens(ApiTokens.readFile(path));
  }

  /** Takes the tokens in `path` from now on; a file that cannot be used throws and changes nothing (the tokens in force stay). */
  reload(path: string): void {
    this.known = digested(ApiTokens.readFile(path));
  }

  /**
   * One token per line, optionally followed by `read-only` and by
   * `namespaces=a,b`; blank lines and lines starting with # are skipped.
   * Errors name the file and line.
   */
  private static readFile(path: string): ApiToken[] {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new WeftError(ErrorCodes.INVALID, `--api-token-file ${path}: ${(error as Error).message}`);
    }
    const tokens: ApiToken[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const [token, ...words] = line.split(/\s+/) as [string, ...string[]];
      const where = `--api-token-file ${path} line ${i + 1}`;
      if (token.length < MIN_API_TOKEN_LENGTH) throw new WeftError(ErrorCodes.INVALID, `${where}: a token must be at least ${MIN_API_TOKEN_LENGTH} characters long`);
      const grant: { readOnly: boolean; namespaces?: ReadonlySet<string> } = { readOnly: false };
      for (const word of words) {
        if (word === 'read-only' && !grant.readOnly) {
          grant.readOnly = true;
        } else if (word.startsWith('namespaces=') && grant.namespaces === undefined) {
          const names = word.slice('namespaces='.length).split(',');
          const bad = names.find((n) => !NAMESPACE.test(n));
          if (bad !== undefined) throw new WeftError(ErrorCodes.INVALID, `${where}: namespaces= takes namespace names separated by commas, and "${bad}" is none`);
          grant.namespaces = new Set(names);
        } else {
          throw new WeftError(ErrorCodes.INVALID, `${where}: after the token only "read-only" and "namespaces=a,b" may follow (each once), not "${word}"`);
        }
      }
      tokens.push({ token, grant });
    }
    if (tokens.length === 0) throw new WeftError(ErrorCodes.INVALID, `--api-token-file ${path}: no token in it (one per line; # starts a comment)`);
    return tokens;
  }

  /** What `token` may do, or undefined when it is none of these. */
  grantOf(token: string | undefined): ApiGrant | undefined {
    if (token === undefined || token === '') return undefined;
    const offered = digest(token);
    // Every digest is compared, so the time taken says nothing about which (if any) matched.
    let grant: ApiGrant | undefined;
    for (const known of this.known) if (timingSafeEqual(offered, known.digest)) grant ??= known.grant;
    return grant;
  }

  accepts(token: string | undefined): boolean {
    return this.grantOf(token) !== undefined;
  }
}

/**
 * Whether a request changes nothing: what a read-only token may send. Besides GET and HEAD, two POSTs only read:
 * an explain, and an apply with `?dryRun=All` (the apply path's own dry run; no other path takes one).
 */
export function onlyReads(method: string, url: URL, paths: { explain: string; apply: string }): boolean {
  if (method === 'GET' || method === 'HEAD') return true;
  if (method !== 'POST') return false;
  return url.pathname === paths.explain || (url.pathname === paths.apply && url.searchParams.get('dryRun') === 'All');
}

export function readOnlyRefused(method: string, pathname: string): ApiError {
  return new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, `a read-only API token may not ${method} ${pathname}: it reads (GET, explain, dry runs) and changes nothing`);
}

/** Whether a caller with `grant` (undefined: an API without tokens) sees the objects, proxies and traffic of `namespace`. */
export function seesNamespace(grant: ApiGrant | undefined, namespace: string): boolean {
  return grant?.namespaces === undefined || grant.namespaces.has(namespace);
}

/** Whether a caller reaches every namespace (and so may make cluster-wide changes). */
export function reachesAll(grant: ApiGrant | undefined): boolean {
  return grant?.namespaces === undefined;
}

/**
 * Throws 403 unless the caller may act on `namespace` (`what` says what it
 * asked, e.g. "apply HTTPRoute shop/a"); `undefined` is a cluster-scoped
 * object or a cluster-wide action, which only a token for every namespace may change.
 */
export function requireNamespace(grant: ApiGrant | undefined, namespace: string | undefined, what: string): void {
  if (reachesAll(grant)) return;
  const allowed = [...grant!.namespaces!].join(', ');
  if (namespace === undefined) throw new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, `an API token for namespaces ${allowed} may not ${what}: it is cluster-wide`);
  if (!grant!.namespaces!.has(namespace)) throw new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, `an API token for namespaces ${allowed} may not ${what}: namespace ${namespace} is not one of them`);
}

/** Who may create bootstrap tokens and rotate the CA over the API. */
export interface PrivilegedCallers {
  /** Local mode (`weft up`, `--insecure-local-tokens`): without API tokens, callers on this host may. */
  localMode: boolean;
  /** The API asks for tokens (--api-token-file): a caller that got this far holds a full one and may, from any host. */
  callersHoldApiTokens?: boolean;
}

/**
 * Throws 403 unless the caller may do what `action` says ("creates bootstrap tokens"): a holder of an API token,
 * else in local mode a caller on this host, else nobody. `otherwise` is added to the refusal (another way to do it).
 */
export function requirePrivilegedCaller(req: IncomingMessage, policy: PrivilegedCallers, action: string, otherwise = ''): void {
  if (policy.callersHoldApiTokens === true) return;
  if (!policy.localMode) {
    throw new ApiError(
      403,
      'Forbidden',
      ErrorCodes.FORBIDDEN,
      `this control plane ${action} over its API only for holders of an API token (run it with --api-token-file) or, with --insecure-local-tokens, for anyone on its own host${otherwise ? `; ${otherwise}` : ''}`,
    );
  }
  if (!isLoopbackAddress(req.socket.remoteAddress)) throw new ApiError(403, 'Forbidden', ErrorCodes.FORBIDDEN, `this control plane ${action} only for callers on its own host`);
}

/** Paths that ask for a token when the API has them: the data. /healthz, the session path and the dashboard's files do not. */
export function needsToken(pathname: string): boolean {
  if (pathname === SESSION_PATH) return false;
  return pathname.startsWith('/api/') || pathname.startsWith('/apis/') || pathname.startsWith('/weft/');
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      // Not percent-encoding this server wrote: no token, rather than an error.
      return '';
    }
  }
  return undefined;
}

/** The token a request carries: `Authorization: Bearer <token>`, else the session cookie. */
export function credentialOf(req: IncomingMessage): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1] : undefined;
  }
  return cookieValue(req.headers.cookie, SESSION_COOKIE);
}

export function unauthorized(req: IncomingMessage): ApiError {
  const offered = req.headers.authorization !== undefined || cookieValue(req.headers.cookie, SESSION_COOKIE) !== undefined;
  return new ApiError(
    401,
    'Unauthorized',
    ErrorCodes.UNAUTHORIZED,
    offered ? 'the API token is not one this control plane accepts' : 'this control plane asks for an API token: send "Authorization: Bearer <token>" (the CLI reads $WEFT_API_TOKEN)',
    [],
    { 'www-authenticate': 'Bearer realm="weft"' },
  );
}

/** Over HTTPS the cookie is also Secure: a browser never sends it over plain HTTP. */
function sessionCookie(value: string, secure: boolean, maxAgeSeconds?: number): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}${maxAgeSeconds !== undefined ? `; Max-Age=${maxAgeSeconds}` : ''}`;
}

/** /weft/v1/session: what the dashboard asks before it opens its event stream, and its sign-in and sign-out. */
export async function handleSession(req: IncomingMessage, res: ServerResponse, tokens: ApiTokens | undefined, secure: boolean): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'GET') {
    return sendJson(res, 200, { tokenRequired: tokens !== undefined, signedIn: tokens === undefined || tokens.accepts(credentialOf(req)) }, { 'cache-control': 'no-store' });
  }
  if (method === 'POST') {
    const body = parseJson(await readBody(req, 16 * 1024)) as { token?: unknown } | null;
    const token = typeof body?.token === 'string' ? body.token : undefined;
    if (tokens === undefined) return sendJson(res, 200, { tokenRequired: false, signedIn: true });
    if (!tokens.accepts(token)) throw new ApiError(401, 'Unauthorized', ErrorCodes.UNAUTHORIZED, 'the API token is not one this control plane accepts');
    return sendJson(res, 200, { tokenRequired: true, signedIn: true }, { 'set-cookie': sessionCookie(token!, secure), 'cache-control': 'no-store' });
  }
  if (method === 'DELETE') {
    return sendJson(res, 200, { tokenRequired: tokens !== undefined, signedIn: tokens === undefined }, { 'set-cookie': sessionCookie('', secure, 0), 'cache-control': 'no-store' });
  }
  throw methodNotAllowed(method, ['GET', 'POST', 'DELETE']);
}
