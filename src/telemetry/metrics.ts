// Hot-path metrics: hand-written counters, gauges and histograms with labels, rendered in the Prometheus text format.
//
// A family (one metric name) holds one child per label set. Callers look a
// child up once (`family.labels(...)`) and keep it, so that the request path
// pays one addition, not a map lookup and a string join.

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Seconds; the Prometheus client defaults, extended down to 1 ms and up to 30 s for a proxy's spread. */
export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class GaugeChild {
  value = 0;
  set(value: number): void {
    this.value = value;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
}

export class HistogramChild {
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  private readonly bounds: readonly number[];
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

type MetricType = 'counter' | 'gauge' | 'histogram';

abstract class Family<Child> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  protected readonly children = new Map<string, { values: readonly string[]; child: Child }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const label of labelNames) if (!LABEL.test(label) || label === 'le') throw new Error(`invalid label name ${label} on ${name}`);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The child for these label values (in labelNames order), created on first use. Keep it: it is the cheap handle. */
  labels(...values: string[]): Child {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      entry = { values: [...values], child: this.create() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** Forgets one child (a series that went idle); a handle kept elsewhere keeps counting but is no longer rendered. */
  remove(...values: string[]): boolean {
    return this.children.delete(values.length === 1 ? values[0]! : values.join('\u0000'));
  }

  /** How many children (series) the family renders now. */
  get size(): number {
    return this.children.size;
  }

  /** Forgets every child, e.g. label sets for services that no longer exist. */
  reset(): void {
    this.children.clear();
  }

  protected abstract create(): Child;
  abstract render(lines: string[]): void;

  protected labelText(values: readonly string[], extra?: string): string {
    const parts: string[] = [];
    for (let i = 0; i < values.length; i++) parts.push(`${this.labelNames[i]}="${escapeLabel(values[i]!)}"`);
    if (extra) parts.push(extra);
    return parts.length === 0 ? '' : `{${parts.join(',')}}`;
  }

  protected header(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${this.name} ${this.type}`);
  }
}

export class Counter extends Family<CounterChild> {
  readonly type = 'counter';
  protected create(): CounterChild {
    return new CounterChild();
  }
  render(lines: string[]): void {
    this.header(lines);
    for (const { values, child } of this.children.values()) lines.push(`${this.name}${this.labelText(values)} ${formatNumber(child.value)}`);
  }
}

export class Gauge extends Family<GaugeChild> {
  readonly type = 'gauge';
  protected create(): GaugeChild {
    return new GaugeChild();
  }
  render(lines: string[]): void {
    this.header(lines);
    for (const { values, child } of this.children.values()) lines.push(`${this.name}${this.labelText(values)} ${formatNumber(child.value)}`);
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) throw new Error(`invalid buckets for ${name}`);
    this.buckets = sorted;
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  render(lines: string[]): void {
    this.header(lines);
    for (const { values, child } of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += child.counts[i]!;
        lines.push(`${this.name}_bucket${this.labelText(values, `le="${formatNumber(this.buckets[i]!)}"`)} ${formatNumber(cumulative)}`);
      }
      cumulative += child.counts[this.buckets.length]!;
      lines.push(`${this.name}_bucket${this.labelText(values, 'le="+Inf"')} ${formatNumber(cumulative)}`);
      lines.push(`${this.name}_sum${this.labelText(values)} ${formatNumber(child.sum)}`);
      lines.push(`${this.name}_count${this.labelText(values)} ${formatNumber(child.count)}`);
    }
  }
}

/** One process's (or one component's) metrics; passed in, never global. */
export class MetricsRegistry {
  private readonly families = new Map<string, Family<unknown>>();
  private readonly collectors: (() => void)[] = [];

  /** Runs before every render: for gauges read from elsewhere (memory, event-loop delay, config age). */
  addCollector(collect: () => void): void {
    this.collectors.push(collect);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = DEFAULT_SECONDS_BUCKETS): Histogram {
    return this.register(new Histogram(name, help, labelNames, buckets));
  }

  /** The family registered under `name`, if any. */
  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.families.get(name) as Counter | Gauge | Histogram | undefined;
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  render(): string {
    for (const collect of this.collectors) collect();
    const lines: string[] = [];
    for (const family of this.families.values()) family.render(lines);
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  }

  private register<F extends Family<unknown>>(family: F): F {
    const existing = this.families.get(family.name);
    if (existing) {
      // Registering the same metric twice (two components sharing a registry) returns the first one.
      if (existing.type !== family.type || existing.labelNames.join(',') !== family.labelNames.join(',')) {
        throw new Error(`metric ${family.name} is already registered with another type or labels`);
      }
      return existing as F;
    }
    this.families.set(family.name, family);
    return family;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
