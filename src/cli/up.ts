// `weft up -f mesh.yaml`: a local mesh in one command: control plane in-process, a sidecar (or one node proxy for all) and the app for every workload.
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Resource } from '../api/meta.ts';
import type { GatewaySpec, ServiceSpec, WorkloadSpec } from '../api/resources.ts';
import { gatewayWorkloadName } from '../api/snapshot.ts';
import { freePorts, isListening } from '../testing/ports.ts';
import { weftBin } from '../testing/process.ts';
import { waitFor } from '../testing/wait.ts';
import { formatApplyRejection } from './apply.ts';
import { parseManifest, printIssues } from './files.ts';
import { ApiError, WeftClient, type ApplyResult } from './client.ts';
import { table } from './format.ts';
import { stopOnSignals } from './lifecycle.ts';
import { CliError, parseDuration, parsePort } from './options.ts';
import { Supervisor, type Supervised } from './supervisor.ts';

/** Annotation on a Workload: run its first replica's app on this port of 127.0.0.1, so a browser can reach it. */
export const HOST_PORT_ANNOTATION = 'weft.dev/host-port';

const PROXY_READY_TIMEOUT_MS = 15_000;
const APP_LISTEN_TIMEOUT_MS = 10_000;
const MESH_READY_TIMEOUT_MS = 10_000;
/**
 * How long every proxy must stay ready with the config versions unchanged
 * before the mesh counts as settled. A proxy reports its app ready before the
 * control plane has recompiled (store write, watch, 50 ms debounce, compile,
 * push) the snapshots that list that app as an endpoint; on a loaded machine
 * that chain can outlast two polls, and a caller would still see no endpoint.
 */
const MESH_SETTLE_MS = 500;
const WORKLOAD_STOP_GRACE_MS = 5_000;
const PROXY_DRAIN_MS = 5_000;

interface UpFlags {
  filename: string;
  dataDir?: string;
  apiPort: number;
  streamPort: number;
  leaseTtl: number;
  certTtl: number;
  proxyMode: UpProxyMode;
  verbose?: boolean;
}

/** A sidecar proxy process per replica, or one node proxy process for them all. */
export type UpProxyMode = 'sidecar' | 'node';

export interface UpAppPort {
  name?: string;
  declared: number;
  actual: number;
}

/** One started replica, as up.json records it. */
export interface UpInstance {
  namespace: string;
  workload: string;
  instance: string;
  pid: number;
  appPorts: UpAppPort[];
  /** Its sidecar; in node mode `pid` and `admin` are the node proxy's, the ports its own. */
  proxy: { pid: number; outbound: number; tunnel: number; admin: number };
  /** Where the host reaches the app directly (first app port). */
  url?: string;
}

/** `<data dir>/up.json`: what a running `weft up` started, for `weft status`, scripts and tests. */
export interface UpFile {
  pid: number;
  meshFile: string;
  dataDir: string;
  api: string;
  stream: string;
  startedAt: string;
  services: { namespace: string; name: string; ports: { name?: string; port: number; targetPort?: number | string }[] }[];
  workloads: UpInstance[];
  /** One gateway proxy per Gateway in the mesh file. */
  gateways?: UpGateway[];
  /** 'node': one node proxy (its pid in every instance's `proxy.pid`) serves every replica. */
  proxyMode?: UpProxyMode;
}

/** A gateway proxy `weft up` started, as up.json records it. */
export interface UpGateway {
  namespace: string;
  name: string;
  /** Gateway listener port → the local port it is served on. */
  listeners: Record<string, number>;
  proxy: { pid: number; id: string; admin: number };
}

