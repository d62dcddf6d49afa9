// Text output helpers for the CLI: aligned tables, ages, short versions, API errors.
import type { ApiStatus } from './client.ts';

/** Columns separated by three spaces, as kubectl prints them. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "45s", "12m", "3h", "5d" since `timestamp`; "<unknown>" without one. */
export function age(timestamp: string | undefined, now = Date.now()): string {
  if (!timestamp) return '<unknown>';
  const then = Date.parse(timestamp);
  if (Number.isNaN(then)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** Versions are content hashes; the first characters are enough to compare them by eye. */
export function shortVersion(version: string | undefined): string {
  if (!version) return '-';
  const hash = version.includes(':') ? version.slice(version.lastIndexOf(':') + 1) : version;
  return hash.slice(0, 10);
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** kubectl-like: "Error from server (NotFound): ...", then one line per cause. */
export function formatApiError(status: ApiStatus): string {
  const reason = status.reason ? ` (${status.reason})` : '';
  const lines = [`Error from server${reason}: ${status.message}`];
  for (const cause of status.details?.causes ?? []) {
    lines.push(`  ${cause.object ? `${cause.object}: ` : ''}${cause.field ? `${cause.field}: ` : ''}${cause.message}`);
  }
  return lines.join('\n');
}
