// One view of the mesh from any control-plane replica: its own proxies and traffic, merged with what the other replicas hold, and the answers it gives them.
//
// Each proxy keeps one config stream, to one replica, and pushes its
// telemetry and tap events there. A replica alone therefore knows only its
// share of the proxies. To answer `weft status`, `weft top`, `weft tap` and
// the dashboard for the whole mesh, the replica asked asks the others (found
// through the store, replicas.ts) over their stream ports and merges: proxy
// lists, traffic windows (summed per proxy before rates are worked out,
// telemetry/aggregator.ts), and tap streams. A replica that cannot be asked
// is named in the answer's `replicas`; the view is then partial, not wrong.
import type http2 from 'node:http2';
import type { ProxyStatus, ReplicaStatus } from '../api/stream.ts';
import type { ServiceTraffic, TopologyTraffic } from '../api/topology.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Clock } from '../telemetry/clock.ts';
import type { TapHub } from './api/tap.ts';
import { REPLICA_HEADER, type PeerClient } from './peers.ts';
import type { Replica } from './replicas.ts';
import { parseWindow, type SeriesCounts, type TelemetryAggregator, type TrafficWindow } from './telemetry/aggregator.ts';

/** How long a fetched peer proxy list, or a peer's answer about traffic, serves before the next question asks again. */
const PEER_LIST_FRESH_MS = 1000;

export interface MeshViewOptions {
  /** This replica's name and stream URL. */
  self: Replica;
  /** The other replicas now (replicas.ts); absent on a store that one control plane owns. */
  peers?: (() => Replica[]) | undefined;
  client?: PeerClient | undefined;
  /** The proxies connected to this replica (stream-server.ts). */
  localProxies: () => ProxyStatus[];
  telemetry: TelemetryAggregator;
  clock: Clock;
  logger: Logger;
}

interface PeerList {
  proxies: ProxyStatus[];
  at: number;
  error?: string;
}

export class MeshView {
  private readonly options: MeshViewOptions;
  private readonly lists = new Map<string, PeerList>();
  /** The other replicas' answers to one traffic question, shared by every asker within PEER_LIST_FRESH_MS (open dashboards poll). */
  private readonly asked = new Map<string, { at: number; answer: Promise<{ answers: unknown[]; failed: string[] }> }>();
  private refreshing: Promise<void> | undefined;
  private tap: TapHub | undefined;

  constructor(options: MeshViewOptions) {
    this.options = options;
  }

  get self(): string {
    return this.options.self.name;
  }

  /** The tap hub answers other replicas' taps (it needs this view, this view needs it: set after both exist). */
  attachTap(tap: TapHub): void {
    this.tap = tap;
  }

  private peers(): Replica[] {
    return this.options.peers?.() ?? [];
  }

