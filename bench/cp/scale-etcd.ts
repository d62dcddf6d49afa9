// The etcd scale check: a real etcd, control-plane replicas on it, thousands of Workload instances, hundreds of simulated proxies, and the time a route change takes to reach them all.
//
// Shared by the `scale-etcd` bench suite and test/integration/scale-etcd.test.ts.
//
// The workload instances are applied through the REST API as Workload objects
// with an address (one etcd key each), not registered by 2,000 live proxies
// holding leases: what a route change costs the control plane is compiling
// and pushing snapshots that carry every one of those endpoints, which is the
// same either way, while 2,000 more live streams would measure the simulator.
// The simulated proxies are config-stream clients (one HTTP/2 session each)
// that say hello as a sidecar and ACK every snapshot as soon as its head
// arrives; they are spread over the replicas (proxy i starts on replica i mod n).
import type http2 from 'node:http2';
import { startEtcd, type RunningEtcd } from '../../src/testing/etcd.ts';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { connectConfigStream, LineHeads, type LineHead } from './stream-lines.ts';

export interface ScaleEtcdOptions {
  workloads: number;
  proxies: number;
  replicas: number;
  changes: number;
  /** Endpoints per Service: `workloads / endpointsPerService` Services select them. Default 10. */
  endpointsPerService?: number;
  /** A change not acknowledged by every proxy within this counts as failed. Default 10000 ms. */
  changeTimeoutMs?: number;
  log?: (message: string) => void;
}

export interface ScaleEtcdChange {
  index: number;
  /** The apply request, until the API acknowledged it (stored in etcd). */
  applyMs: number;
  /** From the acknowledged apply until every proxy had ACKed the new version; Infinity when some never did. */
  allAckedMs: number;
  acked: number;
  /** From the acknowledged apply until the first proxy had the new version. */
  firstAckedMs: number;
}

export interface ScaleEtcdResult {
  workloads: number;
  proxies: number;
  replicas: number;
  /** Simulated proxies connected per replica. */
  perReplica: number[];
  /** Workload objects the first replica lists with an address, read back through its API after loading. */
  workloadsListed: number;
  loadMs: number;
  connectMs: number;
  /** One snapshot line as pushed to one proxy. */
  snapshotBytes: number;
  changes: ScaleEtcdChange[];
  medianMs: number;
  p99Ms: number;
  maxMs: number;
}

