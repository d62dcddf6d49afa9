// Starts a real single-member etcd (Debian's /usr/bin/etcd) on loopback ports with a temporary data dir, for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { get as getTls } from 'node:https';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts } from './ports.ts';

export const ETCD_BINARY = '/usr/bin/etcd';

export interface StartEtcdOptions {
  /** The etcd binary. Default /usr/bin/etcd (Debian's etcd-server). */
  binary?: string;
  /** Reuse this data dir (a restart keeps the data); it is then left in place on stop. Default: a fresh temp dir, removed on stop. */
  dataDir?: string;
  /** Listen on this client port (a restart on the same address); default a free one. */
  clientPort?: number;
  /** How long to wait for etcd to answer. Default 15000 ms. */
  readyTimeoutMs?: number;
  /** Serve clients over TLS with this certificate; with `caFile`, demand client certificates signed by it. */
  tls?: { certFile: string; keyFile: string; caFile: string; clientCertFile?: string; clientKeyFile?: string };
}

export interface RunningEtcd {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  clientPort: number;
  dataDir: string;
  /** Everything etcd printed (it logs to stderr), for failure messages. */
  output(): string;
  /** SIGTERM, SIGKILL after a bound; removes the data dir unless it was given. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A heartbeat of 50 ms and an election timeout of 500 ms bring etcd's
 * minimum lease TTL down to 1 s (it is 1.5 × the election timeout, rounded up
 * to whole seconds), so lease-expiry tests need not wait 2 s or more.
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<RunningEtcd> {
  const binary = options.binary ?? ETCD_BINARY;
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: the etcd tests need Debian's etcd-server package (.ci/run installs it: apt-get install -y etcd-server)`);
  }
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const [peerPort, clientPort] =
    options.clientPort === undefined ? ((await freePorts(2)) as [number, number]) : [(await freePorts(1))[0]!, options.clientPort];
  const tls = options.tls;
  const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name=default',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=default=${peerUrl}`,
    '--initial-cluster-state=new',
    '--heartbeat-interval=50',
    '--election-timeout=500',
    '--log-level=warn',
    '--logger=zap',
    ...(tls ? [`--cert-file=${tls.certFile}`, `--key-file=${tls.keyFile}`, `--trusted-ca-file=${tls.caFile}`, '--client-cert-auth'] : []),
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output = (output + chunk).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await terminate(child, exited);
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    })());

  const deadline = performance.now() + (options.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (spawnError || child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`etcd exited before it was ready${spawnError ? `: ${spawnError.message}` : ''}\n${output}`);
    }
    if (await answersHealth(clientPort, tls)) break;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`etcd did not answer on ${clientUrl} within ${options.readyTimeoutMs ?? 15_000} ms\n${output}`);
    }
    await sleep(50);
  }
  return { endpoint: clientUrl, clientPort, dataDir, output: () => output, stop };
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  // No pid: it never started, so there is nothing to stop (and no 'exit' will come).
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await within(exited, 5000)) return;
  child.kill('SIGKILL');
  await within(exited, 5000);
}

async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** GET /health: true once etcd has a leader and serves requests. */
function answersHealth(port: number, tls: StartEtcdOptions['tls']): Promise<boolean> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path: '/health', timeout: 1000, agent: false };
    const onResponse = (response: import('node:http').IncomingMessage) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.once('end', () => resolve(response.statusCode === 200 && /"health":\s*"true"/.test(body)));
      response.once('error', () => resolve(false));
    };
    const request = tls
      ? getTls(
          {
            ...options,
            ca: readFileSync(tls.caFile),
            ...(tls.clientCertFile && tls.clientKeyFile ? { cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) } : {}),
          },
          onResponse,
        )
      : get(options, onResponse);
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(false));
  });
}
