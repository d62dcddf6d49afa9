// `weft schema KIND [--crd]`: prints a kind's JSON Schema (for editors) or its Kubernetes CRD.
import { Command } from 'commander';
import { stringify } from 'yaml';
import { KINDS, findKind } from '../api/resources.ts';
import { crdOf, jsonSchemaOf } from '../api/schema.ts';
import { CliError } from './options.ts';

export function schemaCommand(): Command {
  return new Command('schema')
    .description('print the JSON Schema of a kind, or with --crd its Kubernetes CustomResourceDefinition (weft.dev kinds)')
    .argument('[kind]', 'a kind name or plural; without one, every kind is listed')
    .option('--crd', 'print a CustomResourceDefinition (YAML) instead of a JSON Schema')
    .action((kind: string | undefined, flags: { crd?: boolean }) => {
      if (!kind) {
        for (const k of KINDS) process.stdout.write(`${k.kind}\t${k.group ? `${k.group}/` : ''}${k.versions[0]}\t${k.namespaced ? 'namespaced' : 'cluster'}\n`);
        return;
      }
      const info = findKind(kind);
      if (!info) throw new CliError(`error: unknown kind "${kind}"; \`weft schema\` lists them`);
      if (flags.crd) {
        if (!info.group.endsWith('weft.dev')) throw new CliError(`error: ${info.kind} is not a weft kind; its CRD comes from its own project`);
        process.stdout.write(stringify(crdOf(info)));
        return;
      }
      process.stdout.write(JSON.stringify(jsonSchemaOf(info), null, 2) + '\n');
    });
}
