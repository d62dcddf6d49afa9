// Real TCP servers for tests (Redis, PostgreSQL 15, MariaDB) on 127.0.0.1, each with its data in a temp dir, started fast and bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { runProcess, stopGroup } from './process.ts';
import { waitFor } from './wait.ts';

export interface RunningServer {
  /** Where the server listens on 127.0.0.1. */
  port: number;
  /** Its data directory (removed by close()). */
  dir: string;
  /** Its log so far, for failure messages. */
  log(): string;
  /** Stops the server's process group and removes its data. */
  close(): Promise<void>;
}

/** The PostgreSQL 15 binaries Debian installs. */
export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';

/** PostgreSQL refuses to run as root: as root, servers run as this user (with their data dir owned by it). */
const UNPRIVILEGED = { uid: 65534, gid: 65534, name: 'nobody' };

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function spawnServer(command: string, args: readonly string[], logOf: { text: string }): ChildProcess {
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const append = (chunk: string) => {
    // Bounded: a chatty server must not grow the test's memory.
    logOf.text = (logOf.text + chunk).slice(-16_384);
  };
  child.stdout!.setEncoding('utf8').on('data', append);
  child.stderr!.setEncoding('utf8').on('data', append);
  child.once('error', (error) => append(`\n[spawn error] ${error.message}\n`));
  return child;
}

/** Resolves once something on 127.0.0.1:port sends its first bytes (a server-first greeting), or accepts when `greeting` is false. */
function answers(port: number, greeting: boolean, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      if (!greeting) done(true);
    });
    socket.once('data', () => done(true));
  });
}

async function started(
  name: string,
  child: ChildProcess,
  port: number,
  dir: string,
  logOf: { text: string },
  options: { greeting: boolean; stopSignal: NodeJS.Signals; timeoutMs: number },
): Promise<RunningServer> {
  const close = async () => {
    await stopGroup(child, options.stopSignal, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited: ${logOf.text.slice(-2000)}`);
        return answers(port, options.greeting);
      },
      { timeoutMs: options.timeoutMs, intervalMs: 50, message: `${name} on port ${port}` },
    );
  } catch (error) {
    await close();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- ${name} log ---\n${logOf.text.slice(-4000)}`);
  }
  return { port, dir, log: () => logOf.text, close };
}

/** `redis-server` with no persistence, on a free port. */
export async function startRedis(): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-redis-'));
  const port = await freePort();
  const logOf = { text: '' };
  const child = spawnServer(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
    logOf,
  );
  return started('redis-server', child, port, dir, logOf, { greeting: false, stopSignal: 'SIGTERM', timeoutMs: 10_000 });
}

/**
 * PostgreSQL 15: initdb (trust auth, user "postgres", no fsync) and postgres
 * on a free port, its socket in the data dir. As root, both run as `nobody`
 * (PostgreSQL refuses root), with setpriv, which execs rather than forks, so
 * that stopping the process group stops the server.
 */
export async function startPostgres(): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-postgres-'));
  const data = join(dir, 'data');
  const asUser = (command: string, args: string[]): [string, string[]] =>
    isRoot() ? ['setpriv', [`--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups', '--', command, ...args]] : [command, args];
  if (isRoot()) chownSync(dir, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
  const [initCommand, initArgs] = asUser(join(POSTGRES_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const init = await runProcess(initCommand, initArgs, { timeoutMs: 30_000, cwd: dir });
  if (init.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (code ${init.code}): ${init.stderr.slice(-2000)}`);
  }
  const port = await freePort();
  const logOf = { text: '' };
  const [command, args] = asUser(join(POSTGRES_BIN, 'postgres'), [
    '-D', data, '-k', dir, '-p', String(port),
    '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'shared_buffers=8MB',
  ]);
  const child = spawnServer(command, args, logOf);
  // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
  return started('postgres', child, port, dir, logOf, { greeting: false, stopSignal: 'SIGINT', timeoutMs: 20_000 });
}

/**
 * MariaDB: mariadb-install-db into a temp dir and mariadbd on a free port,
 * without grant tables (any user, no password), binary log or much memory.
 * The server speaks first: it is ready once it sends its greeting.
 */
export async function startMariadb(): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-mariadb-'));
  const data = join(dir, 'data');
  const user = isRoot() ? ['--user=root'] : [];
  const install = await runProcess('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--skip-test-db', '--auth-root-authentication-method=normal', ...user], {
    timeoutMs: 30_000,
    cwd: dir,
  });
  if (install.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (code ${install.code}): ${(install.stderr + install.stdout).slice(-2000)}`);
  }
  const port = await freePort();
  const logOf = { text: '' };
  const child = spawnServer(
    'mariadbd',
    [
      '--no-defaults', `--datadir=${data}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${join(dir, 'mariadb.sock')}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`, '--skip-grant-tables', '--skip-log-bin', '--innodb-buffer-pool-size=16M', '--skip-name-resolve', ...user,
    ],
    logOf,
  );
  return started('mariadbd', child, port, dir, logOf, { greeting: true, stopSignal: 'SIGTERM', timeoutMs: 20_000 });
}
