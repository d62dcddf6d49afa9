// Loopback: whether a peer is on this host (its socket address), and whether a host name or address in a flag or URL names this host.

const IPV4_LOOPBACK = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** A peer's address as a socket reports it: 127.0.0.0/8, ::1, or 127.x mapped into IPv6. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  return IPV4_LOOPBACK.test(address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address);
}

/** A host as written in a flag or a URL: `localhost`, `::1` (bracketed or not), or an address in 127.0.0.0/8. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return bare === 'localhost' || bare === '::1' || IPV4_LOOPBACK.test(bare);
}
