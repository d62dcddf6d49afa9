// A multi-host test bed on one machine: network namespaces ("hosts") on one bridge, processes run inside them, links cut for faults.
//
// Every run owns the names that start with `wtb<pid>` (namespaces
// `wtb<pid>-<host>`, the bridge `wtb<pid>br`, veth ends `wtb<pid>v<i>` in the
// root namespace and `wtb<pid>e<i>` inside a host), so parallel runs never
// collide, and a run that died without tearing down is recognised by its dead
// pid and swept by the next one. The bridge lives in the root namespace and
// holds an address of the bed's /24 too, so the test process itself reaches
// every host directly (requests, REST calls, health checks) without entering a
// namespace. Inside a namespace every port is free, so the processes of the bed
// use their products' fixed default ports, as they would on real hosts.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startProcess, runProcess, stopGroup, weftArgv, type RunningProcess, type RunResult, type StartOptions, type RunOptions } from './process.ts';

export interface BedHost {
  /** The name the test gives it (h1, cp-a, ...). */
  readonly name: string;
  /** Its network namespace. */
  readonly ns: string;
  /** Its address on the bed's bridge. */
  readonly address: string;
  /** Its veth end in the root namespace (on the bridge): down = the host is cut off. */
  readonly link: string;
}

export interface Bed {
  readonly prefix: string;
  readonly hosts: readonly BedHost[];
  host(name: string): BedHost;
  /** Starts `command args` inside `host` (its own process group), waiting for its ready line as startProcess does. */
  start(host: BedHost, command: string, args: readonly string[], options?: StartOptions): Promise<RunningProcess>;
  /** `weft <args>` inside `host`. */
  startWeft(host: BedHost, args: readonly string[], options?: StartOptions): Promise<RunningProcess>;
  /** Runs `command args` to completion inside `host`. */
  run(host: BedHost, command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Runs `weft <args>` to completion inside `host`. */
  runWeft(host: BedHost, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Takes the host's link down (nothing in or out; its loopback still works) or back up. */
  setLink(host: BedHost, up: boolean): void;
  /** Drops traffic between `host` and each of `peers` (blackhole routes on both sides), or restores it; other hosts stay reachable. */
  partition(host: BedHost, peers: readonly BedHost[], cut: boolean): void;
  /** Power-off: the link down and every process in the host killed. */
  powerOff(host: BedHost): Promise<void>;
  /** Kills every process of the bed and deletes its namespaces and links. Idempotent; never throws. */
  close(): Promise<void>;
}

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

function tryIp(args: readonly string[]): void {
  try {
    ip(args);
  } catch {
    // Already gone, or never made: teardown and sweeps carry on.
  }
}

/** Why the bed cannot run here, or undefined when it can (root, `ip netns` and etcd available). */
export function bedUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return `network namespaces need root (running as uid ${process.getuid?.()})`;
  if (!existsSync('/usr/bin/etcd')) return '/usr/bin/etcd is missing (Debian etcd-server)';
  const probe = `wtb${process.pid}-probe`;
  let step = 'ip netns add';
  try {
    ip(['netns', 'add', probe]);
    // Bridges and veth pairs too (a kernel without them, or a sandbox that forbids them, fails here rather than mid-test).
    step = 'ip link add type bridge';
    ip(['-n', probe, 'link', 'add', 'probebr', 'type', 'bridge']);
    step = 'ip link add type veth';
    ip(['-n', probe, 'link', 'add', 'probev', 'type', 'veth', 'peer', 'name', 'probep']);
  } catch (error) {
    return `"${step}" fails here: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`;
  } finally {
    tryIp(['netns', 'del', probe]);
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killNamespaceProcesses(ns: string): void {
  let pids: number[] = [];
  try {
    pids = ip(['netns', 'pids', ns]).split('\n').map(Number).filter((pid) => pid > 0);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
}

/** Removes the leftovers of beds whose process is gone (or of an earlier bed of this very process). */
export function sweepStaleBeds(): void {
  const owned = (name: string) => {
    const pid = Number(/^wtb(\d+)/.exec(name)?.[1]);
    return pid > 0 && (pid === process.pid || !alive(pid));
  };
  let namespaces: string[] = [];
  try {
    namespaces = ip(['netns', 'list']).split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name.startsWith('wtb'));
  } catch {
    // No netns support: nothing to sweep.
  }
  for (const ns of namespaces.filter(owned)) {
    killNamespaceProcesses(ns);
    tryIp(['netns', 'del', ns]);
  }
  let links: string[] = [];
  try {
    links = [...ip(['-o', 'link', 'show']).matchAll(/^\d+: (wtb\d+(?:br|v\d+))[@:]/gm)].map((m) => m[1]!);
  } catch {
    // Nothing to sweep.
  }
  for (const link of links.filter(owned)) tryIp(['link', 'del', link]);
}

/** A /24 of 10.231.0.0/16 that no route of the root namespace uses yet. */
function freeSubnet(): string {
  const routes = ip(['-4', 'route', 'show', 'table', 'all']);
  for (let i = 0; i < 250; i++) {
    const third = ((process.pid + i) % 250) + 1;
    if (!routes.includes(`10.231.${third}.`)) return `10.231.${third}`;
  }
  throw new Error('no free /24 in 10.231.0.0/16 for the test bed');
}

/**
 * Builds the bed: a bridge with an address in the root namespace, and per
 * host a namespace with `lo` up and a veth pair onto the bridge. Sweeps the
 * leftovers of dead runs first. Call `close()` in `after`/`finally`.
 */
export async function startBed(hostNames: readonly string[]): Promise<Bed> {
  sweepStaleBeds();
  const prefix = `wtb${process.pid}`;
  const bridge = `${prefix}br`;
  const subnet = freeSubnet();
  const hosts: BedHost[] = hostNames.map((name, i) => ({ name, ns: `${prefix}-${name}`, address: `${subnet}.${i + 1}`, link: `${prefix}v${i}` }));
  const started: RunningProcess[] = [];
  const routes = new Set<string>(); // "ns|address" blackholes in place

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await Promise.all(started.map((p) => stopGroup(p.child, 'SIGKILL', 2000).catch(() => undefined)));
      for (const host of hosts) {
        killNamespaceProcesses(host.ns);
        tryIp(['netns', 'del', host.ns]);
        tryIp(['link', 'del', host.link]);
      }
      tryIp(['link', 'del', bridge]);
    })());

  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${subnet}.254/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    hosts.forEach((host, i) => {
      const inner = `${prefix}e${i}`;
      ip(['netns', 'add', host.ns]);
      ip(['link', 'add', host.link, 'type', 'veth', 'peer', 'name', inner, 'netns', host.ns]);
      ip(['link', 'set', host.link, 'master', bridge]);
      ip(['link', 'set', host.link, 'up']);
      ip(['-n', host.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', inner]);
      ip(['-n', host.ns, 'link', 'set', inner, 'up']);
    });
  } catch (error) {
    await close();
    throw new Error(`could not build the test bed: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
  }

  const byName = new Map(hosts.map((h) => [h.name, h] as const));
  const start = async (host: BedHost, command: string, args: readonly string[], options: StartOptions = {}) => {
    // `ip netns exec` execs the command, so the pid (and process group) startProcess tracks is the command's own.
    const running = await startProcess('ip', ['netns', 'exec', host.ns, command, ...args], options);
    started.push(running);
    return running;
  };
  const blackhole = (ns: string, address: string, cut: boolean) => {
    const key = `${ns}|${address}`;
    if (cut === routes.has(key)) return;
    ip(['-n', ns, 'route', cut ? 'add' : 'del', 'blackhole', `${address}/32`]);
    if (cut) routes.add(key);
    else routes.delete(key);
  };
  return {
    prefix,
    hosts,
    host(name) {
      const host = byName.get(name);
      if (!host) throw new Error(`the bed has no host ${name}`);
      return host;
    },
    start,
    startWeft(host, args, options) {
      const argv = weftArgv(args);
      return start(host, argv.command, argv.args, options);
    },
    run(host, command, args, options) {
      return runProcess('ip', ['netns', 'exec', host.ns, command, ...args], options);
    },
    runWeft(host, args, options) {
      const argv = weftArgv(args);
      return runProcess('ip', ['netns', 'exec', host.ns, argv.command, ...argv.args], options);
    },
    setLink(host, up) {
      ip(['link', 'set', host.link, up ? 'up' : 'down']);
    },
    partition(host, peers, cut) {
      for (const peer of peers) {
        blackhole(host.ns, peer.address, cut);
        blackhole(peer.ns, host.address, cut);
      }
    },
    async powerOff(host) {
      ip(['link', 'set', host.link, 'down']);
      killNamespaceProcesses(host.ns);
    },
    close,
  };
}
