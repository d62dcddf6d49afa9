// GET /api/v1/tap: a live stream (NDJSON) of request summaries from the proxies of one workload or service, fanned in over their config streams.
//
// Why the config stream and not the proxies' admin ports: the control plane
// already holds an authenticated stream to every proxy, including those on
// other hosts whose admin binds loopback only (the same reason telemetry is
// pushed). A tap is a `tap-start` down each stream and `tap` batches up;
// the client going away sends `tap-stop` to each. Opt-in: only proxies whose
// template Workload carries `weft.dev/tap: enabled` are asked.
import type { ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { ErrorCodes } from '../../api/errors.ts';
import type { ControlMessage, ProxyMessage, ProxyStatus } from '../../api/stream.ts';
import { TAP_ANNOTATION, TAP_LIMITS, tapFilterProblem, type TapFilter, type TapLine } from '../../api/tap.ts';
import type { CompilerInput } from '../../compiler/types.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { ApiError } from './status.ts';

export { TAP_PATH } from '../../api/tap.ts';

/** The label instances carry naming their template Workload (stream-server.ts). */
const WORKLOAD_LABEL = 'weft.dev/workload';
/** Past this much unsent output a slow client loses events (counted) rather than the control plane buffering them. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export interface TapHubOptions {
  logger: Logger;
  /** Every proxy of the mesh, each marked with the replica holding its stream (mesh-view.ts). */
  proxies: () => ProxyStatus[];
  input: () => CompilerInput;
  /** Sends a control message on a proxy's config stream; false when it has none now. */
  send: (proxyId: string, message: ControlMessage) => boolean;
  /** This replica's name: proxies marked with another are tapped through that replica. */
  self?: string | undefined;
  /**
   * Opens a tap on another replica for some of its proxies (`query` names
   * them, with the filter): its lines go to `onLine`, `onEnd` once when it
   * ends. Returns a function that stops it.
   */
  peerTap?: ((replica: string, query: URLSearchParams, onLine: (line: TapLine) => void, onEnd: (error?: Error) => void) => () => void) | undefined;
}

export interface TapTarget {
  kind: 'workload' | 'service';
  namespace: string;
  name: string;
}

type TapSkip = { proxy?: string; workload?: string; reason: string };

interface TapClient {
  readonly id: string;
  /** The proxies of this replica still tapping. */
  readonly proxies: Set<string>;
  /** The other replicas' parts still running, with what stops each. */
  readonly peers: Map<string, () => void>;
  remaining: number;
  write(line: TapLine): void;
  end(reason: string): void;
}

/** Where a tap's lines go: a client's HTTP/1.1 response, or another replica's HTTP/2 stream. */
interface TapSink {
  write(text: string): void;
  end(): void;
  readonly buffered: number;
  readonly gone: boolean;
  onClose(listener: () => void): void;
}

/** A client's HTTP/1.1 response, or another replica's HTTP/2 stream. */
function sinkOf(writable: Writable): TapSink {
  return {
    write: (text) => writable.write(text),
    end: () => writable.end(),
    get buffered() {
      return writable.writableLength;
    },
    get gone() {
      return writable.destroyed;
    },
    onClose: (listener) => writable.once('close', listener),
  };
}

const NDJSON_HEADERS = { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } as const;
/** How long a tap waits for other replicas to say which of their proxies started. */
const PEER_START_TIMEOUT_MS = 3000;

/** The filter and event budget of a tap request (the client's, or another replica's). */
function parseTapQuery(params: URLSearchParams): { filter: TapFilter; max: number } {
  const filter: TapFilter = {};
  const pathPrefix = params.get('pathPrefix');
  if (pathPrefix) filter.pathPrefix = pathPrefix;
  const method = params.get('method');
  if (method) filter.method = method.toUpperCase();
  const status = params.get('status');
  if (status) filter.status = status;
  const direction = params.get('direction');
  if (direction) filter.direction = direction as 'inbound' | 'outbound';
  const shown = params.getAll('showHeader').flatMap((h) => h.split(',')).map((h) => h.trim().toLowerCase()).filter(Boolean);
  if (shown.length > 0) filter.showHeaders = shown;
  const problem = tapFilterProblem(filter);
  if (problem) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, problem);
  const maxText = params.get('max');
  const max = maxText ? Number(maxText) : TAP_LIMITS.maxEvents;
  if (!Number.isInteger(max) || max < 1 || max > TAP_LIMITS.maxEvents) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `max must be a whole number from 1 to ${TAP_LIMITS.maxEvents}`);
  return { filter, max };
}

