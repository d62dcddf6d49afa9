// The demo under `weft up` with MeshConfig tracing: its services copy trace headers, so a call from the frontend through catalog to pricing arrives at a collector as one trace with a span per proxy hop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpFile } from '../../src/cli/up.ts';
import { startWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { startOtlpReceiver, type ReceivedSpan } from '../integration/observability-helpers.ts';
import { demoDir, demoMeshForTests } from './demo-mesh.ts';

const SERVER = 2;
const CLIENT = 3;

test('the demo produces whole traces: frontend → catalog → pricing is one trace, a client and a server span per hop', { timeout: 60_000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const dir = await mkdtemp(join(tmpdir(), 'weft-demo-tracing-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const demo = await demoMeshForTests();
  const meshConfig = `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  tracing: {samplingPercent: 100, exportInterval: 100ms, collector: {endpoint: "${receiver.url}"}}
`;
  await writeFile(join(dir, 'mesh.yaml'), `${demo}\n---\n${meshConfig}`);
  await symlink(join(demoDir, 'services'), join(dir, 'services'));
  const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0'], { cwd: dir, isReady: (line) => line.startsWith('Ctrl-C stops everything'), readyTimeoutMs: 30_000 });
  try {
    const facts = JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile;
    const frontend = facts.workloads.find((w) => w.workload === 'frontend');
    assert.ok(frontend?.url);
    const shop = (await (await fetch(`${frontend.url}/api/shop`)).json()) as { catalog: { ok: boolean }; cart: { ok: boolean } };
    assert.ok(shop.catalog.ok && shop.cart.ok, JSON.stringify(shop));

    // The browser's request reached the frontend app directly, so each of its calls starts a trace at the frontend's sidecar.
    const chain = await waitFor(
      () => {
        const byTrace = new Map<string, ReceivedSpan[]>();
        for (const span of receiver.spans) byTrace.set(span.traceId, [...(byTrace.get(span.traceId) ?? []), span]);
        return [...byTrace.values()].find((spans) => spans.some((s) => s.service === 'pricing') && spans.length >= 4);
      },
      { timeoutMs: 10_000, intervalMs: 100, message: 'a trace reaching pricing' },
    );
    const root = chain.find((s) => s.service === 'frontend' && s.kind === CLIENT);
    assert.ok(root, JSON.stringify(chain.map((s) => [s.service, s.kind])));
    assert.equal(root.parentSpanId, undefined);
    assert.equal(root.attributes['server.address'], 'catalog');
    const catalogIn = chain.find((s) => s.service.startsWith('catalog-') && s.kind === SERVER);
    const catalogOut = chain.find((s) => s.service.startsWith('catalog-') && s.kind === CLIENT);
    const pricingIn = chain.find((s) => s.service === 'pricing' && s.kind === SERVER);
    assert.ok(catalogIn && catalogOut && pricingIn, JSON.stringify(chain.map((s) => [s.service, s.kind])));
    assert.equal(catalogIn.parentSpanId, root.spanId);
    assert.equal(catalogOut.parentSpanId, catalogIn.spanId, 'the catalog service copied the trace headers to its pricing call');
    assert.equal(pricingIn.parentSpanId, catalogOut.spanId);
    assert.equal(chain.length, 4);
    // The cart call is a trace of its own: frontend's client span and cart's server span.
    await waitFor(() => receiver.spans.some((s) => s.service === 'cart' && s.kind === SERVER && receiver.spans.some((p) => p.spanId === s.parentSpanId && p.service === 'frontend')), {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "cart's server span under the frontend's client span",
    });
  } finally {
    assert.deepEqual(await up.stop(), { code: 0, signal: null });
  }
});
