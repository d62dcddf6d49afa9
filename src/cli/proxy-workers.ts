// `weft proxy --mode gateway --workers N`: N gateway processes sharing the Gateway's ports (SO_REUSEPORT), started, restarted and stopped by this one.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gatewayWorkloadName } from '../api/snapshot.ts';
import type { Logger } from '../telemetry/logger.ts';
import { announceReady, stopOnSignals } from './lifecycle.ts';
import { CliError } from './options.ts';
import type { ProxyFlags } from './proxy.ts';
import { weftBin } from '../testing/process.ts';

/** A worker that exits is started again after this, doubling up to the cap while it keeps failing. */
const RESTART_DELAY_MS = 500;
const RESTART_DELAY_CAP_MS = 30_000;
/** A worker that ran this long before exiting starts the backoff over. */
const HEALTHY_RUN_MS = 60_000;
const READY_TIMEOUT_MS = 60_000;

interface Worker {
  index: number;
  child: ChildProcess;
  startedAt: number;
  ready: Record<string, unknown> | undefined;
  /** One of the first N: if it fails before it is ready, the whole start fails (readyOrExit) rather than retrying. */
  initial: boolean;
}

/**
 * Node serves a listener on one thread, so a gateway scales across cores as
 * processes, as Envoy does with worker threads (`--concurrency`): every worker
 * is a whole gateway proxy (its own control-plane stream, certificate,
 * metrics and admin port) and binds the Gateway's ports with SO_REUSEPORT,
 * so the kernel spreads connections over them. The ports must therefore be
 * fixed: a port picked at random by each worker would differ between them.
 */
export function checkWorkerFlags(flags: ProxyFlags, workers: number): void {
  if (flags.mode !== 'gateway') throw new CliError('error: --workers is for --mode gateway (a sidecar or node proxy serves its apps from one process)');
  if (process.platform !== 'linux') throw new CliError('error: --workers needs SO_REUSEPORT load balancing, which weft uses on Linux only');
  if (flags.listenerPorts === 'ephemeral') throw new CliError('error: --workers needs fixed Gateway ports; --listener-ports ephemeral would give each worker different ones');
  const random = (flags.listenerPort ?? []).find((p) => p.local === 0);
  if (random) throw new CliError(`error: --workers needs fixed Gateway ports; --listener-port ${random.gateway}=0 would give each worker a different one`);
  if (workers > 64) throw new CliError(`error: --workers ${workers}: at most 64`);
}

/**
 * The worker's own command line: the supervisor's, with its own instance, admin port and data directory (later
 * options win in commander). Its outbound and tunnel ports are any free ones: the control plane learns them from
 * its registration, and fixed ones counted up per worker would run into each other's.
 */
function workerArgs(args: readonly string[], flags: ProxyFlags, index: number, instance: string): string[] {
  return [
    ...withoutWorkers(args),
    '--worker',
    '--instance', `${instance}-w${index}`,
    '--admin-port', String(flags.adminPort === 0 ? 0 : flags.adminPort + index),
    '--outbound-port', '0',
    '--tunnel-port', '0',
    ...(flags.dataDir !== undefined ? ['--data-dir', join(flags.dataDir, `w${index}`)] : []),
    // A worker stops when the supervisor's end of its stdin closes: it never outlives a supervisor killed outright.
    '--exit-on-stdin-close',
  ];
}

function withoutWorkers(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--workers') i++;
    else if (!arg.startsWith('--workers=')) out.push(arg);
  }
  return out;
}

/** Linux (5.14+) hands the connections queued on a closed SO_REUSEPORT socket to the others of its group when this is 1. */
const MIGRATE_SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';

/**
 * Whether connections the kernel queued for a worker that exits go to the other workers: the network namespace's
 * net.ipv4.tcp_migrate_req. When 0 (the default) or absent (before Linux 5.14) they are reset with the worker.
 */
export function queuedConnectionsHandedOver(read: (path: string) => string = (path) => readFileSync(path, 'utf8')): boolean {
  try {
    return read(MIGRATE_SYSCTL).trim() === '1';
  } catch {
    return false;
  }
}

