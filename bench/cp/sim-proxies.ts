// Simulated proxies for the control-plane suite: N lightweight config-stream clients (one HTTP/2 session each) in one process.
//
// Each one says hello as a sidecar that takes deltas, ACKs every snapshot and
// delta at once (a delta is not applied: its version, base and nonce are all
// it reads) and heartbeats; none registers an endpoint (no `ready: true`), so the control
// plane's work is the push, not the registry. To stay light, a snapshot line
// is never parsed: its version and nonce are read from the line's head
// (stream-lines.ts, shared with the etcd scale check).
//
// Steps, each reported as one JSON line on stdout:
//   {"event":"connected"}  every simulated proxy has its first snapshot, with the control plane's RSS before and after;
//   {"event":"change"}     per change: an apply through the REST API, then the time until each proxy had the new version;
//   {"event":"done"}.
import type http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connectConfigStream, LineHeads, type LineHead } from './stream-lines.ts';

const { values } = parseArgs({
  options: {
    stream: { type: 'string' },
    api: { type: 'string' },
    count: { type: 'string', default: '1000' },
    changes: { type: 'string', default: '5' },
    'cp-pid': { type: 'string' },
    'connect-concurrency': { type: 'string', default: '100' },
    'connect-timeout': { type: 'string', default: '240' },
    'change-timeout': { type: 'string', default: '20' },
    settle: { type: 'string', default: '2' },
  },
});

const streamUrl = values.stream!;
const apiUrl = values.api!;
const count = Number(values.count);
const changes = Number(values.changes);
const cpPid = Number(values['cp-pid']);
const connectConcurrency = Number(values['connect-concurrency']);

function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function cpRssKiB(): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${cpPid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The size of the last snapshot line seen (UTF-16 units, ASCII here): what one full push costs per proxy. */
let snapshotBytes = 0;
/** The size of the last delta line seen: what a change pushed as a delta costs per proxy. */
let deltaBytes = 0;
/** Lines of each kind received since the last change started, over all simulated proxies. */
const received = { snapshot: 0, delta: 0 };


class SimProxy {
  readonly index: number;
  session: http2.ClientHttp2Session | undefined;
  stream: http2.ClientHttp2Stream | undefined;
  version = '';
  /** When the current version arrived (performance.now()). */
  versionAt = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  closed = false;
  error: string | undefined;

  constructor(index: number) {
    this.index = index;
  }

  open(): Promise<void> {
    return new Promise((resolve) => {
      const session = connectConfigStream(streamUrl);
      this.session = session;
      session.on('error', (error) => {
        this.error ??= error.message;
        resolve();
      });
      session.on('close', () => {
        this.closed = true;
        clearInterval(this.heartbeat);
        resolve();
      });
      const stream = session.request({ ':method': 'POST', ':path': '/weft.v1/stream', 'content-type': 'application/x-ndjson' }, { endStream: false });
      this.stream = stream;
      stream.on('error', (error) => {
        this.error ??= error.message;
        resolve();
      });
      // The control plane may end a stream (e.g. after a lease TTL without a message): this proxy is then gone.
      stream.on('close', () => {
        this.closed = true;
        clearInterval(this.heartbeat);
        resolve();
      });
      const lines = new LineHeads((line) => this.onLine(line, resolve));
      stream.on('data', (chunk: Buffer) => lines.feed(chunk));
      const node = {
        id: `default/sim-${this.index}`,
        mode: 'sidecar',
        namespace: 'default',
        workload: 'sim',
        instance: `sim-${this.index}`,
        address: '127.0.0.1',
        tunnelPort: 15008,
        appPorts: [8080],
      };
      stream.write(JSON.stringify({ type: 'hello', node, delta: true }) + '\n');
    });
  }

  private onLine(line: LineHead, firstSnapshot: () => void): void {
    if (line.type === 'welcome') {
      const heartbeatMs = Number(/"heartbeatMs":(\d+)/.exec(line.text)?.[1] ?? 3000);
      // Spread the heartbeats so that N proxies don't beat in step.
      setTimeout(() => {
        this.heartbeat = setInterval(() => this.send({ type: 'heartbeat' }), heartbeatMs);
        this.heartbeat.unref();
      }, Math.random() * heartbeatMs).unref();
    } else if ((line.type === 'snapshot' || line.type === 'delta') && line.version !== undefined && line.nonce !== undefined) {
      if (line.type === 'snapshot') snapshotBytes = line.bytes;
      else deltaBytes = line.bytes;
      received[line.type]++;
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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

const sims: SimProxy[] = [];
const rssBefore = cpRssKiB();
const connectStarted = performance.now();
let next = 0;
// A bounded number of hellos in flight: the control plane's accept backlog is finite.
await Promise.all(
  Array.from({ length: Math.min(connectConcurrency, count) }, async () => {
    while (next < count && performance.now() - connectStarted < Number(values['connect-timeout']) * 1000) {
      const sim = new SimProxy(next++);
      sims.push(sim);
      await sim.open();
    }
  }),
);
const connectedSims = sims.filter((s) => s.version !== '' && !s.closed);
const connectMs = performance.now() - connectStarted;
await new Promise((resolve) => setTimeout(resolve, Number(values.settle) * 1000));
const rssConnected = cpRssKiB();
emit({
  event: 'connected',
  requested: count,
  connected: connectedSims.length,
  failed: sims.length - connectedSims.length,
  firstError: sims.find((s) => s.error)?.error,
  connectMs,
  snapshotBytes,
  cpRssBeforeKiB: rssBefore,
  cpRssConnectedKiB: rssConnected,
});

for (let i = 0; i < changes; i++) {
  const live = sims.filter((s) => s.version !== '' && !s.closed);
  const before = new Map(live.map((s) => [s, s.version] as const));
  // The change: move one endpoint to a new address. Every simulated proxy's snapshot holds that backend.
  const body = {
    items: [
      {
        apiVersion: 'weft.dev/v1alpha1',
        kind: 'Workload',
        metadata: { name: 'moving-endpoint', namespace: 'default', labels: { app: 'moving' } },
        spec: { address: `10.77.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`, ports: [{ port: 8080 }] },
      },
    ],
  };
  received.snapshot = 0;
  received.delta = 0;
  const started = performance.now();
  const res = await fetch(`${apiUrl}/weft/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const applyMs = performance.now() - started;
  if (!res.ok) {
    emit({ event: 'change', index: i, error: `apply: ${res.status} ${await res.text()}` });
    continue;
  }
  await res.arrayBuffer();
  // A proxy whose stream closed will never see the change: waiting for it ends at once, and it counts as not acknowledged.
  const all =
    (await waitUntil(() => live.every((s) => s.closed || s.version !== before.get(s)), Number(values['change-timeout']) * 1000)) &&
    live.every((s) => s.version !== before.get(s));
  const acked = live.filter((s) => s.version !== before.get(s));
  const dropped = live.filter((s) => s.closed).length;
  const times = acked.map((s) => s.versionAt - started).sort((a, b) => a - b);
  emit({
    event: 'change',
    index: i,
    proxies: live.length,
    acked: acked.length,
    dropped,
    all,
    applyMs,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    maxMs: percentile(times, 100),
    // How the change went out: full snapshot lines or delta lines, and one line of each kind's size.
    fullLines: received.snapshot,
    deltaLines: received.delta,
    snapshotBytes,
    deltaBytes,
    cpRssKiB: cpRssKiB(),
  });
  // Let the control plane's debounce window close, so changes don't merge.
  await new Promise((resolve) => setTimeout(resolve, 300));
}

for (const sim of sims) sim.close();
emit({ event: 'done' });
process.exit(0);
