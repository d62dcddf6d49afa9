// Gateway API host name patterns ("host", "*.suffix", "*"), shared by the compiler (attachment) and the gateway proxy (matching).

/** Lower-case, without a trailing dot and without a port. */
export function normalHost(host: string): string {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/**
 * Whether `host` (a concrete name) matches `pattern`: "*" matches every host;
 * "*.example.com" matches any name ending in ".example.com" with at least one
 * more label (at any depth), never "example.com" itself; anything else must
 * be equal.
 */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return host.length > suffix.length && host.endsWith(suffix);
  }
  return pattern === host;
}

/**
 * Orders patterns from the most to the least specific: exact names first,
 * then wildcards by length (longest first), then "*". Equal ranks keep a
 * stable code-unit order, so that the order is the same on every machine.
 */
export function compareHostSpecificity(a: string, b: string): number {
  const rank = (p: string) => (p === '*' ? 2 : p.startsWith('*.') ? 1 : 0);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  if (a.length !== b.length) return b.length - a.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The names both a listener hostname and a route hostname stand for, as a
 * pattern; undefined when they have none in common. An absent listener
 * hostname matches everything.
 */
export function intersectHostnames(listener: string | undefined, route: string): string | undefined {
  if (listener === undefined || listener === '*') return route;
  if (route === '*') return listener;
  const routeWild = route.startsWith('*.');
  const listenerWild = listener.startsWith('*.');
  if (!routeWild) return hostMatches(listener, route) ? route : undefined;
  if (!listenerWild) return hostMatches(route, listener) ? listener : undefined;
  // Two wildcards: the longer one is the intersection when it lies inside the shorter one.
  if (route.length >= listener.length) return route.endsWith(listener.slice(1)) || route === listener ? route : undefined;
  return listener.endsWith(route.slice(1)) ? listener : undefined;
}
