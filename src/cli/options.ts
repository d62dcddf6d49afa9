// Option parsers and defaults shared by the commands: ports, durations, app ports, the server URL.
import { InvalidArgumentError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_SERVER = 'http://127.0.0.1:15000';

/** A failure the CLI reports as one message and an exit code, without a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a port number, 0-65535 (0 = any free port)');
  return n;
}

const unitsMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10s", "500ms", "1m30s" → milliseconds. A bare number is refused: its unit would be a guess. */
export function parseDuration(value: string): number {
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(value)) throw new InvalidArgumentError('must be a duration such as "10s", "500ms" or "1m30s"');
  let total = 0;
  for (const [, n, unit] of value.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(n) * unitsMs[unit!]!;
  return Math.round(total);
}

export interface AppPort {
  declared: number;
  actual: number;
}

/** `--app-port 8080=41234` (declared=actual) or `--app-port 8080` (same port); repeatable. */
export function collectAppPort(value: string, previous: AppPort[] = []): AppPort[] {
  const match = /^([0-9]+)(?:=([0-9]+))?$/.exec(value);
  const declared = match ? Number(match[1]) : NaN;
  const actual = match?.[2] !== undefined ? Number(match[2]) : declared;
  if (!match || declared < 1 || declared > 65535 || actual < 1 || actual > 65535) {
    throw new InvalidArgumentError('must be DECLARED or DECLARED=ACTUAL, e.g. 8080=41234');
  }
  return [...previous, { declared, actual }];
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The control plane to talk to: --server, else $WEFT_SERVER, else the API of a
 * `weft up` running from this directory (./.weft/up.json), else the default.
 */
export function resolveServer(flag: string | undefined, cwd = process.cwd()): string {
  if (flag) return flag;
  if (process.env.WEFT_SERVER) return process.env.WEFT_SERVER;
  const upFile = join(cwd, '.weft', 'up.json');
  if (existsSync(upFile)) {
    try {
      const up = JSON.parse(readFileSync(upFile, 'utf8')) as { pid?: number; api?: string };
      if (up.api && up.pid && isAlive(up.pid)) return up.api;
    } catch {
      // A half-written or foreign file: fall back to the default.
    }
  }
  return DEFAULT_SERVER;
}
