// Resolves the KIND argument of get/delete: kind names, plurals and a few short aliases.
import { KINDS, findKind, type KindInfo } from '../api/resources.ts';
import { CliError } from './options.ts';

const ALIASES: Record<string, string> = { svc: 'Service', ns: 'Namespace', wl: 'Workload', route: 'HTTPRoute', routes: 'HTTPRoute', gtw: 'Gateway', gw: 'Gateway' };

export function resolveKind(name: string): KindInfo {
  const info = findKind(ALIASES[name.toLowerCase()] ?? name);
  if (!info) throw new CliError(`error: unknown kind "${name}"; weft knows ${KINDS.map((k) => k.plural).join(', ')}`);
  return info;
}
