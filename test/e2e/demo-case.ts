// The demo `npm start` runs, as a test for either proxy mode: up within 15 s, the shop answers through the mesh, a changed split takes effect, stop is clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:http';
import { runWeft, startWeft } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import type { UpFile, UpProxyMode } from '../../src/cli/up.ts';
import { demoDir, demoMeshForTests } from './demo-mesh.ts';
import { viaProxy } from './harness.ts';


interface Shop {
  catalog: { ok: boolean; error?: string; body: { version: string; products: { price: number | null }[]; pricing: { instance?: string } } };
  cart: { ok: boolean; error?: string };
}

interface Split {
  calls: number;
  versions: Record<string, number>;
  errors: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The demo's Gateway: the shop, the public REST API (Transformation), GraphQL over catalog and cart, the portal. */
async function checkEdge(facts: UpFile): Promise<void> {
  const edge = facts.gateways?.find((g) => g.name === 'edge');
  assert.ok(edge, 'weft up runs a gateway proxy for the demo Gateway');
  const base = `http://127.0.0.1:${edge.listeners['80']}`;
  const timeout = () => AbortSignal.timeout(10_000);

  const site = await fetch(`${base}/`, { signal: timeout() });
  assert.equal(site.status, 200);
  assert.match(await site.text(), /<title>weft demo shop<\/title>/);

  const products = await fetch(`${base}/api/v1/products`, { signal: timeout() });
  assert.equal(products.status, 200);
  const publicBody = (await products.json()) as { products: { id: string; price: number }[]; version: string };
  assert.deepEqual(Object.keys(publicBody), ['products', 'version'], 'only the public fields are left');
  assert.equal(publicBody.products.length, 4);
  // Each product projected to the public fields ($each), whichever catalog version answered.
  for (const product of publicBody.products) assert.deepEqual(Object.keys(product), ['id', 'name', 'price', 'currency']);
  assert.ok(publicBody.products.every((p) => typeof p.price === 'number'));
  assert.equal(products.headers.get('x-catalog-version'), publicBody.version);
  assert.equal(products.headers.get('x-served-by'), null);

  const graphql = (query: string) =>
    fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }), signal: timeout() }).then(async (res) => ({ status: res.status, body: (await res.json()) as { data?: Record<string, unknown>; errors?: unknown } }));
  const added = await graphql('mutation { addToCart(id: "yarn") { items { id } } }');
  assert.equal(added.status, 200, JSON.stringify(added.body));
  const read = await graphql('{ products { id name price } cart { items { id } } }');
  assert.equal(read.status, 200, JSON.stringify(read.body));
  assert.equal(read.body.errors, undefined, JSON.stringify(read.body.errors));
  const data = read.body.data as { products: { id: string; price: number }[]; cart: { items: { id: string }[] } };
  assert.deepEqual(data.products.map((p) => p.id), ['loom', 'shuttle', 'yarn', 'scissors']);
  assert.ok(data.cart.items.some((item) => item.id === 'yarn'), 'the mutation reached the cart');

  const portal = await fetch(`${base}/portal/apis.json`, { signal: timeout() });
  assert.equal(portal.status, 200);
  const catalogOf = (await portal.json()) as { apis: { name: string }[] };
  assert.deepEqual(catalogOf.apis.map((a) => a.name), ['catalog', 'shop-graphql']);
}

/** The demo under `weft up --proxy-mode <proxyMode>`. */
export function demoTest(proxyMode: UpProxyMode): void {
  test(`the demo mesh serves the shop through the mesh within 15 s (${proxyMode} proxies)`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-demo-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const mesh = await demoMeshForTests();
    await writeFile(join(dir, 'mesh.yaml'), mesh);
    await symlink(join(demoDir, 'services'), join(dir, 'services'));

    const started = performance.now();
    const up = await startWeft(['up', '-f', 'mesh.yaml', '--api-port', '0', '--proxy-mode', proxyMode], {
      cwd: dir,
      isReady: (line) => line.startsWith('Ctrl-C stops everything'),
      readyTimeoutMs: 30_000,
    });
    const elapsed = performance.now() - started;
    let facts: UpFile | undefined;
    try {
      assert.ok(elapsed < 15_000, `weft up took ${Math.round(elapsed)} ms to be ready`);
      assert.doesNotMatch(up.stdout(), /not ready after/);
      facts = JSON.parse(await readFile(join(dir, '.weft', 'up.json'), 'utf8')) as UpFile;
      if (proxyMode === 'node') {
        assert.equal(facts.proxyMode, 'node');
        assert.equal(new Set(facts.workloads.map((w) => w.proxy.pid)).size, 1, 'one node proxy process serves every replica');
      }
      const frontend = facts.workloads.find((w) => w.workload === 'frontend');
      assert.ok(frontend?.url);

      const shop = (await (await fetch(`${frontend.url}/api/shop`)).json()) as Shop;
      assert.equal(shop.catalog.ok, true, `catalog: ${shop.catalog.error}`);
      assert.equal(shop.cart.ok, true, `cart: ${shop.cart.error}`);
      assert.ok(shop.catalog.body.products.every((p) => typeof p.price === 'number'), 'prices came from pricing');
      assert.match(shop.catalog.body.pricing.instance ?? '', /^pricing-[01]$/);

      const split = (await (await fetch(`${frontend.url}/api/split?n=40`)).json()) as Split;
      assert.equal(split.errors, 0);
      assert.ok((split.versions.v1 ?? 0) > (split.versions.v2 ?? 0), `90/10 split: ${JSON.stringify(split.versions)}`);

      // 1,000 calls from the frontend's sidecar to catalog (through catalog's sidecar too): 90/10 within ±4 points.
      const agent = new Agent({ keepAlive: true, maxSockets: 10 });
      const outbound = frontend.proxy.outbound;
      let v2 = 0;
      try {
        for (let sent = 0; sent < 1000; sent += 20) {
          const batch = await Promise.all(Array.from({ length: 20 }, () => viaProxy(outbound, 'http://catalog:8080/products', { agent })));
          for (const res of batch) {
            assert.equal(res.status, 200, res.body);
            if ((JSON.parse(res.body) as { version: string }).version === 'v2') v2++;
          }
        }
      } finally {
        agent.destroy();
      }
      assert.ok(Math.abs(v2 / 10 - 10) <= 4, `catalog v2 got ${v2 / 10}% of 1,000 calls`);

      await checkEdge(facts);

      // Move all traffic to v2 with weft apply; the proxies switch without restarting anything.
      const allToV2 = mesh.replace('weight: 90', 'weight: 0').replace('weight: 10', 'weight: 100');
      const applied = await runWeft(['--server', facts.api, 'apply', '-f', '-'], { input: allToV2 });
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /^httproute\/catalog-split configured$/m);
      await waitFor(
        async () => {
          const after = (await (await fetch(`${frontend.url}/api/split?n=10`)).json()) as Split;
          return after.versions.v2 === 10;
        },
        { timeoutMs: 5000, intervalMs: 100, message: 'every catalog call to reach v2' },
      );
    } finally {
      assert.deepEqual(await up.stop(), { code: 0, signal: null });
    }
    for (const w of facts.workloads) {
      assert.equal(alive(w.pid), false, `${w.instance} (pid ${w.pid}) still runs`);
      assert.equal(alive(w.proxy.pid), false, `${w.instance} proxy (pid ${w.proxy.pid}) still runs`);
    }
  });
}
