// RequestAuthentication layer: finds JWTs and API keys where the rules say, verifies them (jose; key digests), and gives the request its principal and claims; an invalid token or key is 401.
//
// Istio's semantics: a request without a token passes with no request
// principal (AuthorizationPolicy decides what such a request may do); a
// token that is there must verify, against a rule of its issuer that reads
// the place it was found in, or the request is refused with 401 and
// `WWW-Authenticate: Bearer ... error="invalid_token"`. Every token found
// must verify; the first one found gives the principal.
//
// API keys work the same way: no key, the request passes; a key that is
// there must be one of the rules' (compared by SHA-256: the proxy never
// holds the keys), else 401. A key gives the principal "api-key/<client>",
// unless a JWT gave one.
import { createHash, createSecretKey, type KeyObject } from 'node:crypto';
import type { JWTPayload, JWTVerifyGetKey, JWTVerifyOptions, createLocalJWKSet, jwtVerify } from 'jose';
import { ErrorCodes, isWeftError, type WeftError } from '../../../api/errors.ts';
import type { SnapshotApiKeyRule, SnapshotJwtRule } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import { jose } from './jose.ts';
import type { HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import type { JwksCache } from './jwks.ts';
import { INVALID_FIELD_VALUE_CHAR } from '../../../api/http-syntax.ts';

export { JwksCache, type JwksCacheOptions } from './jwks.ts';

export interface RequestAuthnContext {
  /** The proxy's key sets by URI, kept across snapshots. */
  jwks: JwksCache;
  clock: Clock;
}

/** What the layer serves: the inbound side's or a Gateway's rules. */
export interface RequestAuthnTarget {
  requestAuthentication?: readonly SnapshotJwtRule[] | undefined;
  apiKeys?: readonly SnapshotApiKeyRule[] | undefined;
}

/** The principal an API key gives its request: "api-key/<client id>" (AuthorizationPolicy's requestPrincipals). */
export const API_KEY_PRINCIPAL_PREFIX = 'api-key/';

type Location = { kind: 'header'; name: string; prefix: string } | { kind: 'param'; name: string } | { kind: 'cookie'; name: string };

interface CompiledRule {
  rule: SnapshotJwtRule;
  getKey: JWTVerifyGetKey;
  /** HMAC rules: the inline oct secrets with their kids (jose's key sets hold public keys only). */
  secrets?: { kid: string | undefined; key: KeyObject }[];
  /** Everything but currentDate, which is read per request from the clock. */
  options: Omit<JWTVerifyOptions, 'currentDate'>;
}

interface CompiledLocation {
  location: Location;
  /** The rules that read this place. */
  rules: CompiledRule[];
}

interface FoundToken {
  token: string;
  at: CompiledLocation;
}

interface Verified {
  payload: JWTPayload;
  rule: CompiledRule;
}

/** The inbound side's layer: the rules come with its target. */
export function requestAuthentication(context: RequestAuthnContext): Layer<RequestAuthnTarget, HttpExchange> {
  return (target, next) => {
    const guard = compileGuard(target.requestAuthentication ?? [], target.apiKeys ?? [], context);
    return guard ? guard(next) : next;
  };
}

/** A Gateway's layer: its rules compiled once, for every virtual host's stack. */
export function gatewayRequestAuthentication(rules: RequestAuthnTarget | undefined, context: RequestAuthnContext): Layer<unknown, HttpExchange> {
  const guard = compileGuard(rules?.requestAuthentication ?? [], rules?.apiKeys ?? [], context);
  return (_target, next) => (guard ? guard(next) : next);
}

function compileGuard(rules: readonly SnapshotJwtRule[], keyRules: readonly SnapshotApiKeyRule[], context: RequestAuthnContext): ((next: Step<HttpExchange>) => Step<HttpExchange>) | undefined {
  if (rules.length === 0 && keyRules.length === 0) return undefined;
  const locations = compileLocations(rules.map((rule) => compileRule(rule, context.jwks)));
  const keyLocations = compileKeyLocations(keyRules);
  // Headers a verified token or key fills in: whatever a client sent under those names is removed first, token or not.
  const outputHeaders = [
    ...new Set([
      ...rules.flatMap((r) => [...(r.outputPayloadToHeader ? [r.outputPayloadToHeader] : []), ...r.outputClaimToHeaders.map((o) => o.header)]),
      ...keyRules.flatMap((r) => (r.clientIdHeader ? [r.clientIdHeader] : [])),
    ]),
  ];
  const clock = context.clock;
  return (next) =>
    (ex) => {
      for (const name of outputHeaders) delete ex.headers[name];
      let keys: FoundKey[] = [];
      if (keyLocations.length > 0) {
        try {
          keys = checkKeys(ex, keyLocations);
        } catch (error) {
          // Steps answer with promises: a refusal is a rejected one, as the other layers' are.
          return Promise.reject(keyRefusal(ex, error));
        }
      }
      const found = locations.length > 0 ? findTokens(ex, locations) : [];
      if (found.length === 0) {
        admitKeys(ex, keys);
        return next(ex);
      }
      return verifyAll(found, clock.now()).then(
        (verified) => {
          admit(ex, found, verified);
          admitKeys(ex, keys);
          return next(ex);
        },
        (error: unknown) => {
          throw refusal(ex, error);
        },
      );
    };
}

type KeyLocation = { kind: 'header'; name: string; prefix: string } | { kind: 'param'; name: string };

interface CompiledKeyLocation {
  location: KeyLocation;
  /** The rules that read this place: a key there must be one of theirs. */
  rules: readonly SnapshotApiKeyRule[];
}

interface FoundKey {
  client: string;
  rule: SnapshotApiKeyRule;
  location: KeyLocation;
}

/** Every place an apiKeys rule reads (headers, then parameters), each with the rules reading it. */
function compileKeyLocations(rules: readonly SnapshotApiKeyRule[]): CompiledKeyLocation[] {
  const byKey = new Map<string, { location: KeyLocation; rules: SnapshotApiKeyRule[] }>();
  const add = (location: KeyLocation, rule: SnapshotApiKeyRule) => {
    const key = location.kind === 'header' ? `header:${location.name}:${location.prefix.toLowerCase()}` : `param:${location.name}`;
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { location, rules: [] }));
    entry.rules.push(rule);
  };
  for (const rule of rules) for (const h of rule.fromHeaders) add({ kind: 'header', name: h.name, prefix: h.prefix }, rule);
  for (const rule of rules) for (const name of rule.fromParams) add({ kind: 'param', name }, rule);
  return [...byKey.values()];
}

