// `weft explain`, authentication part: the RequestAuthentication rules a verifying proxy applies, and what it would make of the request's token (read without verifying it) and API keys (checked against their digests).
//
// Tokens are looked for where the proxy looks (request-authn layer): every
// rule's headers (prefix stripped), then query parameters, then cookies. The
// claims are decoded, never verified: explain has no keys to check a
// signature with, so what it shows is what the token claims. What the proxy
// would refuse whatever the signature (not a JWT, an issuer no rule reading
// that place accepts, expired, no allowed audience) is a 401 in the trace.
import { ErrorCodes } from '../api/errors.ts';
import type { ExplainApiKey, ExplainAuthentication, ExplainJwtRule, ExplainToken, ExplainVerdict } from '../api/explain.ts';
import type { SnapshotApiKeyRule, SnapshotJwtRule } from '../api/snapshot.ts';
import { sha256Hex } from './hash.ts';

/** What one verifying proxy makes of the request's tokens. */
export interface TokenReading {
  authentication: ExplainAuthentication;
  /**
   * The request principal and claims the proxy gives the request if its first token verifies (else, an API key's
   * client); absent when it has none or is refused. `checked`: it comes from an API key, which explain checks for real.
   */
  principal?: { requestPrincipal: string; claims: Record<string, unknown>; audiences: string[]; checked?: boolean };
  /** The 401 the proxy answers whatever the signature. */
  refusal?: ExplainVerdict;
  /** The request as the proxy sends it on: tokens removed where the rule that accepts them does not forward them. */
  forwarded: TokenRequest;
}

export interface TokenRequest {
  /** Lower-case names. */
  headers: Record<string, string>;
  /** With the query. */
  path: string;
}

type Location = { kind: 'header'; name: string; prefix: string } | { kind: 'param'; name: string } | { kind: 'cookie'; name: string };

/**
 * Reads the request's tokens as the proxy at `at` would. `now` (epoch ms)
 * judges `exp`; without it expiry is shown, not judged. Undefined when no
 * rule applies there (the proxy does not read tokens at all).
 */
export function readTokens(at: string, rules: readonly SnapshotJwtRule[], request: TokenRequest, now: number | undefined, keyRules: readonly SnapshotApiKeyRule[] = []): TokenReading | undefined {
  if (rules.length === 0 && keyRules.length === 0) return undefined;
  const authentication: ExplainAuthentication = { at, rules: rules.map(describeRule), tokens: [] };
  const reading: TokenReading = { authentication, forwarded: { headers: { ...request.headers }, path: request.path } };
  // Keys first, as the proxy checks them first: an unknown one is the 401 whatever the tokens.
  let client: string | undefined;
  if (keyRules.length > 0) {
    authentication.apiKeyRules = keyRules.map((r) => ({ id: r.id, from: [...r.fromHeaders.map((h) => locationText({ kind: 'header', ...h })), ...r.fromParams.map((name) => locationText({ kind: 'param', name }))], clients: new Set(Object.values(r.keys)).size }));
    authentication.apiKeys = [];
    for (const { token: key, location, readers } of findIn(keyPlaces(keyRules), request)) {
      const digest = sha256Hex(key);
      const rule = readers.find((r) => Object.hasOwn(r.keys, digest));
      const shown: ExplainApiKey = { foundIn: locationText(location) };
      if (rule) {
        shown.client = rule.keys[digest]!;
        shown.acceptedBy = rule.id;
        client ??= shown.client;
        if (!rule.forwardOriginalKey) strip(reading.forwarded, location);
      } else {
        shown.problem = `the API key in ${shown.foundIn} is not one this service accepts`;
        reading.refusal ??= { outcome: 'denied', status: 401, reason: ErrorCodes.API_KEY_INVALID, summary: `refused at ${at}: ${shown.problem}` };
      }
      authentication.apiKeys.push(shown);
    }
  }
  for (const { token, location, readers } of findTokens(rules, request)) {
    const shown = judge(token, locationText(location), readers, now);
    authentication.tokens.push(shown.token);
    if (shown.refusal && !reading.refusal) {
      reading.refusal = { outcome: 'denied', status: 401, reason: ErrorCodes.JWT_INVALID, summary: `refused at ${at}: ${shown.refusal}` };
    }
    // The first rule of its issuer is the one explain assumes verifies it (the proxy tries them in order).
    if (shown.accepting && !shown.accepting.forwardOriginalToken) strip(reading.forwarded, location);
  }
  const first = authentication.tokens[0];
  if (first && !reading.refusal && first.claims) {
    const claims = first.claims;
    const aud = claims.aud;
    reading.principal = {
      requestPrincipal: `${String(claims.iss ?? '')}/${String(claims.sub ?? '')}`,
      claims,
      audiences: aud === undefined ? [] : Array.isArray(aud) ? aud.map(String) : [String(aud)],
    };
  } else if (client !== undefined && !reading.refusal) {
    reading.principal = { requestPrincipal: `api-key/${client}`, claims: {}, audiences: [], checked: true };
  }
  return reading;
}

