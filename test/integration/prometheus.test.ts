// A real Prometheus scrapes the mesh's proxies through the config `weft prometheus-config` prints, and PromQL gives a service's success rate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/testing/ports.ts';
import { runWeft, stopGroup } from '../../src/testing/process.ts';
import { waitFor } from './control-helpers.ts';
import { adminGet, viaProxy } from './proxy-helpers.ts';
import { startTrafficMesh, type TrafficMesh } from './traffic-helpers.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const REQUESTS = 100;
/** One in five fails: the success rate is 0.8. */
const FAIL_EVERY = 5;

async function promql(port: number, query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
  assert.equal(body.status, 'success', body.error);
  return body.data!.result;
}

describe('Prometheus scrapes the proxies', { timeout: 60_000, skip: existsSync(PROMETHEUS) ? false : `${PROMETHEUS} is not installed (Debian package prometheus)` }, () => {
  let mesh: TrafficMesh;
  let prometheus: ChildProcess | undefined;
  let config = '';
  let promPort = 0;
  let expected = { total: 0, failed: 0 };
  const dir = mkdtempSync(join(tmpdir(), 'weft-prometheus-'));

  before(async () => {
    mesh = await startTrafficMesh({ telemetryIntervalMs: 1000 });
    for (let i = 1; i <= REQUESTS; i++) {
      const res = await viaProxy(mesh.frontend.ports.outbound, i % FAIL_EVERY === 0 ? 'http://catalog.shop/status/503' : 'http://catalog.shop/ok');
      assert.equal(res.status, i % FAIL_EVERY === 0 ? 503 : 200);
    }
    // Reaching both replicas took a few requests already (answered by the app, or by the proxy while it knew no endpoint):
    // they are in the counters too, so the expected figures come from the frontend's own /metrics once it counted ours.
    expected = await waitFor(async () => {
      const text = (await adminGet(mesh.frontend.ports.admin, '/metrics')).body;
      let total = 0;
      let failed = 0;
      let served503 = 0;
      for (const m of text.matchAll(/^weft_requests_total\{(reporter="source",[^}]*destination_service_name="catalog",[^}]*)\} (\d+)$/gm)) {
        const n = Number(m[2]);
        total += n;
        if (/response_code="5\d\d"/.test(m[1]!)) failed += n;
        if (/destination_workload="catalog",[^}]*response_code="503"/.test(m[1]!)) served503 += n;
      }
      return served503 === REQUESTS / FAIL_EVERY && total >= REQUESTS ? { total, failed } : undefined;
    }, 'the frontend counted the traffic');
    assert.ok(expected.total - REQUESTS < 20, `${expected.total - REQUESTS} warm-up requests`);
    const printed = await runWeft(['prometheus-config', '--scrape-interval', '1s', '--server', mesh.cp.apiUrl]);
    assert.equal(printed.code, 0, printed.stderr);
    config = printed.stdout;
    writeFileSync(join(dir, 'prometheus.yml'), config);
    promPort = await freePort();
    // Prometheus logs to stderr only; it is ready when /-/ready says so.
    prometheus = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    prometheus.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    await waitFor(
      async () => {
        if (prometheus!.exitCode !== null) throw new Error(`prometheus exited ${prometheus!.exitCode}: ${stderr}`);
        return (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined))?.status === 200;
      },
      'prometheus ready',
      15_000,
    );
  });

  after(async () => {
    if (prometheus) await stopGroup(prometheus);
    await mesh?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a static target per proxy admin listener, labelled with its workload', () => {
    for (const proxy of [mesh.frontend, ...mesh.catalogs]) assert.ok(config.includes(`"127.0.0.1:${proxy.ports.admin}"`), config);
    assert.match(config, /job_name: "weft-proxies"/);
    assert.match(config, /workload: "frontend"/);
  });

  it('answers a PromQL success rate of the catalog service (reporter=source) with the injected failure rate', async () => {
    // Every proxy is up (scraped) and the frontend's counters reached Prometheus.
    await waitFor(async () => {
      const up = await promql(promPort, 'sum(up{job="weft-proxies"})');
      const total = await promql(promPort, 'sum(weft_requests_total{reporter="source",destination_service_name="catalog"})');
      const served = await promql(promPort, 'sum(weft_requests_total{reporter="destination",destination_workload="catalog",response_code="503"})');
      return up[0]?.value[1] === '3' && total[0]?.value[1] === String(expected.total) && served[0]?.value[1] === String(REQUESTS / FAIL_EVERY);
    }, 'Prometheus scraped the three proxies with the traffic', 30_000).catch(async (error: unknown) => {
      const targets = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets`)).text();
      const total = await promql(promPort, 'weft_requests_total{reporter="source"}');
      throw new Error(`${String(error)}; targets: ${targets.slice(0, 1500)}; series: ${JSON.stringify(total).slice(0, 1500)}`);
    });
    const success = await promql(
      promPort,
      'sum(weft_requests_total{reporter="source",destination_service_namespace="shop",destination_service_name="catalog",response_code!~"5.."}) / sum(weft_requests_total{reporter="source",destination_service_namespace="shop",destination_service_name="catalog"})',
    );
    assert.equal(Number(success[0]?.value[1]), 1 - expected.failed / expected.total);
    assert.ok(Math.abs(Number(success[0]?.value[1]) - (1 - 1 / FAIL_EVERY)) < 0.03, 'close to the injected failure rate');
    // The called side agrees: both catalog replicas report what they served, by caller.
    const served = await promql(promPort, 'sum by (source_workload) (weft_requests_total{reporter="destination",destination_workload="catalog",route="inbound:8080",response_code="503"})');
    assert.deepEqual(
      served.map((r) => [r.metric.source_workload, r.value[1]]),
      [['frontend', String(REQUESTS / FAIL_EVERY)]],
    );
  });
});
