// The peers: HAProxy and nginx from Debian as one hop and as two chained hops (plaintext and mutual TLS), with configs from bench/peers/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../../src/testing/ports.ts';
import { hasCommand, pinned } from './machine.ts';
import { startBenchProcess, type BenchProcess } from './proc.ts';
import { renderConfig, type Topology, type TopologyContext } from './topology.ts';

type PeerName = 'haproxy' | 'nginx';
type Role = 'gateway' | 'client' | 'client-mtls' | 'server' | 'server-mtls';

async function startPeer(ctx: TopologyContext, peer: PeerName, role: Role, instance: string, vars: Record<string, string | number>): Promise<BenchProcess> {
  const runDir = join(ctx.scratchDir, instance);
  mkdirSync(runDir, { recursive: true });
  const certs = ctx.certs;
  const allVars = {
    RUN_DIR: runDir,
    CA_CERT: certs.caCert,
    SERVER_CERT: certs.server.cert,
    SERVER_KEY: certs.server.key,
    SERVER_BUNDLE: certs.server.bundle,
    SERVER_NAME: certs.server.name,
    CLIENT_CERT: certs.client.cert,
    CLIENT_KEY: certs.client.key,
    CLIENT_BUNDLE: certs.client.bundle,
    ...vars,
  };
  const port = Number(vars.LISTEN_PORT);
  if (peer === 'haproxy') {
    const config = renderConfig(`haproxy/${role}.cfg`, allVars, join(runDir, 'haproxy.cfg'));
    const argv = pinned(ctx.pinning, ctx.pinning.systemCpus, 'haproxy', ['-f', config, '-db']);
    return startBenchProcess(instance, argv.command, argv.args, { port });
  }
  const config = renderConfig(`nginx/${role}.conf`, allVars, join(runDir, 'nginx.conf'));
  const argv = pinned(ctx.pinning, ctx.pinning.systemCpus, 'nginx', ['-p', runDir, '-c', config, '-e', join(runDir, 'startup-error.log')]);
  return startBenchProcess(instance, argv.command, argv.args, { port });
}

const describe: Record<PeerName, string> = { haproxy: 'HAProxy (1 thread)', nginx: 'nginx (1 worker)' };

/**
 * Every peer topology whose binary is installed. A missing binary is reported
 * through `skipped` rather than failing the suite, so a laptop without HAProxy
 * can still run weft's side. Every process is added to `started` as soon as
 * it runs, so that the caller stops it even when a later one fails.
 */
export async function startPeerTopologies(ctx: TopologyContext, skipped: string[], started: BenchProcess[]): Promise<Topology[]> {
  const topologies: Topology[] = [];
  for (const peer of ['haproxy', 'nginx'] as const) {
    if (!hasCommand(peer)) {
      skipped.push(`${peer}: not installed (apt-get install -y ${peer})`);
      continue;
    }
    const [gatewayPort, plainClient, plainServer, mtlsClient, mtlsServer] = await freePorts(5);
    ctx.log(`starting ${peer}: gateway, plaintext pair, mTLS pair`);
    const gateway = await startPeer(ctx, peer, 'gateway', `${peer}-gateway`, { LISTEN_PORT: gatewayPort!, UPSTREAM_PORT: ctx.upstreamPort });
    started.push(gateway);
    topologies.push({
      id: `${peer}-1hop`,
      system: peer,
      hops: 1,
      mtls: false,
      port: gatewayPort!,
      path: '/',
      proxies: [gateway],
      description: `${describe[peer]} as a gateway in front of the upstream`,
    });
    for (const mtls of [false, true]) {
      const clientPort = mtls ? mtlsClient! : plainClient!;
      const serverPort = mtls ? mtlsServer! : plainServer!;
      const suffix = mtls ? '-mtls' : '';
      const server = await startPeer(ctx, peer, mtls ? 'server-mtls' : 'server', `${peer}-server${suffix}`, {
        LISTEN_PORT: serverPort,
        UPSTREAM_PORT: ctx.upstreamPort,
      });
      started.push(server);
      const client = await startPeer(ctx, peer, mtls ? 'client-mtls' : 'client', `${peer}-client${suffix}`, {
        LISTEN_PORT: clientPort,
        NEXT_PORT: serverPort,
      });
      started.push(client);
      topologies.push({
        id: `${peer}-2hop${suffix}`,
        system: peer,
        hops: 2,
        mtls,
        port: clientPort,
        path: '/',
        proxies: [client, server],
        description: `${describe[peer]}: client sidecar → server sidecar → upstream, ${mtls ? 'mutual TLS (P-256)' : 'plaintext'} between the hops`,
      });
    }
  }
  return topologies;
}
