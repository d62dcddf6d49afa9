// The gRPC mode of the conformance echo backend (echo-basic's GrpcEcho over h2c): answers each call with what it saw of it.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../telemetry/logger.ts';
import type { RunningEcho } from './echo.ts';

/** The fully qualified name of the echo service. */
export const GRPC_ECHO_SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

const PROTO_PATH = fileURLToPath(new URL('./grpcecho.proto', import.meta.url));

export interface GrpcEchoOptions {
  port: number; // 0 = any
  host?: string; // default 127.0.0.1
  /** Reported in `assertions.context`, as the conformance tests read them. */
  namespace?: string;
  pod?: string;
  /** Gets one line per call, like the HTTP echo's. */
  logger?: Logger;
}

/** EchoResponse as proto-loader gives it (field names as in the .proto). */
export interface GrpcEchoResponse {
  assertions?: {
    fully_qualified_method?: string;
    headers?: { key?: string; value?: string }[];
    authority?: string;
    context?: { namespace?: string; ingress?: string; service_name?: string; pod?: string };
    tls_assertions?: Record<string, string>;
  };
}

type GrpcEchoClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;

let loaded: { service: grpc.ServiceDefinition; Client: GrpcEchoClientConstructor } | undefined;

/** The GrpcEcho service definition and its client class, loaded once from grpcecho.proto. */
export function grpcEchoDefinition(): { service: grpc.ServiceDefinition; Client: GrpcEchoClientConstructor } {
  if (!loaded) {
    const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      gateway_api_conformance: { echo_basic: { grpcecho: { GrpcEcho: GrpcEchoClientConstructor & { service: grpc.ServiceDefinition } } } };
    };
    const ctor = pkg.gateway_api_conformance.echo_basic.grpcecho.GrpcEcho;
    loaded = { service: ctor.service, Client: ctor };
  }
  return loaded;
}

/** Every metadata value as its own header entry, ":authority" first, as echo-basic reports them. */
function headersOf(call: grpc.ServerUnaryCall<unknown, unknown>): { key: string; value: string }[] {
  const headers = [{ key: ':authority', value: call.getHost() }];
  for (const [key, values] of Object.entries(call.metadata.toJSON())) {
    for (const value of values) headers.push({ key, value: Buffer.isBuffer(value) ? value.toString('base64') : String(value) });
  }
  return headers;
}

export async function startGrpcEcho(options: GrpcEchoOptions): Promise<RunningEcho> {
  const { service } = grpcEchoDefinition();
  const context = { namespace: options.namespace ?? '', ingress: '', service_name: '', pod: options.pod ?? '' };
  const echo: grpc.handleUnaryCall<unknown, GrpcEchoResponse> = (call, callback) => {
    const method = call.getPath();
    options.logger?.info(`Echoing back request made to ${method} to client (${call.getPeer()})`);
    callback(null, { assertions: { fully_qualified_method: method, headers: headersOf(call), authority: call.getHost(), context, tls_assertions: {} } });
  };
  const unimplemented: grpc.handleUnaryCall<unknown, GrpcEchoResponse> = (call, callback) => {
    options.logger?.info(`Echoing back request made to ${call.getPath()} to client (${call.getPeer()})`);
    callback({ code: grpc.status.UNIMPLEMENTED, details: `${call.getPath()} is not implemented` });
  };
  const server = new grpc.Server();
  server.addService(service, { Echo: echo, EchoTwo: echo, EchoThree: unimplemented });
  const host = options.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  return {
    port,
    close: () =>
      new Promise<void>((done) => {
        // Calls in flight get a moment to finish; then whatever is left is cut.
        const timer = setTimeout(() => {
          server.forceShutdown();
          done();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          done();
        });
      }),
  };
}