/** The keys the request carries, each checked against the rules reading where it was found; one that none accepts throws. */
function checkKeys(ex: HttpExchange, locations: readonly CompiledKeyLocation[]): FoundKey[] {
  const found: FoundKey[] = [];
  for (const { location, rules } of locations) {
    const presented: string[] = [];
    if (location.kind === 'header') {
      const prefix = location.prefix;
      for (const value of values(ex.headers[location.name])) {
        if (prefix === '') presented.push(value.trim());
        else if (value.length > prefix.length && value.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()) presented.push(value.slice(prefix.length).trim());
      }
    } else if (ex.path.includes('?')) {
      for (const value of ex.queryParams.getAll(location.name)) presented.push(value.trim());
    }
    for (const key of presented) {
      if (key === '') continue;
      const digest = createHash('sha256').update(key).digest('hex');
      const rule = rules.find((r) => Object.hasOwn(r.keys, digest));
      if (!rule) throw proxyError(ErrorCodes.API_KEY_INVALID, `the API key in ${location.kind === 'header' ? `header ${location.name}` : `query parameter ${location.name}`} is not one this service accepts`, 401);
      found.push({ client: rule.keys[digest]!, rule, location });
    }
  }
  return found;
}

/** A checked key: the principal (unless a token gave one), the client id header, and the key removed unless forwarded. */
function admitKeys(ex: HttpExchange, keys: readonly FoundKey[]): void {
  if (keys.length === 0) return;
  ex.requestPrincipal ??= `${API_KEY_PRINCIPAL_PREFIX}${keys[0]!.client}`;
  for (const { client, rule, location } of keys) {
    if (rule.clientIdHeader && ex.headers[rule.clientIdHeader] === undefined && !INVALID_FIELD_VALUE_CHAR.test(client)) ex.headers[rule.clientIdHeader] = client;
    if (!rule.forwardOriginalKey) strip(ex, location);
  }
}