  /**
   * Every proxy any replica knows, each marked with the replica holding its
   * stream; the last lists fetched from the others (see refresh). A proxy
   * that moved appears on both (disconnected on the one it left): the
   * connected entry wins, else the one seen last.
   */
  proxies(): ProxyStatus[] {
    const byId = new Map<string, ProxyStatus>();
    const self = this.options.self.name;
    const consider = (proxy: ProxyStatus) => {
      const known = byId.get(proxy.id);
      if (!known || (proxy.connected && !known.connected) || (proxy.connected === known.connected && proxy.lastSeen > known.lastSeen)) byId.set(proxy.id, proxy);
    };
    for (const proxy of this.options.localProxies()) consider({ ...proxy, replica: self });
    const live = new Set(this.peers().map((p) => p.name));
    for (const [name, list] of this.lists) if (live.has(name)) for (const proxy of list.proxies) consider({ ...proxy, replica: name });
    return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Asks every other replica for its proxies, unless asked within the last second; concurrent callers share one round. */
  refresh(): Promise<void> {
    const peers = this.peers();
    const client = this.options.client;
    for (const name of this.lists.keys()) if (!peers.some((p) => p.name === name)) this.lists.delete(name);
    if (!client || peers.length === 0) return Promise.resolve();
    const now = this.options.clock.now();
    if (peers.every((p) => (this.lists.get(p.name)?.at ?? -Infinity) > now - PEER_LIST_FRESH_MS)) return Promise.resolve();
    this.refreshing ??= Promise.all(
      peers.map(async (peer) => {
        try {
          const proxies = await client.getJson<ProxyStatus[]>(peer, 'proxies');
          this.lists.set(peer.name, { proxies: Array.isArray(proxies) ? proxies.filter(isProxyStatus) : [], at: this.options.clock.now() });
        } catch (error) {
          // Its proxies drop out of the view rather than show a stale state; `replicas` says why.
          this.lists.set(peer.name, { proxies: [], at: this.options.clock.now(), error: (error as Error).message });
          this.options.logger.warn({ err: error, replica: peer.name }, 'could not ask another control-plane replica for its proxies');
        }
      }),
    ).then(
      () => {
        this.refreshing = undefined;
      },
      () => {
        this.refreshing = undefined;
      },
    );
    return this.refreshing;
  }

  /** Every replica, this one first, as last asked. */
  replicas(): ReplicaStatus[] {
    const self = this.options.self;
    const mine = this.options.localProxies().filter((p) => p.connected).length;
    const statuses: ReplicaStatus[] = [{ name: self.name, stream: self.stream, self: true, reachable: true, proxies: mine }];
    for (const peer of this.peers().sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const list = this.lists.get(peer.name);
      statuses.push({
        name: peer.name,
        stream: peer.stream,
        self: false,
        reachable: list !== undefined && list.error === undefined,
        ...(list?.error !== undefined ? { error: list.error } : list === undefined ? { error: 'not asked yet' } : {}),
        proxies: list?.proxies.filter((p) => p.connected).length ?? 0,
      });
    }
    return statuses;
  }

  /** The mesh's traffic over `window`: this replica's reports merged with every other's. */
  async topology(window: string): Promise<TopologyTraffic> {
    const windowMs = parseWindow(window);
    const others = windowMs === undefined ? { answers: [], failed: [] } : await this.askAll<TrafficWindow>(`traffic?window=${encodeURIComponent(window)}`);
    const topology = this.options.telemetry.topology(window, others.answers);
    return others.failed.length > 0 ? { ...topology, partial: others.failed } : topology;
  }

  /** One Service's traffic, merged likewise; the other replicas count its series up to this replica's end. */
  async service(namespace: string, name: string, window: string): Promise<ServiceTraffic> {
    const windowMs = parseWindow(window);
    if (windowMs === undefined) return this.options.telemetry.service(namespace, name, window);
    const end = this.options.telemetry.seriesEnd();
    const query = `namespace=${encodeURIComponent(namespace)}&name=${encodeURIComponent(name)}&window=${encodeURIComponent(window)}&end=${end}`;
    const others = await this.askAll<{ window: TrafficWindow; series: SeriesCounts }>(`service?${query}`);
    const traffic = this.options.telemetry.service(namespace, name, window, {
      windows: others.answers.map((a) => a.window),
      series: others.answers.map((a) => a.series),
    });
    return others.failed.length > 0 ? { ...traffic, partial: others.failed } : traffic;
  }

  /** Every other replica's answer to `path`, asked at most once a second; those that fail are named, and left out. */
  private askAll<T>(path: string): Promise<{ answers: T[]; failed: string[] }> {
    const now = this.options.clock.now();
    for (const [key, entry] of this.asked) if (entry.at <= now - PEER_LIST_FRESH_MS) this.asked.delete(key);
    let entry = this.asked.get(path);
    if (!entry) this.asked.set(path, (entry = { at: now, answer: this.askAllNow(path) }));
    return entry.answer as Promise<{ answers: T[]; failed: string[] }>;
  }

  private async askAllNow(path: string): Promise<{ answers: unknown[]; failed: string[] }> {
    const client = this.options.client;
    const peers = this.peers();
    if (!client || peers.length === 0) return { answers: [], failed: [] };
    const results = await Promise.allSettled(peers.map((peer) => client.getJson<unknown>(peer, path)));
    const answers: unknown[] = [];
    const failed: string[] = [];
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') answers.push(result.value);
      else {
        failed.push(`${peers[i]!.name}: ${(result.reason as Error).message}`);
        this.options.logger.warn({ err: result.reason, replica: peers[i]!.name }, 'another control-plane replica did not answer for the traffic view');
      }
    });
    return { answers, failed };
  }

  /** Answers another replica (stream-server.ts has checked that it is one): `path` is what follows PEER_PATH_PREFIX. */
  answerPeer(stream: http2.ServerHttp2Stream, path: string, headers: http2.IncomingHttpHeaders): void {
    const meant = headers[REPLICA_HEADER];
    if (meant !== this.options.self.name) {
      // The asker reached another replica than it meant (an address that is not this one's from its host): answering would mix this one's proxies into the wrong replica's share.
      return sendJson(stream, 421, { message: `this is control-plane replica ${this.options.self.name}, not ${String(meant)}: check its --advertise-address` });
    }
    const url = new URL(path, 'http://peer.invalid/');
    const params = url.searchParams;
    const telemetry = this.options.telemetry;
    switch (url.pathname) {
      case '/proxies':
        return sendJson(stream, 200, this.options.localProxies());
      case '/traffic': {
        const windowMs = parseWindow(params.get('window') ?? '');
        if (windowMs === undefined) return sendJson(stream, 400, { message: 'window must be a duration like 5m' });
        return sendJson(stream, 200, telemetry.window(windowMs));
      }
      case '/service': {
        const windowMs = parseWindow(params.get('window') ?? '');
        const end = Number(params.get('end'));
        const namespace = params.get('namespace');
        const name = params.get('name');
        if (windowMs === undefined || !Number.isFinite(end) || !namespace || !name) return sendJson(stream, 400, { message: 'namespace, name, window and end are required' });
        return sendJson(stream, 200, { window: telemetry.window(windowMs), series: telemetry.seriesCounts(namespace, name, windowMs, end) });
      }
      case '/tap':
        if (!this.tap) return sendJson(stream, 404, { message: 'this replica runs no tap' });
        return this.tap.servePeer(stream, params);
      default:
        return sendJson(stream, 404, { message: `no such path ${url.pathname}` });
    }
  }
}

function sendJson(stream: http2.ServerHttp2Stream, status: number, body: unknown): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': status, 'content-type': 'application/json', 'cache-control': 'no-store' });
  stream.end(JSON.stringify(body));
}

function isProxyStatus(value: unknown): value is ProxyStatus {
  const p = value as Partial<ProxyStatus> | null;
  return typeof p === 'object' && p !== null && typeof p.id === 'string' && typeof p.connected === 'boolean' && typeof p.lastSeen === 'string' && typeof p.namespace === 'string';
}
