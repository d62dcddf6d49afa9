// `weft ca status` and `weft ca rotate`: the mesh CA's roots, and root rotation with an overlap window.
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import type { CaCertificateInfo, CaState } from '../control/ca/rotating.ts';
import { WeftClient } from './client.ts';
import { table } from './format.ts';
import { CliError, parseDuration, resolveServer } from './options.ts';
import { expiresIn } from './status.ts';

interface RotateFlags {
  overlap?: number;
  caCert?: string;
  caKey?: string;
  caChain?: string;
}

/** One row per certificate: role, subject, fingerprint (first bytes), expiry, and for a retiring root when it stops being trusted. */
export function formatCaCertificates(certificates: readonly CaCertificateInfo[], now = Date.now()): string {
  const rows = certificates.map((c) => [
    c.role,
    c.subject.replace(/\n/g, ', '),
    c.fingerprint.slice(0, 23),
    `${c.notAfter} (${expiresIn(c.notAfter, now)})`,
    c.trustedUntil ? `${c.trustedUntil} (${expiresIn(c.trustedUntil, now)})` : '-',
  ]);
  return table(['ROLE', 'SUBJECT', 'FINGERPRINT', 'EXPIRES', 'TRUSTED UNTIL'], rows);
}

function describeState(state: CaState): string {
  const facts = [`source=${state.source}`, ...(state.trustDomain ? [`trustDomain=${state.trustDomain}`] : []), ...(state.rotatedAt ? [`rotatedAt=${state.rotatedAt}`] : [])];
  return `Mesh CA (${facts.join(' ')})\n${formatCaCertificates(state.certificates)}`;
}

export function caCommand(): Command {
  const ca = new Command('ca').description("the mesh CA: its roots, and root rotation");
  ca.command('status')
    .description('show the CA that signs workload certificates and every root proxies trust, with expiry and overlap end')
    .action(async (_flags: unknown, command: Command) => {
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      process.stdout.write(describeState(await client.caState()));
    });
  ca.command('bundle')
    .description('print the trust bundle (PEM): give it to proxies on other hosts as --ca-bundle, to verify the control plane over TLS')
    .action(async (_flags: unknown, command: Command) => {
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const state = await client.caState();
      if (!state.trustBundle || state.trustBundle.length === 0) throw new CliError('error: this control plane does not publish its trust bundle (an older version?)');
      process.stdout.write(state.trustBundle.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)).join(''));
    });
  ca.command('rotate')
    .description(
      'rotate the mesh root: a new one signs from now on, the old one stays trusted for --overlap; proxies adopt the new bundle, then renew their certificates within seconds',
    )
    .option('--overlap <duration>', 'how long the old root stays trusted (e.g. 24h, 30m)', parseDuration)
    .option('--ca-cert <file>', "the operator's new CA certificate (an intermediate, followed by its chain up to the root), instead of a generated root")
    .option('--ca-key <file>', 'its private key (PEM, unencrypted); read here and sent to the control plane on this host')
    .option('--ca-chain <file>', 'the certificates above --ca-cert, when that file does not hold them')
    .action(async (flags: RotateFlags, command: Command) => {
      if ((flags.caCert === undefined) !== (flags.caKey === undefined)) throw new CliError('error: give --ca-cert and --ca-key together (or neither, for a generated root)');
      if (flags.caChain !== undefined && flags.caCert === undefined) throw new CliError('error: --ca-chain goes with --ca-cert and --ca-key');
      const read = async (path: string) => {
        try {
          return await readFile(path, 'utf8');
        } catch (error) {
          throw new CliError(`error: cannot read ${path}: ${(error as Error).message}`);
        }
      };
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const state = await client.rotateCa({
        ...(flags.overlap !== undefined ? { overlapMs: flags.overlap } : {}),
        ...(flags.caCert !== undefined ? { certPem: await read(flags.caCert) } : {}),
        ...(flags.caKey !== undefined ? { keyPem: await read(flags.caKey) } : {}),
        ...(flags.caChain !== undefined ? { chainPem: await read(flags.caChain) } : {}),
      });
      const signing = state.certificates.find((c) => c.role === 'signing');
      process.stdout.write(`Rotated: new certificates are signed by ${signing?.subject.replace(/\n/g, ', ') ?? 'the new CA'} (${state.signingCa.slice(0, 23)}…).\n`);
      const retiring = state.certificates.filter((c) => c.role === 'retiring');
      for (const root of retiring) process.stdout.write(`The old root ${root.fingerprint.slice(0, 23)}… stays trusted until ${root.trustedUntil}.\n`);
      process.stdout.write('Proxies adopt the new trust bundle with their next snapshot, then renew their certificates within seconds (see weft status).\n');
      if (state.source === 'operator') {
        process.stdout.write('Point the control plane\'s --ca-cert/--ca-key at the new files before it next restarts: they are the operator\'s, and weft does not rewrite them.\n');
      }
      process.stdout.write(`\n${formatCaCertificates(state.certificates)}`);
    });
  return ca;
}
