// The discovery client: one HTTP/2 stream to the control plane carrying hello/ack/nack/ready/heartbeat up and snapshots down.
import http2 from 'node:http2';
import { ErrorCodes, isWeftError } from '../api/errors.ts';
import type { NodeInfo, ProxySnapshot } from '../api/snapshot.ts';
import { STREAM_PATH, type ControlMessage, type ProxyMessage } from '../api/stream.ts';
import type { Clock, Timer } from '../telemetry/clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ProxyMetrics } from './metrics.ts';

export interface DiscoveryOptions {
  /** The control plane's stream URL, e.g. http://127.0.0.1:15010. */
  url: string;
  node: NodeInfo;
  /** The bootstrap token, sent in every hello (the control plane requires it of proxies on other hosts). */
  token?: string | undefined;
  /** The version running now (from disk or an earlier stream), sent in every hello. */
  runningVersion: () => string | undefined;
  /** Applies a snapshot (a no-op when it is the running version); throws (a WeftError) to NACK it. */
  apply: (snapshot: ProxySnapshot, version: string) => Promise<void>;
  clock: Clock;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Reconnect backoff: doubles from initialMs up to maxMs, with jitter. */
  backoff?: { initialMs: number; maxMs: number };
  /** The longest line the control plane may send. Default 64 MiB. */
  maxLineBytes?: number;
  random?: () => number;
}

type SnapshotMessage = Extract<ControlMessage, { type: 'snapshot' }>;

interface Connection {
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  /** The readiness this stream was last told, so that each change is sent once. */
  sentReady: boolean | undefined;
  welcomed: boolean;
  buffered: string;
}

/**
 * Keeps one stream open for as long as the proxy runs: reconnects forever
 * with capped exponential backoff, says hello (and its readiness) again on
 * every new stream, heartbeats at the rate the control plane asks for, and
 * answers every snapshot with an ACK or a NACK naming its version and nonce.
 */
export class DiscoveryClient {
  private readonly options: DiscoveryOptions;
  private connection: Connection | undefined;
  private ready = false;
  private attempt = 0;
  private reconnectTimer: Timer | undefined;
  private heartbeatTimer: Timer | undefined;
  private closed = false;
  /** The newest snapshot not applied yet, and the connection it came on; older ones are skipped. */
  private pending: { message: SnapshotMessage; connection: Connection } | undefined;
  private applying = false;

  constructor(options: DiscoveryOptions) {
    this.options = options;
  }

  get connected(): boolean {
    return this.connection?.welcomed === true;
  }

  start(): void {
    this.connect();
  }

  /** Tells the control plane (now, and after every reconnect) whether the app is ready. */
  setReady(ready: boolean): void {
    this.ready = ready;
    const connection = this.connection;
    if (connection && connection.sentReady !== ready) {
      connection.sentReady = ready;
      this.send(connection, { type: 'ready', ready });
    }
  }

