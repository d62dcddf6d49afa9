// Process lifecycle for the long-running commands: one ready JSON line on stdout, graceful stop on SIGTERM/SIGINT.

/** Writes the one line a supervisor (weft up, tests) waits for. */
export function announceReady(facts: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ event: 'ready', ...facts }) + '\n');
}

export interface ShutdownOptions {
  /** If stopping takes longer than this, exit 1 anyway. */
  forceAfterMs: number;
  /** Also stop when stdin closes: lets a supervisor's death stop its children. */
  onStdinClose?: boolean;
}

/**
 * Runs `stop` once on SIGTERM, SIGINT, SIGHUP (or stdin closing), then exits 0; a
 * second signal, a failure or a stop slower than `forceAfterMs` exits 1.
 */
export function stopOnSignals(stop: (why: string) => Promise<void>, options: ShutdownOptions): void {
  let stopping = false;
  const begin = (why: string) => {
    if (stopping) {
      process.stderr.write(`weft: ${why} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    setTimeout(() => {
      process.stderr.write(`weft: still stopping after ${options.forceAfterMs} ms, exiting\n`);
      process.exit(1);
    }, options.forceAfterMs).unref();
    stop(why).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`weft: error while stopping: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => begin('SIGTERM'));
  process.on('SIGINT', () => begin('SIGINT'));
  // A closed terminal: children in their own process groups would not get it, so stop them ourselves.
  process.on('SIGHUP', () => begin('SIGHUP'));
  if (options.onStdinClose) {
    process.stdin.on('end', () => begin('stdin closed'));
    process.stdin.on('error', () => begin('stdin closed'));
    process.stdin.resume();
  }
}
