// GET /weft/v1/events: Server-Sent Events for live views: every object change and every proxy status change.
//
// A client gets, in order: `proxies` (the proxy list), then `sync` (every
// object and the store revision it reflects), then `change` for each write
// after that revision and `proxies` whenever a proxy's status changes. Each
// `sync` and `change` carries the revision as its event id, so a reconnecting
// EventSource (which sends Last-Event-ID) resumes where it stopped; when the
// store no longer has the events since then, the client gets a fresh `sync`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, isWeftError } from '../../api/errors.ts';
import { groupOf } from '../../api/meta.ts';
import { KINDS } from '../../api/resources.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { stableJson } from '../store/canonical.ts';
import type { Store, WatchEvent } from '../store/types.ts';

export const EVENTS_PATH = '/weft/v1/events';

export interface EventsOptions {
  store: Store;
  logger: Logger;
  proxies: () => ProxyStatus[];
  /** The namespaces a namespaced API token sees: only their objects (and cluster-scoped ones) and proxies are sent. Absent: all. */
  visible?: ((namespace: string) => boolean) | undefined;
  /** Brings the proxy list of other control-plane replicas up to date (mesh-view.ts); called before each comparison. */
  refreshProxies?: (() => Promise<void>) | undefined;
  /** How often the proxy list is compared with what was last sent. Default 500 ms. */
  proxyPollMs?: number;
  /** A comment line this often keeps idle connections (and proxies in between) from timing out. Default 15 s. */
  keepAliveMs?: number;
}

/** The `change` event's data: Kubernetes watch vocabulary. */
export interface ObjectChange {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: unknown;
}

/** Compared without lastSeen: it moves with every heartbeat and would resend the list every few seconds for nothing. */
function proxiesFingerprint(proxies: readonly ProxyStatus[]): string {
  return stableJson(proxies.map(({ lastSeen: _lastSeen, ...rest }) => rest));
}

/** Only what the REST API serves: the store also keeps internal records (bootstrap tokens) that no client may see. */
const SERVED = new Set(KINDS.map((k) => `${k.group}/${k.kind}`));
function isServed(object: { apiVersion: string; kind: string }): boolean {
  return SERVED.has(`${groupOf(object.apiVersion)}/${object.kind}`);
}

/**
 * A Secret's values stay on the server: live views get the keys, each with
 * "(redacted)". Reading one on purpose is a GET of the Secret, which an
 * authorisation layer can refuse; a dashboard left open should not hold them.
 */
function redacted<T extends { apiVersion: string; kind: string; spec?: unknown }>(object: T): T {
  if (object.kind !== 'Secret' || groupOf(object.apiVersion) !== '') return object;
  const copy = structuredClone(object);
  // Stored under spec (KindInfo.topLevelFields); checked at the top too, in case a store keeps them there.
  for (const holder of [copy as Record<string, unknown>, copy.spec as Record<string, unknown> | undefined]) {
    for (const field of ['data', 'stringData']) {
      const values = holder?.[field];
      if (holder && values && typeof values === 'object') holder[field] = Object.fromEntries(Object.keys(values).map((k) => [k, '(redacted)']));
    }
  }
  return copy;
}

function resumeRevision(req: IncomingMessage, url: URL): number | undefined {
  const raw = req.headers['last-event-id'] ?? url.searchParams.get('since') ?? undefined;
  if (raw === undefined || Array.isArray(raw) || raw === '') return undefined;
  const revision = Number(raw);
  return Number.isSafeInteger(revision) && revision >= 0 ? revision : undefined;
}

export function handleEvents(req: IncomingMessage, res: ServerResponse, url: URL, options: EventsOptions): void {
  const { store, logger } = options;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // Tells buffering reverse proxies (nginx) to pass events on as they come.
    'x-accel-buffering': 'no',
  });
  res.write('retry: 2000\n\n');

  let closed = false;
  let stopWatch: (() => void) | undefined;
  const send = (event: string, data: unknown, id?: number) => {
    if (closed || res.writableEnded) return;
    res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };

  const visible = options.visible;
  const shown = (object: { apiVersion: string; kind: string; metadata: { namespace?: string | undefined } }) =>
    isServed(object) && (visible === undefined || object.metadata.namespace === undefined || visible(object.metadata.namespace));
  let lastProxies = '';
  const sendProxiesIfChanged = () => {
    const proxies = visible ? options.proxies().filter((p) => visible(p.namespace)) : options.proxies();
    const fingerprint = proxiesFingerprint(proxies);
    if (fingerprint === lastProxies) return;
    lastProxies = fingerprint;
    send('proxies', proxies);
  };

  const onEvent = (event: WatchEvent) => {
    if (!shown(event.object)) return;
    let type: ObjectChange['type'];
    if (event.type === 'delete') type = 'DELETED';
    else type = event.previous ? 'MODIFIED' : 'ADDED';
    send('change', { type, object: redacted(event.object) } satisfies ObjectChange, event.revision);
  };

  const follow = (fromRevision: number) => {
    stopWatch?.();
    stopWatch = store.watch(fromRevision, onEvent, (error) => {
      if (closed) return;
      // Compacted away (or the store hiccuped): start over with a full list rather than leave the client with holes.
      logger.debug({ err: error, expired: isWeftError(error, ErrorCodes.CONFLICT) }, 'events watch ended; sending a fresh sync');
      stopWatch?.();
      stopWatch = undefined;
      syncThenFollow();
    });
  };

  const syncThenFollow = () => {
    store.list().then(
      ({ items, revision }) => {
        if (closed) return;
        send('sync', { revision, items: items.filter(shown).map(redacted) }, revision);
        follow(revision);
      },
      (error: unknown) => {
        logger.warn({ err: error }, 'events: listing the store failed');
        send('failure', { message: `cannot list the store: ${(error as Error).message}` });
        res.end();
      },
    );
  };

  sendProxiesIfChanged();
  const resumeFrom = resumeRevision(req, url);
  if (resumeFrom === undefined) syncThenFollow();
  else follow(resumeFrom);

  const refresh = options.refreshProxies;
  const proxyTimer = setInterval(() => {
    if (refresh) refresh().then(sendProxiesIfChanged, () => {});
    else sendProxiesIfChanged();
  }, options.proxyPollMs ?? 500);
  const keepAliveTimer = setInterval(() => {
    if (!closed && !res.writableEnded) res.write(': keep-alive\n\n');
  }, options.keepAliveMs ?? 15_000);
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(proxyTimer);
    clearInterval(keepAliveTimer);
    stopWatch?.();
    stopWatch = undefined;
  };
  res.on('close', cleanup);
  req.on('close', () => {
    if (!res.writableEnded) res.end();
    cleanup();
  });
}
