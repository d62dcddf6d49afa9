// Helpers for the control-plane tests: start one on port 0, a raw NDJSON stream client, bounded polling.
import http2 from 'node:http2';
import assert from 'node:assert/strict';
import { startControlPlane, type ControlPlaneOptions, type RunningControlPlane } from '../../src/control/main.ts';
import { systemClock } from '../../src/telemetry/clock.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { STREAM_PATH, type ControlMessage, type ProxyMessage } from '../../src/api/stream.ts';
import type { NodeInfo } from '../../src/api/snapshot.ts';

export async function startTestControlPlane(overrides: Partial<ControlPlaneOptions> = {}): Promise<RunningControlPlane> {
  return startControlPlane({
    apiHost: '127.0.0.1',
    apiPort: 0,
    streamHost: '127.0.0.1',
    streamPort: 0,
    debounceMs: 20,
    logger: silentLogger(),
    clock: systemClock,
    ...overrides,
  });
}

export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 3000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function api(base: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any; text: string }> {
  const init: RequestInit = { method, headers: {} };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': contentType };
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

export function sidecarNode(overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id: 'default/reviews-abc',
    mode: 'sidecar',
    namespace: 'default',
    workload: 'reviews',
    instance: 'reviews-abc',
    address: '127.0.0.1',
    tunnelPort: 15008,
    appPorts: [9080],
    ...overrides,
  };
}

/** A proxy's side of the config stream, speaking NDJSON over a raw HTTP/2 request. */
export class StreamClient {
  readonly messages: ControlMessage[] = [];
  ended = false;
  status: number | undefined;
  private readonly session: http2.ClientHttp2Session;
  private readonly request: http2.ClientHttp2Stream;
  private buffered = '';

  constructor(streamUrl: string) {
    this.session = http2.connect(streamUrl);
    this.session.on('error', () => {});
    this.request = this.session.request({ ':method': 'POST', ':path': STREAM_PATH, 'content-type': 'application/x-ndjson' });
    this.request.setEncoding('utf8');
    this.request.on('response', (headers) => {
      this.status = Number(headers[':status']);
    });
    this.request.on('data', (chunk: string) => {
      this.buffered += chunk;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) !== -1) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        if (line.trim()) this.messages.push(JSON.parse(line) as ControlMessage);
      }
    });
    this.request.on('end', () => {
      this.ended = true;
      if (!this.request.writableEnded) this.request.end();
    });
    this.request.on('close', () => {
      this.ended = true;
    });
    this.request.on('error', () => {});
  }

  send(message: ProxyMessage): void {
    this.request.write(`${JSON.stringify(message)}\n`);
  }

  snapshots(): Extract<ControlMessage, { type: 'snapshot' }>[] {
    return this.messages.filter((m): m is Extract<ControlMessage, { type: 'snapshot' }> => m.type === 'snapshot');
  }

  /** Waits for the n-th (1-based) message of a type. */
  async nth<T extends ControlMessage['type']>(type: T, n = 1, timeoutMs = 3000): Promise<Extract<ControlMessage, { type: T }>> {
    return waitFor(
      () => this.messages.filter((m) => m.type === type)[n - 1] as Extract<ControlMessage, { type: T }> | undefined,
      `${type} message #${n}`,
      timeoutMs,
    );
  }

  /** Ends the request cleanly, as a proxy that shuts down does. */
  end(): void {
    if (!this.request.writableEnded) this.request.end();
  }

  /** Closes the whole connection. */
  close(): void {
    this.request.close();
    this.session.close();
    this.session.destroy();
  }
}
