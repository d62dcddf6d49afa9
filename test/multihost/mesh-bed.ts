// A weft mesh across bed hosts: three etcd members, two control-plane replicas, echo workloads and a client, each with its own sidecar.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { startBed, type Bed, type BedHost } from '../../src/testing/netns.ts';
import { runWeft, type RunningProcess } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';
import { podOf, type HttpResult } from '../e2e/harness.ts';

// Inside a namespace every port is free: the bed uses the products' default ports.
const API_PORT = 15000;
export const STREAM_PORT = 15010;
const OUTBOUND_PORT = 15001;
const ADMIN_PORT = 15020;
const APP_PORT = 9080;
export const LEASE_TTL_MS = 2000;

export const baseConfig = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: echo, labels: {app: echo}}
spec:
  serviceAccount: echo
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  serviceAccount: client
`;

/** A route to the echo Service that adds a header naming `mark`, so a test sees which route version a proxy serves. */
export function markedRoute(mark: string, extra = ''): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo}
spec:
  parentRefs: [{kind: Service, group: "", name: echo, port: 8080}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route-mark, value: "${mark}"}]}
    backendRefs: [{name: echo, port: 8080}]${extra}
`;
}

export interface Replica {
  host: BedHost;
  process: RunningProcess;
  api: string;
}

export interface Instance {
  host: BedHost;
  name: string;
  proxy: RunningProcess;
  app?: RunningProcess;
}

/** The whole bed: hosts e1..e3 (etcd; control planes on e1 and e2), client, wa and wb (an echo instance each). */
export class MeshBed {
  readonly bed: Bed;
  readonly dir: string;
  readonly caKey = randomBytes(32).toString('base64');
  readonly etcd = new Map<string, RunningProcess>();
  readonly replicas = new Map<string, Replica>();
  readonly instances = new Map<string, Instance>();

  private constructor(bed: Bed, dir: string) {
    this.bed = bed;
    this.dir = dir;
  }

  static async start(): Promise<MeshBed> {
    const bed = await startBed(['e1', 'e2', 'e3', 'client', 'wa', 'wb']);
    const mesh = new MeshBed(bed, mkdtempSync(join(tmpdir(), 'weft-multihost-')));
    try {
      await Promise.all(['e1', 'e2', 'e3'].map((name) => mesh.startEtcd(name)));
      await mesh.startReplica('e1'); // the first replica makes the mesh CA and seals it into etcd
      await mesh.startReplica('e2');
      await mesh.apply(baseConfig + '---' + markedRoute('v0'));
      await Promise.all([
        mesh.startInstance('client', 'client', 'client-0', false),
        mesh.startInstance('wa', 'echo', 'echo-a', true),
        mesh.startInstance('wb', 'echo', 'echo-b', true),
      ]);
      await mesh.waitForRotation(['default/echo-a', 'default/echo-b'], 15_000);
      return mesh;
    } catch (error) {
      await mesh.close();
      throw error;
    }
  }

  get etcdEndpoints(): string {
    return ['e1', 'e2', 'e3'].map((n) => `${this.bed.host(n).address}:2379`).join(',');
  }

