// `weft proxy --mode node`: one proxy for every workload of this host; its --workload values, its tokens and its ready line.
import type { Command } from 'commander';
import type { HostedWorkload } from '../proxy/node.ts';
import { announceReady } from './lifecycle.ts';
import { CliError } from './options.ts';
import { drainOnSignals, processOptions, readToken, type ProxyFlags } from './proxy.ts';
import { restartIfTypeScriptWasStripped } from './restart.ts';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * `--workload [NS/]NAME[@INSTANCE][=DECLARED:ACTUAL,...]`: a workload the
 * node hosts, the instance to register it as, and its app ports (DECLARED
 * alone = the same port), e.g. `default/catalog@catalog-0=8080:41234`.
 */
export function parseHostedWorkload(value: string, defaultNamespace: string): Omit<HostedWorkload, 'token'> {
  const match = /^(?:([^/@=]+)\/)?([^/@=]+)(?:@([^/@=]+))?(?:=(.*))?$/.exec(value);
  const fail = (why: string): never => {
    throw new CliError(`error: --workload ${value}: ${why} (want [NAMESPACE/]NAME[@INSTANCE][=DECLARED:ACTUAL,...], e.g. default/catalog@catalog-0=8080:41234)`);
  };
  if (!match) return fail('cannot read it');
  const namespace = match[1] ?? defaultNamespace;
  const workload = match[2]!;
  if (!NAMESPACE.test(namespace)) fail(`namespace ${JSON.stringify(namespace)} is not a valid name`);
  if (!NAME.test(workload)) fail(`workload ${JSON.stringify(workload)} is not a valid name`);
  if (match[3] !== undefined && !NAME.test(match[3])) fail(`instance ${JSON.stringify(match[3])} is not a valid name`);
  const appPorts = (match[4] ?? '')
    .split(',')
    .filter((part) => part.length > 0)
    .map((part) => {
      const ports = /^([0-9]+)(?::([0-9]+))?$/.exec(part);
      const declared = ports ? Number(ports[1]) : NaN;
      const actual = ports?.[2] !== undefined ? Number(ports[2]) : declared;
      if (!ports || declared < 1 || declared > 65535 || actual < 1 || actual > 65535) fail(`app port ${JSON.stringify(part)} must be DECLARED or DECLARED:ACTUAL`);
      return { declared, actual };
    });
  return { namespace, workload, ...(match[3] !== undefined ? { instance: match[3] } : {}), appPorts };
}

/**
 * A node's tokens, as --token-file or $WEFT_TOKEN hold them: lines of
 * `NAMESPACE/WORKLOAD TOKEN`, one per hosted workload (what `weft up` writes),
 * and optionally one bare TOKEN line for the workloads without a line of
 * their own (a namespace or host token from `weft token create --host`).
 */
export function parseNodeTokens(text: string): { byWorkload: Map<string, string>; fallback?: string } {
  const byWorkload = new Map<string, string>();
  let fallback: string | undefined;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    if (parts.length === 1) {
      if (fallback !== undefined) throw new CliError(`error: token line ${index + 1}: a second token for every workload; name the workload: NAMESPACE/WORKLOAD TOKEN`);
      fallback = parts[0]!;
    } else if (parts.length === 2 && /^[^/\s]+\/[^/\s]+$/.test(parts[0]!)) {
      byWorkload.set(parts[0]!, parts[1]!);
    } else {
      throw new CliError(`error: token line ${index + 1}: want NAMESPACE/WORKLOAD TOKEN or a bare TOKEN`);
    }
  }
  return { byWorkload, ...(fallback !== undefined ? { fallback } : {}) };
}

/** Flags that name one workload's ports; in node mode each --workload carries its own. */
const SIDECAR_ONLY = ['instance', 'appPort', 'outboundPort', 'tunnelPort'] as const;

export async function runNodeProxy(flags: ProxyFlags, command: Command): Promise<void> {
  for (const flag of SIDECAR_ONLY) {
    if (command.getOptionValueSource(flag) === 'cli') {
      throw new CliError(`error: --${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for one workload; in --mode node give each --workload its instance and ports, and the outbound and tunnel ports are chosen per workload (see the ready line)`);
    }
  }
  if (flags.gateway !== undefined || flags.listenerPort !== undefined) throw new CliError('error: --gateway and --listener-port are for --mode gateway');
  const specs = (flags.workload ?? []).map((value) => parseHostedWorkload(value, flags.namespace));
  if (specs.length === 0) throw new CliError('error: --mode node needs a --workload for each workload it hosts');
  const tokenText = readToken(flags.tokenFile);
  const tokens = tokenText !== undefined ? parseNodeTokens(tokenText) : { byWorkload: new Map<string, string>() };
  const workloads: HostedWorkload[] = specs.map((spec) => {
    const token = tokens.byWorkload.get(`${spec.namespace}/${spec.workload}`) ?? tokens.fallback;
    return { ...spec, ...(token !== undefined ? { token } : {}) };
  });

  const [{ startNodeProxy }, { createLogger }, { systemClock }] = await Promise.all([
    import('../proxy/node.ts'),
    import('../telemetry/logger.ts'),
    import('../telemetry/clock.ts'),
  ]);
  restartIfTypeScriptWasStripped();
  const logger = createLogger('proxy');
  const node = await startNodeProxy({
    ...(flags.nodeName !== undefined ? { name: flags.nodeName } : {}),
    workloads,
    ...processOptions(flags),
    logger,
    clock: systemClock,
  });
  drainOnSignals(flags, logger, () => node.close());
  announceReady({
    id: `node/${node.name}`,
    mode: 'node',
    ports: node.ports,
    workloads: node.workloads.map((w) => ({
      id: w.id,
      namespace: w.namespace,
      workload: w.workload,
      instance: w.id.slice(w.namespace.length + 1),
      ports: { outbound: w.proxy.ports.outbound, tunnel: w.proxy.ports.tunnel, admin: node.ports.admin },
    })),
  });
}
