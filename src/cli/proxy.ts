// `weft proxy --mode sidecar|node|gateway`: runs one proxy beside an app (or for every app of a host, or at the edge, for one Gateway) until SIGTERM, then drains.
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { gatewayWorkloadName, type ProxyMode } from '../api/snapshot.ts';
import type { GatewayProxyOptions } from '../proxy/main.ts';
import { limitNames, parseLimit, type ListenerLimits } from '../proxy/transport/hardening.ts';
import type { Logger } from '../telemetry/logger.ts';
import { announceReady, stopOnSignals } from './lifecycle.ts';
import { CliError, collect, collectAppPort, parseDuration, parsePort, type AppPort } from './options.ts';
import { restartIfTypeScriptWasStripped } from './restart.ts';

export interface ProxyFlags {
  mode: ProxyMode;
  controlPlane: string;
  namespace: string;
  /** Sidecar: the one template served; mode node: every hosted workload (see proxy-node.ts). */
  workload?: string[];
  nodeName?: string;
  instance?: string;
  appPort?: AppPort[];
  host?: string;
  address?: string;
  tunnelHost?: string;
  outboundPort: number;
  tunnelPort: number;
  adminPort: number;
  dataDir?: string;
  drain: number;
  detectTimeout?: number;
  upgradeIdleTimeout?: number;
  /** --limit NAME=VALUE (transport/hardening.ts ListenerLimits). */
  limit?: Partial<ListenerLimits>;
  /** commander's --no-request-metrics: false turns request/TCP metrics off. */
  requestMetrics?: boolean;
  telemetryInterval?: number;
  auditLog: string;
  tokenFile?: string;
  /** PEM roots to verify https:// control planes with (the mesh trust bundle). */
  caBundle?: string;
  insecurePlaintextControlPlane?: boolean;
  exitOnStdinClose?: boolean;
  gateway?: string;
  listenerPort?: ListenerPort[];
  listenerPorts: 'same' | 'ephemeral';
  listenerHost?: string;
  /** Mode gateway: this many processes share the Gateway's ports (proxy-workers.ts). */
  workers: number;
  /** Set by the supervisor on each of its workers: bind the Gateway ports with SO_REUSEPORT. */
  worker?: boolean;
}

export interface ListenerPort {
  gateway: number;
  local: number;
}

/** `--listener-port 80=8080` (Gateway port=local port, 0 = any free port), or `--listener-port 80` (the same port); repeatable. */
export function collectListenerPort(value: string, previous: ListenerPort[] = []): ListenerPort[] {
  const match = /^([0-9]+)(?:=([0-9]+))?$/.exec(value);
  const gateway = match ? Number(match[1]) : NaN;
  const local = match?.[2] !== undefined ? Number(match[2]) : gateway;
  if (!match || gateway < 1 || gateway > 65535 || local < 0 || local > 65535) {
    throw new InvalidArgumentError('must be PORT or PORT=LOCAL_PORT (the Gateway listener port, and where to listen for it; 0 = any free port), e.g. 80=8080');
  }
  return [...previous.filter((p) => p.gateway !== gateway), { gateway, local }];
}

function parseWorkers(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < 1) throw new InvalidArgumentError('must be a whole number of processes, 1 or more');
  return n;
}

/** "ns/name" → its parts; a bare name is in `defaultNamespace`. */
export function parseGatewayName(value: string, defaultNamespace: string): { namespace: string; name: string } {
  const slash = value.indexOf('/');
  const namespace = slash === -1 ? defaultNamespace : value.slice(0, slash);
  const name = slash === -1 ? value : value.slice(slash + 1);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    throw new CliError(`error: --gateway ${value}: must be NAMESPACE/NAME of a Gateway`);
  }
  return { namespace, name };
}

/** --ca-bundle: the PEM certificates in the file; refuses a file without one. */
export function readCaBundle(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`error: cannot read the CA bundle ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new CliError(`error: the CA bundle ${file} holds no PEM certificate`);
  return pems.map((pem) => `${pem}\n`);
}

/** The bootstrap token: from --token-file, else $WEFT_TOKEN; undefined when neither is given. */
export function readToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (error) {
      throw new CliError(`error: cannot read the token file ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const token = text.trim();
    if (!token) throw new CliError(`error: the token file ${tokenFile} is empty`);
    return token;
  }
  const fromEnv = env.WEFT_TOKEN?.trim();
  return fromEnv ? fromEnv : undefined;
}

