// `weft echo` as a process: ready line, env defaults for namespace and pod, one log line per request, clean stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

test('weft echo serves the echo contract and stops on SIGTERM', async (t) => {
  const echo = await startWeft(['echo', '--port', '0'], { env: { NAMESPACE: 'shop', POD_NAME: 'echo-abc-def', PORT: undefined } });
  t.after(() => echo.stop({ signal: 'SIGKILL', timeoutMs: 1000 }));
  const port = echo.ready.port as number;
  assert.ok(port > 0, `ready line: ${JSON.stringify(echo.ready)}`);

  const response = await fetch(`http://127.0.0.1:${port}/hello?x=1`, { headers: { 'x-test': 'yes' } });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { path: string; namespace: string; pod: string; headers: Record<string, string[]> };
  assert.equal(body.path, '/hello?x=1');
  assert.equal(body.namespace, 'shop');
  assert.equal(body.pod, 'echo-abc-def');
  assert.deepEqual(body.headers['X-Test'], ['yes']);

  await waitFor(() => echo.stderr().includes('Echoing back request made to /hello?x=1 to client (127.0.0.1:'), {
    timeoutMs: 3000,
    message: 'the request log line',
  });
  const status = await echo.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});

test('weft echo in gRPC mode ($GRPC_ECHO_SERVER) serves GrpcEcho over h2c and stops on SIGTERM', async (t) => {
  const [{ grpcCall, prepareGrpc }, { GRPC_ECHO_SERVICE }] = await Promise.all([import('../conformance/grpc.ts'), import('../../src/testing/grpc-echo.ts')]);
  const echo = await startWeft(['echo', '--port', '0'], { env: { NAMESPACE: 'infra', POD_NAME: 'grpc-v1-abc-def', GRPC_ECHO_SERVER: '1', PORT: undefined } });
  t.after(() => echo.stop({ signal: 'SIGKILL', timeoutMs: 1000 }));
  const port = echo.ready.port as number;
  const call = prepareGrpc(
    { name: 'call', target: { type: 'gateway', gateway: 'infra/gw', port: 80 }, request: { protocol: 'grpc', service: GRPC_ECHO_SERVICE, method: 'Echo' }, expect: {} },
    { mode: 'gateway', gatewayHost: 'echo.example' },
  );
  const outcome = await grpcCall({ kind: 'direct', address: '127.0.0.1', port, scheme: 'http' }, call, 5000);
  assert.equal(outcome.code, 0);
  assert.equal(outcome.fullyQualifiedMethod, `/${GRPC_ECHO_SERVICE}/Echo`);
  assert.equal(outcome.echo?.pod, 'grpc-v1-abc-def');
  assert.equal(outcome.echo?.namespace, 'infra');
  await waitFor(() => echo.stderr().includes(`Echoing back request made to /${GRPC_ECHO_SERVICE}/Echo`), { timeoutMs: 3000, message: 'the call log line' });
  assert.deepEqual(await echo.stop(), { code: 0, signal: null });
});
