// Runs the open-loop generator (bench/load/openloop.ts) on the load core and reads its JSON line.
import { fileURLToPath } from 'node:url';
import { runProcess, nodeBinary } from '../../src/testing/process.ts';
import { pinned, type Pinning } from './machine.ts';

const generatorScript = fileURLToPath(new URL('../load/openloop.ts', import.meta.url));

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface OpenLoopResult {
  rate: number;
  durationS: number;
  connections: number;
  sent: number;
  completed: number;
  errors: number;
  achievedRps: number;
  /** The longest queue of requests waiting for a free connection: > 0 means the target fell behind. */
  maxQueue: number;
  latencyMs: LatencyMs;
  samples: number;
}

export interface OpenLoopOptions {
  port: number;
  /** Origin-form path or an absolute URL (absolute-form, through a forward proxy). */
  path: string;
  rate: number;
  durationS: number;
  warmupS: number;
  connections: number;
  pinning: Pinning;
}

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const args = [
    generatorScript,
    '--port', String(options.port),
    '--path', options.path,
    '--rate', String(options.rate),
    '--duration', String(options.durationS),
    '--warmup', String(options.warmupS),
    '--connections', String(options.connections),
  ];
  if (options.path.startsWith('http://')) args.push('--host-header', new URL(options.path).host);
  const argv = pinned(options.pinning, options.pinning.loadCpus, nodeBinary(), args);
  const result = await runProcess(argv.command, argv.args, { timeoutMs: (options.durationS + options.warmupS + 30) * 1000 });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !line.startsWith('{')) throw new Error(`open-loop generator failed (${result.code}): ${result.stderr || result.stdout}`);
  return JSON.parse(line) as OpenLoopResult;
}