export function proxyCommand(): Command {
  return new Command('proxy')
    .description('run a proxy (the data plane) beside an app, for every app of a node (--mode node), or for a Gateway')
    .addOption(new Option('--mode <mode>', 'where the proxy sits').choices(['sidecar', 'node', 'gateway']).default('sidecar'))
    .option('--control-plane <urls>', 'the control plane config stream: a URL or host:port; several replicas comma-separated (a,b,c), tried in turn', 'http://127.0.0.1:15010')
    .option('--namespace <ns>', 'namespace of the workload', 'default')
    .option('--workload <name>', 'the Workload (template) this sidecar serves; mode node: [NS/]NAME[@INSTANCE][=DECLARED:ACTUAL,...], once per hosted workload', collect)
    .option('--node-name <name>', 'mode node: the name of this node, in logs and the admin (default: the host name)')
    .option('--instance <name>', 'instance name to register as (default <workload>-<random>)')
    .option('--app-port <declared[=actual]>', "an app port: the declared port Services target, and where the app listens on 127.0.0.1 (repeatable)", collectAppPort)
    .option('--host <host>', 'listen address of the outbound and admin listeners (default 127.0.0.1)')
    .option('--address <address>', 'address other proxies reach this one at (default 127.0.0.1)')
    .option('--tunnel-host <host>', 'listen address of the tunnel (default 127.0.0.1 for a loopback --address, else every interface)')
    .option('--outbound-port <port>', 'outbound listener: app → mesh (0 = any)', parsePort, 15001)
    .option('--tunnel-port <port>', 'mesh tunnel listener: proxies → this app (0 = any)', parsePort, 15008)
    .option('--admin-port <port>', 'admin listener: /ready, /live, /metrics, /config (0 = any)', parsePort, 15020)
    .option('--data-dir <dir>', 'keep the last good config here, to start from it when the control plane is away')
    .option('--drain <duration>', 'on SIGTERM, how long in-flight requests may take to finish', parseDuration, 5000)
    .option('--detect-timeout <duration>', 'protocol detection: a client on a port with no declared protocol that stays silent this long is carried as opaque TCP (default 1s)', parseDuration)
    .option('--limit <name=value>', `a listener limit (repeatable): ${limitNames().join(', ')}; sizes in bytes, times in ms`, (value: string, previous?: Partial<ListenerLimits>) => {
      try {
        return parseLimit(value, previous);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    })
    .option('--upgrade-idle-timeout <duration>', 'an upgraded connection (WebSocket) silent both ways this long is closed (default 1h; 0s = never)', parseDuration)
    .option('--token-file <file>', 'the bootstrap token (from "weft token create") that gets this proxy its workload certificate (default: $WEFT_TOKEN)')
    .option('--ca-bundle <file>', 'the mesh trust bundle (PEM, e.g. "weft ca bundle"): verify the control plane over TLS; addresses without a scheme become https://')
    .option('--insecure-plaintext-control-plane', 'send the bootstrap token over http:// to a control plane on another host (refused by default: cleartext on the network)')
    .option('--gateway <ns/name>', 'mode gateway: the Gateway to serve')
    .option('--listener-port <port[=local]>', 'mode gateway: listen for the Gateway port PORT on LOCAL (0 = any free port; repeatable); the ready line reports where', collectListenerPort)
    .addOption(
      new Option('--listener-ports <policy>', 'mode gateway: Gateway ports without --listener-port listen on their own number, or on any free port')
        .choices(['same', 'ephemeral'])
        .default('same'),
    )
    .option('--listener-host <host>', 'mode gateway: listen address of the Gateway ports (default: --host)')
    .option('--no-request-metrics', 'record no request or TCP metrics (health metrics stay); the overhead benchmark compares with it')
    .option('--audit-log <file|stdout|stderr|none>', 'where AuthorizationPolicy AUDIT and DENY decisions are written, one JSON line each (stderr keeps them off stdout, where access logs go)', 'stderr')
    .option('--telemetry-interval <duration>', 'how often per-edge traffic deltas are pushed to the control plane (default 5s)', parseDuration)
    .option('--workers <n>', 'mode gateway: run N gateway processes that share the Gateway ports (SO_REUSEPORT; Linux); the ports must be fixed', parseWorkers, 1)
    .addOption(new Option('--exit-on-stdin-close', 'stop when stdin closes (weft up uses it so proxies never outlive it)').hideHelp())
    .addOption(new Option('--worker', 'one of the processes of --workers N (set by the supervisor)').hideHelp())
    .action(async (flags: ProxyFlags, command: Command) => {
      if (flags.mode === 'node') {
        const { runNodeProxy } = await import('./proxy-node.ts');
        return runNodeProxy(flags, command);
      }
      if ((flags.workload?.length ?? 0) > 1) throw new CliError(`error: --workload is given ${flags.workload!.length} times; a ${flags.mode} proxy serves one (--mode node hosts several)`);
      if (flags.nodeName !== undefined) throw new CliError('error: --node-name is for --mode node');
      const workload = flags.workload?.[0];
      if (flags.workers > 1 && !flags.worker) {
        gatewayOptions(flags, command.getOptionValueSource('namespace') === 'cli');
        const [{ runGatewayWorkers }, { createLogger }] = await Promise.all([import('./proxy-workers.ts'), import('../telemetry/logger.ts')]);
        const args = process.argv.slice(2);
        return runGatewayWorkers(flags, flags.workers, args.slice(args.indexOf('proxy') + 1), createLogger('proxy'));
      }
      const [{ startProxy }, { createLogger }, { systemClock }] = await Promise.all([
        import('../proxy/main.ts'),
        import('../telemetry/logger.ts'),
        import('../telemetry/clock.ts'),
      ]);
      restartIfTypeScriptWasStripped();
      const token = readToken(flags.tokenFile);
      const gateway = gatewayOptions(flags, command.getOptionValueSource('namespace') === 'cli');
      const logger = createLogger('proxy');
      const proxy = await startProxy({
        ...(token !== undefined ? { token } : {}),
        mode: flags.mode,
        namespace: gateway?.namespace ?? flags.namespace,
        ...(workload !== undefined ? { workload } : gateway ? { workload: gateway.workload } : {}),
        ...(gateway ? { gateway: gateway.options } : {}),
        ...(flags.instance !== undefined ? { instance: flags.instance } : {}),
        appPorts: flags.appPort ?? [],
        ...processOptions(flags),
        outboundPort: flags.outboundPort,
        tunnelPort: flags.tunnelPort,
        logger,
        clock: systemClock,
      });
      drainOnSignals(flags, logger, () => proxy.close());
      announceReady({ id: proxy.id, ports: gateway ? { ...proxy.ports, listeners: proxy.gatewayPorts() } : proxy.ports });
    });
}

/** What every mode takes from the flags alike: the control plane, addresses, admin port, data dir, timeouts. */
export function processOptions(flags: ProxyFlags) {
  return {
    controlPlane: flags.controlPlane,
    ...(flags.caBundle !== undefined ? { controlPlaneCa: readCaBundle(flags.caBundle) } : {}),
    ...(flags.insecurePlaintextControlPlane ? { insecurePlaintextControlPlane: true } : {}),
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    ...(flags.address !== undefined ? { address: flags.address } : {}),
    ...(flags.tunnelHost !== undefined ? { tunnelHost: flags.tunnelHost } : {}),
    adminPort: flags.adminPort,
    ...(flags.dataDir !== undefined ? { dataDir: resolve(flags.dataDir) } : {}),
    drainMs: flags.drain,
    ...(flags.detectTimeout !== undefined ? { detectTimeoutMs: flags.detectTimeout } : {}),
    ...(flags.upgradeIdleTimeout !== undefined ? { upgradeIdleTimeoutMs: flags.upgradeIdleTimeout } : {}),
    ...(flags.limit !== undefined ? { limits: flags.limit } : {}),
    ...(flags.requestMetrics === false ? { requestMetrics: false } : {}),
    ...(flags.telemetryInterval !== undefined ? { telemetryIntervalMs: flags.telemetryInterval } : {}),
    auditLog: flags.auditLog,
  };
}

/** SIGTERM (or stdin closing, under weft up) drains, and exits if draining overruns --drain by 5 s. */
export function drainOnSignals(flags: ProxyFlags, logger: Logger, close: () => Promise<void>): void {
  stopOnSignals(
    async (why) => {
      logger.info({ why }, 'draining');
      await close();
    },
    { forceAfterMs: flags.drain + 5000, onStdinClose: flags.exitOnStdinClose === true },
  );
}

/**
 * Mode gateway: the Gateway's namespace is the proxy's, it registers as the
 * Gateway's workload (so that the Gateway's status shows its address), and
 * later port changes are announced as {"event":"listeners"} lines.
 */
function gatewayOptions(
  flags: ProxyFlags,
  namespaceGiven: boolean,
): { namespace: string; workload: string; options: GatewayProxyOptions } | undefined {
  if (flags.mode !== 'gateway') {
    if (flags.gateway !== undefined || flags.listenerPort !== undefined) throw new CliError('error: --gateway and --listener-port are for --mode gateway');
    return undefined;
  }
  if (flags.gateway === undefined) throw new CliError('error: --mode gateway needs --gateway NAMESPACE/NAME');
  const { namespace, name } = parseGatewayName(flags.gateway, flags.namespace);
  if (namespaceGiven && flags.gateway.includes('/') && flags.namespace !== namespace) {
    throw new CliError(`error: --namespace ${flags.namespace} and --gateway ${flags.gateway} disagree; a gateway proxy runs in its Gateway's namespace`);
  }
  return {
    namespace,
    workload: gatewayWorkloadName(name),
    options: {
      name: `${namespace}/${name}`,
      ...(flags.listenerHost !== undefined ? { host: flags.listenerHost } : {}),
      portMap: new Map((flags.listenerPort ?? []).map((p) => [p.gateway, p.local] as const)),
      unmapped: flags.listenerPorts,
      onPortsChanged: (listeners) => process.stdout.write(`${JSON.stringify({ event: 'listeners', listeners })}\n`),
      ...(flags.worker ? { reusePort: true } : {}),
    },
  };
}
