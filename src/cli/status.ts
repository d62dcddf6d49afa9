// `weft status`: the control plane and every proxy it knows: connected, ready, config versions, last NACK, certificate expiry, the CA's roots.
import { Command, Option } from 'commander';
import type { ProxyStatus, ReplicaStatus } from '../api/stream.ts';
import { ApiError, WeftClient, type ServerStatus } from './client.ts';
import { shortVersion, table, truncate } from './format.ts';
import { formatCaCertificates } from './ca.ts';
import type { CaState } from '../control/ca/rotating.ts';
import { resolveServer } from './options.ts';

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

/** With several control-plane replicas, a REPLICA column says which one holds each proxy's stream. */
export function formatProxies(proxies: readonly ProxyStatus[], options: { replicas?: boolean } = {}): string {
  if (proxies.length === 0) return 'No proxies have connected.\n';
  const sorted = [...proxies].sort((a, b) => a.id.localeCompare(b.id));
  const rows = sorted.map((p) => [
    p.id,
    p.workload ?? '-',
    yesNo(p.connected),
    yesNo(p.ready),
    shortVersion(p.ackedVersion),
    shortVersion(p.sentVersion),
    ...(options.replicas ? [p.replica ?? '-'] : []),
    p.lastNack ? truncate(`${p.lastNack.code}: ${p.lastNack.message}`, 60) : '-',
  ]);
  return table(['ID', 'WORKLOAD', 'CONNECTED', 'READY', 'ACKED', 'SENT', ...(options.replicas ? ['REPLICA'] : []), 'LAST NACK'], rows);
}

/** The control-plane replicas: which one answered, which leads, how many proxies each holds, and any that could not be asked. */
export function formatReplicas(replicas: readonly ReplicaStatus[], leader: string | undefined): string {
  const rows = replicas.map((r) => [
    `${r.name}${r.self ? ' (asked)' : ''}`,
    r.stream,
    r.name === leader ? 'yes' : 'no',
    String(r.proxies),
    r.reachable ? 'yes' : truncate(`no: ${r.error ?? 'unknown'}`, 70),
  ]);
  return table(['REPLICA', 'STREAM', 'LEADS', 'PROXIES', 'REACHABLE'], rows);
}

/** "in 11h", "in 4m", "expired 2m ago": how long a certificate has left. */
export function expiresIn(at: string | undefined, now = Date.now()): string {
  if (!at) return '-';
  const then = Date.parse(at);
  if (Number.isNaN(then)) return '-';
  const span = (ms: number) => {
    const s = Math.floor(Math.abs(ms) / 1000);
    if (s < 120) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 120) return `${m}m`;
    const h = Math.floor(m / 60);
    return h < 48 ? `${h}h` : `${Math.floor(h / 24)}d`;
  };
  return then > now ? `in ${span(then - now)}` : `expired ${span(now - then)} ago`;
}

/** Each proxy's workload identity and when its certificate expires (a second table, so the first keeps its shape). */
export function formatIdentities(proxies: readonly ProxyStatus[], now = Date.now()): string {
  if (proxies.length === 0) return '';
  const sorted = [...proxies].sort((a, b) => a.id.localeCompare(b.id));
  const rows = sorted.map((p) => [p.id, p.identity ?? '-', p.certExpiresAt ?? '-', expiresIn(p.certExpiresAt, now)]);
  return table(['ID', 'IDENTITY', 'CERT EXPIRES', ''], rows);
}

/** One line: how many proxies, how many connected, ready, running the config they were sent, NACKing. */
export function summarize(proxies: readonly ProxyStatus[]): string {
  const connected = proxies.filter((p) => p.connected).length;
  const ready = proxies.filter((p) => p.ready).length;
  const inSync = proxies.filter((p) => p.sentVersion !== undefined && p.ackedVersion === p.sentVersion).length;
  const nacking = proxies.filter((p) => p.lastNack && p.lastNack.version === p.sentVersion).length;
  return `${proxies.length} prox${proxies.length === 1 ? 'y' : 'ies'}: ${connected} connected, ${ready} ready, ${inSync} up to date, ${nacking} rejecting their config`;
}

/** The scalar facts of GET /weft/v1/status, whatever they are, as "key=value". */
function serverFacts(status: ServerStatus | undefined): string {
  if (!status) return '';
  const facts = Object.entries(status)
    .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k}=${String(v)}`);
  return facts.length ? ` (${facts.join(' ')})` : '';
}

export function statusCommand(): Command {
  return new Command('status')
    .description("show the control plane and its proxies: connected, ready, acked and sent config versions, last NACK")
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .action(async (options: { output?: 'json' }, command: Command) => {
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const proxies = await client.proxies();
      let server: ServerStatus | undefined;
      try {
        server = await client.status();
      } catch (error) {
        // The proxies answered, so the server is up; its status page is a nicety.
        if (!(error instanceof ApiError)) throw error;
      }
      if (options.output === 'json') {
        process.stdout.write(JSON.stringify({ server: client.server, status: server ?? null, proxies }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`Control plane ${client.server}${serverFacts(server)}\n\n`);
      const replicas = Array.isArray(server?.replicas) ? (server.replicas as ReplicaStatus[]) : [];
      if (replicas.length > 1) {
        const leader = (server?.leader as { holder?: string } | undefined)?.holder;
        process.stdout.write(`${formatReplicas(replicas, leader)}\n`);
      }
      process.stdout.write(formatProxies(proxies, { replicas: replicas.length > 1 }));
      process.stdout.write(`\n${summarize(proxies)}\n`);
      const identities = formatIdentities(proxies);
      if (identities) process.stdout.write(`\n${identities}`);
      const ca = server?.ca as Partial<CaState> | undefined;
      if (Array.isArray(ca?.certificates) && ca.certificates.length > 0) process.stdout.write(`\n${formatCaCertificates(ca.certificates)}`);
    });
}
