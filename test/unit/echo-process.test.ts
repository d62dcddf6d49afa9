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
