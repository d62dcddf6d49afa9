// Parses the CLI's `--store etcd://h1:2379,h2:2379` into endpoints, without loading the etcd client.
import { ErrorCodes, WeftError } from '../../api/errors.ts';

export const DEFAULT_ETCD_PREFIX = '/weft';

/**
 * "etcd://h1:2379,h2:2379" → ["http://h1:2379", "http://h2:2379"];
 * "etcds://..." the same with https (TLS to etcd); undefined when the value
 * is neither.
 */
export function parseEtcdStoreUrl(value: string): string[] | undefined {
  const match = /^etcd(s?):\/\/(.*)$/i.exec(value.trim());
  if (!match) return undefined;
  const scheme = match[1] ? 'https' : 'http';
  const hosts = match[2]!
    .replace(/\/+$/, '')
    .split(',')
    .map((host) => host.trim())
    .filter(Boolean);
  if (!hosts.length) throw new WeftError(ErrorCodes.INVALID, `no etcd endpoint in ${JSON.stringify(value)} (expected etcd://host:port[,host:port...] or etcds://...)`);
  for (const host of hosts) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(host)) {
      throw new WeftError(ErrorCodes.INVALID, `bad etcd endpoint ${JSON.stringify(host)} in ${JSON.stringify(value)} (expected host:port)`);
    }
  }
  return hosts.map((host) => `${scheme}://${/:\d+$/.test(host) && !host.endsWith(']') ? host : `${host}:2379`}`);
}

/** "/weft", "weft/", "/weft//" → "/weft": keys are then "<prefix>/objects/<group>/<kind>/<namespace>/<name>". */
export function normalizeEtcdPrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? DEFAULT_ETCD_PREFIX).trim().replace(/\/+$/, '');
  if (!trimmed) throw new WeftError(ErrorCodes.INVALID, 'the etcd key prefix must not be empty (default /weft)');
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}
