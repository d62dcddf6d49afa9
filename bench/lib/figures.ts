// The figures a suite reports: weft's value, the peer's value in the same run, their ratio, and whether the target is met.
import { round } from './stats.ts';
import type { MachineInfo, Pinning } from './machine.ts';

export interface Figure {
  name: string;
  unit: string;
  weft: number | null;
  /** Who weft is compared with: a peer measured in the same run, or a published anchor. */
  peer: string;
  peerValue: number | null;
  /** weft / peerValue. */
  ratio: number | null;
  /** The goal, in words: "ratio >= 0.75", "weft <= 0.3 ms". */
  target: string;
  met: boolean | null;
  /** Why a value is missing, or what a figure stands in for. */
  note?: string;
}

/** A goal on the ratio to the peer or on weft's own value; `none` for figures reported for information. */
export type Goal =
  | { kind: 'ratio-at-least'; value: number }
  | { kind: 'ratio-at-most'; value: number }
  | { kind: 'at-most'; value: number }
  | { kind: 'at-least'; value: number }
  | { kind: 'none' };

function describeGoal(goal: Goal, unit: string): string {
  switch (goal.kind) {
    case 'ratio-at-least':
      return `ratio >= ${goal.value}`;
    case 'ratio-at-most':
      return `ratio <= ${goal.value}`;
    case 'at-most':
      return `weft <= ${goal.value} ${unit}`;
    case 'at-least':
      return `weft >= ${goal.value} ${unit}`;
    case 'none':
      return 'none (for information)';
  }
}

function finite(value: number | null | undefined): number | null {
  return value === null || value === undefined || !Number.isFinite(value) ? null : value;
}

export function figure(spec: {
  name: string;
  unit: string;
  weft: number | null | undefined;
  peer: string;
  peerValue: number | null | undefined;
  goal: Goal;
  note?: string | undefined;
}): Figure {
  const weft = finite(spec.weft);
  const peerValue = finite(spec.peerValue);
  const ratio = weft !== null && peerValue !== null && peerValue !== 0 ? weft / peerValue : null;
  let met: boolean | null = null;
  const goal = spec.goal;
  if (goal.kind === 'ratio-at-least' && ratio !== null) met = ratio >= goal.value;
  if (goal.kind === 'ratio-at-most' && ratio !== null) met = ratio <= goal.value;
  if (goal.kind === 'at-most' && weft !== null) met = weft <= goal.value;
  if (goal.kind === 'at-least' && weft !== null) met = weft >= goal.value;
  const out: Figure = {
    name: spec.name,
    unit: spec.unit,
    weft: weft === null ? null : round(weft, 4),
    peer: spec.peer,
    peerValue: peerValue === null ? null : round(peerValue, 4),
    ratio: ratio === null ? null : round(ratio, 3),
    target: describeGoal(goal, spec.unit),
    met,
  };
  if (spec.note) out.note = spec.note;
  return out;
}

/** What `--suite NAME --json` prints. */
export interface SuiteReport {
  suite: string;
  machine: MachineInfo;
  figures: Figure[];
}

/** A suite's report plus its raw measurements, which go into bench/results/ and the docs. */
export interface SuiteOutcome {
  report: SuiteReport;
  details: unknown;
  /** Markdown for docs/performance.md: the suite's raw table. */
  markdown: string;
  /** The machine's 1-minute load average before and after the suite (the runner fills it): how much else was running. */
  loadAverage?: [number, number];
}

export interface SuiteContext {
  quick: boolean;
  pinning: Pinning;
  machine: MachineInfo;
  log: (message: string) => void;
  /** Stops the suite early: the time budget is spent (checked between steps). */
  deadline: number;
}

function cell(value: number | null, digits = 3): string {
  return value === null ? '—' : String(round(value, digits));
}

/** The figures as an aligned plain-text table (the summary a full run prints). */
export function figuresTable(figures: readonly Figure[]): string {
  const rows = [
    ['figure', 'unit', 'weft', 'peer', 'peer value', 'ratio', 'target', 'met'],
    ...figures.map((f) => [f.name, f.unit, cell(f.weft), f.peer, cell(f.peerValue), cell(f.ratio), f.target, f.met === null ? '—' : f.met ? 'yes' : 'NO']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** The figures as a Markdown table, notes as footnotes. */
export function figuresMarkdown(figures: readonly Figure[]): string {
  const lines = ['| figure | unit | weft | peer | peer value | ratio | target | met |', '| --- | --- | ---: | --- | ---: | ---: | --- | --- |'];
  const notes: string[] = [];
  for (const f of figures) {
    let name = `\`${f.name}\``;
    if (f.note) {
      notes.push(f.note);
      name += ` [${notes.length}]`;
    }
    lines.push(`| ${name} | ${f.unit} | ${cell(f.weft)} | ${f.peer} | ${cell(f.peerValue)} | ${cell(f.ratio)} | ${f.target} | ${f.met === null ? '—' : f.met ? 'yes' : '**no**'} |`);
  }
  if (notes.length > 0) lines.push('', ...notes.map((n, i) => `[${i + 1}] ${n}`));
  return lines.join('\n');
}
