// The live view of the mesh: one EventSource on /weft/v1/events keeps every object and the proxy list current; pages subscribe to it.
import { useEffect, useState } from 'preact/hooks';
import type { Resource } from '../api/meta.ts';
import type { ProxyStatus } from '../api/stream.ts';
import { keyOf } from './model.ts';

/** 'signed-out': the API asks for a token this browser has not given (the control plane's --api-token-file). */
export type Connection = 'connecting' | 'live' | 'reconnecting' | 'signed-out';

export interface LiveState {
  connection: Connection;
  /** False until the first full list arrived: pages show "loading" rather than "nothing". */
  synced: boolean;
  revision: number;
  /** Replaced (never mutated) on every change, so that pages can memoise on its identity. */
  objects: ReadonlyMap<string, Resource>;
  proxies: readonly ProxyStatus[];
  proxiesSynced: boolean;
}

interface ChangeEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Resource;
}

let state: LiveState = { connection: 'connecting', synced: false, revision: 0, objects: new Map(), proxies: [], proxiesSynced: false };
const listeners = new Set<(s: LiveState) => void>();
let source: EventSource | undefined;
let pendingObjects: Map<string, Resource> | undefined;
let flushTimer: ReturnType<typeof setTimeout> | undefined;

function publish(next: LiveState): void {
  state = next;
  for (const listener of listeners) listener(state);
}

/** Bursts of changes (a status pass touches every route) become one re-render. */
function scheduleFlush(): void {
  flushTimer ??= setTimeout(() => {
    flushTimer = undefined;
    if (pendingObjects) {
      const objects = pendingObjects;
      pendingObjects = undefined;
      publish({ ...state, objects });
    }
  }, 30);
}

function mutableObjects(): Map<string, Resource> {
  pendingObjects ??= new Map(state.objects);
  return pendingObjects;
}

function parse<T>(event: Event): T | undefined {
  try {
    return JSON.parse((event as MessageEvent<string>).data) as T;
  } catch {
    return undefined;
  }
}

export function connect(url = '/weft/v1/events'): void {
  if (source) return;
  source = new EventSource(url);
  source.addEventListener('open', () => publish({ ...state, connection: 'live' }));
  // EventSource reconnects by itself, sending the last revision it saw (Last-Event-ID).
  source.addEventListener('error', () => {
    publish({ ...state, connection: 'reconnecting' });
    // An answer other than 200 closes an EventSource for good; a 401 means the API wants a token.
    if (source?.readyState === EventSource.CLOSED) void checkSignedOut();
  });
  source.addEventListener('sync', (event) => {
    const data = parse<{ revision: number; items: Resource[] }>(event);
    if (!data) return;
    if (!state.synced) performance.mark('weft:first-sync');
    pendingObjects = new Map(data.items.map((o) => [keyOf(o), o]));
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = undefined;
    const objects = pendingObjects;
    pendingObjects = undefined;
    publish({ ...state, objects, revision: data.revision, synced: true, connection: 'live' });
  });
  source.addEventListener('change', (event) => {
    const change = parse<ChangeEvent>(event);
    if (!change) return;
    const objects = mutableObjects();
    const key = keyOf(change.object);
    if (change.type === 'DELETED') objects.delete(key);
    else objects.set(key, change.object);
    state = { ...state, revision: Number((event as MessageEvent).lastEventId) || state.revision };
    scheduleFlush();
  });
  source.addEventListener('proxies', (event) => {
    const proxies = parse<ProxyStatus[]>(event);
    if (proxies) publish({ ...state, proxies, proxiesSynced: true });
  });
}

export function current(): LiveState {
  return state;
}

/** The live state in a component; re-renders on every published change. */
export function useLive(): LiveState {
  const [value, setValue] = useState(state);
  useEffect(() => {
    listeners.add(setValue);
    if (value !== state) setValue(state);
    return () => {
      listeners.delete(setValue);
    };
  }, []);
  return value;
}

/** Whether the stream was refused for want of an API token: then the app shows its sign-in form. */
async function checkSignedOut(): Promise<void> {
  try {
    const response = await fetch('/weft/v1/session', { headers: { accept: 'application/json' } });
    const session = (await response.json()) as { tokenRequired?: boolean; signedIn?: boolean };
    if (session.tokenRequired === true && session.signedIn !== true) publish({ ...state, connection: 'signed-out' });
  } catch {
    // The control plane is unreachable: the connection state already says so.
  }
}