/** The 401 for a key no rule accepts; the challenge names a scheme of its own, as there is no standard one for API keys. */
function keyRefusal(ex: HttpExchange, error: unknown): WeftError {
  const refused = isWeftError(error) ? error : proxyError(ErrorCodes.API_KEY_INVALID, error instanceof Error ? error.message : String(error), 401);
  if (!ex.res.headersSent) ex.res.setHeader('www-authenticate', `ApiKey realm="${realmOf(ex)}"`);
  return refused;
}

function compileRule(rule: SnapshotJwtRule, jwks: JwksCache): CompiledRule {
  let getKey: JWTVerifyGetKey;
  let secrets: CompiledRule['secrets'];
  const hmac = rule.algorithms.some((alg) => alg.startsWith('HS'));
  if (hmac) {
    // Only an inline set's oct keys are secrets; a public key is never taken for one (key confusion), nor is a mixed rule served.
    if (rule.jwks === undefined || rule.algorithms.some((alg) => !alg.startsWith('HS'))) {
      throw proxyError(ErrorCodes.SNAPSHOT_INVALID, `jwt rule ${rule.id}: HMAC algorithms need an inline jwks and no other algorithm`);
    }
    try {
      const keys = (JSON.parse(rule.jwks) as { keys?: { kty?: unknown; k?: unknown; kid?: unknown }[] }).keys ?? [];
      secrets = keys
        .filter((k) => k.kty === 'oct' && typeof k.k === 'string')
        .map((k) => ({ kid: typeof k.kid === 'string' ? k.kid : undefined, key: createSecretKey(Buffer.from(k.k as string, 'base64url')) }));
    } catch (error) {
      throw proxyError(ErrorCodes.SNAPSHOT_INVALID, `jwt rule ${rule.id}: unusable jwks: ${error instanceof Error ? error.message : String(error)}`);
    }
    getKey = () => Promise.reject(new (jose().errors.JWKSNoMatchingKey)());
  } else if (rule.jwks !== undefined) {
    try {
      getKey = jose().createLocalJWKSet(JSON.parse(rule.jwks) as Parameters<typeof createLocalJWKSet>[0]);
    } catch (error) {
      throw proxyError(ErrorCodes.SNAPSHOT_INVALID, `jwt rule ${rule.id}: unusable jwks: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else if (rule.jwksUri !== undefined) {
    getKey = jwks.source(rule.jwksUri, { cacheMs: rule.jwksCacheMs, timeoutMs: rule.jwksTimeoutMs }).getKey;
  } else {
    throw proxyError(ErrorCodes.SNAPSHOT_INVALID, `jwt rule ${rule.id} has neither jwksUri nor jwks`);
  }
  const algorithms = rule.algorithms.filter((alg) => alg.toLowerCase() !== 'none');
  if (algorithms.length === 0) throw proxyError(ErrorCodes.SNAPSHOT_INVALID, `jwt rule ${rule.id} allows no algorithm`);
  const options: Omit<JWTVerifyOptions, 'currentDate'> = { issuer: rule.issuer, algorithms, clockTolerance: Math.floor(rule.clockSkewMs / 1000) };
  if (rule.audiences.length > 0) options.audience = rule.audiences;
  return secrets ? { rule, getKey, options, secrets } : { rule, getKey, options };
}

function locationKey(location: Location): string {
  return location.kind === 'header' ? `header:${location.name}:${location.prefix.toLowerCase()}` : `${location.kind}:${location.name}`;
}

/** Every place any rule reads, in order (headers, then parameters, then cookies), each with the rules reading it. */
function compileLocations(rules: CompiledRule[]): CompiledLocation[] {
  const byKey = new Map<string, CompiledLocation>();
  const add = (location: Location, rule: CompiledRule) => {
    const key = locationKey(location);
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { location, rules: [] }));
    entry.rules.push(rule);
  };
  for (const rule of rules) for (const h of rule.rule.fromHeaders) add({ kind: 'header', name: h.name, prefix: h.prefix }, rule);
  for (const rule of rules) for (const name of rule.rule.fromParams) add({ kind: 'param', name }, rule);
  for (const rule of rules) for (const name of rule.rule.fromCookies) add({ kind: 'cookie', name }, rule);
  return [...byKey.values()];
}

function values(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function cookies(header: string | string[] | undefined): [string, string][] {
  const pairs: [string, string][] = [];
  for (const line of values(header)) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      pairs.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()]);
    }
  }
  return pairs;
}

function findTokens(ex: HttpExchange, locations: readonly CompiledLocation[]): FoundToken[] {
  const found: FoundToken[] = [];
  const push = (token: string, at: CompiledLocation) => {
    if (token !== '') found.push({ token, at });
  };
  for (const at of locations) {
    const location = at.location;
    if (location.kind === 'header') {
      const prefix = location.prefix;
      for (const value of values(ex.headers[location.name])) {
        // A value without the prefix ("Basic ..." where "Bearer " is expected) carries no token for this rule.
        if (prefix === '') push(value.trim(), at);
        else if (value.length > prefix.length && value.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()) push(value.slice(prefix.length).trim(), at);
      }
    } else if (location.kind === 'param') {
      if (ex.path.includes('?')) for (const value of ex.queryParams.getAll(location.name)) push(value.trim(), at);
    } else {
      for (const [name, value] of cookies(ex.headers.cookie)) if (name === location.name) push(value, at);
    }
  }
  return found;
}

async function verifyAll(found: readonly FoundToken[], now: number): Promise<Verified[]> {
  const verified: Verified[] = [];
  for (const { token, at } of found) verified.push(await verifyOne(token, at, now));
  return verified;
}

async function verifyOne(token: string, at: CompiledLocation, now: number): Promise<Verified> {
  let issuer: unknown;
  try {
    issuer = jose().decodeJwt(token).iss;
  } catch {
    throw invalid('the token is not a JWT (header.payload.signature)');
  }
  const candidates = at.rules.filter((c) => c.rule.issuer === issuer);
  if (candidates.length === 0) {
    const shown = typeof issuer === 'string' ? JSON.stringify(issuer.slice(0, 200)) : 'none';
    throw invalid(`the token's issuer (${shown}) is not configured for where it was found`);
  }
  let firstError: unknown;
  for (const rule of candidates) {
    try {
      return { payload: await verifyWith(token, rule, now), rule };
    } catch (error) {
      firstError ??= error;
    }
  }
  throw firstError;
}

async function verifyWith(token: string, rule: CompiledRule, now: number): Promise<JWTPayload> {
  const options: JWTVerifyOptions = { ...rule.options, currentDate: new Date(now) };
  if (rule.secrets) {
    const kid = jose().decodeProtectedHeader(token).kid;
    const candidates = rule.secrets.filter((s) => kid === undefined || s.kid === undefined || s.kid === kid);
    let firstError: unknown = new (jose().errors.JWKSNoMatchingKey)();
    for (const [i, secret] of candidates.entries()) {
      try {
        return (await jose().jwtVerify(token, secret.key, options)).payload;
      } catch (error) {
        if (i === 0) firstError = error;
      }
    }
    throw firstError;
  }
  try {
    return (await jose().jwtVerify(token, rule.getKey, options)).payload;
  } catch (error) {
    // A token without a kid that several keys could verify: each is tried, as Envoy does.
    if (!(error instanceof jose().errors.JWKSMultipleMatchingKeys)) throw error;
    for await (const key of error as unknown as AsyncIterable<Parameters<typeof jwtVerify>[1] & object>) {
      try {
        return (await jose().jwtVerify(token, key, options)).payload;
      } catch {
        // the next key
      }
    }
    throw new (jose().errors.JWSSignatureVerificationFailed)();
  }
}

function invalid(message: string): WeftError {
  return proxyError(ErrorCodes.JWT_INVALID, message, 401);
}

/** A verification failure as the 401 the client gets, with a message that says which check failed. */
function asRefusal(error: unknown): WeftError {
  if (isWeftError(error)) return error.code === ErrorCodes.JWKS_UNAVAILABLE || error.code === ErrorCodes.JWT_INVALID ? error : invalid(error.message);
  if (error instanceof jose().errors.JWTExpired) return invalid('the token expired');
  if (error instanceof jose().errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return invalid('the token is not valid yet (nbf)');
    if (error.claim === 'aud') return invalid('the token is not for an allowed audience');
    if (error.claim === 'iss') return invalid("the token's issuer is not configured");
    return invalid(`the token's ${error.claim} claim is invalid: ${error.reason}`);
  }
  if (error instanceof jose().errors.JOSEAlgNotAllowed) return invalid("the token's signature algorithm is not allowed");
  if (error instanceof jose().errors.JWKSNoMatchingKey) return invalid("no key of the issuer matches the token's kid and algorithm");
  if (error instanceof jose().errors.JWSSignatureVerificationFailed) return invalid('the token signature does not verify');
  if (error instanceof jose().errors.JOSEError) return invalid(`the token is invalid: ${error.message}`);
  return invalid(error instanceof Error ? error.message : String(error));
}

/** RFC 6750 §3: the challenge names the realm (scheme, host and path, never the query, which may hold the token) and the error. */
function refusal(ex: HttpExchange, error: unknown): WeftError {
  const refused = asRefusal(error);
  if (!ex.res.headersSent) {
    ex.res.setHeader('www-authenticate', `Bearer realm="${realmOf(ex)}", error="invalid_token"`);
  }
  return refused;
}

/** RFC 6750 §3's realm: scheme, host and path, never the query (which may hold the token or key). */
function realmOf(ex: HttpExchange): string {
  const host = values(ex.headers.host)[0] ?? '';
  return `${ex.scheme}://${host}${ex.pathname}`.replace(/["\\]/g, '').replace(/[^\x20-\x7e]/g, '').slice(0, 256);
}

function admit(ex: HttpExchange, found: readonly FoundToken[], verified: readonly Verified[]): void {
  const first = verified[0]!.payload;
  ex.requestPrincipal = `${String(first.iss ?? '')}/${String(first.sub ?? '')}`;
  ex.jwtClaims = Object.freeze({ ...first });
  ex.jwtAudiences = Object.freeze(first.aud === undefined ? [] : Array.isArray(first.aud) ? [...first.aud] : [first.aud]);
  found.forEach(({ token, at }, i) => {
    const { payload, rule } = verified[i]!;
    const r = rule.rule;
    if (r.outputPayloadToHeader) ex.headers[r.outputPayloadToHeader] = token.split('.')[1] ?? '';
    for (const { header, claim } of r.outputClaimToHeaders) {
      const value = claimText(payload, claim);
      if (value !== undefined) ex.headers[header] = value;
    }
    if (!r.forwardOriginalToken) strip(ex, at.location);
  });
}

/** A claim as a header value: strings, numbers and booleans as they are, lists of them joined with ","; objects are not copied. "a.b" reaches a nested claim. */
function claimText(payload: JWTPayload, claim: string): string | undefined {
  let value: unknown = payload[claim];
  if (value === undefined && claim.includes('.')) {
    value = payload;
    for (const part of claim.split('.')) value = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[part] : undefined;
  }
  const scalar = (v: unknown) => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined);
  let text: string | undefined;
  if (Array.isArray(value)) {
    const parts = value.map(scalar);
    text = parts.every((p) => p !== undefined) ? parts.join(',') : undefined;
  } else text = scalar(value);
  return text === undefined || INVALID_FIELD_VALUE_CHAR.test(text) ? undefined : text;
}

/** Removes a verified token (or key) from where it was found, so that the app never sees it (forwardOriginalToken: false). */
function strip(ex: HttpExchange, location: Location | KeyLocation): void {
  if (location.kind === 'header') {
    delete ex.headers[location.name];
  } else if (location.kind === 'param') {
    const q = ex.path.indexOf('?');
    if (q === -1) return;
    const kept = ex.path
      .slice(q + 1)
      .split('&')
      .filter((part) => {
        const eq = part.indexOf('=');
        const raw = (eq === -1 ? part : part.slice(0, eq)).replace(/\+/g, ' ');
        let name = raw;
        try {
          name = decodeURIComponent(raw);
        } catch {
          // left as it came
        }
        return name !== location.name;
      });
    ex.setPath(kept.length > 0 ? `${ex.path.slice(0, q)}?${kept.join('&')}` : ex.path.slice(0, q));
  } else {
    const rest = cookies(ex.headers.cookie).filter(([name]) => name !== location.name);
    if (rest.length > 0) ex.headers.cookie = rest.map(([name, value]) => `${name}=${value}`).join('; ');
    else delete ex.headers.cookie;
  }
}
