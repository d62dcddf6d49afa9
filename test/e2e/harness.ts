// End-to-end harness: a mesh of real `weft control-plane`, `weft proxy` (sidecars, or node proxies) and `weft echo` processes on loopback.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import { freePort } from '../../src/testing/ports.ts';
import { startWeft, runWeft, type RunningProcess, type RunResult } from '../../src/testing/process.ts';
import { waitFor } from '../../src/testing/wait.ts';
import { startEtcd, type RunningEtcd } from '../../src/testing/etcd.ts';
import type { ProxySnapshot } from '../../src/api/snapshot.ts';
import type { ProxyStatus } from '../../src/api/stream.ts';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP/1.1 request through a forward proxy (absolute-form target), as curl -x sends it. */
export function viaProxy(proxyPort: number, url: string, options: { agent?: Agent; method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpResult> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        method: options.method ?? 'GET',
        path: url,
        headers: { host: target.host, ...options.headers },
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} via :${proxyPort} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The echo pod that answered, from the echo JSON body. */
export function podOf(result: HttpResult): string {
  try {
    return (JSON.parse(result.body) as { pod?: string }).pod ?? '';
  } catch {
    return '';
  }
}

/** A sidecar per workload instance, or one node proxy per host serving all of that host's instances. */
export type ProxyMode = 'sidecar' | 'node';

/** One workload instance to run on a host: its proxy part and, with `echo`, an echo app answering as pod `instance`. */
export interface InstanceSpec {
  workload: string;
  instance: string;
  echo?: boolean;
  namespace?: string;
}

export interface WorkloadProcesses {
  /** "<namespace>/<instance>", as the control plane lists it. */
  id: string;
  instance: string;
  /** Its sidecar, or in node mode the node proxy it shares with the other instances of its host. */
  proxy: RunningProcess;
  app?: RunningProcess;
  ports: { outbound: number; tunnel: number; admin: number };
}

/** Where the control plane keeps its config: SQLite under the mesh's dir (one replica), or a real etcd shared by every replica. */
export type MeshStore = 'sqlite' | 'etcd';

export interface TestMeshOptions {
  leaseTtl?: string;
  proxyMode?: ProxyMode;
  /** Default 'sqlite'. With 'etcd' the harness starts its own single-member etcd and stops it on close. */
  store?: MeshStore;
  /** How many `weft control-plane` processes serve the mesh; more than one needs the etcd store. Default 1. */
  replicas?: number;
  /** More arguments for every `weft proxy` the mesh starts (e.g. a shorter --telemetry-interval). */
  proxyArgs?: string[];
}

/** A control plane (one or several replicas) with its store, and helpers to add sidecars and echo apps beside it. */
export class TestMesh {
  readonly dir: string;
  /** The first replica's stream port (every replica keeps its port across restarts: `streamPorts`). */
  readonly streamPort: number;
  readonly streamPorts: readonly number[];
  /** The first replica: the one `api` points at. */
  cp!: RunningProcess;
  /** Every running replica, the first one first. */
  replicas: RunningProcess[] = [];
  /** The first replica's REST API (apply and get work through any replica). */
  api = '';
  /** What proxies are given as --control-plane: every replica's stream URL, comma-separated. */
  stream = '';
  readonly store: MeshStore;
  etcd: RunningEtcd | undefined;
  private readonly etcdPrefix: string;
  private readonly started: RunningProcess[] = [];
  private readonly leaseTtl: string;
  readonly proxyMode: ProxyMode;
  private hosts = 0;
  private proxiesStarted = 0;
  private readonly proxyArgs: readonly string[];

  private constructor(dir: string, streamPorts: number[], leaseTtl: string, proxyMode: ProxyMode, store: MeshStore, proxyArgs: readonly string[]) {
    this.proxyArgs = proxyArgs;
    this.dir = dir;
    this.streamPorts = streamPorts;
    this.streamPort = streamPorts[0]!;
    this.leaseTtl = leaseTtl;
    this.proxyMode = proxyMode;
    this.store = store;
    this.etcdPrefix = `/weft-e2e-${Math.random().toString(36).slice(2, 10)}`;
  }

  static async start(options: TestMeshOptions = {}): Promise<TestMesh> {
    const replicas = options.replicas ?? 1;
    const store = options.store ?? 'sqlite';
    if (replicas < 1 || (replicas > 1 && store !== 'etcd')) throw new Error(`${replicas} control-plane replicas need the etcd store`);
    const dir = mkdtempSync(join(tmpdir(), 'weft-e2e-'));
    const streamPorts = await Promise.all(Array.from({ length: replicas }, () => freePort()));
    const mesh = new TestMesh(dir, streamPorts, options.leaseTtl ?? '3s', options.proxyMode ?? 'sidecar', store, options.proxyArgs ?? []);
    try {
      if (store === 'etcd') mesh.etcd = await startEtcd();
      await mesh.startControlPlane();
    } catch (error) {
      await mesh.close();
      throw error;
    }
    return mesh;
  }

  /**
   * Starts (or restarts) every replica on the same store and stream ports, so
   * proxies find them again. On etcd the replicas share the mesh CA, sealed
   * in etcd with WEFT_CA_ENCRYPTION_KEY, so that any of them can sign.
   */
  async startControlPlane(): Promise<void> {
    const storeArgs =
      this.store === 'etcd'
        ? ['--store', `etcd://${this.etcd!.endpoint.replace(/^http:\/\//, '')}`, '--etcd-prefix', this.etcdPrefix]
        : ['--data-dir', join(this.dir, 'cp')];
    const env = this.store === 'etcd' ? { WEFT_CA_ENCRYPTION_KEY: 'weft-e2e-shared-ca-sealing-key' } : undefined;
    const start = (streamPort: number) =>
      startWeft(
        [
          'control-plane',
          ...storeArgs,
          '--api-port', '0',
          '--stream-port', String(streamPort),
          '--lease-ttl', this.leaseTtl,
          // Local mode: the harness creates each proxy's bootstrap token with `weft token create`.
          '--insecure-local-tokens',
        ],
        env ? { env } : {},
      );
    // One after the other: the first replica creates the shared CA, the others load it.
    this.replicas = [];
    for (const port of this.streamPorts) {
      const replica = await start(port);
      this.started.push(replica);
      this.replicas.push(replica);
    }
    this.cp = this.replicas[0]!;
    this.api = String(this.cp.ready.api);
    this.stream = this.replicas.map((r) => String(r.ready.stream)).join(',');
  }

  /** SIGKILLs every replica: an outage of the whole control plane. */
  async stopControlPlane(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.stop({ signal: 'SIGKILL' })));
  }

  /**
   * The --control-plane list for the next proxy: with several replicas, each
   * proxy starts from a different one (it tries them in order), so the
   * proxies spread over every replica.
   */
  private controlPlaneList(): string {
    const urls = this.stream.split(',');
    const first = this.proxiesStarted++ % urls.length;
    return [...urls.slice(first), ...urls.slice(0, first)].join(',');
  }

  weft(args: string[], input?: string): Promise<RunResult> {
    return runWeft(args, { env: { WEFT_SERVER: this.api }, ...(input === undefined ? {} : { input }) });
  }

  async apply(yaml: string): Promise<void> {
    const result = await this.weft(['apply', '-f', '-'], yaml);
    if (result.code !== 0) throw new Error(`weft apply failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  }

  /** Applies YAML straight through the REST API (no CLI process start-up), for timing-sensitive tests. */
  async putYaml(yaml: string): Promise<void> {
    const res = await fetch(`${this.api}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yaml });
    if (!res.ok) throw new Error(`POST /weft/v1/apply: ${res.status} ${await res.text()}`);
  }

  /** A sidecar for `workload` (in node mode, a node proxy of its own) and, when `echo` is set, an echo app behind it answering as pod `instance`. */
  async addWorkload(workload: string, instance: string, options: { echo?: boolean; namespace?: string } = {}): Promise<WorkloadProcesses> {
    const [started] = await this.addHost([{ workload, instance, ...options }]);
    return started!;
  }

  /**
   * The instances of one host: their echo apps, then a sidecar for each, or
   * in node mode one `weft proxy --mode node` serving them all, each with
   * its own workload's token.
   */
  async addHost(specs: readonly InstanceSpec[]): Promise<WorkloadProcesses[]> {
    const instances = await Promise.all(
      specs.map(async (spec) => {
        const namespace = spec.namespace ?? 'default';
        let app: RunningProcess | undefined;
        let appPort: number | undefined;
        if (spec.echo) {
          appPort = await freePort();
          app = await startWeft(['echo', '--port', String(appPort), '--namespace', namespace, '--pod', spec.instance], {
            isReady: (line) => line.includes('listening') || line.includes('"ready"'),
          });
          this.started.push(app);
        }
        return { ...spec, namespace, app, appPort, token: await this.token(namespace, spec.workload) };
      }),
    );
    const common = ['--admin-port', '0', '--drain', '2s', ...this.proxyArgs];
    if (this.proxyMode === 'node') {
      const host = `host-${this.hosts++}`;
      const proxy = await startWeft(
        [
          'proxy', '--mode', 'node', '--node-name', host, '--control-plane', this.controlPlaneList(), ...common,
          ...instances.flatMap((i) => ['--workload', `${i.namespace}/${i.workload}@${i.instance}${i.appPort ? `=8080:${i.appPort}` : ''}`]),
          '--data-dir', join(this.dir, 'proxies', host),
        ],
        { env: { WEFT_TOKEN: instances.map((i) => `${i.namespace}/${i.workload} ${i.token}`).join('\n') } },
      );
      this.started.push(proxy);
      const hosted = new Map((proxy.ready.workloads as { id: string; ports: WorkloadProcesses['ports'] }[]).map((w) => [w.id, w.ports] as const));
      return instances.map((i) => {
        const id = `${i.namespace}/${i.instance}`;
        const ports = hosted.get(id);
        if (!ports) throw new Error(`the node proxy ${host} announced no ports for ${id}: ${JSON.stringify(proxy.ready)}`);
        return { id, instance: i.instance, proxy, ports, ...(i.app ? { app: i.app } : {}) };
      });
    }
    return Promise.all(
      instances.map(async (i) => {
        const proxy = await startWeft(
          [
            'proxy', '--mode', 'sidecar', '--control-plane', this.controlPlaneList(), ...common,
            '--namespace', i.namespace,
            '--workload', i.workload,
            '--instance', i.instance,
            '--outbound-port', '0', '--tunnel-port', '0',
            '--data-dir', join(this.dir, 'proxies', `${i.namespace}.${i.instance}`),
            ...(i.appPort ? ['--app-port', `8080=${i.appPort}`] : []),
          ],
          { env: { WEFT_TOKEN: i.token } },
        );
        this.started.push(proxy);
        const ports = proxy.ready.ports as WorkloadProcesses['ports'];
        return { id: `${i.namespace}/${i.instance}`, instance: i.instance, proxy, ports, ...(i.app ? { app: i.app } : {}) };
      }),
    );
  }

  /** What the admin /config of `w`'s proxy says about `w` (a node proxy lists each of its workloads). */
  async proxyConfig(w: WorkloadProcesses): Promise<{ snapshot: ProxySnapshot | null; identity: { spiffeId: string } | null }> {
    const res = await fetch(`http://127.0.0.1:${w.ports.admin}/config`);
    if (!res.ok) throw new Error(`GET /config of ${w.id}: ${res.status}`);
    const body = (await res.json()) as { workloads?: Record<string, unknown> };
    const own = body.workloads ? body.workloads[w.id] : body;
    if (!own) throw new Error(`the node proxy's /config lists no ${w.id}`);
    return own as { snapshot: ProxySnapshot | null; identity: { spiffeId: string } | null };
  }

  /** A bootstrap token for the proxies of `workload`, made as an operator would: `weft token create`. */
  async token(namespace: string, workload: string): Promise<string> {
    const result = await this.weft(['token', 'create', '--namespace', namespace, '--workload', workload]);
    if (result.code !== 0) throw new Error(`weft token create failed (${result.code}):\n${result.stderr}`);
    return result.stdout.trim();
  }

  /** The proxies every replica knows (each lists those connected to it), a connected entry winning over a stale one. */
  async proxies(): Promise<ProxyStatus[]> {
    const lists = await Promise.all(
      this.replicas.map(async (replica) => {
        const res = await fetch(`${String(replica.ready.api)}/weft/v1/proxies`);
        if (!res.ok) throw new Error(`GET /weft/v1/proxies on ${String(replica.ready.api)}: ${res.status}`);
        return (await res.json()) as ProxyStatus[];
      }),
    );
    const byId = new Map<string, ProxyStatus>();
    for (const proxy of lists.flat()) {
      const known = byId.get(proxy.id);
      if (!known || (!known.connected && proxy.connected)) byId.set(proxy.id, proxy);
    }
    return [...byId.values()];
  }

  /** `weft status` as an operator would run it against each replica in turn (each shows the proxies connected to it), outputs joined. */
  async status(): Promise<RunResult> {
    const results = await Promise.all(
      this.replicas.map((replica) => runWeft(['status'], { env: { WEFT_SERVER: String(replica.ready.api) } })),
    );
    return {
      ...results[0]!,
      code: results.find((r) => r.code !== 0)?.code ?? results[0]!.code,
      stdout: results.map((r) => r.stdout).join('\n'),
      stderr: results.map((r) => r.stderr).join('\n'),
    };
  }

  /** Names of the registered (address-carrying) Workload instances. */
  async endpoints(namespace = 'default'): Promise<string[]> {
    const res = await fetch(`${this.api}/apis/weft.dev/v1alpha1/namespaces/${namespace}/workloads`);
    if (!res.ok) throw new Error(`GET workloads: ${res.status}`);
    const list = (await res.json()) as { items: { metadata: { name: string }; spec: { address?: string } }[] };
    return list.items.filter((w) => w.spec.address).map((w) => w.metadata.name).sort();
  }

  /** Waits until every connected proxy has acknowledged what it was last sent, and returns them. */
  async converged(count: number, timeoutMs = 10_000): Promise<ProxyStatus[]> {
    return waitFor(
      async () => {
        const all = (await this.proxies()).filter((p) => p.connected);
        return all.length === count && all.every((p) => p.sentVersion && p.ackedVersion === p.sentVersion) ? all : undefined;
      },
      { timeoutMs, message: `${count} proxies connected and acked` },
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.started.reverse().map((p) => p.stop({ timeoutMs: 5000 })));
    await this.etcd?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}