  /** One member of the three-member cluster, started with the other two. */
  async startEtcd(name: string): Promise<RunningProcess> {
    const host = this.bed.host(name);
    const cluster = ['e1', 'e2', 'e3'].map((n) => `${n}=http://${this.bed.host(n).address}:2380`).join(',');
    const args = [
      `--name=${name}`,
      `--data-dir=${join(this.dir, `etcd-${name}`)}`,
      `--listen-client-urls=http://${host.address}:2379,http://127.0.0.1:2379`,
      `--advertise-client-urls=http://${host.address}:2379`,
      `--listen-peer-urls=http://${host.address}:2380`,
      `--initial-advertise-peer-urls=http://${host.address}:2380`,
      `--initial-cluster=${cluster}`,
      '--initial-cluster-state=new',
      '--initial-cluster-token=weft-bed',
      // Fast elections and 1 s minimum leases, as src/testing/etcd.ts explains.
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-level=info',
    ];
    // etcd logs to stderr; the shell hands it stdout too so the ready line can be awaited (exec keeps the pid).
    const process = await this.bed.start(host, '/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', '/usr/bin/etcd', ...args], {
      // etcd 3.4 (zap) says "serving client traffic" once it has joined the cluster; older loggers said "ready to serve client requests".
      isReady: (line) => line.includes('serving client traffic') || line.includes('ready to serve client requests'),
      readyTimeoutMs: 30_000,
    });
    this.etcd.set(name, process);
    return process;
  }

  async startReplica(name: string): Promise<Replica> {
    const host = this.bed.host(name);
    const process = await this.bed.startWeft(
      host,
      [
        'control-plane',
        '--store', `etcd://${this.etcdEndpoints}`,
        '--api-host', '0.0.0.0', '--api-port', String(API_PORT),
        '--stream-host', '0.0.0.0', '--stream-port', String(STREAM_PORT),
        // Named after its host, so that the proxies' `replica` says where they are (the address others reach it at is found: --stream-host binds every interface).
        '--replica-name', name,
        '--insecure-local-tokens',
        '--lease-ttl', `${LEASE_TTL_MS / 1000}s`,
      ],
      { env: { WEFT_CA_ENCRYPTION_KEY: this.caKey }, readyTimeoutMs: 30_000 },
    );
    const replica = { host, process, api: `http://${host.address}:${API_PORT}` };
    this.replicas.set(name, replica);
    return replica;
  }

  replica(name: string): Replica {
    const replica = this.replicas.get(name);
    if (!replica) throw new Error(`no replica on ${name}`);
    return replica;
  }

  /** A sidecar (and with `echo`, an echo app behind it) on `hostName`, its token made on e1 as an operator would. */
  async startInstance(hostName: string, workload: string, instance: string, echo: boolean): Promise<Instance> {
    const host = this.bed.host(hostName);
    const token = await this.bed.runWeft(this.bed.host('e1'), ['token', 'create', '--namespace', 'default', '--workload', workload], {
      env: { WEFT_SERVER: `http://127.0.0.1:${API_PORT}` },
    });
    if (token.code !== 0) throw new Error(`weft token create on e1 failed (${token.code}): ${token.stderr}`);
    const tokenFile = join(this.dir, `${instance}.token`);
    writeFileSync(tokenFile, token.stdout.trim(), { mode: 0o600 });
    // The mesh's roots, as an operator hands them out with the token: the proxy verifies the control planes over TLS with them.
    const bundleFile = join(this.dir, 'trust-bundle.pem');
    const bundle = await this.bed.runWeft(this.bed.host('e1'), ['ca', 'bundle'], { env: { WEFT_SERVER: `http://127.0.0.1:${API_PORT}` } });
    if (bundle.code !== 0) throw new Error(`weft ca bundle on e1 failed (${bundle.code}): ${bundle.stderr}`);
    writeFileSync(bundleFile, bundle.stdout);
    const app = echo
      ? await this.bed.startWeft(host, ['echo', '--port', String(APP_PORT), '--namespace', 'default', '--pod', instance], {
          isReady: (line) => line.includes('"ready"') || line.includes('listening'),
        })
      : undefined;
    const proxy = await this.bed.startWeft(
      host,
      [
        'proxy', '--mode', 'sidecar',
        '--control-plane', ['e1', 'e2'].map((n) => `${this.bed.host(n).address}:${STREAM_PORT}`).join(','),
        '--namespace', 'default', '--workload', workload, '--instance', instance,
        '--address', host.address, '--tunnel-host', '0.0.0.0',
        // Outbound and admin ports face the bridge, so the test process reaches them (the client's outbound, every /config).
        '--host', '0.0.0.0',
        '--token-file', tokenFile,
        '--ca-bundle', bundleFile,
        '--data-dir', join(this.dir, `proxy-${instance}`),
        '--drain', '1s',
        ...(echo ? ['--app-port', `8080=${APP_PORT}`] : []),
      ],
      { readyTimeoutMs: 30_000 },
    );
    const started: Instance = { host, name: instance, proxy, ...(app ? { app } : {}) };
    this.instances.set(instance, started);
    return started;
  }

  /** POST /weft/v1/apply on a replica's API (from outside its host, as a management network would). */
  async apply(yaml: string, replica = 'e1'): Promise<void> {
    const res = await fetch(`${this.replica(replica).api}/weft/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml' },
      body: yaml,
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`POST /weft/v1/apply on ${replica}: ${res.status} ${await res.text()}`);
  }

  /** `weft apply -f -` against a replica. */
  async weftApply(yaml: string, replica: string): Promise<{ code: number | null; output: string }> {
    const result = await runWeft(['apply', '-f', '-'], { env: { WEFT_SERVER: this.replica(replica).api }, input: yaml, timeoutMs: 20_000 });
    return { code: result.code, output: result.stdout + result.stderr };
  }

  /** The proxies whose streams `replica` holds (or last held), as it lists them (every replica lists every proxy, each with its `replica`). */
  async proxiesOn(replica: string): Promise<ProxyStatus[]> {
    return (await this.proxiesSeenBy(replica)).filter((p) => p.replica === replica);
  }

  /** Every proxy of the mesh, as `replica` lists them. */
  async proxiesSeenBy(replica: string): Promise<ProxyStatus[]> {
    const res = await fetch(`${this.replica(replica).api}/weft/v1/proxies`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET /weft/v1/proxies on ${replica}: ${res.status}`);
    return (await res.json()) as ProxyStatus[];
  }

  /** The name (e1..e3) of the etcd member that leads, from each live member's POST /v3/maintenance/status. */
  async etcdLeader(): Promise<string> {
    const statuses = await Promise.all(
      [...this.etcd.keys()].map(async (name) => {
        try {
          const res = await fetch(`http://${this.bed.host(name).address}:2379/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
          const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
          return { name, member: body.header?.member_id, leader: body.leader };
        } catch {
          return { name, member: undefined, leader: undefined };
        }
      }),
    );
    const leader = statuses.find((s) => s.member !== undefined && s.member === s.leader);
    if (!leader) throw new Error(`no etcd member says it leads: ${JSON.stringify(statuses)}`);
    return leader.name;
  }

  /** Names of the Services a replica lists (read through its API, so from etcd). */
  async serviceNames(replica: string): Promise<string[]> {
    const res = await fetch(`${this.replica(replica).api}/api/v1/namespaces/default/services`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET services on ${replica}: ${res.status}`);
    return ((await res.json()) as { items: { metadata: { name: string } }[] }).items.map((item) => item.metadata.name);
  }

  get clientAddress(): string {
    return this.bed.host('client').address;
  }

  /** The client sidecar's own snapshot, from its admin /config. */
  async clientSnapshot(): Promise<ProxySnapshot | null> {
    const res = await fetch(`http://${this.clientAddress}:${ADMIN_PORT}/config`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`GET /config of the client sidecar: ${res.status}`);
    return ((await res.json()) as { snapshot: ProxySnapshot | null }).snapshot;
  }

  /** The echo endpoints in the client sidecar's balancer. */
  async clientRotation(): Promise<string[]> {
    return this.rotationOf('client-0');
  }

  /** The echo endpoints in the balancer of `instance`'s sidecar, from its admin /config. */
  async rotationOf(instance: string): Promise<string[]> {
    const host = this.instances.get(instance)?.host;
    if (!host) throw new Error(`no instance ${instance}`);
    const res = await fetch(`http://${host.address}:${ADMIN_PORT}/config`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`GET /config of ${instance}: ${res.status}`);
    const snapshot = ((await res.json()) as { snapshot: ProxySnapshot | null }).snapshot;
    return (snapshot?.backends['default/echo:8080']?.endpoints.map((e) => e.id) ?? []).sort();
  }

  /** Registered (address-carrying) Workload instances, as a replica reads them from etcd. */
  async registered(replica: string): Promise<string[]> {
    const res = await fetch(`${this.replica(replica).api}/apis/weft.dev/v1alpha1/namespaces/default/workloads`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`GET workloads on ${replica}: ${res.status}`);
    const list = (await res.json()) as { items: { metadata: { name: string }; spec: { address?: string } }[] };
    return list.items.filter((w) => w.spec.address).map((w) => w.metadata.name).sort();
  }

  async waitForRotation(expected: string[], timeoutMs: number): Promise<void> {
    const want = JSON.stringify([...expected].sort());
    await waitFor(async () => JSON.stringify(await this.clientRotation()) === want, {
      timeoutMs,
      intervalMs: 50,
      message: `the client sidecar's rotation to be ${want}`,
    });
  }

  /** The x-route-mark the echo app saw on one request through the client sidecar. */
  async routeMark(): Promise<string> {
    const res = await request(this.clientAddress, 'http://echo:8080/mark', false, 3000);
    return markOf(res.body);
  }

  /** Steady requests through the client sidecar until `stop()`. */
  load(concurrency = 2, pauseMs = 10): Load {
    return new Load(this.clientAddress, concurrency, pauseMs);
  }

  async close(): Promise<void> {
    await this.bed.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function markOf(body: string): string {
  try {
    const headers = (JSON.parse(body) as { headers: Record<string, string[] | string> }).headers;
    // The echo app writes header names in canonical form (X-Route-Mark).
    const value = Object.entries(headers).find(([name]) => name.toLowerCase() === 'x-route-mark')?.[1];
    return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
  } catch {
    return '';
  }
}

export interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
  pods: Record<string, number>;
}

/** Keep-alive GETs to http://echo:8080 through the client sidecar's outbound port, counting answers and failures. */
export class Load {
  private running = true;
  private readonly done: Promise<void>;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });
  readonly result: LoadResult = { ok: 0, failed: 0, failures: [], pods: {} };

  constructor(host: string, concurrency: number, pauseMs: number) {
    this.done = Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (this.running) {
          try {
            const res = await request(host, 'http://echo:8080/load', this.agent);
            if (res.status === 200) {
              this.result.ok++;
              const pod = podOf(res);
              this.result.pods[pod] = (this.result.pods[pod] ?? 0) + 1;
            } else this.fail(`${res.status} ${String(res.headers['weft-reason'] ?? '')} ${res.body.slice(0, 120)}`);
          } catch (error) {
            this.fail(String(error));
          }
          await new Promise((resolve) => setTimeout(resolve, pauseMs));
        }
      }),
    ).then(() => undefined);
  }

  private fail(why: string): void {
    this.result.failed++;
    if (this.result.failures.length < 10) this.result.failures.push(why);
  }

  /** Counts so far, without stopping. */
  snapshot(): LoadResult {
    return { ...this.result, failures: [...this.result.failures], pods: { ...this.result.pods } };
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await this.done;
    this.agent.destroy();
    return this.result;
  }
}

/** One GET through the client sidecar's outbound port (absolute-form target, as curl -x sends it). */
export function request(host: string, url: string, agent: Agent | false = false, timeoutMs = 5000): Promise<HttpResult> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host, port: OUTBOUND_PORT, method: 'GET', path: url, headers: { host: target.host }, agent, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} via ${host}:${OUTBOUND_PORT} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
