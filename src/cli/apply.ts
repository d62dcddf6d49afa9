// `weft apply -f FILE|DIR|-`: validates locally (file:line errors), then creates or updates the objects in one call.
import { Command } from 'commander';
import { displayName } from '../api/meta.ts';
import { ApiError, WeftClient } from './client.ts';
import { printIssues, readManifests, type SourcedResource } from './files.ts';
import { formatApiError } from './format.ts';
import { CliError, collect, resolveServer } from './options.ts';

/** "items[3].spec.ports[0].port" → the source and object of item 3, when the server names one. */
function locateCause(field: string | undefined, sent: readonly SourcedResource[]): { where: string; field: string } | undefined {
  const match = field ? /^items\[([0-9]+)\]\.?(.*)$/.exec(field) : null;
  const item = match ? sent[Number(match[1])] : undefined;
  if (!match || !item) return undefined;
  const { kind, metadata } = item.resource;
  return { where: `${item.file}: ${kind} ${displayName({ namespace: metadata.namespace, name: metadata.name })}`, field: match[2] || '(object)' };
}

export function formatApplyRejection(error: ApiError, sent: readonly SourcedResource[]): string {
  const causes = error.status.details?.causes ?? [];
  if (causes.length === 0) return formatApiError(error.status);
  const lines = [`error: the control plane rejected the objects: ${error.status.message}`];
  for (const cause of causes) {
    const located = locateCause(cause.field, sent);
    if (located) lines.push(`${located.where}: ${located.field}: ${cause.message}`);
    else lines.push(`${cause.object ? `${cause.object}: ` : ''}${cause.field ? `${cause.field}: ` : ''}${cause.message}`);
  }
  return lines.join('\n');
}

/** A changed value on one line: JSON, with "(none)" for a field that is added or removed. */
function showValue(value: unknown): string {
  return value === undefined ? '(none)' : JSON.stringify(value);
}

export function applyCommand(): Command {
  return new Command('apply')
    .description('create or update objects from YAML (or JSON) files; nothing is sent unless every object is valid')
    .requiredOption('-f, --filename <path>', 'a file, a directory of .yaml/.yml/.json files, or - for stdin (repeatable)', collect)
    .option('-n, --namespace <ns>', 'namespace for objects that name none', 'default')
    .option('--dry-run', 'show what would be created or changed, field by field, and write nothing')
    .action(async (options: { filename: string[]; namespace: string; dryRun?: boolean }, command: Command) => {
      const { resources, issues } = await readManifests(options.filename, options.namespace);
      if (issues.length > 0) {
        printIssues(issues);
        throw new CliError(`error: ${issues.length} problem${issues.length === 1 ? '' : 's'} found; nothing was applied`);
      }
      if (resources.length === 0) throw new CliError('error: no objects found in the given files');
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      try {
        if (options.dryRun) {
          for (const { object, action, changes } of await client.applyDryRun(resources.map((r) => r.resource))) {
            process.stdout.write(`${object.kind.toLowerCase()}/${object.metadata.name} ${action} (dry run)\n`);
            for (const change of action === 'configured' ? changes : []) {
              process.stdout.write(`  ${change.path}: ${showValue(change.before)} → ${showValue(change.after)}\n`);
            }
          }
          return;
        }
        const results = await client.apply(resources.map((r) => r.resource));
        for (const { object, action } of results) process.stdout.write(`${object.kind.toLowerCase()}/${object.metadata.name} ${action}\n`);
      } catch (error) {
        if (error instanceof ApiError && error.status.code === 422) throw new CliError(formatApplyRejection(error, resources));
        throw error;
      }
    });
}