export function percentileOf(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** One simulated sidecar on the config stream: hello, ACK each snapshot at once, heartbeat as told. */
class SimulatedProxy {
  readonly url: string;
  readonly index: number;
  version = '';
  versionAt = 0;
  snapshotBytes = 0;
  closed = false;
  error: string | undefined;
  private session: http2.ClientHttp2Session | undefined;
  private stream: http2.ClientHttp2Stream | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(url: string, index: number) {
    this.url = url;
    this.index = index;
  }

  /** Resolves at the first snapshot, or when the stream fails. */
  open(): Promise<void> {
    return new Promise((resolve) => {
      const gone = (error?: Error) => {
        if (error) this.error ??= error.message;
        this.closed = true;
        clearInterval(this.heartbeat);
        resolve();
      };
      const session = connectConfigStream(this.url);
      this.session = session;
      session.on('error', gone);
      session.on('close', () => gone());
      const stream = session.request({ ':method': 'POST', ':path': '/weft.v1/stream', 'content-type': 'application/x-ndjson' }, { endStream: false });
      this.stream = stream;
      stream.on('error', gone);
      stream.on('close', () => gone());
      const lines = new LineHeads((line) => this.onLine(line, resolve));
      stream.on('data', (chunk: Buffer) => lines.feed(chunk));
      const node = {
        id: `default/scale-sim-${this.index}`,
        mode: 'sidecar',
        namespace: 'default',
        workload: 'scale-sim',
        instance: `scale-sim-${this.index}`,
        address: '127.0.0.1',
        tunnelPort: 15008,
        appPorts: [8080],
      };
      stream.write(JSON.stringify({ type: 'hello', node }) + '\n');
    });
  }

  private onLine(line: LineHead, firstSnapshot: () => void): void {
    if (line.type === 'welcome') {
      const heartbeatMs = Number(/"heartbeatMs":(\d+)/.exec(line.text)?.[1] ?? 3000);
      this.heartbeat = setInterval(() => this.send({ type: 'heartbeat' }), heartbeatMs);
      this.heartbeat.unref();
    } else if (line.type === 'snapshot' && line.version !== undefined && line.nonce !== undefined) {
      this.snapshotBytes = line.bytes;
      this.version = line.version;
      this.versionAt = performance.now();
      this.send({ type: 'ack', version: line.version, nonce: line.nonce });
      firstSnapshot();
    } else if (line.type === 'error') {
      this.error ??= 'the control plane sent an error';
    }
  }

  private send(message: unknown): void {
    if (this.stream && !this.stream.destroyed && this.stream.writable) this.stream.write(JSON.stringify(message) + '\n');
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.session?.destroy();
  }
}

function mesh(workloads: number, perService: number): string {
  const docs = ['apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: scale-sim, labels: {app: scale-sim}}\nspec:\n  ports: [{name: http, port: 8080}]'];
  const services = Math.ceil(workloads / perService);
  for (let s = 0; s < services; s++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${s}}\nspec:\n  selector: {app: svc-${s}}\n  ports: [{name: http, port: 8080}]`);
  }
  // The route the changes flip between two of those Services.
  docs.push(route(0));
  return docs.join('\n---\n') + '\n';
}

function workloadBatch(from: number, to: number, perService: number): string {
  const docs: string[] = [];
  for (let w = from; w < to; w++) {
    const s = Math.floor(w / perService);
    docs.push(
      `apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {name: svc-${s}-${w % perService}, labels: {app: svc-${s}}}\nspec:\n  address: 10.${60 + Math.floor(w / 65_000)}.${Math.floor(w / 250) % 250}.${(w % 250) + 1}\n  tunnelPort: 15008\n  ports: [{port: 8080}]`,
    );
  }
  return docs.join('\n---\n') + '\n';
}

function route(change: number): string {
  const [a, b] = change % 2 === 0 ? [90, 10] : [10, 90];
  return `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: scale-route}\nspec:\n  parentRefs: [{kind: Service, group: "", name: svc-0, port: 8080}]\n  rules:\n  - backendRefs:\n    - {name: svc-0, port: 8080, weight: ${a}}\n    - {name: svc-1, port: 8080, weight: ${b}}\n`;
}

async function applyYaml(api: string, yaml: string): Promise<void> {
  const res = await fetch(`${api}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yaml });
  if (!res.ok) throw new Error(`POST /weft/v1/apply: ${res.status} ${(await res.text()).slice(0, 500)}`);
  await res.arrayBuffer();
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return true;
}

