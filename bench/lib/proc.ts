// Processes under benchmark: start them in their own group, wait until they listen, and read their CPU and memory from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { isListening } from '../../src/testing/ports.ts';
import { stopGroup } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';

export interface BenchProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The first JSON line with "event":"ready" on stdout, when the process prints one. */
  ready: Record<string, unknown> | undefined;
  output(): string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Resolve when this port accepts connections. */
  port?: number;
  /** Resolve on a `{"event":"ready"}` line on stdout. */
  readyLine?: boolean;
  timeoutMs?: number;
}

const MAX_OUTPUT = 64 * 1024;

/** Every process started here and not stopped yet: what an interrupted run must not leave behind. */
const live = new Set<BenchProcess>();

/** Stops whatever is still running (the runner calls it on SIGINT/SIGTERM). */
export async function stopAllBenchProcesses(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/** Starts a process in its own group (so stop() takes its children too) and waits until it is ready. */
export async function startBenchProcess(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Promise<BenchProcess> {
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let output = '';
  let ready: Record<string, unknown> | undefined;
  let pending = '';
  let exited = false;
  child.once('exit', () => (exited = true));
  child.on('error', (error) => {
    exited = true;
    output += `\n[spawn error] ${error.message}`;
  });
  const keep = (chunk: string) => {
    output += chunk;
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
  };
  child.stderr!.setEncoding('utf8').on('data', keep);
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    keep(chunk);
    if (ready || !options.readyLine) return;
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (!line.startsWith('{')) continue;
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.event === 'ready') ready = parsed;
      } catch {
        // Not a JSON line.
      }
    }
  });
  let self: BenchProcess | undefined;
  const stop = async () => {
    await stopGroup(child, 'SIGTERM', 5000);
    if (self) live.delete(self);
  };
  // A process that exits early fails at once, with its output, rather than at the deadline.
  let why: string | undefined;
  await waitFor(
    async () => {
      if (exited) {
        why = `${name} exited before it was ready`;
        return true;
      }
      if (options.readyLine && !ready) return false;
      if (options.port !== undefined && !(await isListening(options.port))) return false;
      return true;
    },
    { timeoutMs: options.timeoutMs ?? 20_000, intervalMs: 50, message: `${name} to be ready` },
  ).catch((error: unknown) => {
    why = (error as Error).message;
  });
  if (why !== undefined) {
    await stop();
    throw new Error(`${why}\n--- ${name} output ---\n${output.slice(-4000)}`);
  }
  self = { name, pid: child.pid!, child, ready, output: () => output, stop };
  live.add(self);
  return self;
}

/** pid and every descendant (nginx's workers, a shell's child), read from /proc. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

interface Stat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields after the name start at field 3 (state); ppid is field 4, utime 14, stime 15.
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Linux's USER_HZ is 100 on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) used so far by a process and its descendants. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / TICKS_PER_SECOND;
}

/** Resident memory now, in MiB, summed over the processes. */
export function rssMiB(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) kib += statusKiB(pid, 'VmRSS');
  return kib / 1024;
}

/**
 * Private resident memory now (RssAnon: heap, stacks, buffers), in MiB, summed
 * over the processes: RSS without the file-backed pages of the executable and
 * its libraries, which every process running the same binary shares.
 */
export function privateRssMiB(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) kib += statusKiB(pid, 'RssAnon');
  return kib / 1024;
}

/** The high-water mark of resident memory, in MiB, summed over the processes. */
export function peakRssMiB(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) kib += statusKiB(pid, 'VmHWM');
  return kib / 1024;
}

/** Samples RSS every `everyMs` until stopped; for peak and steady figures during a load run. */
export function sampleRss(pids: readonly number[], everyMs = 200, read: (pids: readonly number[]) => number = rssMiB): { stop(): number[] } {
  const samples: number[] = [read(pids)];
  const timer = setInterval(() => samples.push(read(pids)), everyMs);
  return {
    stop() {
      clearInterval(timer);
      samples.push(read(pids));
      return samples;
    },
  };
}
