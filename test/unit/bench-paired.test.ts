// Unit tests of the paired-comparison statistics the metrics-overhead benchmark reports (bench/lib/paired.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize, summarizePaired, type PairedRound } from '../../bench/lib/paired.ts';

test('summarize gives the median, quartiles and the textbook order-statistic interval for 20 values', () => {
  const values = Array.from({ length: 20 }, (_, i) => (i + 1) / 10).reverse();
  const s = summarize(values)!;
  assert.equal(s.n, 20);
  assert.equal(s.median, 1.05);
  assert.ok(Math.abs(s.q1 - 0.575) < 1e-9 && Math.abs(s.q3 - 1.525) < 1e-9);
  // n = 20: the 6th and 15th smallest values cover the median with 95.9 % probability.
  assert.equal(s.ciLow, 0.6);
  assert.equal(s.ciHigh, 1.5);
  assert.ok(s.ciLevel >= 0.95 && s.ciLevel < 0.96, `coverage ${s.ciLevel}`);
});

test('summarize with too few values for 95 % reports [min, max] and the lower coverage it has', () => {
  const s = summarize([1.1, 0.9, 1])!;
  assert.equal(s.median, 1);
  assert.equal(s.ciLow, 0.9);
  assert.equal(s.ciHigh, 1.1);
  assert.equal(s.ciLevel, 0.75);
  assert.equal(summarize([]), undefined);
  assert.equal(summarize([NaN, Infinity]), undefined, 'runs that produced no ratio are left out');
});

test('summarizePaired takes each pair’s own ratio, so a drift common to both sides cancels', () => {
  // The machine slows down 3× over the rounds, and side A is always 2 % slower than B in the same pair.
  const rounds: PairedRound[] = Array.from({ length: 12 }, (_, i) => {
    const machine = 3000 - i * 170;
    const run = (rps: number) => ({ rps, requests: rps * 2, seconds: 2, errors: 0, cpuSeconds: (rps * 2 * 250) / 1e6 });
    return { first: i % 2 === 0 ? 'a' : 'b', a: run(machine * 0.98), b: run(machine) };
  });
  const result = summarizePaired('2hop', 'on', 'off', rounds);
  assert.ok(Math.abs(result.throughputRatio!.median - 0.98) < 1e-9);
  assert.ok(Math.abs(result.throughputRatio!.ciLow - 0.98) < 1e-9 && Math.abs(result.throughputRatio!.ciHigh - 0.98) < 1e-9);
  assert.ok(Math.abs(result.cpuPerRequestRatio!.median - 1) < 1e-9);
  assert.ok(Math.abs(result.cpuUsPerRequest.a - 250) < 1e-6);
});
