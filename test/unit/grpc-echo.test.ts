// The gRPC echo (echo-basic's GrpcEcho) and the conformance harness's gRPC client and judge, against each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGrpcEcho, GRPC_ECHO_SERVICE } from '../../src/testing/grpc-echo.ts';
import { compareGrpc, grpcCall, prepareGrpc } from '../conformance/grpc.ts';
import type { Check } from '../conformance/model.ts';

function gatewayCheck(request: Partial<Check['request']>, expect: Check['expect']): Check {
  return {
    name: 'gRPC',
    target: { type: 'gateway', gateway: 'infra/gw', port: 80 },
    request: { protocol: 'grpc', service: GRPC_ECHO_SERVICE, method: 'Echo', ...request },
    expect,
  };
}

test('the gRPC echo reports method, metadata, authority and its pod; EchoThree is UNIMPLEMENTED', async (t) => {
  const echo = await startGrpcEcho({ port: 0, namespace: 'infra', pod: 'grpc-v1-abc-def' });
  t.after(() => echo.close());
  const destination = { kind: 'direct' as const, address: '127.0.0.1', port: echo.port, scheme: 'http' as const };

  const check = gatewayCheck(
    { method: 'EchoTwo', authority: 'grpc.example.com', metadata: { 'X-Multi': 'a', Version: 'one' } },
    { grpcCode: 0, backend: 'infra/grpc-v1', backendRequest: { headers: { version: 'one', ':authority': 'grpc.example.com' } } },
  );
  const call = prepareGrpc(check, { mode: 'gateway', gatewayHost: '127.0.0.1' });
  assert.deepEqual(call, { path: `/${GRPC_ECHO_SERVICE}/EchoTwo`, authority: 'grpc.example.com', metadata: { 'x-multi': 'a', version: 'one' } });
  const outcome = await grpcCall(destination, call, 5000);
  assert.equal(outcome.code, 0);
  assert.equal(outcome.fullyQualifiedMethod, `/${GRPC_ECHO_SERVICE}/EchoTwo`);
  assert.equal(outcome.echo?.pod, 'grpc-v1-abc-def');
  assert.equal(outcome.echo?.namespace, 'infra');
  assert.equal(outcome.echo?.host, 'grpc.example.com');
  assert.equal(compareGrpc('gateway', call, check.expect, outcome), undefined);

  // The judge: wrong pod, wrong namespace, missing metadata, wrong status.
  assert.match(compareGrpc('gateway', call, { ...check.expect, backend: 'infra/grpc-v2' }, outcome) ?? '', /pod of grpc-v2/);
  assert.match(compareGrpc('gateway', call, { ...check.expect, backend: 'other/grpc-v1' }, outcome) ?? '', /namespace other/);
  assert.match(compareGrpc('gateway', call, { grpcCode: 0, backend: 'infra/*', backendRequest: { headers: { absent: 'x' } } }, outcome) ?? '', /metadata absent/);
  assert.match(compareGrpc('gateway', call, { grpcStatus: 'UNIMPLEMENTED', grpcCode: 12, backend: null }, outcome) ?? '', /expected gRPC status UNIMPLEMENTED, got OK/);

  const three = await grpcCall(destination, prepareGrpc(gatewayCheck({ method: 'EchoThree' }, {}), { mode: 'gateway', gatewayHost: '127.0.0.1' }), 5000);
  assert.equal(three.code, 12);
  assert.equal(compareGrpc('gateway', call, { grpcStatus: 'UNIMPLEMENTED', grpcCode: 12, backend: null }, three), undefined);

  // An unknown service is UNIMPLEMENTED too (what a gateway with no matching route must also answer).
  const unknown = await grpcCall(destination, { path: '/no.Such/Thing', authority: 'x', metadata: {} }, 5000);
  assert.equal(unknown.code, 12);
});

test('mesh gRPC checks: Echo on request.host with request.headers as metadata; OK reads as status 200', async (t) => {
  const echo = await startGrpcEcho({ port: 0, namespace: 'mesh', pod: 'echo-v1-abc-def' });
  t.after(() => echo.close());
  const check: Check = {
    name: 'mesh gRPC',
    target: { type: 'mesh', client: 'mesh/echo-v1' },
    request: { protocol: 'grpc', host: 'echo:7070', headers: { 'x-test-case': 'add', 'x-header-add': 'one' } },
    expect: { status: 200, backend: 'mesh/echo-v1', backendRequest: { headers: { 'x-header-add': 'one' } } },
  };
  const call = prepareGrpc(check, { mode: 'mesh' });
  assert.equal(call.authority, 'echo:7070');
  const outcome = await grpcCall({ kind: 'proxy', port: echo.port }, call, 5000);
  assert.equal(compareGrpc('mesh', call, check.expect, outcome), undefined);
  assert.match(compareGrpc('mesh', call, { ...check.expect, backend: 'mesh/echo-v2' }, outcome) ?? '', /pod of echo-v2/);
});
