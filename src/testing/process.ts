// Runs weft commands as real processes with the pinned Node: waits for their ready line, collects output, stops their group.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** bin/weft.js of this checkout. */
export const weftBin = join(repoRoot, 'bin', 'weft.js');

/** A Node that runs our TypeScript: this one when it is new enough, else the pinned one from node_modules. */
export function nodeBinary(): string {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 24 ? process.execPath : join(repoRoot, 'node_modules', 'node', 'bin', 'node');
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Added to (and overriding) this process's environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** How long to wait for the ready line. Default 15000. */
  readyTimeoutMs?: number;
  /** Which stdout line says the process is ready; default: a JSON line with `"event":"ready"`. */
  isReady?: (line: string) => boolean;
}

export interface RunningProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The ready line parsed as JSON (or `{ line }` when it is not JSON). */
  readonly ready: Record<string, unknown>;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** SIGTERM (or `signal`) to the process group, SIGKILL after `timeoutMs` (default 10000); resolves on exit. */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ExitStatus>;
}

function isJsonReadyLine(line: string): boolean {
  if (!line.startsWith('{')) return false;
  try {
    return (JSON.parse(line) as { event?: unknown }).event === 'ready';
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function exitOf(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Stops a process group: `signal`, then SIGKILL after `timeoutMs`, then sweeps any member left behind. */
export async function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<ExitStatus> {
  const pid = child.pid;
  const exited = exitOf(child);
  if (pid === undefined) return exited;
  if (child.exitCode === null && child.signalCode === null) {
    signalGroup(pid, signal);
    const status = await withTimeout(exited, timeoutMs);
    if (!status) signalGroup(pid, 'SIGKILL');
  }
  const status = (await withTimeout(exited, 5000)) ?? { code: null, signal: 'SIGKILL' as NodeJS.Signals };
  signalGroup(pid, 'SIGKILL');
  return status;
}

/** The argv that runs `weft <args>` with the pinned Node. */
export function weftArgv(args: readonly string[]): { command: string; args: string[] } {
  return { command: nodeBinary(), args: [weftBin, ...args] };
}

/** Starts `weft <args>` in its own process group and waits (bounded) for its ready line. */
export function startWeft(args: readonly string[], options: StartOptions = {}): Promise<RunningProcess> {
  const argv = weftArgv(args);
  return startProcess(argv.command, argv.args, options);
}

/** Starts any command in its own process group and waits (bounded) for its ready line on stdout. */
export function startProcess(command: string, args: readonly string[], options: StartOptions = {}): Promise<RunningProcess> {
  const isReady = options.isReady ?? isJsonReadyLine;
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let pending = '';
  const exited = exitOf(child);
  return new Promise<RunningProcess>((resolve, reject) => {
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stopGroup(child, 'SIGKILL', 1000).then(() =>
        reject(new Error(`${[command, ...args].join(' ')}: ${reason}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`)),
      );
    };
    const timer = setTimeout(() => fail(`no ready line within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once('error', (error) => fail(`could not start: ${error.message}`));
    void exited.then((status) => fail(`exited (code ${status.code}, signal ${status.signal}) before it was ready`));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (settled) return;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (!isReady(line)) continue;
        settled = true;
        clearTimeout(timer);
        let ready: Record<string, unknown>;
        try {
          ready = JSON.parse(line) as Record<string, unknown>;
        } catch {
          ready = { line };
        }
        resolve({
          child,
          pid: child.pid!,
          ready,
          stdout: () => out,
          stderr: () => err,
          exited,
          stop: (o = {}) => stopGroup(child, o.signal ?? 'SIGTERM', o.timeoutMs ?? 10_000),
        });
        return;
      }
    });
  });
}

export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** The process group is killed after this long. Default 20000. */
  timeoutMs?: number;
}

/** Runs `weft <args>` to completion (bounded) and returns its exit status and output. */
export function runWeft(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = weftArgv(args);
  return runProcess(argv.command, argv.args, options);
}

export async function runProcess(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.on('error', () => {}); // the process may exit before reading its input
  child.stdin.end(options.input ?? '');
  // 'close' comes after the output pipes are drained, unlike 'exit'.
  const closed = new Promise<ExitStatus>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const status = await Promise.race([withTimeout(closed, timeoutMs), spawnError]);
  if (!status) {
    await stopGroup(child, 'SIGKILL', 1000);
    throw new Error(`${[command, ...args].join(' ')}: still running after ${timeoutMs} ms\n${stdout}\n${stderr}`);
  }
  return { ...status, stdout, stderr };
}
