// Maximum throughput with Debian's wrk: closed loop, keep-alive, one thread on the load core.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess } from '../../src/testing/process.ts';
import { pinned, type Pinning } from './machine.ts';

export interface WrkTarget {
  port: number;
  /** Origin-form path, or an absolute URL to send proxy-style (absolute-form) requests. */
  path: string;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Socket errors plus non-2xx/3xx answers. */
  errors: number;
  /** wrk's own latency percentiles (closed loop: for reference only), ms. */
  p50Ms: number;
  p99Ms: number;
}

export interface WrkOptions {
  connections: number;
  durationS: number;
  pinning: Pinning;
  /** Where a Lua script for absolute-form targets is written. */
  scratchDir: string;
}

/** wrk reports "1.23ms", "456.00us", "1.01s". */
function parseDurationMs(text: string | undefined): number {
  if (!text) return NaN;
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) return NaN;
  const factor = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(match[1]) * factor;
}

export function parseWrkOutput(out: string): WrkResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`cannot read wrk's output:\n${out}`);
  const seconds = parseDurationMs(`${total[2]}${total[3]}`) / 1000;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  const requests = Number(total[1]);
  return {
    requests,
    seconds,
    rps: requests / seconds,
    errors,
    p50Ms: parseDurationMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99Ms: parseDurationMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
  };
}

/** One wrk run against 127.0.0.1:port. */
export async function runWrk(target: WrkTarget, options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.durationS}s`, '--timeout', '5s', '--latency'];
  let url = `http://127.0.0.1:${target.port}/`;
  if (target.path.startsWith('http://')) {
    // wrk can't take an absolute-form target on its command line; a script sets the request line's target and the Host header.
    const host = new URL(target.path).host;
    const script = join(options.scratchDir, `wrk-absolute-${target.port}.lua`);
    writeFileSync(script, `wrk.path = ${JSON.stringify(target.path)}\nwrk.headers["Host"] = ${JSON.stringify(host)}\n`);
    args.push('-s', script);
  } else {
    url = `http://127.0.0.1:${target.port}${target.path}`;
  }
  args.push(url);
  const argv = pinned(options.pinning, options.pinning.loadCpus, 'wrk', args);
  const result = await runProcess(argv.command, argv.args, { timeoutMs: (options.durationS + 30) * 1000 });
  if (result.code !== 0) throw new Error(`wrk exited ${result.code}: ${result.stderr || result.stdout}`);
  return parseWrkOutput(result.stdout);
}
