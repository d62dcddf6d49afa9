// The harness's gRPC checks: one unary GrpcEcho call per attempt over h2c (grpc-js), and how upstream's utils/grpc judges it.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { grpcEchoDefinition, type GrpcEchoResponse } from '../../src/testing/grpc-echo.ts';
import type { Captured, Destination, EchoBody } from './client.ts';
import type { Mode } from './evaluate.ts';
import { splitName, type Check, type CheckExpect } from './model.ts';

/** One attempt's call, placeholders substituted. */
export interface GrpcRequest {
  /** "/<service>/<method>". */
  path: string;
  /** The :authority the call carries. */
  authority: string;
  /** Lower-case keys: gRPC lower-cases metadata on the wire. */
  metadata: Record<string, string>;
}

export interface GrpcOutcome {
  code: number;
  details: string;
  /** What the echo reported (OK answers only). */
  fullyQualifiedMethod?: string;
  echo?: EchoBody;
}

export interface GrpcContext {
  mode: Mode;
  /** The gateway address for a call without an authority ("ip" for ports 80/443, else "ip:port"). */
  gatewayHost?: string;
}

const ECHO_SERVICE = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';

/**
 * The call a gRPC check makes. Gateway checks name service and method
 * (metadata in `metadata`); mesh checks, like Istio's `client grpc://host`,
 * call the echo's Echo on `request.host` with `request.headers` as metadata.
 */
export function prepareGrpc(check: Check, context: GrpcContext): GrpcRequest {
  const request = check.request;
  const metadata: Record<string, string> = {};
  const source = context.mode === 'mesh' ? (request.headers ?? {}) : (request.metadata ?? {});
  for (const [name, value] of Object.entries(source)) metadata[name.toLowerCase()] = value === '{random}' ? randomBytes(4).toString('hex') : value;
  if (context.mode === 'mesh') return { path: `/${ECHO_SERVICE}/Echo`, authority: request.host ?? 'echo:7070', metadata };
  return {
    path: `/${request.service ?? ECHO_SERVICE}/${request.method ?? 'Echo'}`,
    authority: request.authority ?? context.gatewayHost ?? '',
    metadata,
  };
}

/**
 * One unary call on its own connection (a fresh channel, its own subchannel
 * pool), plaintext HTTP/2 with prior knowledge. Through a sidecar the call
 * goes to its outbound listener, the :authority naming the Service, as an
 * HTTP/1 client names it in an absolute-form request to its proxy.
 */
export function grpcCall(destination: Destination, call: GrpcRequest, timeoutMs: number): Promise<GrpcOutcome> {
  const address = destination.kind === 'proxy' ? `${destination.host ?? '127.0.0.1'}:${destination.port}` : `${destination.address}:${destination.port}`;
  if (destination.kind === 'direct' && destination.scheme !== 'http') return Promise.reject(new Error('gRPC checks are plaintext (h2c) only'));
  const { service, Client } = grpcEchoDefinition();
  const echo = service.Echo!;
  const options: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1, 'grpc.enable_retries': 0 };
  if (call.authority) options['grpc.default_authority'] = call.authority;
  const client = new Client(address, grpc.credentials.createInsecure(), options);
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(call.metadata)) metadata.add(name, value);
  return new Promise<GrpcOutcome>((resolve) => {
    client.makeUnaryRequest<object, GrpcEchoResponse>(
      call.path,
      echo.requestSerialize as (value: object) => Buffer,
      echo.responseDeserialize as (bytes: Buffer) => GrpcEchoResponse,
      {},
      metadata,
      { deadline: Date.now() + timeoutMs },
      (error, response) => {
        if (error) return resolve({ code: error.code ?? grpc.status.UNKNOWN, details: error.details ?? error.message });
        resolve(outcomeOf(response ?? {}));
      },
    );
  }).finally(() => client.close());
}

