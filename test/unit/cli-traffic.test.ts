// `weft prometheus-config` and `weft top` formatting: scrape targets from the proxy list, the per-route table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import type { ProxyStatus } from '../../src/api/stream.ts';
import type { TopologyTraffic } from '../../src/api/topology.ts';
import { prometheusConfig, scrapeTargets } from '../../src/cli/prometheus-config.ts';
import { formatTop } from '../../src/cli/top.ts';

const proxy = (id: string, fields: Partial<ProxyStatus>): ProxyStatus => ({
  id,
  mode: 'sidecar',
  namespace: 'shop',
  address: '10.0.0.1',
  tunnelPort: 15008,
  connected: true,
  ready: true,
  lastSeen: '',
  ...fields,
});

test('prometheus-config lists every connected proxy that names its admin listener, as static targets or file_sd', () => {
  const targets = scrapeTargets([
    proxy('shop/frontend-0', { workload: 'frontend', admin: '10.0.0.1:15020' }),
    proxy('shop/catalog-0', { workload: 'catalog', admin: '10.0.0.2:15020' }),
    proxy('shop/old-0', { workload: 'old' }),
    proxy('shop/gone-0', { workload: 'gone', admin: '10.0.0.9:15020', connected: false }),
  ]);
  assert.deepEqual(targets, [
    { targets: ['10.0.0.2:15020'], labels: { namespace: 'shop', workload: 'catalog', weft_proxy: 'shop/catalog-0', weft_mode: 'sidecar' } },
    { targets: ['10.0.0.1:15020'], labels: { namespace: 'shop', workload: 'frontend', weft_proxy: 'shop/frontend-0', weft_mode: 'sidecar' } },
  ]);
  const config = parse(prometheusConfig(targets, { job: 'weft-proxies', scrapeInterval: '15s' })) as {
    global: { scrape_interval: string };
    scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[]; labels: Record<string, string> }[] }[];
  };
  assert.equal(config.global.scrape_interval, '15s');
  assert.equal(config.scrape_configs[0]!.job_name, 'weft-proxies');
  assert.deepEqual(config.scrape_configs[0]!.static_configs, targets);
  const fileSd = parse(prometheusConfig(targets, { job: 'weft-proxies', scrapeInterval: '15s', fileSd: '/etc/prometheus/weft.json' })) as { scrape_configs: { file_sd_configs: { files: string[] }[] }[] };
  assert.deepEqual(fileSd.scrape_configs[0]!.file_sd_configs, [{ files: ['/etc/prometheus/weft.json'] }]);
});

test('top prints one row per route per edge, busiest first, and filters by workload or service', () => {
  const traffic: TopologyTraffic = {
    available: true,
    window: '1m',
    generatedAt: '2026-11-26T00:00:00.000Z',
    services: [],
    edges: [],
    routes: [
      { route: 'default', source: { namespace: 'shop', workload: 'frontend' }, destination: { namespace: 'shop', service: 'cart' }, requestsPerSecond: 2.5, successRate: 1, p50Ms: 1.2, p99Ms: 7 },
      { route: 'shop/catalog/0/0', source: { namespace: 'shop', workload: 'frontend' }, destination: { namespace: 'shop', service: 'catalog' }, requestsPerSecond: 40, successRate: 0.9, p50Ms: 3.456, p99Ms: 120 },
    ],
  };
  const text = formatTop(traffic, { window: '1m' });
  const lines = text.trimEnd().split('\n');
  assert.match(lines[1]!, /^SOURCE\s+DESTINATION\s+ROUTE\s+RPS\s+SUCCESS\s+P50\s+P99$/);
  assert.match(lines[2]!, /^shop\/frontend\s+shop\/catalog\s+shop\/catalog\/0\/0\s+40\.0\s+90\.00%\s+3\.46ms\s+120ms$/);
  assert.match(lines[3]!, /^shop\/frontend\s+shop\/cart\s+default\s+2\.50\s+100\.00%/);
  assert.equal(formatTop(traffic, { window: '1m', filter: 'cart' }).trimEnd().split('\n').length, 3);
  assert.match(formatTop(traffic, { window: '1m', filter: 'nobody' }), /No requests in the window for nobody/);
  assert.match(formatTop({ ...traffic, available: false, reason: 'no proxy has reported traffic yet' }, { window: '1m' }), /^No traffic data: no proxy has reported/);
});
