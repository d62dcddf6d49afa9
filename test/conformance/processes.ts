// Child weft processes of the harness: started in their own group, stdin held open so that proxies die with the harness.
import { spawn, type ChildProcess } from 'node:child_process';
import { stopGroup, weftArgv, type ExitStatus } from '../../src/testing/process.ts';

export interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  /** The ready line, parsed. */
  readonly ready: Record<string, unknown>;
  /** The last lines of stderr, for failure messages. */
  stderrTail(): string;
  stop(timeoutMs?: number): Promise<ExitStatus>;
}

const TAIL_CHARS = 4000;

/**
 * Starts `weft <args>` and waits (bounded) for its `{"event":"ready"}` line.
 * stdin stays an open pipe: commands given `--exit-on-stdin-close` stop when
 * the harness dies, even by SIGKILL, instead of outliving it.
 */
export function startChild(name: string, args: readonly string[], readyTimeoutMs = 20_000): Promise<Child> {
  const argv = weftArgv(args);
  const child = spawn(argv.command, argv.args, {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, WEFT_LOG_LEVEL: process.env.WEFT_LOG_LEVEL ?? 'warn' },
  });
  child.stdin.on('error', () => {});
  let stderr = '';
  let pending = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-TAIL_CHARS);
  });
  const stop = (timeoutMs = 5000) => stopGroup(child, 'SIGTERM', timeoutMs);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stopGroup(child, 'SIGKILL', 1000).then(() => reject(new Error(`${name} (weft ${args.join(' ')}): ${why}\n${stderr}`)));
    };
    const timer = setTimeout(() => fail(`no ready line within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once('error', (error) => fail(`could not start: ${error.message}`));
    child.once('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal}) before it was ready`));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (settled) return;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (!line.startsWith('{')) continue;
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (parsed.event !== 'ready') continue;
        settled = true;
        clearTimeout(timer);
        // Keep draining stdout so that a chatty child never blocks on a full pipe.
        child.stdout.resume();
        resolve({ name, child, ready: parsed, stderrTail: () => stderr, stop });
        return;
      }
    });
  });
}