function outcomeOf(response: GrpcEchoResponse): GrpcOutcome {
  const assertions = response.assertions ?? {};
  const headers = new Map<string, string[]>();
  for (const { key, value } of assertions.headers ?? []) {
    if (key === undefined) continue;
    const name = key.toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), value ?? '']);
  }
  return {
    code: grpc.status.OK,
    details: '',
    fullyQualifiedMethod: assertions.fully_qualified_method ?? '',
    echo: {
      path: assertions.fully_qualified_method ?? '',
      host: assertions.authority ?? '',
      method: 'POST',
      headers,
      namespace: assertions.context?.namespace ?? '',
      pod: assertions.context?.pod ?? '',
    },
  };
}

/** The outcome as the HTTP checks' Captured (a mesh gRPC OK reads as 200, as Istio's echo client reports it), for the distribution checks. */
export function capturedOf(outcome: GrpcOutcome): Captured {
  const captured: Captured = { status: outcome.code === grpc.status.OK ? 200 : 500, headers: new Map(), contentType: 'application/grpc', body: outcome.details };
  if (outcome.echo) captured.echo = outcome.echo;
  return captured;
}

function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

function expectedCode(expect: CheckExpect, mode: Mode): number {
  if (expect.grpcCode !== undefined) return expect.grpcCode;
  if (expect.grpcStatus !== undefined) {
    const code = (grpc.status as unknown as Record<string, number>)[expect.grpcStatus];
    if (code !== undefined) return code;
  }
  // Mesh checks say HTTP 200 for a gRPC OK (Istio's echo client); anything else is some failure.
  const status = Array.isArray(expect.status) ? expect.status[0] : expect.status;
  return mode === 'mesh' && status !== undefined && status !== 200 ? -1 : grpc.status.OK;
}

/**
 * upstream's utils/grpc: the status code must match; for OK, the echoed
 * fully qualified method, the namespace and the pod prefix of the backend
 * (and the headers the check lists: our derived GRPCRouteRequestHeaderModifier
 * expectations, and the mesh header checks).
 */
export function compareGrpc(mode: Mode, call: GrpcRequest, expect: CheckExpect, outcome: GrpcOutcome): string | undefined {
  const wanted = expectedCode(expect, mode);
  if (wanted === -1 ? outcome.code === grpc.status.OK : outcome.code !== wanted) {
    return `expected gRPC status ${wanted === -1 ? 'not OK' : statusName(wanted)}, got ${statusName(outcome.code)}${outcome.details ? ` (${outcome.details})` : ''}`;
  }
  if (outcome.code !== grpc.status.OK || !outcome.echo) return undefined;
  const wantedRequest = expect.backendRequest as (CheckExpect['backendRequest'] & { fullyQualifiedMethod?: string }) | undefined;
  const method = wantedRequest?.fullyQualifiedMethod ?? (mode === 'gateway' ? call.path : undefined);
  if (method !== undefined && method !== outcome.fullyQualifiedMethod) return `expected the backend to see method ${method}, it saw ${outcome.fullyQualifiedMethod}`;
  const echo = outcome.echo;
  const [namespace, name] = expect.backend ? splitName(expect.backend) : ['', ''];
  if (mode === 'gateway' && namespace !== echo.namespace) return `expected an answer from namespace ${namespace || '(none)'}, got one from pod ${echo.pod} of namespace ${echo.namespace}`;
  const prefix = name === '*' ? '' : name;
  if (!echo.pod.startsWith(prefix)) return `expected a pod of ${prefix} to answer, got pod ${echo.pod || '?'}`;
  for (const [header, value] of Object.entries(wantedRequest?.headers ?? {})) {
    const actual = echo.headers.get(header.toLowerCase())?.join(',');
    if (actual === undefined) return `expected metadata ${header}: "${value}" at the backend, it was missing`;
    if (actual !== value) return `expected metadata ${header}: "${value}" at the backend, it saw "${actual}"`;
  }
  for (const header of wantedRequest?.absentHeaders ?? []) {
    const actual = echo.headers.get(header.toLowerCase())?.join(',');
    if (actual !== undefined) return `expected the backend not to see metadata ${header}, it saw "${actual}"`;
  }
  return undefined;
}