/** The same filter as query parameters, for another replica. */
function tapQuery(filter: TapFilter, max: number, proxies: readonly string[]): URLSearchParams {
  const query = new URLSearchParams();
  if (filter.pathPrefix) query.set('pathPrefix', filter.pathPrefix);
  if (filter.method) query.set('method', filter.method);
  if (filter.status) query.set('status', filter.status);
  if (filter.direction) query.set('direction', filter.direction);
  if (filter.showHeaders?.length) query.set('showHeader', filter.showHeaders.join(','));
  query.set('max', String(max));
  for (const proxy of proxies) query.append('proxy', proxy);
  return query;
}

/** "name", "workload/name", "deploy/name", "svc/name", "service/name"; the kind is found when not named. */
export function parseTapTarget(text: string, namespace: string): TapTarget | { name: string; namespace: string } {
  const slash = text.indexOf('/');
  if (slash === -1) return { name: text, namespace };
  const kind = text.slice(0, slash).toLowerCase();
  const name = text.slice(slash + 1);
  if (['workload', 'workloads', 'wl', 'deploy', 'deployment'].includes(kind)) return { kind: 'workload', namespace, name };
  if (['service', 'services', 'svc'].includes(kind)) return { kind: 'service', namespace, name };
  throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, `target "${text}": the kind must be workload/ or svc/ (or none)`);
}

export class TapHub {
  private readonly options: TapHubOptions;
  private readonly clients = new Map<string, TapClient>();

  constructor(options: TapHubOptions) {
    this.options = options;
  }

  get running(): number {
    return this.clients.size;
  }

  /** Which proxies a target's tap goes to, and which it leaves out and why. */
  resolve(target: TapTarget | { name: string; namespace: string }): { target: TapTarget; proxies: string[]; skipped: { proxy?: string; workload?: string; reason: string }[] } {
    const input = this.options.input();
    const { namespace, name } = target;
    const templates = input.workloads.filter((w) => w.metadata.namespace === namespace && w.metadata.labels?.[WORKLOAD_LABEL] === undefined);
    let kind = 'kind' in target ? target.kind : undefined;
    if (kind === undefined) {
      if (templates.some((w) => w.metadata.name === name)) kind = 'workload';
      else if (input.services.some((s) => s.metadata.namespace === namespace && s.metadata.name === name)) kind = 'service';
      else throw new ApiError(404, 'NotFound', ErrorCodes.NOT_FOUND, `no Workload or Service "${name}" in namespace "${namespace}"`);
    }
    let workloads: string[];
    if (kind === 'workload') {
      workloads = [name];
    } else {
      const service = input.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
      if (!service) throw new ApiError(404, 'NotFound', ErrorCodes.NOT_FOUND, `no Service "${name}" in namespace "${namespace}"`);
      const selector = (service.spec as { selector?: Record<string, string> }).selector;
      const names = new Set<string>();
      if (selector && Object.keys(selector).length > 0) {
        for (const w of input.workloads) {
          if (w.metadata.namespace !== namespace) continue;
          const labels = w.metadata.labels ?? {};
          if (Object.entries(selector).every(([k, v]) => labels[k] === v)) names.add(labels[WORKLOAD_LABEL] ?? w.metadata.name);
        }
      }
      workloads = [...names].sort();
    }
    const proxies: string[] = [];
    const skipped: { proxy?: string; workload?: string; reason: string }[] = [];
    const connected = this.options.proxies().filter((p) => p.connected && p.namespace === namespace);
    for (const workload of workloads) {
      const template = templates.find((w) => w.metadata.name === workload);
      const mine = connected.filter((p) => p.workload === workload);
      if (template?.metadata.annotations?.[TAP_ANNOTATION] !== 'enabled') {
        skipped.push({ workload: `${namespace}/${workload}`, reason: `tap is not enabled: annotate the Workload with ${TAP_ANNOTATION}: enabled` });
        continue;
      }
      if (mine.length === 0) skipped.push({ workload: `${namespace}/${workload}`, reason: 'no proxy of this workload is connected' });
      for (const proxy of mine) proxies.push(proxy.id);
    }
    return { target: { kind, namespace, name }, proxies, skipped };
  }