export async function runGatewayWorkers(flags: ProxyFlags, workers: number, args: readonly string[], logger: Logger): Promise<void> {
  checkWorkerFlags(flags, workers);
  const handOver = queuedConnectionsHandedOver();
  if (!handOver) {
    logger.warn(
      { sysctl: 'net.ipv4.tcp_migrate_req' },
      'connections the kernel has queued for a gateway worker are reset if that worker exits; set net.ipv4.tcp_migrate_req=1 in this network namespace (Linux 5.14+) to hand them to the other workers',
    );
  }
  const gatewayName = flags.gateway!.split('/').pop()!;
  const instance = flags.instance ?? `${gatewayWorkloadName(gatewayName)}-${randomBytes(3).toString('hex')}`;
  const running = new Map<number, Worker>();
  const backoff = new Map<number, number>();
  let stopping = false;

  const start = (index: number, initial: boolean): Worker => {
    const child = spawn(process.execPath, [...process.execArgv, weftBin, 'proxy', ...workerArgs(args, flags, index, instance)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: process.env,
      // A group of its own: a signal to the supervisor's group is not delivered twice (the supervisor passes it on).
      detached: true,
    });
    const worker: Worker = { index, child, startedAt: Date.now(), ready: undefined, initial };
    child.on('error', (error) => logger.error({ worker: index, err: error }, 'gateway worker could not be started or signalled'));
    running.set(index, worker);
    // Every line but the worker's ready line goes on to stdout as it is (access logs, listener changes).
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (worker.ready === undefined && line.startsWith('{"event":"ready"')) {
        worker.ready = JSON.parse(line) as Record<string, unknown>;
        child.emit('worker-ready');
        return;
      }
      process.stdout.write(`${line}\n`);
    });
    child.once('exit', (code, signal) => {
      if (running.get(index) === worker) running.delete(index);
      if (stopping || (worker.initial && worker.ready === undefined)) return;
      const ranMs = Date.now() - worker.startedAt;
      const delay = ranMs >= HEALTHY_RUN_MS ? RESTART_DELAY_MS : Math.min(RESTART_DELAY_CAP_MS, (backoff.get(index) ?? RESTART_DELAY_MS / 2) * 2);
      backoff.set(index, delay);
      logger.warn({ worker: index, pid: child.pid, code, signal, restartInMs: delay }, 'gateway worker exited; starting it again');
      setTimeout(() => {
        if (stopping) return;
        const again = start(index, false);
        again.child.once('worker-ready', () => {
          process.stdout.write(`${JSON.stringify({ event: 'worker-restarted', worker: index, pid: again.child.pid })}\n`);
        });
      }, delay); // not unref'd: with every worker down, this timer is what keeps the supervisor alive
    });
    return worker;
  };

  const first = Array.from({ length: workers }, (_, index) => start(index, true));
  try {
    await Promise.all(first.map((worker) => readyOrExit(worker)));
  } catch (error) {
    stopping = true;
    for (const worker of first) worker.child.kill('SIGKILL');
    throw error;
  }

  stopOnSignals(
    async (why) => {
      stopping = true;
      logger.info({ why, workers: running.size }, 'stopping gateway workers');
      // Each worker drains on its own (SIGTERM), as a single gateway would.
      await Promise.all([...running.values()].map((worker) => stopWorker(worker.child)));
    },
    { forceAfterMs: flags.drain + 10_000, onStdinClose: flags.exitOnStdinClose === true },
  );
  const ready = first.map((worker) => worker.ready!);
  announceReady({
    id: `${flags.namespace}/${instance}`,
    ports: ready[0]!.ports,
    queuedHandOver: handOver,
    workers: first.map((worker, i) => ({ worker: worker.index, pid: worker.child.pid, id: ready[i]!.id, ports: ready[i]!.ports })),
  });
}

function readyOrExit(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new CliError(`error: gateway worker ${worker.index} printed no ready line within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
    worker.child.once('worker-ready', () => {
      clearTimeout(timer);
      resolve();
    });
    worker.child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new CliError(`error: gateway worker ${worker.index} exited before it was ready (${signal ?? `exit code ${code}`}); its error is above`));
    });
  });
}

function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
