// Renders the data-plane results as an SVG chart: throughput per topology, and latency percentiles at the fixed rate.
import type { SuiteOutcome } from './figures.ts';
import type { TopologyResult } from './measure.ts';
import { round } from './stats.ts';

const COLORS: Record<string, string> = { weft: '#2b6cb0', haproxy: '#dd6b20', nginx: '#2f855a', baseline: '#718096' };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

interface Bar {
  label: string;
  system: string;
  values: number[];
}

/** One horizontal bar panel; several values per row are drawn as thinner stacked-under bars (e.g. p50 over p99). */
function panel(title: string, unit: string, bars: Bar[], series: string[], x: number, y: number, width: number): { svg: string; height: number } {
  const labelWidth = 150;
  const rowHeight = 14 + series.length * 9;
  const plotWidth = width - labelWidth - 70;
  const top = y + 28;
  const maxValue = niceMax(Math.max(...bars.flatMap((b) => b.values.filter(Number.isFinite))));
  const out: string[] = [`<text x="${x}" y="${y + 14}" font-weight="bold">${escape(title)}</text>`];
  for (let tick = 0; tick <= 4; tick++) {
    const tx = x + labelWidth + (plotWidth * tick) / 4;
    const value = (maxValue * tick) / 4;
    out.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${top + bars.length * rowHeight}" stroke="#e2e8f0"/>`);
    out.push(`<text x="${tx}" y="${top + bars.length * rowHeight + 12}" text-anchor="middle" fill="#4a5568" font-size="10">${round(value, 3)}${tick === 4 ? ` ${escape(unit)}` : ''}</text>`);
  }
  bars.forEach((bar, row) => {
    const ry = top + row * rowHeight;
    out.push(`<text x="${x + labelWidth - 6}" y="${ry + rowHeight / 2 + 3}" text-anchor="end">${escape(bar.label)}</text>`);
    bar.values.forEach((value, s) => {
      if (!Number.isFinite(value)) return;
      const w = Math.max(1, (plotWidth * value) / maxValue);
      const by = ry + 4 + s * 9;
      const opacity = series.length > 1 ? (s === 0 ? 1 : 0.55) : 1;
      out.push(`<rect x="${x + labelWidth}" y="${by}" width="${w.toFixed(1)}" height="8" fill="${COLORS[bar.system] ?? '#4a5568'}" fill-opacity="${opacity}"/>`);
      out.push(`<text x="${x + labelWidth + w + 4}" y="${by + 7}" font-size="9" fill="#2d3748">${round(value, 3)}</text>`);
    });
  });
  if (series.length > 1) {
    const ly = top + bars.length * rowHeight + 26;
    series.forEach((name, s) => {
      const lx = x + labelWidth + s * 90;
      out.push(`<rect x="${lx}" y="${ly - 8}" width="12" height="8" fill="#4a5568" fill-opacity="${s === 0 ? 1 : 0.55}"/>`);
      out.push(`<text x="${lx + 16}" y="${ly}" font-size="10">${escape(name)}</text>`);
    });
  }
  return { svg: out.join('\n'), height: 28 + bars.length * rowHeight + (series.length > 1 ? 40 : 24) };
}

/** The chart for a run, or undefined when the data-plane suite did not run. */
export function renderChart(outcomes: readonly SuiteOutcome[]): string | undefined {
  const dataplane = outcomes.find((o) => o.report.suite === 'dataplane');
  if (!dataplane) return undefined;
  const topologies = (dataplane.details as { topologies: TopologyResult[] }).topologies;
  const width = 900;
  const half = width / 2;
  const throughput = panel(
    'Maximum throughput (wrk, 32 connections)',
    'req/s',
    topologies.map((t) => ({ label: t.id, system: t.system, values: [t.throughputRps] })),
    ['req/s'],
    10,
    40,
    half - 10,
  );
  const rate = topologies[0]?.fixedRate.rate ?? 1000;
  const latency = panel(
    `Latency at ${rate} rps (open loop, 16 connections)`,
    'ms',
    topologies.map((t) => ({ label: t.id, system: t.system, values: [t.fixedRate.latencyMs.p50, t.fixedRate.latencyMs.p99] })),
    ['p50', 'p99'],
    half + 10,
    40,
    half - 10,
  );
  const height = Math.max(throughput.height, latency.height) + 60;
  const machine = dataplane.report.machine;
  const legend = Object.entries(COLORS)
    .map(([name, color], i) => `<rect x="${10 + i * 90}" y="${height - 22}" width="12" height="10" fill="${color}"/><text x="${26 + i * 90}" y="${height - 13}" font-size="11">${name}</text>`)
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">weft vs HAProxy vs nginx — ${escape(machine.cpuModel)}, ${machine.cores} cores, Node ${escape(machine.node)}</text>`,
    `<text x="10" y="34" font-size="10" fill="#4a5568">${escape(machine.pinning)}</text>`,
    throughput.svg,
    latency.svg,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