  /** A `tap` message from a proxy: its events go to the client that asked, if that proxy was asked. */
  onProxyMessage(proxyId: string, message: Extract<ProxyMessage, { type: 'tap' }>): void {
    const client = this.clients.get(String(message.id));
    if (!client || !client.proxies.has(proxyId)) {
      // A tap this control plane no longer runs (the client left, or a replica restarted): tell the proxy to stop.
      if (client === undefined && typeof message.id === 'string') this.options.send(proxyId, { type: 'tap-stop', id: message.id });
      return;
    }
    if (typeof message.dropped === 'number' && message.dropped > 0) client.write({ type: 'dropped', proxy: proxyId, count: message.dropped });
    for (const event of Array.isArray(message.events) ? message.events : []) {
      if (client.remaining <= 0) break;
      client.remaining--;
      client.write({ type: 'event', ...event, proxy: proxyId });
    }
    if (client.remaining <= 0) {
      client.end('max events reached');
      return;
    }
    if (typeof message.ended === 'string') {
      client.proxies.delete(proxyId);
      this.options.logger.info({ proxy: proxyId, tap: client.id, reason: message.ended }, 'a proxy ended its part of a tap');
      if (client.proxies.size === 0 && client.peers.size === 0) client.end(`every proxy ended the tap: ${message.ended}`);
    }
  }

