// Reads the -f arguments of apply/delete/up (files, directories, "-" for stdin) and parses them into objects.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Resource } from '../api/meta.ts';
import { DEFAULT_NAMESPACE, KINDS } from '../api/resources.ts';
import { formatSourceIssue, parseResources, type SourceIssue } from '../api/yaml.ts';
import { CliError } from './options.ts';

export interface SourcedResource {
  resource: Resource;
  /** The file it came from, as the user named it. */
  file: string;
}

export interface Manifests {
  resources: SourcedResource[];
  issues: SourceIssue[];
}

const MANIFEST_EXTENSIONS = /\.(ya?ml|json)$/i;

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk as string;
  return text;
}

/** The files one -f argument stands for: itself, or a directory's YAML/JSON files in name order. */
async function expand(path: string): Promise<string[]> {
  if (path === '-') return ['-'];
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new CliError(`error: ${path}: no such file or directory`);
  }
  if (!info.isDirectory()) return [path];
  const names = (await readdir(path)).filter((n) => MANIFEST_EXTENSIONS.test(n)).sort();
  if (names.length === 0) throw new CliError(`error: ${path}: the directory has no .yaml, .yml or .json files`);
  return names.map((n) => join(path, n));
}

/** Parses every object in the given files; `issues` lists every problem with file:line:col and field path. */
export async function readManifests(paths: readonly string[], defaultNamespace?: string): Promise<Manifests> {
  const resources: SourcedResource[] = [];
  const issues: SourceIssue[] = [];
  for (const path of paths) {
    for (const file of await expand(path)) {
      const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
      const display = file === '-' ? '<stdin>' : file;
      const parsed = parseManifest(text, display, defaultNamespace);
      for (const resource of parsed.resources) resources.push({ resource, file: display });
      issues.push(...parsed.issues);
    }
  }
  return { resources, issues };
}

/**
 * parseResources, with every issue naming its object as "Kind ns/name": an
 * object that names no namespace is reported in the one it would land in.
 */
export function parseManifest(text: string, file: string, defaultNamespace = DEFAULT_NAMESPACE): { resources: Resource[]; issues: SourceIssue[] } {
  const parsed = parseResources(text, file, defaultNamespace);
  return { resources: parsed.resources, issues: parsed.issues.map((issue) => withNamespace(issue, defaultNamespace)) };
}

function withNamespace(issue: SourceIssue, namespace: string): SourceIssue {
  const match = /^(\S+) ([^/\s]+)$/.exec(issue.object);
  if (!match || !KINDS.some((k) => k.kind === match[1] && k.namespaced)) return issue;
  return { ...issue, object: `${match[1]} ${namespace}/${match[2]}` };
}

/** Prints every issue as "file:line:col: Kind ns/name: field.path: message". */
export function printIssues(issues: readonly SourceIssue[]): void {
  for (const issue of issues) process.stderr.write(formatSourceIssue(issue) + '\n');
}
