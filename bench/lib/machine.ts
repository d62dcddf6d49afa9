// The machine a benchmark ran on, and the CPU pinning: the load generator on one core, everything else on the others.
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, totalmem, release } from 'node:os';

export interface Pinning {
  /** False when taskset is missing or there is only one core: every process then floats. */
  enabled: boolean;
  /** Cores for the load generators (wrk, the open-loop generator, simulated proxies). */
  loadCpus: string;
  /** Cores for everything measured: proxies, the upstream, the control plane. */
  systemCpus: string;
  /** What the suite says about it in its output. */
  description: string;
  warning?: string;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  /** Versions of the external tools, "missing" when not installed. */
  tools: Record<string, string>;
  pinning: string;
}

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Core 0 generates load; cores 1..n-1 run what is measured (the "one core each" on a 2-core machine). */
export function choosePinning(): Pinning {
  const cores = availableParallelism();
  const floating = (warning: string): Pinning => ({
    enabled: false,
    loadCpus: '',
    systemCpus: '',
    description: `not pinned (${warning})`,
    warning,
  });
  if (!onPath('taskset')) return floating('taskset is not installed; load generator and proxies share every core');
  if (cores < 2) return floating('only one core; load generator and proxies share it');
  const systemCpus = cores === 2 ? '1' : `1-${cores - 1}`;
  return {
    enabled: true,
    loadCpus: '0',
    systemCpus,
    description: `load generator pinned to CPU 0, proxies/upstream/control plane to CPU ${systemCpus} (taskset)`,
  };
}

/** How many cores what is measured runs on: all but the load generator's when pinned, else all of them. */
export function systemCoreCount(pinning: Pinning): number {
  const cores = availableParallelism();
  return pinning.enabled ? cores - 1 : cores;
}

/** The argv that runs `command` on `cpus` (or unpinned when pinning is off). */
export function pinned(pinning: Pinning, cpuList: string, command: string, args: readonly string[]): { command: string; args: string[] } {
  if (!pinning.enabled || cpuList === '') return { command, args: [...args] };
  return { command: 'taskset', args: ['-c', cpuList, command, ...args] };
}

function toolVersion(command: string, args: string[], pattern: RegExp): string {
  if (!onPath(command)) return 'missing';
  // nginx -v and wrk -v print to stderr, and wrk exits 1: read both streams whatever the status.
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? (text.split('\n')[0]?.trim() || 'unknown');
}

export function machineInfo(pinning: Pinning): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    tools: {
      wrk: toolVersion('wrk', ['-v'], /wrk (?:debian\/)?(\S+)/),
      haproxy: toolVersion('haproxy', ['-v'], /HAProxy version (\S+)/),
      nginx: toolVersion('nginx', ['-v'], /nginx\/(\S+)/),
      openssl: toolVersion('openssl', ['version'], /OpenSSL (\S+)/),
      taskset: onPath('taskset') ? 'present' : 'missing',
    },
    pinning: pinning.description,
  };
}

export function hasCommand(command: string): boolean {
  return onPath(command);
}

/** The 1-minute load average: on a shared machine, how busy the other tenants are. */
export function loadAverage(): number {
  return loadavg()[0] ?? NaN;
}