function describeRule(rule: SnapshotJwtRule): ExplainJwtRule {
  const from = [
    ...rule.fromHeaders.map((h) => locationText({ kind: 'header', name: h.name, prefix: h.prefix })),
    ...rule.fromParams.map((name) => locationText({ kind: 'param', name })),
    ...rule.fromCookies.map((name) => locationText({ kind: 'cookie', name })),
  ];
  return { id: rule.id, issuer: rule.issuer, audiences: [...rule.audiences], from, keys: rule.jwksUri ?? 'inline jwks' };
}

function locationText(location: Location): string {
  if (location.kind === 'header') return `header ${location.name}${location.prefix ? ` (prefix ${JSON.stringify(location.prefix)})` : ''}`;
  return location.kind === 'param' ? `query parameter ${location.name}` : `cookie ${location.name}`;
}

function locationKey(location: Location): string {
  return location.kind === 'header' ? `header:${location.name}:${location.prefix.toLowerCase()}` : `${location.kind}:${location.name}`;
}

type Place<R> = { location: Location; readers: R[] };

function placesOf<R>(add: (place: (location: Location, rule: R) => void) => void): Place<R>[] {
  const places = new Map<string, Place<R>>();
  add((location, rule) => {
    const key = locationKey(location);
    const place = places.get(key);
    if (place) place.readers.push(rule);
    else places.set(key, { location, readers: [rule] });
  });
  return [...places.values()];
}

function findTokens(rules: readonly SnapshotJwtRule[], request: TokenRequest): { token: string; location: Location; readers: SnapshotJwtRule[] }[] {
  const places = placesOf<SnapshotJwtRule>((add) => {
    for (const rule of rules) for (const h of rule.fromHeaders) add({ kind: 'header', name: h.name, prefix: h.prefix }, rule);
    for (const rule of rules) for (const name of rule.fromParams) add({ kind: 'param', name }, rule);
    for (const rule of rules) for (const name of rule.fromCookies) add({ kind: 'cookie', name }, rule);
  });
  return findIn(places, request);
}

/** The places apiKeys rules read (headers, then query parameters), each with its readers. */
function keyPlaces(rules: readonly SnapshotApiKeyRule[]): Place<SnapshotApiKeyRule>[] {
  return placesOf<SnapshotApiKeyRule>((add) => {
    for (const rule of rules) for (const h of rule.fromHeaders) add({ kind: 'header', name: h.name, prefix: h.prefix }, rule);
    for (const rule of rules) for (const name of rule.fromParams) add({ kind: 'param', name }, rule);
  });
}

