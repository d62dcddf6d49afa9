// Child processes of `weft up`: each in its own process group, output prefixed line by line, stopped as groups.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { stopGroup } from '../testing/process.ts';

export type ChildRole = 'proxy' | 'workload';

export interface SpawnSpec {
  label: string; // "[catalog-v1-0]" prefix without brackets
  role: ChildRole;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keeps stdin as a pipe this process holds: the child sees it close if we die. */
  stdinPipe?: boolean;
}

export interface Supervised {
  label: string;
  role: ChildRole;
  child: ChildProcess;
  pid: number;
  /** Resolves with the first stdout line `accept` approves; rejects on exit, spawn error or deadline. */
  waitForLine(accept: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** The last lines of output, for failure reports. */
  recentOutput(): string;
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PINO_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

/** A pino JSON line as "WARN message key=value ..."; any other line as it is. */
export function humanizeLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (typeof entry.level !== 'number') return line;
    const extra = Object.entries(entry)
      .filter(([k]) => !PINO_FIELDS.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    return [LEVELS[entry.level] ?? String(entry.level), String(entry.msg ?? ''), ...extra].join(' ');
  } catch {
    return line;
  }
}

export class Supervisor {
  readonly children: Supervised[] = [];
  private stopping = false;
  private readonly print: (line: string) => void;

  constructor(print: (line: string) => void) {
    this.print = print;
    // Children live in their own process groups, so they would outlive us: never leave any behind.
    process.on('exit', () => this.killAllNow());
  }

  spawn(spec: SpawnSpec): Supervised {
    const child = spawn(spec.command, spec.args, {
      env: spec.env,
      cwd: spec.cwd,
      detached: true,
      stdio: [spec.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const recent: string[] = [];
    const lineWaiters = new Set<(line: string) => boolean>();
    const prefix = `[${spec.label}]`;
    const remember = (line: string) => {
      recent.push(line);
      if (recent.length > 40) recent.shift();
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      for (const waiter of lineWaiters) if (waiter(line)) return;
      this.print(`${prefix} ${line}`);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      remember(line);
      this.print(`${prefix} ${spec.role === 'proxy' ? humanizeLogLine(line) : line}`);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
    void exited.then(({ code, signal }) => {
      if (!this.stopping) this.print(`${prefix} exited (${signal ? `signal ${signal}` : `code ${code}`}); weft up does not restart it`);
    });
    void spawnFailed.then((error) => this.print(`${prefix} could not start ${spec.command}: ${error.message}`));

    const supervised: Supervised = {
      label: spec.label,
      role: spec.role,
      child,
      pid: child.pid ?? -1,
      recentOutput: () => recent.join('\n'),
      waitForLine: (accept, timeoutMs) =>
        new Promise<string>((resolve, reject) => {
          const waiter = (line: string) => {
            if (!accept(line)) return false;
            done();
            resolve(line);
            return true;
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`${spec.label}: not ready after ${timeoutMs} ms`));
          }, timeoutMs);
          const done = () => {
            clearTimeout(timer);
            lineWaiters.delete(waiter);
          };
          lineWaiters.add(waiter);
          void exited.then(({ code, signal }) => {
            done();
            reject(new Error(`${spec.label}: exited (${signal ? `signal ${signal}` : `code ${code}`}) before it was ready`));
          });
          void spawnFailed.then((error) => {
            done();
            reject(new Error(`${spec.label}: could not start: ${error.message}`));
          });
        }),
    };
    this.children.push(supervised);
    return supervised;
  }

  /** SIGTERM to every group of `role`, SIGKILL to those still there after `graceMs`. */
  async stop(role: ChildRole, graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(this.children.filter((c) => c.role === role).map((c) => stopGroup(c.child, 'SIGTERM', graceMs)));
  }

  /** Last resort, synchronous (it runs in the 'exit' handler): SIGKILL every group. */
  killAllNow(): void {
    this.stopping = true;
    for (const c of this.children) {
      if (c.pid <= 0) continue;
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
