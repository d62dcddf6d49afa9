// `weft proxy --mode sidecar`: runs one proxy beside an app until SIGTERM, then drains.
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import type { ProxyMode } from '../api/snapshot.ts';
import { announceReady, stopOnSignals } from './lifecycle.ts';
import { collectAppPort, parseDuration, parsePort, type AppPort } from './options.ts';

interface ProxyFlags {
  mode: ProxyMode;
  controlPlane: string;
  namespace: string;
  workload?: string;
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
  exitOnStdinClose?: boolean;
}

export function proxyCommand(): Command {
  return new Command('proxy')
    .description('run a proxy (the data plane) beside an app')
    .addOption(new Option('--mode <mode>', 'where the proxy sits').choices(['sidecar', 'node', 'gateway']).default('sidecar'))
    .option('--control-plane <url>', 'the control plane config stream', 'http://127.0.0.1:15010')
    .option('--namespace <ns>', 'namespace of the workload', 'default')
    .option('--workload <name>', 'the Workload (template) this sidecar serves')
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
    .addOption(new Option('--exit-on-stdin-close', 'stop when stdin closes (weft up uses it so proxies never outlive it)').hideHelp())
    .action(async (flags: ProxyFlags) => {
      const [{ startProxy }, { createLogger }, { systemClock }] = await Promise.all([
        import('../proxy/main.ts'),
        import('../telemetry/logger.ts'),
        import('../telemetry/clock.ts'),
      ]);
      const logger = createLogger('proxy');
      const proxy = await startProxy({
        mode: flags.mode,
        controlPlane: flags.controlPlane,
        namespace: flags.namespace,
        ...(flags.workload !== undefined ? { workload: flags.workload } : {}),
        ...(flags.instance !== undefined ? { instance: flags.instance } : {}),
        appPorts: flags.appPort ?? [],
        ...(flags.host !== undefined ? { host: flags.host } : {}),
        ...(flags.address !== undefined ? { address: flags.address } : {}),
        ...(flags.tunnelHost !== undefined ? { tunnelHost: flags.tunnelHost } : {}),
        outboundPort: flags.outboundPort,
        tunnelPort: flags.tunnelPort,
        adminPort: flags.adminPort,
        ...(flags.dataDir !== undefined ? { dataDir: resolve(flags.dataDir) } : {}),
        drainMs: flags.drain,
        logger,
        clock: systemClock,
      });
      stopOnSignals(
        async (why) => {
          logger.info({ why }, 'draining');
          await proxy.close();
        },
        { forceAfterMs: flags.drain + 5000, onStdinClose: flags.exitOnStdinClose === true },
      );
      announceReady({ id: proxy.id, ports: proxy.ports });
    });
}
