// `weft echo`: the conformance echo backend (src/testing/echo.ts) as a process.
import { Command } from 'commander';
import { announceReady, stopOnSignals } from './lifecycle.ts';
import { parsePort } from './options.ts';

export function echoCommand(): Command {
  return new Command('echo')
    .description('run the echo backend of the Gateway API conformance tests (answers with the request it saw)')
    .option('--port <port>', 'port to listen on (0 = any; default $PORT or 3000)', parsePort)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--namespace <ns>', 'namespace to report (default $NAMESPACE)')
    .option('--pod <name>', 'pod name to report (default $POD_NAME)')
    .option('--grpc', 'serve the gRPC echo (GrpcEcho over h2c) instead of HTTP (default when $GRPC_ECHO_SERVER is set)')
    .action(async (flags: { port?: number; host: string; namespace?: string; pod?: string; grpc?: boolean }) => {
      const [{ startEcho }, { createLogger }] = await Promise.all([import('../testing/echo.ts'), import('../telemetry/logger.ts')]);
      const port = flags.port ?? (process.env.PORT ? parsePort(process.env.PORT) : 3000);
      // echo-basic's switch: the gRPC mode is chosen by its environment, as in the conformance Deployments.
      const grpc = flags.grpc === true || Boolean(process.env.GRPC_ECHO_SERVER);
      const start = grpc ? (await import('../testing/grpc-echo.ts')).startGrpcEcho : startEcho;
      const echo = await start({
        port,
        host: flags.host,
        namespace: flags.namespace ?? process.env.NAMESPACE ?? '',
        pod: flags.pod ?? process.env.POD_NAME ?? '',
        logger: createLogger('echo'),
      });
      stopOnSignals(() => echo.close(), { forceAfterMs: 5000 });
      announceReady({ port: echo.port });
    });
}
