// A time-series chart on uPlot, loaded on first use, sized to its container and redrawn in place when the data grows.
import { useEffect, useRef } from 'preact/hooks';
import type uPlot from 'uplot';

type UPlotModule = { default: typeof uPlot };
let loading: Promise<UPlotModule> | undefined;
function loadUPlot(): Promise<UPlotModule> {
  loading ??= Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([m]) => m as UPlotModule);
  return loading;
}

export interface Series {
  label: string;
  color: string;
  values: (number | null)[];
}

export interface ChartProps {
  title: string;
  /** Seconds since the epoch. */
  times: number[];
  series: Series[];
  unit: string;
  height?: number;
  /** A fixed y range (a percentage: 0 to 100); left out, uPlot fits the data. */
  range?: [number, number];
}

export function Chart({ title, times, series, unit, height = 180, range }: ChartProps) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const shape = series.map((s) => s.label).join('|');

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | undefined;
    void loadUPlot().then(({ default: UPlot }) => {
      const el = container.current;
      if (disposed || !el) return;
      const options: uPlot.Options = {
        width: Math.max(200, el.clientWidth),
        height,
        legend: { show: true },
        scales: { x: { time: true }, ...(range ? { y: { range: [range[0], range[1]] as uPlot.Range.MinMax } } : {}) },
        axes: [{}, { label: unit, size: 60 }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true }))],
      };
      plot.current = new UPlot(options, [times, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
      observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
      observer.observe(el);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // Rebuilt only when the series change; new points go through setData below.
  }, [shape, height, unit, range?.[0], range?.[1]]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [times, series]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={container} role="img" aria-label={`${title}: ${series.map((s) => `${s.label} ${lastValue(s.values)} ${unit}`).join(', ')}`} />
    </figure>
  );
}

function lastValue(values: readonly (number | null)[]): string {
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== null && v !== undefined) return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }
  return 'none';
}
