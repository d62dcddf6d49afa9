// IP addresses and CIDR blocks, parsed and matched without node:net, so that src/api stays free of Node modules (AuthorizationPolicy ipBlocks).

/** The address's bytes (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address gives its 4 IPv4 bytes); undefined when it is not an address. */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(':')) {
    const v6 = parseIpv6(text);
    if (!v6) return undefined;
    const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
    return mapped ? v6.slice(12) : v6;
  }
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? Uint8Array.from(bytes) : undefined;
}

function parseIpv6(input: string): Uint8Array | undefined {
  const text = input.replace(/%.*$/, '');
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) out.push(parseInt(piece, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/** "10.0.0.0/8", "2001:db8::/32" or a single address: its bytes and prefix length; undefined when invalid. */
export function parseIpBlock(text: string): { bytes: Uint8Array; bits: number } | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  // A block is written in its own family: "::ffff:10.0.0.0/104" stays IPv6-sized for its prefix.
  const bytes = address.includes(':') ? parseIpv6(address) : parseIpv4(address);
  if (!bytes) return undefined;
  if (slash === -1) return { bytes, bits: bytes.length * 8 };
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  return bits <= bytes.length * 8 ? { bytes, bits } : undefined;
}

/** A matcher for addresses inside any of `blocks` (invalid blocks are ignored: the schema refused them already). */
export function compileIpBlocks(blocks: readonly string[]): (address: string) => boolean {
  const parsed = blocks.flatMap((block) => {
    const b = parseIpBlock(block);
    if (!b) return [];
    // An IPv4-mapped block matches IPv4 addresses.
    const mapped = b.bytes.length === 16 && b.bits >= 96 && b.bytes.slice(0, 10).every((x) => x === 0) && b.bytes[10] === 0xff && b.bytes[11] === 0xff;
    return [mapped ? { bytes: b.bytes.slice(12), bits: b.bits - 96 } : b];
  });
  return (address) => {
    const bytes = parseIp(address);
    if (!bytes) return false;
    return parsed.some((block) => block.bytes.length === bytes.length && samePrefix(block.bytes, bytes, block.bits));
  };
}

function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole]! & mask) === (b[whole]! & mask);
}