function envName(portName: string): string {
  return `PORT_${portName.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** The environment of one app: ours, then the mesh's facts, then the Workload's own env. */
export function workloadEnv(options: {
  base: NodeJS.ProcessEnv;
  namespace: string;
  workload: string;
  instance: string;
  appPorts: UpAppPort[];
  outboundPort: number;
  spec: WorkloadSpec;
}): NodeJS.ProcessEnv {
  const proxyUrl = `http://127.0.0.1:${options.outboundPort}`;
  const nodeDir = dirname(process.execPath);
  const env: NodeJS.ProcessEnv = { ...options.base };
  // So that `node` in a command is the Node that runs weft (24, with type stripping).
  env.PATH = options.base.PATH ? `${nodeDir}:${options.base.PATH}` : nodeDir;
  const first = options.appPorts[0];
  if (first) env.PORT = String(first.actual);
  for (const p of options.appPorts) if (p.name) env[envName(p.name)] = String(p.actual);
  Object.assign(env, {
    HTTP_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    NODE_USE_ENV_PROXY: '1',
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
    WEFT_NAMESPACE: options.namespace,
    WEFT_WORKLOAD: options.workload,
    WEFT_INSTANCE: options.instance,
    POD_NAME: options.instance,
    NAMESPACE: options.namespace,
  });
  delete env.WEFT_LOG_LEVEL;
  // The proxy's secret, never the app's.
  delete env.WEFT_TOKEN;
  Object.assign(env, options.spec.env ?? {});
  return env;
}

/** Picks the apps' actual ports: distinct free ports, or the host-port annotation's when it is free. */
async function pickAppPorts(spec: WorkloadSpec, hostPort: number | undefined): Promise<UpAppPort[]> {
  const ports = spec.ports ?? [];
  const free = await freePorts(ports.length);
  const picked = ports.map((p, i) => ({ ...(p.name ? { name: p.name } : {}), declared: p.port, actual: free[i]! }));
  if (hostPort !== undefined && picked[0] && !(await isListening(hostPort)) && !free.includes(hostPort)) picked[0].actual = hostPort;
  return picked;
}

/**
 * A plain command ("node services/cart.ts") is exec'd by the shell, so that the
 * pid weft up shows is the app's own and `kill <pid>` stops it; anything with
 * shell syntax runs as written.
 */
export function shellCommand(command: string): string {
  const plain = /^[A-Za-z0-9_\-./:@%+,= ]+$/.test(command.trim());
  const firstWord = command.trim().split(/\s+/)[0] ?? '';
  return plain && !firstWord.includes('=') ? `exec ${command.trim()}` : command;
}

/**
 * Waits (bounded) until every proxy has connected, every app answers its
 * proxy, and the config versions stop moving: then calls between the apps
 * find their endpoints. Versions unchanged for MESH_SETTLE_MS, with every
 * proxy ready all along, count as "stopped moving".
 */
async function waitForMeshReady(client: WeftClient, instances: readonly UpInstance[], print: (line: string) => void): Promise<void> {
  if (instances.length === 0) return;
  let pending: string[] = [];
  let previous = '';
  let settledSince: number | undefined;
  try {
    await waitFor(
      async () => {
        const proxies = new Map((await client.proxies()).map((p) => [p.id, p]));
        pending = instances
          .filter((i) => {
            const p = proxies.get(`${i.namespace}/${i.instance}`);
            // A proxy without a certificate can neither call nor serve the mesh yet.
            return !p || !p.connected || !p.identity || (i.appPorts.length > 0 && !p.ready) || !p.sentVersion || p.ackedVersion !== p.sentVersion;
          })
          .map((i) => i.instance);
        const versions = instances.map((i) => proxies.get(`${i.namespace}/${i.instance}`)?.sentVersion ?? '').join(',');
        const now = performance.now();
        if (pending.length > 0 || versions !== previous) settledSince = undefined;
        else settledSince ??= now;
        previous = versions;
        return settledSince !== undefined && now - settledSince >= MESH_SETTLE_MS;
      },
      { timeoutMs: MESH_READY_TIMEOUT_MS, intervalMs: 150, message: 'the proxies to be ready' },
    );
  } catch {
    print(`weft up: not ready after ${MESH_READY_TIMEOUT_MS / 1000} s: ${pending.join(', ') || 'config still changing'} (see weft status)`);
  }
}

