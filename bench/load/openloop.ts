// Open-loop HTTP/1.1 load generator: sends at a fixed rate over keep-alive connections and measures latency against the intended send times.
//
// Coordinated omission: a closed-loop client that waits for a slow answer
// before sending the next request hides the wait from its numbers. Here every
// request has an intended send time on a fixed schedule; a request that finds
// every connection busy waits in a queue, and that wait counts in its latency.
// What does not count is this process's own timer lag: Node's timers fire
// about once a millisecond, so a request is often sent a little after its
// intended time although a connection was free. Its latency is therefore
//   (answer − actual send) + (ideal send − intended send)
// where the ideal send is when a perfect generator could have sent it: the
// intended time, or later if every connection was still busy then.
//
// Prints one JSON line with the counts and the latency percentiles (ms).
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    path: { type: 'string', default: '/' },
    'host-header': { type: 'string' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '16' },
  },
});

const port = Number(values.port);
const rate = Number(values.rate);
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const connectionCount = Number(values.connections);
if (!Number.isInteger(port) || !(rate > 0) || !(durationS > 0) || !(connectionCount > 0)) {
  process.stderr.write('usage: openloop.ts --port N [--path /] [--rate 1000] [--duration 5] [--warmup 1] [--connections 16]\n');
  process.exit(2);
}
const hostHeader = values['host-header'] ?? `${values.host}:${port}`;
const requestBytes = Buffer.from(`GET ${values.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: weft-bench-openloop\r\n\r\n`, 'latin1');

const intervalMs = 1000 / rate;
const total = Math.round(rate * (warmupS + durationS));
const warmupCount = Math.round(rate * warmupS);
const latencies = new Float64Array(Math.max(0, total - warmupCount));
let recorded = 0;
let completed = 0;
let errors = 0;
let sent = 0;
let nextIndex = 0;
let maxQueue = 0;

interface Pending {
  index: number;
  intended: number;
  idealSend: number;
  actualSend: number;
}

/** Incremental HTTP/1.1 response reader: one outstanding request per connection, so answers come in order. */
class Connection {
  socket!: Socket;
  busy = true; // until connected
  freeAt = 0;
  current: Pending | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private bodyLeft = -1; // -1: reading headers; -2: reading chunked body
  private closeAfter = false;

  open(): void {
    this.socket = connect({ port, host: values.host, noDelay: true });
    this.busy = true;
    this.buffer = Buffer.alloc(0);
    this.bodyLeft = -1;
    this.socket.on('connect', () => {
      this.busy = false;
      this.freeAt = performance.now();
      dispatch();
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      if (this.current) {
        errors++;
        this.current = undefined;
      }
      if (!finished) setTimeout(() => this.open(), 10);
    });
  }

  send(request: Pending): void {
    this.busy = true;
    this.current = request;
    this.socket.write(requestBytes);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.bodyLeft === -1) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = this.buffer.toString('latin1', 0, end);
        this.buffer = this.buffer.subarray(end + 4);
        const status = Number(head.slice(9, 12));
        if (!(status >= 200 && status < 400) && this.current) this.current = { ...this.current, index: -1 };
        const lower = head.toLowerCase();
        this.closeAfter = /\r\nconnection:\s*close/.test(lower);
        const length = /\r\ncontent-length:\s*(\d+)/.exec(lower);
        if (length) this.bodyLeft = Number(length[1]);
        else if (/\r\ntransfer-encoding:\s*chunked/.test(lower)) this.bodyLeft = -2;
        else this.bodyLeft = 0;
      }
      if (this.bodyLeft === -2) {
        // Enough for benchmarks: the answer ends with the zero-length chunk.
        const end = this.buffer.indexOf('0\r\n\r\n');
        if (end === -1) return;
        this.buffer = this.buffer.subarray(end + 5);
        this.bodyLeft = 0;
      }
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, this.buffer.length);
        this.bodyLeft -= take;
        this.buffer = this.buffer.subarray(take);
        if (this.bodyLeft > 0) return;
      }
      this.bodyLeft = -1;
      this.finishOne();
      if (this.closeAfter) {
        this.socket.destroy();
        return;
      }
      if (this.buffer.length === 0) return;
    }
  }

  private finishOne(): void {
    const now = performance.now();
    const request = this.current;
    this.current = undefined;
    this.busy = false;
    this.freeAt = now;
    if (request) {
      completed++;
      if (request.index === -1) errors++;
      else if (request.index >= warmupCount) {
        latencies[recorded++] = now - request.actualSend + (request.idealSend - request.intended);
      }
    }
    dispatch();
  }
}

const connections: Connection[] = [];
const queue: { index: number; intended: number }[] = [];
let start = 0;
let finished = false;

function dispatch(): void {
  while (queue.length > 0) {
    let best: Connection | undefined;
    for (const c of connections) if (!c.busy && (!best || c.freeAt < best.freeAt)) best = c;
    if (!best) return;
    const next = queue.shift()!;
    const now = performance.now();
    best.send({ index: next.index, intended: next.intended, idealSend: Math.max(next.intended, best.freeAt), actualSend: now });
    sent++;
  }
}

function tick(): void {
  const now = performance.now();
  while (nextIndex < total && start + nextIndex * intervalMs <= now) {
    queue.push({ index: nextIndex, intended: start + nextIndex * intervalMs });
    nextIndex++;
  }
  if (queue.length > maxQueue) maxQueue = queue.length;
  dispatch();
  if (nextIndex < total) {
    setTimeout(tick, Math.max(0, start + nextIndex * intervalMs - performance.now()));
  } else {
    void finish();
  }
}

async function finish(): Promise<void> {
  // Answers still on their way get a bounded grace; what never answers is an error.
  const deadline = performance.now() + 5000;
  while ((queue.length > 0 || connections.some((c) => c.current)) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  finished = true;
  errors += queue.length + connections.filter((c) => c.current).length;
  const elapsedS = (performance.now() - start) / 1000;
  for (const c of connections) c.socket.destroy();
  const sorted = latencies.subarray(0, recorded).sort();
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! : NaN);
  let sum = 0;
  for (const v of sorted) sum += v;
  const result = {
    rate,
    durationS,
    connections: connectionCount,
    sent,
    completed,
    errors,
    achievedRps: completed / elapsedS,
    maxQueue,
    latencyMs: { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: at(100), mean: sorted.length ? sum / sorted.length : NaN },
    samples: sorted.length,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

for (let i = 0; i < connectionCount; i++) {
  const c = new Connection();
  connections.push(c);
  c.open();
}
// Connect first, then start the schedule: connection set-up is not part of any request.
const waitForConnections = (deadline: number) => {
  if (connections.every((c) => !c.busy) || performance.now() > deadline) {
    start = performance.now();
    tick();
  } else setTimeout(() => waitForConnections(deadline), 5);
};
waitForConnections(performance.now() + 5000);
