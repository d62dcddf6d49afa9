// Smoke test of the benchmark suite (npm run bench -- --quick --json): every suite runs end to end and prints well-formed figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeBinary, runProcess } from '../../src/testing/process.ts';

const runner = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));

/** The figures each suite must report by name, whatever their values. */
const REQUIRED: Record<string, string[]> = {
  dataplane: [
    'two-hop-mtls-throughput',
    'two-hop-mtls-l4-throughput',
    'one-hop-throughput',
    'one-hop-forward-proxy-throughput',
    'added-p50-1000rps',
    'added-p99-1000rps',
    'cpu-per-1000rps',
    'rss-1000rps',
    'rss-idle',
  ],
  controlplane: ['cp-ack-p99-10000-proxies', 'cp-bytes-per-proxy', 'cp-compile-large', 'cp-proxies-connected'],
  framing: ['framing-throughput', 'framing-mtls-throughput', 'framing-added-p99', 'framing-mtls-cpu-per-1000-requests-at-max'],
  metrics: ['metrics-overhead-two-hop-paired-ratio', 'metrics-overhead-two-hop-throughput', 'metrics-overhead-one-hop-throughput', 'metrics-ns-per-request'],
  // The median and p99 figures are named after the proxy count, which --quick lowers.
  'scale-etcd': ['scale-etcd-route-change-first-proxy-median'],
};

interface Figure {
  name: string;
  unit: string;
  weft: number | null;
  peer: string;
  peerValue: number | null;
  ratio: number | null;
  target: string;
  met: boolean | null;
  note?: string;
}

function installed(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const numberOrNull = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));

test('npm run bench -- --quick --json runs every suite and prints their figures', { timeout: 240_000 }, async () => {
  const result = await runProcess(nodeBinary(), [runner, '--quick', '--json'], { timeoutMs: 230_000 });
  assert.equal(result.code, 0, `the runner failed:\n${result.stderr.slice(-6000)}`);
  assert.match(result.stderr, /pinning: /, 'the suite says how it pinned the load generator');

  const output = JSON.parse(result.stdout) as { suites: { suite: string; machine: Record<string, unknown>; figures: Figure[] }[] };
  assert.deepEqual(output.suites.map((s) => s.suite).sort(), Object.keys(REQUIRED).sort());
  for (const report of output.suites) {
    assert.equal(typeof report.machine.cores, 'number');
    assert.equal(typeof report.machine.pinning, 'string');
    const names = report.figures.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, `${report.suite}: figure names are unique`);
    for (const name of REQUIRED[report.suite]!) assert.ok(names.includes(name), `${report.suite} reports ${name}`);
    for (const f of report.figures) {
      assert.deepEqual(
        Object.keys(f).filter((k) => k !== 'note').sort(),
        ['met', 'name', 'peer', 'peerValue', 'ratio', 'target', 'unit', 'weft'],
        `${f.name} has exactly the issue's fields`,
      );
      assert.ok(numberOrNull(f.weft) && numberOrNull(f.peerValue) && numberOrNull(f.ratio), `${f.name}: numbers or null`);
      assert.ok(f.met === null || typeof f.met === 'boolean', `${f.name}: met`);
      assert.equal(typeof f.unit, 'string');
      assert.equal(typeof f.target, 'string');
    }
  }

  // The values mean nothing at smoke durations, but the paths must have carried traffic.
  const figures = new Map(output.suites.flatMap((s) => s.figures.map((f) => [f.name, f] as const)));
  if (installed('wrk')) {
    assert.ok(figures.get('one-hop-throughput')!.weft! > 0, 'weft carried traffic through one hop');
    assert.ok(figures.get('two-hop-mtls-throughput')!.weft! > 0, 'weft carried traffic through two hops with mTLS');
    assert.ok(figures.get('two-hop-mtls-l4-throughput')!.weft! > 0, 'weft carried traffic through two hops at L4 with mTLS');
    assert.ok(figures.get('framing-mtls-throughput')!.weft! > 0 && figures.get('framing-mtls-throughput')!.peerValue! > 0, 'both framings carried traffic');
    if (installed('haproxy')) assert.ok(figures.get('two-hop-mtls-throughput')!.peerValue! > 0, 'HAProxy carried traffic over mTLS');
    if (installed('nginx')) assert.ok(figures.get('one-hop-throughput')!.peerValue! > 0, 'nginx carried traffic');
  }
  assert.ok(figures.get('rss-idle')!.weft! > 0, 'weft proxy memory was read from /proc');
  assert.ok(figures.get('cp-compile-large')!.weft! > 0, 'the compiler was timed');
  assert.ok(figures.get('cp-proxies-connected')!.weft! > 0, 'simulated proxies connected to the control plane');
});
