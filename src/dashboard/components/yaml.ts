// YAML text for the config page, with the yaml package loaded only when a page first needs it.
import type { Resource } from '../../api/meta.ts';

type YamlModule = typeof import('yaml');
let loading: Promise<YamlModule> | undefined;

export function loadYaml(): Promise<YamlModule> {
  loading ??= import('yaml');
  return loading;
}

export async function toYaml(objects: Resource | readonly Resource[]): Promise<string> {
  const yaml = await loadYaml();
  const list = Array.isArray(objects) ? objects : [objects];
  return list.map((o) => yaml.stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
