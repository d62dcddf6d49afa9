// Path modifiers shared by URLRewrite and RequestRedirect: ReplaceFullPath and ReplacePrefixMatch, query string kept.
import type { HttpMatch, PathModifier } from '../../../api/snapshot.ts';

/** Maps an origin-form target ("/path?query") to the modified one. */
export type PathRewrite = (target: string) => string;

/**
 * Compiles a modifier for a rule whose match is `match`. ReplacePrefixMatch
 * replaces the matched PathPrefix element-wise, ignoring trailing slashes on
 * both sides, as the Gateway API's table says: with prefix "/foo",
 * "/foo/bar" → "/xyz/bar" for "/xyz" or "/xyz/", "/foo/" → "/xyz/", and an
 * empty or "/" replacement strips the prefix ("/foo" → "/", "/foo/bar" → "/bar").
 */
export function compilePathModifier(modifier: PathModifier, match: HttpMatch | undefined): PathRewrite {
  if (modifier.type === 'ReplaceFullPath') {
    const full = modifier.value;
    return (target) => full + queryOf(target);
  }
  // The compiler only allows ReplacePrefixMatch with a PathPrefix match (or none: "/").
  const matched = match?.path?.type === 'PathPrefix' ? match.path.value : '/';
  const prefix = trimTrailingSlashes(matched);
  const replacement = trimTrailingSlashes(modifier.value);
  return (target) => {
    const q = target.indexOf('?');
    const pathname = q === -1 ? target : target.slice(0, q);
    const query = q === -1 ? '' : target.slice(q);
    // The route matched element-wise, so the path is the prefix itself or the prefix and "/...".
    const rest = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : pathname;
    let path = replacement + rest;
    if (path === '') path = '/';
    else if (!path.startsWith('/')) path = `/${path}`;
    return path + query;
  };
}

function trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}

function queryOf(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? '' : target.slice(q);
}