/** Runs the whole check and stops everything it started, whatever happens. */
export async function measureScaleEtcd(options: ScaleEtcdOptions): Promise<ScaleEtcdResult> {
  const log = options.log ?? (() => {});
  const perService = options.endpointsPerService ?? 10;
  const changeTimeoutMs = options.changeTimeoutMs ?? 10_000;
  let etcd: RunningEtcd | undefined;
  const replicas: RunningProcess[] = [];
  const sims: SimulatedProxy[] = [];
  try {
    etcd = await startEtcd();
    const store = `etcd://${etcd.endpoint.replace(/^http:\/\//, '')}`;
    for (let r = 0; r < options.replicas; r++) {
      // One after the other: the first creates the shared CA, sealed in etcd; the others load it.
      replicas.push(
        await startWeft(['control-plane', '--store', store, '--etcd-prefix', '/weft-scale', '--api-port', '0', '--stream-port', '0', '--lease-ttl', '30s'], {
          env: { WEFT_CA_ENCRYPTION_KEY: 'weft-scale-check-sealing-key' },
          readyTimeoutMs: 30_000,
        }),
      );
    }
    const api = String(replicas[0]!.ready.api);
    const loadStarted = performance.now();
    await applyYaml(api, mesh(options.workloads, perService));
    // Batches of 250 through every replica, four at a time: etcd takes one transaction per object.
    const batches: [number, number][] = [];
    for (let from = 0; from < options.workloads; from += 250) batches.push([from, Math.min(options.workloads, from + 250)]);
    for (let b = 0; b < batches.length; b += 4) {
      await Promise.all(batches.slice(b, b + 4).map(([from, to], i) => applyYaml(String(replicas[i % replicas.length]!.ready.api), workloadBatch(from, to, perService))));
    }
    const loadMs = performance.now() - loadStarted;
    const listed = (await (await fetch(`${api}/apis/weft.dev/v1alpha1/namespaces/default/workloads`)).json()) as { items: { spec: { address?: string } }[] };
    const workloadsListed = listed.items.filter((w) => w.spec.address).length;
    log(`scale-etcd: ${workloadsListed} Workload instances in etcd (loaded in ${Math.round(loadMs)} ms)`);

    const streams = replicas.map((r) => String(r.ready.stream));
    const connectStarted = performance.now();
    for (let i = 0; i < options.proxies; i++) sims.push(new SimulatedProxy(streams[i % streams.length]!, i));
    // 50 hellos in flight at a time: the accept backlog is finite and the first snapshots are large.
    for (let i = 0; i < sims.length; i += 50) await Promise.all(sims.slice(i, i + 50).map((s) => s.open()));
    const connectMs = performance.now() - connectStarted;
    const live = sims.filter((s) => s.version !== '' && !s.closed);
    if (live.length !== sims.length) throw new Error(`${sims.length - live.length} of ${sims.length} simulated proxies did not get a snapshot: ${sims.find((s) => s.error)?.error ?? 'no error'}`);
    const perReplica = streams.map((url) => sims.filter((s) => s.url === url).length);
    log(`scale-etcd: ${live.length} simulated proxies connected in ${Math.round(connectMs)} ms (${perReplica.join(' + ')}), snapshot ${Math.round(live[0]!.snapshotBytes / 1024)} KiB`);
    // Let the replicas' start-up compiles and status writes settle before the first change.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const changes: ScaleEtcdChange[] = [];
    for (let i = 1; i <= options.changes; i++) {
      const before = new Map(sims.map((s) => [s, s.version] as const));
      const applyStarted = performance.now();
      // Alternate the replica the change is applied through: either one must reach the proxies of both.
      await applyYaml(String(replicas[i % replicas.length]!.ready.api), route(i));
      const acknowledged = performance.now();
      const all = await until(() => sims.every((s) => s.closed || s.version !== before.get(s)), changeTimeoutMs);
      const acked = sims.filter((s) => !s.closed && s.version !== before.get(s));
      changes.push({
        index: i,
        applyMs: acknowledged - applyStarted,
        allAckedMs: all && acked.length === sims.length ? Math.max(0, ...acked.map((s) => s.versionAt - acknowledged)) : Infinity,
        acked: acked.length,
        firstAckedMs: Math.max(0, Math.min(...acked.map((s) => s.versionAt - acknowledged))),
      });
      // Past the control plane's debounce window, so that two changes do not merge into one push.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const times = changes.map((c) => c.allAckedMs);
    return {
      workloads: options.workloads,
      proxies: options.proxies,
      replicas: options.replicas,
      perReplica,
      workloadsListed,
      loadMs,
      connectMs,
      snapshotBytes: live[0]!.snapshotBytes,
      changes,
      medianMs: percentileOf(times, 50),
      p99Ms: percentileOf(times, 99),
      maxMs: percentileOf(times, 100),
    };
  } finally {
    for (const sim of sims) sim.close();
    await Promise.all(replicas.map((r) => r.stop({ timeoutMs: 5000 })));
    await etcd?.stop();
  }
}
