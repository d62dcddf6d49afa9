// The traffic seam: polls GET /api/v1/topology for the chosen window and keeps a short history per service for the charts.
//
// Until the control plane collects metrics it answers `available: false` (or
// an older one 404): the pages then say "no traffic data yet" and keep asking,
// less often, so that numbers appear on their own once the metrics exist.
import { useEffect, useState } from 'preact/hooks';
import type { TopologyTraffic, TrafficStats } from '../../api/topology.ts';
import { topology } from '../api.ts';

export interface TrafficState {
  data: TopologyTraffic | undefined;
  /** False until the first answer: "loading" rather than "no data". */
  loaded: boolean;
  error: string | undefined;
}

export interface HistoryPoint extends TrafficStats {
  /** Seconds since the epoch (what uPlot plots). */
  t: number;
}

const POLL_MS = 5000;
const POLL_WITHOUT_DATA_MS = 15_000;
const HISTORY_POINTS = 360;

/** Service key ("ns/name") → its recent numbers, as seen while the dashboard was open. */
const history = new Map<string, HistoryPoint[]>();
const historyListeners = new Set<() => void>();

function record(data: TopologyTraffic): void {
  const t = Date.parse(data.generatedAt) / 1000 || Date.now() / 1000;
  for (const s of data.services) {
    const key = `${s.namespace}/${s.service}`;
    const points = history.get(key) ?? [];
    if (points.length && points[points.length - 1]!.t >= t) continue;
    const { namespace: _n, service: _s, ...stats } = s;
    points.push({ t, ...stats });
    if (points.length > HISTORY_POINTS) points.shift();
    history.set(key, points);
  }
  for (const listener of historyListeners) listener();
}

export function historyOf(serviceKey: string): readonly HistoryPoint[] {
  return history.get(serviceKey) ?? [];
}

async function fetchState(window: string): Promise<TrafficState> {
  try {
    const data = await topology(window);
    if (data) record(data);
    return { data, loaded: true, error: undefined };
  } catch (error) {
    return { data: undefined, loaded: true, error: (error as Error).message };
  }
}

/** One answer asked for before the pages load (main.tsx), so that the first drawing need not wait for a round trip after it. */
let early: { window: string; at: number; promise: Promise<TrafficState>; value?: TrafficState } | undefined;
const EARLY_ANSWER_TTL_MS = 3000;

export function prefetchTraffic(window: string): void {
  const entry: NonNullable<typeof early> = { window, at: Date.now(), promise: fetchState(window) };
  entry.promise.then((value) => (entry.value = value));
  early = entry;
}

function takeEarly(window: string): NonNullable<typeof early> | undefined {
  const entry = early;
  if (!entry || entry.window !== window || Date.now() - entry.at > EARLY_ANSWER_TTL_MS) return undefined;
  return entry;
}

/** Polls while the calling page is shown; every page shares the one history. */
export function useTraffic(window: string): TrafficState {
  const [state, setState] = useState<TrafficState>(() => takeEarly(window)?.value ?? { data: undefined, loaded: false, error: undefined });
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async (first: boolean) => {
      const reuse = first ? takeEarly(window) : undefined;
      if (reuse) early = undefined;
      const next = reuse ? await reuse.promise : await fetchState(window);
      if (stopped) return;
      setState(next);
      timer = setTimeout(() => void poll(false), next.data ? POLL_MS : POLL_WITHOUT_DATA_MS);
    };
    void poll(true);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [window]);
  return state;
}

/** Re-renders the caller whenever a poll added history. */
export function useHistoryVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const listener = () => setVersion((v) => v + 1);
    historyListeners.add(listener);
    return () => {
      historyListeners.delete(listener);
    };
  }, []);
  return version;
}
