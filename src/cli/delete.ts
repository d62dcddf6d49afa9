// `weft delete KIND NAME` and `weft delete -f FILE`: removes objects by name or as listed in files.
import { Command } from 'commander';
import { kindOf, type KindInfo } from '../api/resources.ts';
import { ApiError, WeftClient } from './client.ts';
import { printIssues, readManifests } from './files.ts';
import { formatApiError } from './format.ts';
import { resolveKind } from './kinds.ts';
import { CliError, collect, resolveServer } from './options.ts';

interface Target {
  kind: KindInfo;
  name: string;
  namespace: string | undefined;
}

export function deleteCommand(): Command {
  return new Command('delete')
    .description('delete objects by kind and name, or every object in the given files')
    .argument('[kind]', 'kind of the object (services, workloads, httproutes, ...)')
    .argument('[name]', 'its name')
    .option('-f, --filename <path>', 'delete the objects in a file, directory or - (repeatable)', collect)
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--ignore-not-found', 'succeed when an object does not exist')
    .action(
      async (
        kindName: string | undefined,
        name: string | undefined,
        options: { filename?: string[]; namespace: string; ignoreNotFound?: boolean },
        command: Command,
      ) => {
        const targets: Target[] = [];
        if (options.filename) {
          if (kindName !== undefined) throw new CliError('error: give either KIND NAME or -f FILE, not both');
          const { resources, issues } = await readManifests(options.filename, options.namespace);
          if (issues.length > 0) {
            printIssues(issues);
            throw new CliError(`error: ${issues.length} problem${issues.length === 1 ? '' : 's'} found; nothing was deleted`);
          }
          for (const { resource } of resources) {
            const kind = kindOf(resource.apiVersion, resource.kind);
            if (kind) targets.push({ kind, name: resource.metadata.name, namespace: resource.metadata.namespace });
          }
        } else {
          if (kindName === undefined || name === undefined) throw new CliError('error: give KIND NAME (e.g. "weft delete httproute catalog-split") or -f FILE');
          const kind = resolveKind(kindName);
          targets.push({ kind, name, namespace: kind.namespaced ? options.namespace : undefined });
        }
        const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
        let failed = 0;
        for (const target of targets) {
          const label = `${target.kind.kind.toLowerCase()}/${target.name}`;
          try {
            await client.delete(target.kind, target.name, target.namespace);
            process.stdout.write(`${label} deleted\n`);
          } catch (error) {
            if (!(error instanceof ApiError)) throw error;
            if (error.status.code === 404 && options.ignoreNotFound) continue;
            failed++;
            process.stderr.write(`${label}: ${formatApiError(error.status)}\n`);
          }
        }
        if (failed > 0) throw new CliError(`error: ${failed} of ${targets.length} deletions failed`);
      },
    );
}
