// weft's topologies: a real `weft control-plane` and two `weft proxy` sidecars, configured from bench/peers/weft/mesh.yaml.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../src/testing/ports.ts';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { pinned } from './machine.ts';
import { startBenchProcess, type BenchProcess } from './proc.ts';
import { renderConfig, type Topology, type TopologyContext } from './topology.ts';

const weftBin = fileURLToPath(new URL('../../bin/weft.js', import.meta.url));

export interface WeftStack {
  topologies: Topology[];
  controlPlane: BenchProcess;
  processes: BenchProcess[];
}

function startWeft(ctx: TopologyContext, name: string, args: string[], env: Record<string, string> = {}): Promise<BenchProcess> {
  const argv = pinned(ctx.pinning, ctx.pinning.systemCpus, nodeBinary(), [weftBin, ...args]);
  return startBenchProcess(name, argv.command, argv.args, { readyLine: true, timeoutMs: 30_000, env });
}

/** A bootstrap token for a workload's proxies (a gateway's workload is "<name>.gateway"), made as an operator would: `weft token create` (local mode). */
async function createToken(api: string, workload: string): Promise<string> {
  const result = await runProcess(nodeBinary(), [weftBin, 'token', 'create', '--namespace', 'default', '--workload', workload], {
    env: { WEFT_SERVER: api },
    timeoutMs: 30_000,
  });
  if (result.code !== 0) throw new Error(`weft token create --workload ${workload} failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim();
}

/** One GET through a port: its status and weft-reason, or the error; 200 means the snapshot has arrived and the path works end to end. */
function probe(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const target = path.startsWith('http://') ? new URL(path) : undefined;
    const req = request({ host: '127.0.0.1', port, path, headers: target ? { host: target.host } : {}, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(`${res.statusCode}${res.headers['weft-reason'] ? ` ${String(res.headers['weft-reason'])}` : ''}`));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error) => resolve(error.message));
    req.end();
  });
}

/**
 * `proxyArgs` go to both sidecars; `variant` names a second stack in the same run (its ids become "weft-<variant>-...").
 * `gatewayWorkers` (2 or more) adds a second gateway run with `--workers N` on a fixed port (weft-gateway-1hop-workers).
 */
export async function startWeftTopologies(ctx: TopologyContext, options: { proxyArgs?: string[]; variant?: string; gatewayWorkers?: number } = {}): Promise<WeftStack> {
  const dir = join(ctx.scratchDir, options.variant ? `weft-${options.variant}` : 'weft');
  mkdirSync(dir, { recursive: true });
  const processes: BenchProcess[] = [];
  try {
    ctx.log('starting weft: control plane, client sidecar, server sidecar');
    // Local mode: bootstrap tokens come from `weft token create`; the proxies then get certificates and speak mTLS to each other.
    const controlPlane = await startWeft(ctx, options.variant ? `weft-${options.variant}-control-plane` : 'weft-control-plane', [
      'control-plane', '--api-port', '0', '--stream-port', '0', '--data-dir', join(dir, 'cp'), '--insecure-local-tokens',
    ]);
    processes.push(controlPlane);
    const api = String(controlPlane.ready!.api);
    const stream = String(controlPlane.ready!.stream);

    // Every port the stack binds is picked here at once (all distinct): a proxy given port 0 could take one of the
    // upstream ports, which the client sidecar binds only when its config arrives.
    const [oneHopPort, twoHopPort, twoHopL4Port, gatewayPort, workersPort, ...own] = await freePorts(5 + 9);
    const ownPorts = (i: number) => ['--outbound-port', String(own[3 * i]), '--tunnel-port', String(own[3 * i + 1]), '--admin-port', String(own[3 * i + 2])];
    const yamlFile = renderConfig(
      'weft/mesh.yaml',
      { UPSTREAM_PORT: ctx.upstreamPort, ONE_HOP_PORT: oneHopPort!, TWO_HOP_PORT: twoHopPort!, TWO_HOP_TCP_PORT: twoHopL4Port! },
      join(dir, 'mesh.yaml'),
    );
    const res = await fetch(`${api}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: readFileSync(yamlFile, 'utf8') });
    if (!res.ok) throw new Error(`applying ${yamlFile}: ${res.status} ${await res.text()}`);

    const sidecar = async (workload: string, index: number, extra: string[]) =>
      startWeft(ctx, `weft-${options.variant ? `${options.variant}-` : ''}${workload}-sidecar`, [
        'proxy', '--mode', 'sidecar',
        '--control-plane', stream,
        '--namespace', 'default',
        '--workload', workload,
        '--instance', `${workload}-0`,
        ...ownPorts(index),
        '--data-dir', join(dir, workload),
        '--drain', '1s',
        ...(options.proxyArgs ?? []),
        ...extra,
      ], { WEFT_TOKEN: await createToken(api, workload) });
    const server = await sidecar('server', 0, ['--app-port', `8080=${ctx.upstreamPort}`]);
    processes.push(server);
    const client = await sidecar('client', 1, []);
    processes.push(client);
    const gateway = await startWeft(ctx, `weft-${options.variant ? `${options.variant}-` : ''}gateway`, [
      'proxy', '--mode', 'gateway', '--gateway', 'default/edge',
      '--listener-port', `80=${gatewayPort!}`,
      '--control-plane', stream,
      ...ownPorts(2),
      '--data-dir', join(dir, 'gateway'),
      '--drain', '1s',
      ...(options.proxyArgs ?? []),
    ], { WEFT_TOKEN: await createToken(api, 'edge.gateway') });
    processes.push(gateway);
    const workers = options.gatewayWorkers ?? 1;
    let workersGateway: BenchProcess | undefined;
    if (workers > 1) {
      // The same Gateway again, served by N processes sharing one fixed port (SO_REUSEPORT); each worker picks its own other ports.
      workersGateway = await startWeft(ctx, `weft-${options.variant ? `${options.variant}-` : ''}gateway-workers`, [
        'proxy', '--mode', 'gateway', '--gateway', 'default/edge',
        '--listener-port', `80=${workersPort!}`,
        '--workers', String(workers),
        '--control-plane', stream,
        '--outbound-port', '0', '--tunnel-port', '0', '--admin-port', '0',
        '--data-dir', join(dir, 'gateway-workers'),
        '--drain', '1s',
        ...(options.proxyArgs ?? []),
      ], { WEFT_TOKEN: await createToken(api, 'edge.gateway') });
      processes.push(workersGateway);
    }
    const outboundPort = Number((client.ready!.ports as { outbound: number }).outbound);

    const forwardPath = 'http://direct:8080/';
    const last: Record<string, string> = {};
    try {
      await waitFor(
        async () => {
          last.oneHop = await probe(oneHopPort!, '/');
          last.twoHops = await probe(twoHopPort!, '/');
          last.twoHopsL4 = await probe(twoHopL4Port!, '/');
          last.forward = await probe(outboundPort, forwardPath);
          last.gateway = await probe(gatewayPort!, '/');
          if (workersGateway) last.gatewayWorkers = await probe(workersPort!, '/');
          return Object.values(last).every((status) => status === '200');
        },
        { timeoutMs: 30_000, intervalMs: 100, message: 'weft to answer 200 through one hop, two hops, the forward-proxy port and the gateway' },
      );
    } catch (error) {
      const tails = [client, server, gateway, ...(workersGateway ? [workersGateway] : [])].map((p) => `--- ${p.name} ---\n${p.output().slice(-1500)}`).join('\n');
      throw new Error(`${(error as Error).message}; last answers: ${JSON.stringify(last)}\n${tails}`);
    }

    const topologies: Topology[] = [
      {
        id: 'weft-1hop',
        system: 'weft',
        hops: 1,
        mtls: false,
        port: oneHopPort!,
        path: '/',
        proxies: [client],
        description: 'weft client sidecar: an upstream port (Workload.spec.upstreams) → the upstream',
      },
      {
        id: 'weft-gateway-1hop',
        system: 'weft',
        hops: 1,
        mtls: false,
        port: gatewayPort!,
        path: '/',
        proxies: [gateway],
        description: 'weft gateway (`weft proxy --mode gateway`, one HTTP listener, one HTTPRoute) → the upstream',
      },
      ...(workersGateway
        ? [
            {
              id: 'weft-gateway-1hop-workers',
              system: 'weft',
              hops: 1 as const,
              mtls: false,
              port: workersPort!,
              path: '/',
              proxies: [workersGateway],
              description: `weft gateway with --workers ${workers} (processes sharing the port by SO_REUSEPORT; CPU and RSS summed over them) → the upstream`,
            },
          ]
        : []),
      {
        id: 'weft-1hop-forward',
        system: 'weft',
        hops: 1,
        mtls: false,
        port: outboundPort,
        path: forwardPath,
        proxies: [client],
        description: 'weft client sidecar as an explicit forward proxy (absolute-form GET http://direct:8080/) → the upstream',
      },
      {
        id: 'weft-2hop-mtls',
        system: 'weft',
        hops: 2,
        mtls: true,
        port: twoHopPort!,
        path: '/',
        proxies: [client, server],
        description: 'weft: client sidecar upstream port → server sidecar mesh tunnel (mutual TLS, STRICT) → upstream',
      },
      {
        id: 'weft-2hop-mtls-l4',
        system: 'weft',
        hops: 2,
        mtls: true,
        port: twoHopL4Port!,
        path: '/',
        proxies: [client, server],
        description: 'weft at L4: the same two sidecars, the Service port declared appProtocol tcp: bytes over the mutual-TLS tunnel (a CONNECT stream), no HTTP handling (TCP metrics only)',
      },
    ];
    if (options.variant) for (const t of topologies) t.id = t.id.replace(/^weft-/, `weft-${options.variant}-`);
    return { topologies, controlPlane, processes };
  } catch (error) {
    await Promise.all(processes.map((p) => p.stop()));
    throw error;
  }
}
