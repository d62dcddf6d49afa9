// `weft get KIND [NAME]`: lists or shows objects as a table, YAML or JSON.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import type { Resource } from '../api/meta.ts';
import type { AuthorizationPolicySpec, BackendTrafficPolicySpec, GatewaySpec, HTTPRouteSpec, MeshConfigSpec, ServiceSpec, WorkloadSpec } from '../api/resources.ts';
import { WeftClient } from './client.ts';
import { age, table } from './format.ts';
import { resolveKind } from './kinds.ts';
import { CliError, resolveServer } from './options.ts';

type Output = 'table' | 'wide' | 'yaml' | 'json';

interface Columns {
  header: string[];
  cells(r: Resource): string[];
}

function labelsOf(r: Resource): string {
  const labels = Object.entries(r.metadata.labels ?? {});
  return labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

function servicePorts(spec: ServiceSpec): string {
  return (spec.ports ?? [])
    .map((p) => {
      const target = p.targetPort !== undefined && p.targetPort !== p.port ? `→${p.targetPort}` : '';
      return `${p.name ? `${p.name}:` : ''}${p.port}${target}`;
    })
    .join(',');
}

function workloadPorts(spec: WorkloadSpec): string {
  const ports = spec.ports ?? [];
  return ports.length ? ports.map((p) => `${p.name ? `${p.name}:` : ''}${p.port}`).join(',') : '<none>';
}

interface RouteParentStatus {
  parentRef?: { kind?: string; name?: string };
  conditions?: { type: string; status: string; reason?: string }[];
}

/** "True" when every parent accepted the route, else each parent's verdict with its reason. */
function routeAccepted(r: Resource): string {
  const parents = ((r.status as { parents?: RouteParentStatus[] } | undefined)?.parents ?? []).map((p) => {
    const accepted = p.conditions?.find((c) => c.type === 'Accepted');
    if (!accepted) return 'Unknown';
    return accepted.status === 'True' ? 'True' : `${accepted.status} (${accepted.reason ?? 'no reason'})`;
  });
  if (parents.length === 0) return '<pending>';
  return parents.every((p) => p === 'True') ? 'True' : parents.join(', ');
}

/** An object's own Accepted condition: "True", or its status with the reason. */
function conditionAccepted(r: Resource): string {
  const accepted = (r.status as { conditions?: { type: string; status: string; reason?: string }[] } | undefined)?.conditions?.find((c) => c.type === 'Accepted');
  if (!accepted) return '<pending>';
  return accepted.status === 'True' ? 'True' : `${accepted.status} (${accepted.reason ?? 'no reason'})`;
}

/** A policy's Accepted over its targets (Gateway API PolicyStatus ancestors), like routeAccepted. */
function policyAccepted(r: Resource): string {
  const ancestors = (r.status as { ancestors?: RouteParentStatus[] } | undefined)?.ancestors ?? [];
  return routeAccepted({ ...r, status: { parents: ancestors } });
}

function routeParents(spec: HTTPRouteSpec): string {
  return (spec.parentRefs ?? []).map((p) => `${p.kind ?? 'Gateway'}/${p.name}${p.port ? `:${p.port}` : ''}`).join(',') || '<none>';
}

function routeBackends(spec: HTTPRouteSpec): string {
  const refs = (spec.rules ?? []).flatMap((rule) => rule.backendRefs ?? []);
  return refs.map((b) => `${b.name}${b.port ? `:${b.port}` : ''}(${b.weight ?? 1})`).join(',') || '<none>';
}

interface GatewayStatusView {
  addresses?: { value: string }[];
  conditions?: { type: string; status: string; reason?: string }[];
  listeners?: { name: string; attachedRoutes?: number }[];
}

/** ADDRESS, PROGRAMMED (with its reason when not), and wide: each listener as name:port/protocol (attached routes). */
function gatewayColumns(r: Resource, wide: boolean): string[] {
  const status = (r.status ?? {}) as GatewayStatusView;
  const programmed = status.conditions?.find((c) => c.type === 'Programmed');
  const cells = [
    (status.addresses ?? []).map((a) => a.value).join(',') || '<none>',
    !programmed ? '<pending>' : programmed.status === 'True' ? 'True' : `${programmed.status} (${programmed.reason ?? 'no reason'})`,
  ];
  if (wide) {
    const attached = new Map((status.listeners ?? []).map((l) => [l.name, l.attachedRoutes ?? 0] as const));
    cells.push((r.spec as GatewaySpec).listeners.map((l) => `${l.name}:${l.port}/${l.protocol}(${attached.get(l.name) ?? 0})`).join(','));
  }
  return cells;
}

function columnsFor(kind: string, wide: boolean): Columns {
  switch (kind) {
    case 'Service':
      return wide
        ? { header: ['PORTS', 'SELECTOR'], cells: (r) => [servicePorts(r.spec as ServiceSpec), Object.entries((r.spec as ServiceSpec).selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>'] }
        : { header: ['PORTS'], cells: (r) => [servicePorts(r.spec as ServiceSpec)] };
    case 'Workload': {
      const address = (r: Resource) => {
        const spec = r.spec as WorkloadSpec;
        if (!spec.address) return spec.command ? `<template ×${spec.replicas ?? 1}>` : '<none>';
        return spec.tunnelPort ? `${spec.address} (tunnel ${spec.tunnelPort})` : spec.address;
      };
      return wide
        ? { header: ['ADDRESS', 'PORTS', 'LABELS'], cells: (r) => [address(r), workloadPorts(r.spec as WorkloadSpec), labelsOf(r)] }
        : { header: ['ADDRESS', 'PORTS'], cells: (r) => [address(r), workloadPorts(r.spec as WorkloadSpec)] };
    }
    case 'HTTPRoute':
    case 'GRPCRoute':
      return wide
        ? { header: ['PARENTS', 'ACCEPTED', 'HOSTNAMES', 'BACKENDS'], cells: (r) => [routeParents(r.spec as HTTPRouteSpec), routeAccepted(r), ((r.spec as HTTPRouteSpec).hostnames ?? []).join(',') || '*', routeBackends(r.spec as HTTPRouteSpec)] }
        : { header: ['PARENTS', 'ACCEPTED'], cells: (r) => [routeParents(r.spec as HTTPRouteSpec), routeAccepted(r)] };
    case 'Gateway':
      return {
        header: ['CLASS', 'ADDRESS', 'PROGRAMMED', ...(wide ? ['LISTENERS'] : [])],
        cells: (r) => [(r.spec as GatewaySpec).gatewayClassName, ...gatewayColumns(r, wide)],
      };
    case 'BackendTrafficPolicy': {
      const spec = (r: Resource) => r.spec as BackendTrafficPolicySpec;
      const targets = (r: Resource) => spec(r).targetRefs.map((t) => `${t.kind}/${t.name}${t.sectionName ? `:${t.sectionName}` : ''}`).join(',');
      return wide
        ? { header: ['TARGETS', 'ACCEPTED', 'LB'], cells: (r) => [targets(r), policyAccepted(r), spec(r).loadBalancer?.type ?? 'LeastRequest'] }
        : { header: ['TARGETS', 'ACCEPTED'], cells: (r) => [targets(r), policyAccepted(r)] };
    }
    case 'AuthorizationPolicy': {
      const spec = (r: Resource) => r.spec as AuthorizationPolicySpec;
      const action = (r: Resource) => (spec(r).action === 'CUSTOM' ? `CUSTOM (${spec(r).provider?.name ?? '?'})` : (spec(r).action ?? 'ALLOW'));
      const appliesTo = (r: Resource) => {
        const s = spec(r);
        if (s.targetRefs) return s.targetRefs.map((t) => `${t.kind}/${t.name}`).join(',');
        if (s.selector?.matchLabels) return Object.entries(s.selector.matchLabels).map(([k, v]) => `${k}=${v}`).join(',') || '<namespace>';
        return '<namespace>';
      };
      return wide
        ? { header: ['ACTION', 'APPLIES TO', 'ACCEPTED', 'RULES'], cells: (r) => [action(r), appliesTo(r), conditionAccepted(r), String(spec(r).rules?.length ?? 0)] }
        : { header: ['ACTION', 'APPLIES TO', 'ACCEPTED'], cells: (r) => [action(r), appliesTo(r), conditionAccepted(r)] };
    }
    case 'MeshConfig':
      return { header: ['TRUST DOMAIN'], cells: (r) => [(r.spec as MeshConfigSpec).trustDomain ?? 'cluster.local'] };
    default:
      return wide ? { header: ['LABELS'], cells: (r) => [labelsOf(r)] } : { header: [], cells: () => [] };
  }
}

/** The table `weft get` prints: NAME, NAMESPACE (namespaced kinds), the kind's own columns, AGE. */
export function formatTable(kind: { kind: string; namespaced: boolean }, items: readonly Resource[], wide = false, now = Date.now()): string {
  const columns = columnsFor(kind.kind, wide);
  const header = ['NAME', ...(kind.namespaced ? ['NAMESPACE'] : []), ...columns.header, 'AGE'];
  const sorted = [...items].sort(
    (a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name),
  );
  const rows = sorted.map((r) => [
    r.metadata.name,
    ...(kind.namespaced ? [r.metadata.namespace ?? ''] : []),
    ...columns.cells(r),
    age(r.metadata.creationTimestamp, now),
  ]);
  return table(header, rows);
}

export function getCommand(): Command {
  return new Command('get')
    .description('list objects of a kind (or show one) as a table, YAML or JSON')
    .argument('<kind>', 'services, workloads, httproutes, namespaces, meshconfigs (singular, plural or kind name)')
    .argument('[name]', 'one object')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'list across every namespace')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json', 'wide']))
    .action(async (kindName: string, name: string | undefined, options: { namespace: string; allNamespaces?: boolean; output?: Output }, command: Command) => {
      const kind = resolveKind(kindName);
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      if (name !== undefined && options.allNamespaces) throw new CliError('error: a name cannot be combined with --all-namespaces');
      const namespace = kind.namespaced && !options.allNamespaces ? options.namespace : undefined;
      const output = options.output ?? 'table';
      if (name !== undefined) {
        const object = await client.get(kind, name, namespace);
        if (output === 'yaml') process.stdout.write(stringify(object));
        else if (output === 'json') process.stdout.write(JSON.stringify(object, null, 2) + '\n');
        else process.stdout.write(formatTable(kind, [object], output === 'wide'));
        return;
      }
      const items = await client.list(kind, namespace);
      const list = { apiVersion: 'v1', kind: 'List', items };
      if (output === 'yaml') process.stdout.write(stringify(list));
      else if (output === 'json') process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      else if (items.length === 0) process.stderr.write(namespace ? `No ${kind.plural} found in namespace ${namespace}.\n` : `No ${kind.plural} found.\n`);
      else process.stdout.write(formatTable(kind, items, output === 'wide'));
    });
}
