// `weft token create`: a bootstrap token for a proxy (per workload, per host or per namespace), printed once on stdout.
import { Command } from 'commander';
import { WeftClient } from './client.ts';
import { CliError, parseDuration, resolveServer } from './options.ts';

interface CreateFlags {
  namespace: string;
  workload?: string;
  host?: string;
  ttl?: number;
}

export function tokenCommand(): Command {
  const token = new Command('token').description('bootstrap tokens: what a proxy shows the control plane to get its workload certificate');
  token
    .command('create')
    .description('create a token and print it (only its hash is kept); give it to the proxy with --token-file or $WEFT_TOKEN')
    .option('-n, --namespace <ns>', 'the namespace the token is for', 'default')
    .option('--workload <name>', "the Workload the token is for: its proxies get that workload's service-account identity and no other")
    .option('--host <name>', 'a host the token is for (a node proxy): any identity in the namespace')
    .option('--ttl <duration>', 'how long the token is valid (default: until revoked)', parseDuration)
    .action(async (flags: CreateFlags, command: Command) => {
      if (flags.workload !== undefined && flags.host !== undefined) throw new CliError('error: a token is for a workload or for a host, not both');
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      const created = await client.createToken({
        namespace: flags.namespace,
        ...(flags.workload !== undefined ? { workload: flags.workload } : {}),
        ...(flags.host !== undefined ? { host: flags.host } : {}),
        ...(flags.ttl !== undefined ? { ttlMs: flags.ttl } : {}),
      });
      process.stdout.write(`${created.token}\n`);
    });
  return token;
}