/** What the request carries in each place: a header (its prefix stripped), query parameters, cookies. */
function findIn<R>(places: readonly Place<R>[], request: TokenRequest): { token: string; location: Location; readers: R[] }[] {
  const q = request.path.indexOf('?');
  const params = new URLSearchParams(q === -1 ? '' : request.path.slice(q + 1));
  const found: { token: string; location: Location; readers: R[] }[] = [];
  for (const { location, readers } of places) {
    const push = (token: string) => {
      if (token !== '') found.push({ token, location, readers });
    };
    if (location.kind === 'header') {
      const value = request.headers[location.name];
      if (value === undefined) continue;
      const prefix = location.prefix;
      if (prefix === '') push(value.trim());
      else if (value.length > prefix.length && value.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()) push(value.slice(prefix.length).trim());
    } else if (location.kind === 'param') {
      for (const value of params.getAll(location.name)) push(value.trim());
    } else {
      for (const part of (request.headers.cookie ?? '').split(';')) {
        const eq = part.indexOf('=');
        if (eq > 0 && part.slice(0, eq).trim() === location.name) push(part.slice(eq + 1).trim());
      }
    }
  }
  return found;
}

/** The token's claims, decoded without verifying anything; undefined when it is not a JWT. */
function decodeClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Removes a token's place from the request, as the proxy does once the token verified (unless the rule forwards it). */
function strip(request: TokenRequest, location: Location): void {
  if (location.kind === 'header') {
    delete request.headers[location.name];
  } else if (location.kind === 'param') {
    const q = request.path.indexOf('?');
    if (q === -1) return;
    const params = new URLSearchParams(request.path.slice(q + 1));
    params.delete(location.name);
    const query = params.toString();
    request.path = query ? `${request.path.slice(0, q)}?${query}` : request.path.slice(0, q);
  } else {
    const rest = (request.headers.cookie ?? '')
      .split(';')
      .map((part) => part.trim())
      .filter((part) => part !== '' && part.slice(0, Math.max(0, part.indexOf('='))).trim() !== location.name);
    if (rest.length > 0) request.headers.cookie = rest.join('; ');
    else delete request.headers.cookie;
  }
}

function judge(token: string, foundIn: string, readers: readonly SnapshotJwtRule[], now: number | undefined): { token: ExplainToken; refusal?: string; accepting?: SnapshotJwtRule } {
  const claims = decodeClaims(token);
  if (!claims) {
    const problem = 'the token is not a JWT (header.payload.signature)';
    return { token: { foundIn, verified: false, issuerAccepted: false, problem }, refusal: problem };
  }
  const shown: ExplainToken = { foundIn, verified: false, issuerAccepted: false, claims };
  if (typeof claims.iss === 'string') shown.iss = claims.iss;
  if (typeof claims.sub === 'string') shown.sub = claims.sub;
  if (claims.aud !== undefined) shown.aud = Array.isArray(claims.aud) ? claims.aud.map(String) : [String(claims.aud)];
  if (typeof claims.exp === 'number') shown.expiresAt = new Date(claims.exp * 1000).toISOString();
  // The proxy verifies a token only against the rules that read the place it was found in and name its issuer.
  const candidates = readers.filter((r) => r.issuer === claims.iss);
  shown.issuerAccepted = candidates.length > 0;
  if (candidates.length === 0) {
    const issuer = typeof claims.iss === 'string' ? JSON.stringify(claims.iss.slice(0, 200)) : 'none';
    shown.problem = `the token's issuer (${issuer}) is not configured for where it was found (${readers.map((r) => r.issuer).join(', ')} ${readers.length === 1 ? 'is' : 'are'})`;
    return { token: shown, refusal: shown.problem };
  }
  shown.acceptedBy = candidates.map((r) => r.id);
  if (typeof claims.exp === 'number' && now !== undefined) {
    const skewMs = Math.max(...candidates.map((r) => r.clockSkewMs));
    shown.expired = claims.exp * 1000 + skewMs <= now;
    if (shown.expired) {
      shown.problem = `the token expired (exp ${shown.expiresAt})`;
      return { token: shown, refusal: shown.problem };
    }
  }
  const audiences = shown.aud ?? [];
  if (!candidates.some((r) => r.audiences.length === 0 || r.audiences.some((a) => audiences.includes(a)))) {
    shown.problem = `the token is not for an allowed audience (${[...new Set(candidates.flatMap((r) => r.audiences))].join(', ')})`;
    return { token: shown, refusal: shown.problem };
  }
  return { token: shown, accepting: candidates[0]! };
}
