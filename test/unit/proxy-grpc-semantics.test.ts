// gRPC semantics of the proxy: grpc-timeout parsing, the gRPC status of each proxy error, and gRPC statuses as HTTP statuses for retries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, WeftError } from '../../src/api/errors.ts';
import { GrpcStatus, grpcStatusOf, httpStatusForGrpc, proxyError } from '../../src/proxy/errors.ts';
import { grpcTimeoutMs } from '../../src/proxy/layers/timeout/index.ts';

test('grpc-timeout: every unit, rounded up to whole ms; malformed values are ignored', () => {
  assert.equal(grpcTimeoutMs('2H'), 7_200_000);
  assert.equal(grpcTimeoutMs('3M'), 180_000);
  assert.equal(grpcTimeoutMs('5S'), 5000);
  assert.equal(grpcTimeoutMs('150m'), 150);
  assert.equal(grpcTimeoutMs('1500u'), 2);
  assert.equal(grpcTimeoutMs('1n'), 1);
  for (const bad of [undefined, '', '5', 'S', '123456789S', '1.5S', '5s', '-1S']) assert.equal(grpcTimeoutMs(bad), undefined, String(bad));
});

test('proxy errors answer gRPC callers with the status Envoy would', () => {
  const cases: [WeftError, number][] = [
    [proxyError(ErrorCodes.UPSTREAM_CONNECT, 'x', 503), GrpcStatus.UNAVAILABLE],
    [proxyError(ErrorCodes.NO_HEALTHY_UPSTREAM, 'x'), GrpcStatus.UNAVAILABLE],
    [proxyError(ErrorCodes.UPSTREAM_RESET, 'x'), GrpcStatus.UNAVAILABLE],
    [proxyError(ErrorCodes.TIMEOUT, 'x', 504), GrpcStatus.DEADLINE_EXCEEDED],
    [proxyError(ErrorCodes.NO_ROUTE, 'x', 502), GrpcStatus.UNIMPLEMENTED],
    [proxyError(ErrorCodes.FORBIDDEN, 'x', 403), GrpcStatus.PERMISSION_DENIED],
    [proxyError(ErrorCodes.BAD_REQUEST, 'x', 429), GrpcStatus.RESOURCE_EXHAUSTED],
    // GRPCRoute conformance: an invalid backendRef is UNAVAILABLE for gRPC (500 for HTTP).
    [proxyError(ErrorCodes.BACKEND_NOT_FOUND, 'x'), GrpcStatus.UNAVAILABLE],
    [proxyError(ErrorCodes.RATE_LIMITED, 'x', 429), GrpcStatus.RESOURCE_EXHAUSTED],
    [proxyError(ErrorCodes.CIRCUIT_OPEN, 'x', 503), GrpcStatus.RESOURCE_EXHAUSTED],
    [proxyError(ErrorCodes.MISDIRECTED_REQUEST, 'x', 421), GrpcStatus.INTERNAL],
    [new WeftError(ErrorCodes.INTERNAL, 'bug'), GrpcStatus.INTERNAL],
  ];
  for (const [error, expected] of cases) assert.equal(grpcStatusOf(error), expected, error.code);
});

test('a gRPC status stands for the HTTP status a retry policy lists', () => {
  assert.equal(httpStatusForGrpc('14'), 503);
  assert.equal(httpStatusForGrpc('4'), 504);
  assert.equal(httpStatusForGrpc('8'), 429);
  assert.equal(httpStatusForGrpc('13'), 500);
  assert.equal(httpStatusForGrpc('5'), undefined);
});
