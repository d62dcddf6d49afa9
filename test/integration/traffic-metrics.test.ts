// Acceptance: under steady fixed-rate load through real sidecars, the control plane's topology API reports the edge's rate and success rate; weft top shows it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceTraffic, TopologyTraffic } from '../../src/api/topology.ts';
import { runWeft } from '../../src/testing/process.ts';
import { api } from './control-helpers.ts';
import { fixedRateLoad, startTrafficMesh, type LoadResult, type TrafficMesh } from './traffic-helpers.ts';

const RPS = 50;
/** One request in ten asks for a 503: a 90 % success rate. */
const FAIL_EVERY = 10;

describe('traffic metrics through the mesh', { timeout: 60_000 }, () => {
  let mesh: TrafficMesh;
  let load: Promise<LoadResult>;
  let topology: TopologyTraffic;
  let service: ServiceTraffic;
  let top: string;

  before(async () => {
    mesh = await startTrafficMesh({ telemetryIntervalMs: 500 });
    load = fixedRateLoad(mesh.frontend.ports.outbound, 'http://catalog.shop', { rps: RPS, durationMs: 9000, failEvery: FAIL_EVERY });
    // Asked while the load runs, over a window that holds only reports of its steady part (it started 7.5 s ago).
    // weft top is a process of its own: started earlier, so that its question too comes while the load runs.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const running = runWeft(['top', 'catalog', '--once', '--window', '4s', '--server', mesh.cp.apiUrl]);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const [t, s] = await Promise.all([api(mesh.cp.apiUrl, 'GET', '/api/v1/topology?window=5s'), api(mesh.cp.apiUrl, 'GET', '/api/v1/services/shop/catalog?window=5s')]);
    const cli = await running;
    topology = t.body as TopologyTraffic;
    service = s.body as ServiceTraffic;
    assert.equal(cli.code, 0, cli.stderr);
    top = cli.stdout;
  });

  after(async () => {
    await load?.catch(() => undefined);
    await mesh?.close();
  });

  it('the generator kept its rate', async () => {
    const result = await load;
    assert.equal(result.errors, 0);
    assert.equal(result.failed, result.sent / FAIL_EVERY);
    const achieved = (result.sent * 1000) / result.elapsedMs;
    assert.ok(Math.abs(achieved - RPS) / RPS < 0.05, `the load ran at ${achieved.toFixed(1)} rps`);
  });

  it('reports the frontend → catalog edge at the generated rate (±5 %) and success rate (±2 points)', () => {
    assert.equal(topology.available, true, JSON.stringify(topology));
    const edge = topology.edges.find((e) => e.source.workload === 'frontend' && e.destination.service === 'catalog');
    assert.ok(edge, `edges: ${JSON.stringify(topology.edges)}`);
    assert.equal(edge.source.namespace, 'shop');
    assert.equal(edge.mtls, true);
    assert.ok(Math.abs(edge.requestsPerSecond - RPS) / RPS <= 0.05, `edge rate ${edge.requestsPerSecond} rps, generated ${RPS}`);
    assert.ok(edge.successRate !== undefined && Math.abs(edge.successRate - 0.9) <= 0.02, `success rate ${edge.successRate}`);
    assert.ok(edge.p50Ms !== undefined && edge.p99Ms !== undefined && edge.p50Ms <= edge.p99Ms, `p50 ${edge.p50Ms} p99 ${edge.p99Ms}`);
    const catalog = topology.services.find((s) => s.namespace === 'shop' && s.service === 'catalog');
    assert.ok(catalog && Math.abs(catalog.requestsPerSecond - RPS) / RPS <= 0.05);
  });

  it('serves one service with its callers and routes at /api/v1/services/<ns>/<name>', () => {
    assert.equal(service.available, true);
    assert.equal(service.service.service, 'catalog');
    assert.ok(Math.abs(service.service.requestsPerSecond - RPS) / RPS <= 0.05);
    assert.deepEqual(
      service.inbound.map((e) => `${e.source.namespace}/${e.source.workload}`),
      ['shop/frontend'],
    );
    assert.equal(service.routes.length, 1);
    assert.equal(service.routes[0]!.route, 'default');
  });

  it('weft top --once prints the edge per route with its rate and success rate', () => {
    assert.match(top, /SOURCE\s+DESTINATION\s+ROUTE\s+RPS\s+SUCCESS\s+P50\s+P99/);
    const row = top.split('\n').find((line) => line.startsWith('shop/frontend'));
    assert.ok(row, top);
    const [, destination, route, rps, success] = row.split(/\s+/);
    assert.equal(destination, 'shop/catalog');
    assert.equal(route, 'default');
    assert.ok(Math.abs(Number(rps) - RPS) / RPS <= 0.05, row);
    assert.ok(Math.abs(Number.parseFloat(success!) - 90) <= 2, row);
  });
});
