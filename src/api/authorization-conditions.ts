// The `when` condition keys of an AuthorizationPolicy: which there are and what each names. No schema library here: proxies import it.
/** The `when` keys weft knows, as Istio spells them. */
export const CONDITION_KEYS = [
  'request.headers[<name>]',
  'source.ip',
  'source.namespace',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.claims[<name>]...',
  'destination.port',
] as const;
const FIXED_KEYS = new Set(['source.ip', 'source.namespace', 'source.principal', 'request.auth.principal', 'request.auth.audiences', 'destination.port']);
const HEADER_KEY = /^request\.headers\[([A-Za-z0-9!#$%&'*+\-.^_`|~]+)\]$/;
const CLAIMS_KEY = /^request\.auth\.claims((\[[^\][]+\])+)$/;

export function isConditionKey(key: string): boolean {
  return FIXED_KEYS.has(key) || HEADER_KEY.test(key) || CLAIMS_KEY.test(key);
}

/** "request.headers[X-Foo]" → "x-foo"; undefined for other keys. */
export function conditionHeader(key: string): string | undefined {
  return HEADER_KEY.exec(key)?.[1]?.toLowerCase();
}

/** "request.auth.claims[a][b]" → ["a", "b"]; undefined for other keys. */
export function conditionClaimPath(key: string): string[] | undefined {
  const m = CLAIMS_KEY.exec(key);
  return m ? m[1]!.slice(1, -1).split('][') : undefined;
}
