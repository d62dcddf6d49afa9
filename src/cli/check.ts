// `weft check`: exits non-zero naming each problem (certificates near expiry, NACKed config, disconnected or unready proxies, failing snapshots); "all good" otherwise.
import { Command, InvalidArgumentError } from 'commander';
import type { ProxyStatus } from '../api/stream.ts';
import type { CaState } from '../control/ca/rotating.ts';
import { WeftClient, type ServerStatus } from './client.ts';
import { CliError, resolveServer } from './options.ts';
import { expiresIn } from './status.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_WARN_DAYS = 7;

export interface CheckInput {
  proxies: readonly ProxyStatus[];
  status: ServerStatus | undefined;
  now: number;
  /** Certificates of the CA within this many milliseconds of expiry are problems. */
  caWarnMs: number;
  /**
   * Workload certificates within this many milliseconds of expiry are
   * problems; undefined: a quarter of the workload certificate lifetime
   * (proxies renew at half life, so a certificate that close to its end has
   * missed its renewal for a long while).
   */
  workloadWarnMs: number | undefined;
}

interface SnapshotEntry {
  key: string;
  lastError?: { problems?: string[] };
}

type CaStatus = CaState & { workloadCertTtlMs?: number };

/** Every problem found, one sentence each, naming what is wrong and where. */
export function findProblems(input: CheckInput): string[] {
  const { proxies, status, now } = input;
  const problems: string[] = [];
  const ca = status?.ca as CaStatus | undefined;
  const window = (ms: number) => (ms % DAY_MS === 0 ? `${ms / DAY_MS} day${ms === DAY_MS ? '' : 's'}` : `${+(ms / DAY_MS).toFixed(3)} days`);

  for (const cert of ca?.certificates ?? []) {
    const notAfter = Date.parse(cert.notAfter);
    // A retiring root leaves the bundle at trustedUntil; its own expiry matters only if that comes first.
    if (cert.role === 'retiring' && cert.trustedUntil !== undefined && Date.parse(cert.trustedUntil) < notAfter) continue;
    if (notAfter - now <= input.caWarnMs) {
      const what = cert.role === 'signing' ? 'the signing CA' : 'the trusted root';
      problems.push(`${what} ${cert.subject.replace(/\n/g, ', ')} (${cert.fingerprint.slice(0, 23)}) ${notAfter <= now ? 'has expired' : 'expires'} ${expiresIn(cert.notAfter, now)} (${cert.notAfter}), within the ${window(input.caWarnMs)} warning window: rotate it with weft ca rotate`);
    }
  }

  const workloadWarnMs = input.workloadWarnMs ?? (ca?.workloadCertTtlMs !== undefined ? ca.workloadCertTtlMs / 4 : undefined);
  for (const proxy of [...proxies].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!proxy.connected) {
      problems.push(`proxy ${proxy.id} is disconnected from the control plane (last seen ${proxy.lastSeen})`);
      continue;
    }
    if (proxy.lastNack && proxy.lastNack.version === proxy.sentVersion) {
      problems.push(`proxy ${proxy.id} rejected its config (version ${proxy.sentVersion.slice(0, 10)}): ${proxy.lastNack.code}: ${proxy.lastNack.message}`);
    }
    if (!proxy.ready) problems.push(`proxy ${proxy.id} is not ready (no certificate yet, or its app is not answering)`);
    if (proxy.certExpiresAt !== undefined && workloadWarnMs !== undefined) {
      const notAfter = Date.parse(proxy.certExpiresAt);
      if (notAfter - now <= workloadWarnMs) {
        const within = input.workloadWarnMs !== undefined ? `within the ${window(workloadWarnMs)} warning window` : 'in the last quarter of its lifetime: its renewals are failing';
        problems.push(`proxy ${proxy.id}: its workload certificate (${proxy.identity ?? 'no identity'}) ${notAfter <= now ? 'has expired' : 'expires'} ${expiresIn(proxy.certExpiresAt, now)} (${proxy.certExpiresAt}), ${within}`);
      }
    }
  }

  for (const entry of (status?.snapshots as SnapshotEntry[] | undefined) ?? []) {
    if (entry.lastError) problems.push(`the config for ${entry.key} fails its check, so its proxies keep an older one: ${(entry.lastError.problems ?? []).join('; ')}`);
  }
  return problems;
}

/** The one-line summary of a clean check. */
export function allGood(input: CheckInput): string {
  const ca = input.status?.ca as CaStatus | undefined;
  const signing = ca?.certificates.find((c) => c.role === 'signing');
  const soonest = input.proxies
    .map((p) => p.certExpiresAt)
    .filter((at): at is string => at !== undefined)
    .sort()[0];
  const parts = [`all good: ${input.proxies.length} prox${input.proxies.length === 1 ? 'y' : 'ies'} connected, ready and running their config`];
  if (signing) parts.push(`signing CA expires ${expiresIn(signing.notAfter, input.now)}`);
  if (soonest) parts.push(`the soonest workload certificate expires ${expiresIn(soonest, input.now)}`);
  return `${parts.join('; ')}\n`;
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || !Number.isFinite(days)) throw new InvalidArgumentError('must be a number of days, such as 7 or 0.5');
  return days;
}

export function checkCommand(): Command {
  return new Command('check')
    .description('check the mesh: certificates near expiry, proxies that rejected their config or are disconnected or not ready, configs that fail; exits 1 naming each problem')
    .option('--warn-days <days>', `flag certificates that expire within this many days (default ${DEFAULT_WARN_DAYS} for the CA; workload certificates, unless given: a quarter of their lifetime)`, parseDays)
    .action(async (flags: { warnDays?: number }, command: Command) => {
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const [proxies, status] = await Promise.all([client.proxies(), client.status()]);
      const input: CheckInput = {
        proxies,
        status,
        now: Date.now(),
        caWarnMs: (flags.warnDays ?? DEFAULT_WARN_DAYS) * DAY_MS,
        workloadWarnMs: flags.warnDays !== undefined ? flags.warnDays * DAY_MS : undefined,
      };
      const problems = findProblems(input);
      if (problems.length === 0) {
        process.stdout.write(allGood(input));
        return;
      }
      throw new CliError(`${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    });
}
