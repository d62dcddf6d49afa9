// Request targets: authorities ("host[:port]") and absolute-form URLs, as forward proxies and tunnels receive them.

export interface Authority {
  host: string;
  port: number | undefined;
}

/** Splits "host", "host:port" or "[v6]:port" (user info dropped); undefined when it is not an authority. */
export function parseAuthority(text: string): Authority | undefined {
  let rest = text.trim();
  const at = rest.lastIndexOf('@');
  if (at !== -1) rest = rest.slice(at + 1);
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) return undefined;
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return undefined;
    portText = after === '' ? undefined : after.slice(1);
  } else {
    const colon = rest.lastIndexOf(':');
    host = colon === -1 ? rest : rest.slice(0, colon);
    portText = colon === -1 ? undefined : rest.slice(colon + 1);
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '') return undefined;
  if (portText === undefined || portText === '') return { host, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}

/** "http://host:port/path?q" → authority and origin-form path; undefined for any other scheme. */
export function splitAbsoluteForm(url: string): { authority: string; path: string } | undefined {
  if (url.length < 7 || url.slice(0, 7).toLowerCase() !== 'http://') return undefined;
  const rest = url.slice(7);
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 0x2f || c === 0x3f || c === 0x23) {
      end = i;
      break;
    }
  }
  const authority = rest.slice(0, end);
  let path = rest.slice(end);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  if (path === '') path = '/';
  else if (path.startsWith('?')) path = `/${path}`;
  return authority === '' ? undefined : { authority, path };
}