  /** Serves one GET /api/v1/tap until the client goes away or `max` events were sent. */
  handle(res: ServerResponse, url: URL): void {
    const params = url.searchParams;
    const targetText = params.get('target') ?? '';
    if (!targetText) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, 'target is required: a workload or service, e.g. ?target=svc/catalog');
    const namespace = params.get('namespace') || 'default';
    const { filter, max } = parseTapQuery(params);
    this.checkCapacity();
    const resolved = this.resolve(parseTapTarget(targetText, namespace));
    // A service's tap is what its workloads receive.
    if (resolved.target.kind === 'service' && filter.direction === undefined) filter.direction = 'inbound';
    res.writeHead(200, { ...NDJSON_HEADERS, 'x-accel-buffering': 'no' });
    void this.run(sinkOf(res), resolved.proxies, resolved.skipped, filter, max, `${resolved.target.kind} ${resolved.target.namespace}/${resolved.target.name}`);
  }

  /** Another replica's part of a tap: the proxies it names (`proxy`), which hold their streams here. */
  servePeer(stream: ServerHttp2Stream, params: URLSearchParams): void {
    let query: { filter: TapFilter; max: number };
    try {
      query = parseTapQuery(params);
      this.checkCapacity();
    } catch (error) {
      const status = error instanceof ApiError ? error.httpStatus : 500;
      stream.respond({ ':status': status, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ message: (error as Error).message }));
      return;
    }
    stream.respond({ ':status': 200, ...NDJSON_HEADERS });
    const proxies = params.getAll('proxy');
    void this.run(sinkOf(stream), proxies, [], query.filter, query.max, 'the proxies asked for', { localOnly: true });
  }

  private checkCapacity(): void {
    if (this.clients.size >= TAP_LIMITS.concurrentPerControlPlane) {
      throw new ApiError(429, 'TooManyRequests', ErrorCodes.RATE_LIMITED, `the control plane already serves ${TAP_LIMITS.concurrentPerControlPlane} taps; try again later`);
    }
  }

  /**
   * Runs one tap: `tap-start` down the streams of this replica's proxies,
   * and a tap on each other replica for theirs. The `started` line comes
   * once every replica has said which of its proxies started (or failed to
   * within a few seconds); events that come sooner wait for it.
   */
  private async run(sink: TapSink, proxies: readonly string[], skipped: TapSkip[], filter: TapFilter, max: number, what: string, options: { localOnly?: boolean } = {}): Promise<void> {
    const id = randomBytes(8).toString('hex');
    let ended = false;
    let lost = 0;
    let held: TapLine[] | undefined = [];
    const stop = () => {
      if (!this.clients.delete(id)) return;
      for (const proxy of client.proxies) this.options.send(proxy, { type: 'tap-stop', id });
      for (const stopPeer of client.peers.values()) stopPeer();
      client.peers.clear();
      this.options.logger.info({ tap: id }, 'tap stopped');
    };
    const emit = (line: TapLine) => {
      if (ended || sink.gone) return;
      if (sink.buffered > MAX_BUFFERED_BYTES) {
        lost++;
        return;
      }
      if (lost > 0) {
        sink.write(`${JSON.stringify({ type: 'dropped', proxy: 'control-plane', count: lost } satisfies TapLine)}\n`);
        lost = 0;
      }
      sink.write(`${JSON.stringify(line)}\n`);
    };
    const client: TapClient = {
      id,
      proxies: new Set(),
      peers: new Map(),
      remaining: max,
      write: (line) => {
        if (held && line.type !== 'end') held.push(line);
        else emit(line);
      },
      end: (reason) => {
        if (ended) return;
        if (held) for (const line of held.splice(0)) emit(line);
        held = undefined;
        emit({ type: 'end', reason });
        ended = true;
        stop();
        sink.end();
      },
    };
    this.clients.set(id, client);
    sink.onClose(() => {
      ended = true;
      stop();
    });
    const self = this.options.self;
    const holder = new Map(this.options.proxies().map((p) => [p.id, p.replica] as const));
    const started: string[] = [];
    const remote = new Map<string, string[]>();
    for (const proxy of proxies) {
      const replica = holder.get(proxy);
      if (!options.localOnly && replica !== undefined && replica !== self && this.options.peerTap) {
        remote.set(replica, [...(remote.get(replica) ?? []), proxy]);
        continue;
      }
      if (this.options.send(proxy, { type: 'tap-start', id, filter, eventsPerSecond: TAP_LIMITS.eventsPerSecond })) {
        client.proxies.add(proxy);
        started.push(proxy);
      } else {
        skipped.push({ proxy, reason: 'the proxy is not connected to this control plane' });
      }
    }
    await Promise.all([...remote].map(([replica, ids]) => this.startPeerPart(client, replica, ids, filter, max, started, skipped)));
    if (ended) return;
    this.options.logger.info({ tap: id, target: what, proxies: started }, 'tap started');
    emit({ type: 'started', proxies: started, skipped });
    const early = held ?? [];
    held = undefined;
    for (const line of early) emit(line);
    if (client.proxies.size === 0 && client.peers.size === 0) client.end(`nothing to tap for ${what}`);
  }

  /** Asks `replica` to tap `ids`; resolves once it said which started (or could not be asked). */
  private startPeerPart(client: TapClient, replica: string, ids: string[], filter: TapFilter, max: number, started: string[], skipped: TapSkip[]): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // Too slow to say: its part is stopped, and its proxies are reported as left out.
        starting = false;
        client.peers.get(replica)?.();
        client.peers.delete(replica);
        for (const proxy of ids) skipped.push({ proxy, reason: `control-plane replica ${replica} did not start the tap within ${PEER_START_TIMEOUT_MS} ms` });
        resolve();
      }, PEER_START_TIMEOUT_MS);
      let starting = true;
      const settle = () => {
        starting = false;
        clearTimeout(timer);
        resolve();
      };
      const stopPeer = this.options.peerTap!(
        replica,
        tapQuery(filter, max, ids),
        (line) => {
          if (starting) {
            if (line.type === 'started') {
              started.push(...(Array.isArray(line.proxies) ? line.proxies : []));
              skipped.push(...(Array.isArray(line.skipped) ? line.skipped : []));
              settle();
            }
            return;
          }
          if (line.type === 'event' || line.type === 'dropped') this.relay(client, line);
        },
        (error) => {
          if (starting) {
            for (const proxy of ids) skipped.push({ proxy, reason: error ? error.message : `control-plane replica ${replica} ended the tap before it started` });
            settle();
          }
          if (!client.peers.delete(replica)) return;
          if (error) this.options.logger.warn({ err: error, tap: client.id, replica }, "another replica's part of a tap failed");
          if (client.proxies.size === 0 && client.peers.size === 0) client.end(error ? `control-plane replica ${replica} stopped answering: ${error.message}` : 'every proxy ended the tap');
        },
      );
      client.peers.set(replica, stopPeer);
    });
  }

  /** An event or a drop count from another replica's part, counted against this tap's budget. */
  private relay(client: TapClient, line: TapLine): void {
    if (!this.clients.has(client.id)) return;
    if (line.type === 'dropped') return client.write(line);
    if (client.remaining <= 0) return;
    client.remaining--;
    client.write(line);
    if (client.remaining <= 0) client.end('max events reached');
  }
}