function hostPortOf(workload: Resource): number | undefined {
  const value = workload.metadata.annotations?.[HOST_PORT_ANNOTATION];
  if (value === undefined) return undefined;
  const port = Number(value);
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

async function writeUpFile(path: string, facts: UpFile): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(facts, null, 2) + '\n');
  await rename(temporary, path);
}

async function alreadyRunning(upFile: string): Promise<number | undefined> {
  if (!existsSync(upFile)) return undefined;
  try {
    const { pid } = JSON.parse(await readFile(upFile, 'utf8')) as { pid?: number };
    if (!pid || pid === process.pid) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

function summaryTables(facts: UpFile): string {
  const services = table(
    ['SERVICE', 'NAMESPACE', 'PORTS'],
    facts.services.map((s) => [s.name, s.namespace, s.ports.map((p) => `${p.name ? `${p.name}:` : ''}${p.port}`).join(',')]),
  );
  const workloads = table(
    ['INSTANCE', 'NAMESPACE', 'APP PORTS', 'OUTBOUND', 'TUNNEL', 'ADMIN', 'PID'],
    facts.workloads.map((w) => [
      w.instance,
      w.namespace,
      w.appPorts.map((p) => `${p.declared}→${p.actual}`).join(',') || '-',
      String(w.proxy.outbound),
      String(w.proxy.tunnel),
      String(w.proxy.admin),
      String(w.pid),
    ]),
  );
  const gateways = table(
    ['GATEWAY', 'NAMESPACE', 'LISTENERS', 'ADMIN', 'PID'],
    (facts.gateways ?? []).map((g) => [
      g.name,
      g.namespace,
      Object.entries(g.listeners)
        .map(([port, local]) => `${port}→${local}`)
        .join(',') || '-',
      String(g.proxy.admin),
      String(g.proxy.pid),
    ]),
  );
  return `${facts.services.length ? services : 'No Services.\n'}\n${facts.workloads.length ? workloads : 'No Workloads with a command.\n'}${facts.gateways?.length ? `\n${gateways}` : ''}`;
}

/** One replica to start: its template and the ports its app will listen on. */
interface PlannedReplica {
  spec: WorkloadSpec;
  namespace: string;
  name: string;
  instance: string;
  appPorts: UpAppPort[];
}

/** A replica whose proxy (its sidecar, or the node proxy) listens. */
interface ProxiedReplica extends PlannedReplica {
  proxy: Supervised;
  proxyPorts: { outbound: number; tunnel: number; admin: number };
}

interface ProxyStartContext {
  supervisor: Supervisor;
  streamUrl: string;
  dataDir: string;
  logLevel: string;
  tokenFor: (namespace: string, workload: string) => Promise<string>;
}

/** Spawns a `weft proxy` and returns its ready line, or fails with its last output. */
async function spawnProxy(context: ProxyStartContext, label: string, args: string[], token: string): Promise<{ proxy: Supervised; ready: Record<string, unknown> }> {
  const proxy = context.supervisor.spawn({
    label,
    role: 'proxy',
    command: process.execPath,
    args: [weftBin, 'proxy', '--control-plane', context.streamUrl, ...args, '--admin-port', '0', '--drain', `${PROXY_DRAIN_MS}ms`, '--exit-on-stdin-close'],
    env: { ...process.env, WEFT_LOG_LEVEL: context.logLevel, WEFT_TOKEN: token },
    stdinPipe: true,
  });
  try {
    const line = await proxy.waitForLine((l) => l.startsWith('{') && l.includes('"ready"'), PROXY_READY_TIMEOUT_MS);
    return { proxy, ready: JSON.parse(line) as Record<string, unknown> };
  } catch (error) {
    throw new CliError(`error: the ${label} did not start: ${(error as Error).message}\n${proxy.recentOutput()}`);
  }
}

/** One sidecar per replica, with a token for its workload. */
async function startSidecars(replicas: readonly PlannedReplica[], context: ProxyStartContext): Promise<ProxiedReplica[]> {
  const settled = await Promise.allSettled(
    replicas.map(async (replica) => {
      const proxyDataDir = join(context.dataDir, 'proxies', `${replica.namespace}.${replica.instance}`);
      await mkdir(proxyDataDir, { recursive: true });
      const { proxy, ready } = await spawnProxy(
        context,
        `${replica.instance} proxy`,
        [
          '--mode', 'sidecar',
          '--namespace', replica.namespace,
          '--workload', replica.name,
          '--instance', replica.instance,
          ...replica.appPorts.flatMap((p) => ['--app-port', `${p.declared}=${p.actual}`]),
          '--outbound-port', '0',
          '--tunnel-port', '0',
          '--data-dir', proxyDataDir,
        ],
        await context.tokenFor(replica.namespace, replica.name),
      );
      const ports = ready.ports as ProxiedReplica['proxyPorts'] | undefined;
      if (!ports) throw new CliError(`error: the proxy of ${replica.instance} announced no ports`);
      return { ...replica, proxy, proxyPorts: ports };
    }),
  );
  // allSettled, not all: every proxy has been spawned (and can be stopped) before a failure is reported.
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
}

/**
 * One node proxy for every replica: each is a `--workload` of it, with the
 * token of its own workload (one line per workload in WEFT_TOKEN), so the
 * node holds exactly the identities of what it hosts.
 */
async function startNodeProxyFor(replicas: readonly PlannedReplica[], context: ProxyStartContext): Promise<ProxiedReplica[]> {
  if (replicas.length === 0) return [];
  const proxyDataDir = join(context.dataDir, 'proxies', 'node');
  await mkdir(proxyDataDir, { recursive: true });
  const workloads = [...new Map(replicas.map((r) => [`${r.namespace}/${r.name}`, r] as const)).values()];
  const tokenLines = await Promise.all(workloads.map(async (r) => `${r.namespace}/${r.name} ${await context.tokenFor(r.namespace, r.name)}`));
  const { proxy, ready } = await spawnProxy(
    context,
    'node proxy',
    [
      '--mode', 'node',
      ...replicas.flatMap((r) => ['--workload', `${r.namespace}/${r.name}@${r.instance}${r.appPorts.length ? '=' : ''}${r.appPorts.map((p) => `${p.declared}:${p.actual}`).join(',')}`]),
      '--data-dir', proxyDataDir,
    ],
    tokenLines.join('\n'),
  );
  const hosted = new Map(((ready.workloads ?? []) as { id: string; ports: ProxiedReplica['proxyPorts'] }[]).map((w) => [w.id, w.ports] as const));
  return replicas.map((replica) => {
    const ports = hosted.get(`${replica.namespace}/${replica.instance}`);
    if (!ports) throw new CliError(`error: the node proxy announced no ports for ${replica.namespace}/${replica.instance}`);
    return { ...replica, proxy, proxyPorts: ports };
  });
}

/**
 * One gateway proxy per Gateway. A Gateway port of 1024 or more is served on
 * the same local port when that is free; others (80 and 443 need root) on any
 * free port: the proxy's ready line says which, and the summary shows it.
 */
async function startGatewayProxies(gateways: readonly Resource[], context: ProxyStartContext): Promise<UpGateway[]> {
  const settled = await Promise.allSettled(
    gateways.map(async (gateway) => {
      const namespace = gateway.metadata.namespace ?? 'default';
      const name = gateway.metadata.name;
      const ports = [...new Set(((gateway.spec as GatewaySpec).listeners ?? []).map((l) => l.port))].sort((a, b) => a - b);
      const portFlags: string[] = [];
      for (const port of ports) portFlags.push('--listener-port', `${port}=${port >= 1024 && !(await isListening(port)) ? port : 0}`);
      const proxyDataDir = join(context.dataDir, 'proxies', `${namespace}.${name}.gateway`);
      await mkdir(proxyDataDir, { recursive: true });
      const { proxy, ready } = await spawnProxy(
        context,
        `gateway ${namespace}/${name}`,
        [
          '--mode', 'gateway',
          '--gateway', `${namespace}/${name}`,
          ...portFlags,
          '--listener-ports', 'ephemeral',
          '--outbound-port', '0',
          '--tunnel-port', '0',
          '--data-dir', proxyDataDir,
        ],
        await context.tokenFor(namespace, gatewayWorkloadName(name)),
      );
      const announced = ready as { id?: string; ports?: { admin: number; listeners?: Record<string, number> } };
      if (!announced.ports || !announced.id) throw new CliError(`error: the gateway proxy of ${namespace}/${name} announced no ports`);
      return { namespace, name, listeners: announced.ports.listeners ?? {}, proxy: { pid: proxy.pid, id: announced.id, admin: announced.ports.admin } };
    }),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
}

/** Waits (bounded) until every gateway proxy is connected and runs the config it was last sent. */
async function waitForGateways(client: WeftClient, gateways: readonly UpGateway[], print: (line: string) => void): Promise<void> {
  if (gateways.length === 0) return;
  let pending: string[] = [];
  try {
    await waitFor(
      async () => {
        const proxies = new Map((await client.proxies()).map((p) => [p.id, p]));
        pending = gateways
          .filter((g) => {
            const p = proxies.get(g.proxy.id);
            return !p || !p.connected || !p.sentVersion || p.ackedVersion !== p.sentVersion;
          })
          .map((g) => `${g.namespace}/${g.name}`);
        return pending.length === 0;
      },
      { timeoutMs: MESH_READY_TIMEOUT_MS, intervalMs: 150, message: 'the gateway proxies to be ready' },
    );
  } catch {
    print(`weft up: gateways not ready after ${MESH_READY_TIMEOUT_MS / 1000} s: ${pending.join(', ')} (see weft status)`);
  }
}

export function upCommand(): Command {
  return new Command('up')
    .description('run a local mesh: a control plane, a sidecar proxy beside every workload with a command (or one node proxy for them all), and the workloads')
    .requiredOption('-f, --filename <file>', 'the mesh file (YAML)')
    .option('--data-dir <dir>', 'where the config and proxy state live (default: .weft next to the mesh file)')
    .option('--api-port <port>', 'port of the control plane API (0 = any)', parsePort, 15000)
    .option('--stream-port <port>', 'port of the proxy config stream (0 = any)', parsePort, 0)
    .option('--lease-ttl <duration>', 'how long a proxy registration outlives its last heartbeat', parseDuration, 10_000)
    .option('--cert-ttl <duration>', 'lifetime of workload certificates; proxies renew them at half life', parseDuration, 24 * 3_600_000)
    .addOption(
      new Option('--proxy-mode <mode>', 'a sidecar proxy process per replica, or one node proxy process serving them all (each with its own identity)')
        .choices(['sidecar', 'node'])
        .default('sidecar'),
    )
    .option('--verbose', 'show the control plane and proxy logs below warnings')
    .action((flags: UpFlags) => runUp(flags));
}

async function runUp(flags: UpFlags): Promise<void> {
  const meshFile = resolve(flags.filename);
  const meshDir = dirname(meshFile);
  const dataDir = resolve(flags.dataDir ?? join(meshDir, '.weft'));
  const upFile = join(dataDir, 'up.json');
  const print = (line: string) => process.stdout.write(line + '\n');

  let text: string;
  try {
    text = await readFile(meshFile, 'utf8');
  } catch {
    throw new CliError(`error: cannot read ${flags.filename}`);
  }
  const { resources, issues } = parseManifest(text, flags.filename);
  if (issues.length > 0) {
    printIssues(issues);
    throw new CliError(`error: ${issues.length} problem${issues.length === 1 ? '' : 's'} in ${flags.filename}; nothing was started`);
  }
  const running = await alreadyRunning(upFile);
  if (running) throw new CliError(`error: a weft up (pid ${running}) already runs on ${dataDir}; stop it first or use --data-dir`);

  await mkdir(dataDir, { recursive: true });
  const [{ startControlPlane }, { createLogger }, { systemClock }] = await Promise.all([
    import('../control/main.ts'),
    import('../telemetry/logger.ts'),
    import('../telemetry/clock.ts'),
  ]);
  const logLevel = flags.verbose ? 'info' : 'warn';
  let controlPlane;
  try {
    const meshConfig = resources.find((r) => r.kind === 'MeshConfig' && r.metadata.name === 'default');
    const trustDomain = (meshConfig?.spec as { trustDomain?: string } | undefined)?.trustDomain;
    controlPlane = await startControlPlane({
      dataDir,
      apiPort: flags.apiPort,
      streamPort: flags.streamPort,
      leaseTtlMs: flags.leaseTtl,
      certTtlMs: flags.certTtl,
      // A first start generates the root in the mesh file's trust domain, which is applied only afterwards.
      ...(trustDomain !== undefined ? { trustDomain } : {}),
      // Local mode: this host's users may add proxies by hand with `weft token create`.
      localTokens: true,
      logger: createLogger('control-plane', logLevel),
      clock: systemClock,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new CliError(`error: ${(error as Error).message}: a port is taken (another weft up or control plane?); choose others with --api-port and --stream-port`);
    }
    throw error;
  }
  const supervisor = new Supervisor(print);
  let stopping = false;
  const stopEverything = async () => {
    stopping = true;
    print('weft up: stopping workloads, then proxies, then the control plane');
    await supervisor.stop('workload', WORKLOAD_STOP_GRACE_MS);
    await supervisor.stop('proxy', PROXY_DRAIN_MS + 3000);
    await controlPlane.close();
    await rm(upFile, { force: true });
    print('weft up: stopped');
  };
  stopOnSignals(stopEverything, { forceAfterMs: 30_000 });

  try {
    const client = new WeftClient(controlPlane.apiUrl);
    let results: ApplyResult[];
    try {
      results = await client.apply(resources);
    } catch (error) {
      if (error instanceof ApiError && error.status.code === 422) {
        throw new CliError(formatApplyRejection(error, resources.map((resource) => ({ resource, file: flags.filename }))));
      }
      throw error;
    }
    const count = (action: string) => results.filter((r) => r.action === action).length;
    print(`weft up: applied ${results.length} objects (${count('created')} created, ${count('configured')} configured, ${count('unchanged')} unchanged) from ${flags.filename}`);

    const templates = resources.filter((r) => r.kind === 'Workload' && (r.spec as WorkloadSpec).command !== undefined);
    const replicas = templates.flatMap((workload) =>
      Array.from({ length: (workload.spec as WorkloadSpec).replicas ?? 1 }, (_, i) => ({ workload, index: i })),
    );

    // One bootstrap token per workload, shared by its replicas: it gets them that workload's identity and no other.
    const tokens = new Map<string, Promise<string>>();
    const tokenFor = (namespace: string, workload: string): Promise<string> => {
      const key = `${namespace}/${workload}`;
      let token = tokens.get(key);
      if (!token) tokens.set(key, (token = controlPlane.tokens.create({ namespace, workload })));
      return token;
    };

    // Every replica's app ports first: the proxies must know where the apps will listen.
    const planned: PlannedReplica[] = await Promise.all(
      replicas.map(async ({ workload, index }) => {
        const spec = workload.spec as WorkloadSpec;
        const appPorts = await pickAppPorts(spec, index === 0 ? hostPortOf(workload) : undefined);
        return { spec, namespace: workload.metadata.namespace ?? 'default', name: workload.metadata.name, instance: `${workload.metadata.name}-${index}`, appPorts };
      }),
    );
    // Proxies first, all at once: an app's first outbound call must find its proxy listening.
    const proxyContext: ProxyStartContext = { supervisor, streamUrl: controlPlane.streamUrl, dataDir, logLevel, tokenFor };
    const started = flags.proxyMode === 'node' ? await startNodeProxyFor(planned, proxyContext) : await startSidecars(planned, proxyContext);
    if (stopping) return;

    const gateways = await startGatewayProxies(resources.filter((r) => r.kind === 'Gateway'), proxyContext);
    if (stopping) return;

    const instances: (UpInstance & { app: Supervised })[] = started.map((s) => {
      const command = s.spec.command!;
      const app = supervisor.spawn({
        label: s.instance,
        role: 'workload',
        command: typeof command === 'string' ? '/bin/sh' : command[0]!,
        args: typeof command === 'string' ? ['-c', shellCommand(command)] : command.slice(1),
        cwd: s.spec.cwd ? resolve(meshDir, s.spec.cwd) : meshDir,
        env: workloadEnv({
          base: process.env,
          namespace: s.namespace,
          workload: s.name,
          instance: s.instance,
          appPorts: s.appPorts,
          outboundPort: s.proxyPorts.outbound,
          spec: s.spec,
        }),
      });
      return {
        namespace: s.namespace,
        workload: s.name,
        instance: s.instance,
        pid: app.pid,
        appPorts: s.appPorts,
        proxy: { pid: s.proxy.pid, ...s.proxyPorts },
        ...(s.appPorts[0] ? { url: `http://127.0.0.1:${s.appPorts[0].actual}` } : {}),
        app,
      };
    });

    // Report when the apps listen, so that the table comes when the demo can be used.
    await Promise.all(
      instances
        .filter((i) => i.appPorts[0])
        .map((i) =>
          waitFor(() => i.app.child.exitCode !== null || i.app.child.signalCode !== null || isListening(i.appPorts[0]!.actual), {
            timeoutMs: APP_LISTEN_TIMEOUT_MS,
            intervalMs: 100,
            message: `${i.instance} to listen on port ${i.appPorts[0]!.actual}`,
          }).catch(() => print(`weft up: ${i.instance} does not listen on 127.0.0.1:${i.appPorts[0]!.actual} (its PORT) yet`)),
        ),
    );
    if (stopping) return;
    await waitForMeshReady(client, instances, print);
    await waitForGateways(client, gateways, print);
    if (stopping) return;

    const facts: UpFile = {
      pid: process.pid,
      meshFile,
      dataDir,
      api: controlPlane.apiUrl,
      stream: controlPlane.streamUrl,
      startedAt: new Date().toISOString(),
      services: resources
        .filter((r) => r.kind === 'Service')
        .map((r) => ({ namespace: r.metadata.namespace ?? 'default', name: r.metadata.name, ports: (r.spec as ServiceSpec).ports })),
      workloads: instances.map(({ app: _app, ...rest }) => rest),
      ...(gateways.length > 0 ? { gateways } : {}),
      ...(flags.proxyMode === 'node' ? { proxyMode: 'node' as const } : {}),
    };
    await writeUpFile(upFile, facts);

    print('');
    print(summaryTables(facts));
    print(`Dashboard: ${controlPlane.apiUrl}/`);
    print(`API: ${controlPlane.apiUrl}`);
    print(`export WEFT_SERVER=${controlPlane.apiUrl}`);
    for (const w of instances) {
      const hostPort = hostPortOf(templates.find((t) => t.metadata.name === w.workload && (t.metadata.namespace ?? 'default') === w.namespace)!);
      if (hostPort !== undefined && w.instance.endsWith('-0') && w.url) print(`Open ${w.workload}: ${w.url}/`);
    }
    const first = instances[0];
    if (flags.proxyMode === 'node' && first) print(`Node proxy: pid ${first.proxy.pid}, admin http://127.0.0.1:${first.proxy.admin}/config (every instance's config)`);
    if (first) print(`Through the mesh, as ${first.instance} would: curl -x http://127.0.0.1:${first.proxy.outbound} http://<service>:<port>/`);
    for (const g of gateways) {
      const [port, local] = Object.entries(g.listeners)[0] ?? [];
      if (local !== undefined) print(`Through Gateway ${g.namespace}/${g.name} (its port ${port}): curl http://127.0.0.1:${local}/ (with -H 'Host: ...' for routes that name hostnames)`);
    }
    print(`State: ${upFile}`);
    print('Ctrl-C stops everything.');
  } catch (error) {
    // Leave nothing running when start-up fails half way.
    await stopEverything().catch(() => supervisor.killAllNow());
    throw error;
  }
}