  /** Ends the stream (after what was written, e.g. a last `ready: false`) and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    this.reconnectTimer?.cancel();
    this.heartbeatTimer?.cancel();
    const connection = this.connection;
    this.connection = undefined;
    this.options.metrics.controlPlaneConnected.labels().set(0);
    if (!connection) return;
    const { session, stream } = connection;
    if (session.closed || session.destroyed) return;
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    try {
      stream.end();
      session.close();
    } catch {
      session.destroy();
    }
    // Wall clock on purpose: shutting down must finish even under a test's manual clock.
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([closed, grace]);
    if (!session.destroyed) session.destroy();
  }

  private connect(): void {
    if (this.closed) return;
    const { logger, node } = this.options;
    let session: http2.ClientHttp2Session;
    try {
      session = http2.connect(this.options.url);
    } catch (error) {
      logger.warn({ err: error, url: this.options.url }, 'invalid control plane URL');
      this.scheduleReconnect();
      return;
    }
    session.on('error', (error) => logger.debug({ err: error, url: this.options.url }, 'control plane session error'));
    const stream = session.request({ ':method': 'POST', ':path': STREAM_PATH, 'content-type': 'application/x-ndjson' }, { endStream: false });
    const connection: Connection = { session, stream, sentReady: undefined, welcomed: false, buffered: '' };
    this.connection = connection;
    session.once('close', () => this.disconnected(connection));
    stream.setEncoding('utf8');
    stream.on('error', (error) => logger.debug({ err: error }, 'config stream error'));
    stream.on('response', (headers) => {
      const status = headers[':status'];
      if (status !== 200) {
        logger.warn({ status }, 'the control plane refused the config stream');
        session.close();
      }
    });
    stream.on('data', (chunk: string) => this.onData(connection, chunk));
    // The control plane ended its side (shutting down, or it dropped us): end ours and reconnect.
    stream.on('end', () => {
      if (!stream.writableEnded) stream.end();
      session.close();
    });
    stream.on('close', () => {
      if (!session.closed) session.close();
    });
    const runningVersion = this.options.runningVersion();
    const token = this.options.token;
    this.send(connection, { type: 'hello', node, ...(runningVersion ? { runningVersion } : {}), ...(token ? { token } : {}) });
    connection.sentReady = this.ready;
    this.send(connection, { type: 'ready', ready: this.ready });
  }

  private disconnected(connection: Connection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.heartbeatTimer?.cancel();
    this.heartbeatTimer = undefined;
    this.options.metrics.controlPlaneConnected.labels().set(0);
    if (connection.welcomed) this.options.logger.warn({ url: this.options.url }, 'lost the control plane; serving the last good config');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 100, maxMs: 2000 };
    const random = this.options.random ?? Math.random;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    // "Equal jitter": never sooner than half the step, so a restarting control plane is not stampeded.
    const delay = ceiling / 2 + random() * (ceiling / 2);
    this.reconnectTimer = this.options.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private onData(connection: Connection, chunk: string): void {
    connection.buffered += chunk;
    let newline: number;
    while ((newline = connection.buffered.indexOf('\n')) !== -1) {
      const line = connection.buffered.slice(0, newline).trim();
      connection.buffered = connection.buffered.slice(newline + 1);
      if (line) this.onLine(connection, line);
    }
    if (connection.buffered.length > (this.options.maxLineBytes ?? 64 * 1024 * 1024)) {
      this.options.logger.warn('the control plane sent an oversized message; reconnecting');
      connection.session.destroy();
    }
  }

  private onLine(connection: Connection, line: string): void {
    if (this.connection !== connection) return;
    let message: ControlMessage;
    try {
      message = JSON.parse(line) as ControlMessage;
    } catch {
      this.options.logger.warn('the control plane sent a line that is not JSON; ignoring it');
      return;
    }
    switch (message.type) {
      case 'welcome': {
        connection.welcomed = true;
        this.attempt = 0;
        this.options.metrics.controlPlaneConnected.labels().set(1);
        this.options.logger.info({ url: this.options.url }, 'connected to the control plane');
        this.heartbeatTimer?.cancel();
        const every = Math.max(100, message.heartbeatMs || 1000);
        this.heartbeatTimer = this.options.clock.setInterval(() => {
          if (this.connection === connection) this.send(connection, { type: 'heartbeat' });
        }, every);
        return;
      }
      case 'snapshot':
        this.pending = { message, connection };
        void this.applyPending();
        return;
      case 'error':
        this.options.logger.warn({ code: message.code, message: message.message }, 'the control plane reported an error');
        return;
      default:
        this.options.logger.debug({ type: (message as { type?: unknown }).type }, 'ignoring an unknown control message');
    }
  }

  /** Applies snapshots one at a time; when several arrive during an apply, only the newest is applied and answered. */
  private async applyPending(): Promise<void> {
    if (this.applying) return;
    this.applying = true;
    try {
      while (this.pending) {
        const { message, connection } = this.pending;
        this.pending = undefined;
        let reply: ProxyMessage;
        try {
          await this.options.apply(message.snapshot, message.version);
          reply = { type: 'ack', version: message.version, nonce: message.nonce };
        } catch (error) {
          const code = isWeftError(error) ? error.code : ErrorCodes.SNAPSHOT_INVALID;
          const text = error instanceof Error ? error.message : String(error);
          reply = { type: 'nack', version: message.version, nonce: message.nonce, error: { code: code === ErrorCodes.SNAPSHOT_INVALID ? code : ErrorCodes.SNAPSHOT_INVALID, message: text } };
        }
        if (this.connection === connection) this.send(connection, reply);
      }
    } finally {
      this.applying = false;
    }
  }

  private send(connection: Connection, message: ProxyMessage): void {
    const stream = connection.stream;
    if (stream.destroyed || !stream.writable) return;
    try {
      stream.write(`${JSON.stringify(message)}\n`);
    } catch (error) {
      this.options.logger.debug({ err: error }, 'writing to the config stream failed');
    }
  }
}
