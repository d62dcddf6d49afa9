// GET /api/v1/tap: a live stream (NDJSON) of request summaries from the proxies of one workload or service, fanned in over their config streams.
//
// Why the config stream and not the proxies' admin ports: the control plane
// already holds an authenticated stream to every proxy, including those on
// other hosts whose admin binds loopback only (the same reason telemetry is
// pushed). A tap is a `tap-start` down each stream and `tap` batches up;
// the client going away sends `tap-stop` to each. Opt-in: only proxies whose
// template Workload carries `weft.dev/tap: enabled` are asked.
import type { ServerResponse } from 'node:http';
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
  proxies: () => ProxyStatus[];
  input: () => CompilerInput;
  /** Sends a control message on a proxy's config stream; false when it has none now. */
  send: (proxyId: string, message: ControlMessage) => boolean;
}

export interface TapTarget {
  kind: 'workload' | 'service';
  namespace: string;
  name: string;
}

interface TapClient {
  readonly id: string;
  readonly proxies: Set<string>;
  remaining: number;
  write(line: TapLine): void;
  end(reason: string): void;
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
      if (client.proxies.size === 0) client.end(`every proxy ended the tap: ${message.ended}`);
    }
  }

  /** Serves one GET /api/v1/tap until the client goes away or `max` events were sent. */
  handle(res: ServerResponse, url: URL): void {
    const params = url.searchParams;
    const targetText = params.get('target') ?? '';
    if (!targetText) throw new ApiError(400, 'BadRequest', ErrorCodes.BAD_REQUEST, 'target is required: a workload or service, e.g. ?target=svc/catalog');
    const namespace = params.get('namespace') || 'default';
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
    if (this.clients.size >= TAP_LIMITS.concurrentPerControlPlane) {
      throw new ApiError(429, 'TooManyRequests', ErrorCodes.RATE_LIMITED, `the control plane already serves ${TAP_LIMITS.concurrentPerControlPlane} taps; try again later`);
    }
    const resolved = this.resolve(parseTapTarget(targetText, namespace));
    // A service's tap is what its workloads receive.
    if (resolved.target.kind === 'service' && filter.direction === undefined) filter.direction = 'inbound';

    res.writeHead(200, {
      'content-type': 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-accel-buffering': 'no',
    });
    const id = randomBytes(8).toString('hex');
    let ended = false;
    let lost = 0;
    const stop = () => {
      if (!this.clients.delete(id)) return;
      for (const proxy of client.proxies) this.options.send(proxy, { type: 'tap-stop', id });
      this.options.logger.info({ tap: id, target: resolved.target }, 'tap stopped');
    };
    const client: TapClient = {
      id,
      proxies: new Set(),
      remaining: max,
      write: (line) => {
        if (ended || res.destroyed) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          lost++;
          return;
        }
        if (lost > 0) {
          res.write(`${JSON.stringify({ type: 'dropped', proxy: 'control-plane', count: lost } satisfies TapLine)}\n`);
          lost = 0;
        }
        res.write(`${JSON.stringify(line)}\n`);
      },
      end: (reason) => {
        if (ended) return;
        client.write({ type: 'end', reason });
        ended = true;
        stop();
        res.end();
      },
    };
    this.clients.set(id, client);
    res.once('close', () => {
      ended = true;
      stop();
    });
    const started: string[] = [];
    for (const proxy of resolved.proxies) {
      if (this.options.send(proxy, { type: 'tap-start', id, filter, eventsPerSecond: TAP_LIMITS.eventsPerSecond })) {
        client.proxies.add(proxy);
        started.push(proxy);
      } else {
        resolved.skipped.push({ proxy, reason: 'the proxy is not connected to this control plane' });
      }
    }
    this.options.logger.info({ tap: id, target: resolved.target, proxies: started }, 'tap started');
    client.write({ type: 'started', proxies: started, skipped: resolved.skipped });
    if (started.length === 0) client.end(`nothing to tap for ${resolved.target.kind} ${resolved.target.namespace}/${resolved.target.name}`);
  }
}
