// Live traffic: the tap stream (GET /api/v1/tap) of one workload or service, with filters, newest request first.
import { Fragment } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { TapEvent, TapLine } from '../../api/tap.ts';
import { ApiFailure, tap, type TapQuery } from '../api.ts';
import { useLive } from '../live.ts';
import { namespacesOf, partition } from '../model.ts';
import { href, type Route } from '../router.ts';

/** Rows kept on screen; older ones scroll away. */
const MAX_ROWS = 200;
/** Lines are gathered and drawn at most this often, however fast they come. */
const DRAW_EVERY_MS = 250;
/** The annotation a Workload needs before its proxies may be tapped (api/tap.ts; the dashboard takes only types from src/api). */
const TAP_ANNOTATION = 'weft.dev/tap';

interface Row extends TapEvent {
  seq: number;
}

interface TapState {
  running: boolean;
  note: string | undefined;
  error: string | undefined;
  proxies: string[];
  skipped: { proxy?: string; workload?: string; reason: string }[];
  dropped: number;
  seen: number;
}

const IDLE: TapState = { running: false, note: undefined, error: undefined, proxies: [], skipped: [], dropped: 0, seen: 0 };

export function TrafficPage({ route, namespace: headerNamespace }: { route: Extract<Route, { page: 'traffic' }>; namespace: string | undefined }) {
  const live = useLive();
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
  const namespaces = useMemo(() => namespacesOf(live.objects.values()), [live.objects]);
  const [namespace, setNamespace] = useState(route.namespace ?? headerNamespace ?? 'default');
  const [target, setTarget] = useState(route.target ?? '');
  const [pathPrefix, setPathPrefix] = useState('');
  const [method, setMethod] = useState('');
  const [status, setStatus] = useState('');
  const [showHeaders, setShowHeaders] = useState('');
  const [rows, setRows] = useState<Row[]>([]);
  const [state, setState] = useState<TapState>(IDLE);
  const controller = useRef<AbortController | undefined>(undefined);

  const targets = useMemo(() => {
    const services = objects.services.filter((s) => s.metadata.namespace === namespace).map((s) => ({ value: `svc/${s.metadata.name}`, label: `Service ${s.metadata.name}`, enabled: undefined as boolean | undefined }));
    const workloads = objects.workloads
      .filter((w) => w.metadata.namespace === namespace)
      .map((w) => ({ value: `workload/${w.metadata.name}`, label: `Workload ${w.metadata.name}`, enabled: w.metadata.annotations?.[TAP_ANNOTATION] === 'enabled' }));
    return [...services, ...workloads];
  }, [objects, namespace]);

  const stop = () => {
    controller.current?.abort();
    controller.current = undefined;
    setState((s) => ({ ...s, running: false }));
  };

  const start = (query: TapQuery) => {
    controller.current?.abort();
    const abort = new AbortController();
    controller.current = abort;
    setRows([]);
    setState({ ...IDLE, running: true, note: `Connecting to the proxies of ${query.target}…` });
    let pending: Row[] = [];
    let seq = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const draw = () => {
      timer = undefined;
      const fresh = pending;
      pending = [];
      // A restarted or stopped tap's last batch must not land in the new table.
      if (fresh.length === 0 || abort.signal.aborted) return;
      setRows((old) => [...fresh.reverse(), ...old].slice(0, MAX_ROWS));
      setState((s) => ({ ...s, seen: s.seen + fresh.length }));
    };
    const onLine = (line: TapLine) => {
      if (abort.signal.aborted) return;
      switch (line.type) {
        case 'event': {
          const { type: _type, ...event } = line;
          pending.push({ ...event, seq: seq++ });
          timer ??= setTimeout(draw, DRAW_EVERY_MS);
          return;
        }
        case 'started':
          setState((s) => ({
            ...s,
            proxies: line.proxies,
            skipped: line.skipped,
            note: line.proxies.length ? `Tapping ${line.proxies.length} ${line.proxies.length === 1 ? 'proxy' : 'proxies'}: ${line.proxies.join(', ')}` : 'Nothing to tap.',
          }));
          return;
        case 'dropped':
          setState((s) => ({ ...s, dropped: s.dropped + line.count }));
          return;
        case 'end':
          draw();
          setState((s) => ({ ...s, running: false, note: `${s.note ?? ''} The tap ended: ${line.reason}.`.trim() }));
      }
    };
    tap(query, onLine, abort.signal)
      .then(() => {
        draw();
        setState((s) => ({ ...s, running: false }));
      })
      .catch((error: unknown) => {
        if (abort.signal.aborted) return;
        setState((s) => ({ ...s, running: false, error: error instanceof ApiFailure ? error.status.message : (error as Error).message }));
      });
  };

  const queryOf = (): TapQuery => {
    const query: TapQuery = { target, namespace };
    if (pathPrefix) query.pathPrefix = pathPrefix;
    if (method) query.method = method;
    if (status) query.status = status;
    const shown = showHeaders.split(',').map((h) => h.trim()).filter(Boolean);
    if (shown.length) query.showHeaders = shown;
    return query;
  };

  // A deep link (#/traffic/<ns>/svc/<name>) starts tapping at once; leaving the page stops the tap.
  useEffect(() => {
    if (route.namespace && route.target) {
      setNamespace(route.namespace);
      setTarget(route.target);
      start({ target: route.target, namespace: route.namespace });
    }
    return () => controller.current?.abort();
  }, [route.namespace, route.target]);

  const onSubmit = (e: Event) => {
    e.preventDefault();
    if (!target) return;
    start(queryOf());
  };

  return (
    <div class="page traffic-page">
      <div class="toolbar">
        <h1>Live traffic</h1>
        <span class="muted small">Requests as the proxies see them, from the tap of a workload or service (opt-in: annotate its Workload with {TAP_ANNOTATION}: enabled).</span>
      </div>
      <form class="card form-grid" onSubmit={onSubmit} aria-label="Tap filters">
        <label>
          <span class="label">Namespace</span>
          <select value={namespace} onChange={(e) => setNamespace((e.currentTarget as HTMLSelectElement).value)}>
            {[...new Set([...namespaces, namespace])].map((ns) => (
              <option key={ns} value={ns}>
                {ns}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="label">Workload or service</span>
          <select value={target} onChange={(e) => setTarget((e.currentTarget as HTMLSelectElement).value)} required>
            <option value="">Choose…</option>
            {[...new Set([...targets.map((t) => t.value), ...(target ? [target] : [])])].map((value) => {
              const t = targets.find((x) => x.value === value);
              return (
                <option key={value} value={value}>
                  {t?.label ?? value}
                  {t?.enabled === false ? ' (tap not enabled)' : ''}
                </option>
              );
            })}
          </select>
        </label>
        <label>
          <span class="label">Path prefix</span>
          <input type="text" value={pathPrefix} placeholder="/api" onInput={(e) => setPathPrefix((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          <span class="label">Method</span>
          <select value={method} onChange={(e) => setMethod((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Any</option>
            {['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="label">Status</span>
          <input type="text" value={status} placeholder="5xx or 404" size={8} onInput={(e) => setStatus((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          <span class="label">Show headers</span>
          <input type="text" value={showHeaders} placeholder="x-request-id, user-agent" onInput={(e) => setShowHeaders((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <div class="buttons">
          <button type="submit" class="primary" disabled={!target}>
            {state.running ? 'Restart' : 'Start'}
          </button>
          <button type="button" onClick={stop} disabled={!state.running}>
            Stop
          </button>
        </div>
      </form>

      <div role="status" aria-live="polite" class="tap-status" data-testid="tap-status">
        {state.error && <p class="notice bad">{state.error}</p>}
        {state.note && <p class="notice">{state.note}</p>}
        {state.skipped.length > 0 && (
          <ul class="small muted">
            {state.skipped.map((s, i) => (
              <li key={i}>
                Not tapped: {s.proxy ?? s.workload}: {s.reason}
              </li>
            ))}
          </ul>
        )}
        {(state.seen > 0 || state.dropped > 0) && (
          <p class="muted small">
            {state.seen} requests{state.dropped > 0 ? `, ${state.dropped} dropped over the rate cap` : ''}; the newest {MAX_ROWS} are shown.
          </p>
        )}
      </div>

      <section class="card">
        <h2 class="sr-only">Requests</h2>
        {rows.length === 0 ? (
          <p class="muted">{state.running ? 'Waiting for requests…' : 'Choose a workload or service and start the tap.'}</p>
        ) : (
          <div class="table-scroll">
            <table class="table compact" data-testid="tap-rows">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Proxy</th>
                  <th scope="col">Dir</th>
                  <th scope="col">Source</th>
                  <th scope="col">Method</th>
                  <th scope="col">Authority and path</th>
                  <th scope="col">Status</th>
                  <th scope="col">Latency</th>
                  <th scope="col">Bytes</th>
                  <th scope="col">Route</th>
                  <th scope="col">Headers</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.seq} class={r.status >= 500 || r.weftReason ? 'problem' : undefined}>
                    <td class="small">{r.time.slice(11, 23)}</td>
                    <td class="small">{r.proxy}</td>
                    <td>{r.direction === 'inbound' ? 'in' : 'out'}</td>
                    <td class="small wrap">{r.source}</td>
                    <td>{r.method}</td>
                    <td class="wrap">
                      <span class="muted">{r.authority}</span>
                      {r.path}
                    </td>
                    <td>
                      <span class={`badge ${r.status >= 500 || r.status === 499 ? 'bad' : r.status < 400 ? 'ok' : ''}`}>{r.status}</span>
                      {r.weftReason && <div class="small bad-text">{r.weftReason}</div>}
                    </td>
                    <td>{r.latencyMs < 10 ? r.latencyMs.toFixed(2) : Math.round(r.latencyMs)} ms</td>
                    <td class="small">{r.responseBytes ?? '-'}</td>
                    <td class="small">{r.route ?? '-'}</td>
                    <td class="small">
                      <details>
                        <summary>{Object.keys(r.headers).length}</summary>
                        <dl class="facts">
                          {Object.entries(r.headers).map(([name, value]) => (
                            <Fragment key={name}>
                              <dt>{name}</dt>
                              <dd>{value}</dd>
                            </Fragment>
                          ))}
                        </dl>
                      </details>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <p class="muted small">
        The same stream from a terminal: <code>weft tap {target || 'svc/<name>'} -n {namespace}</code>. Service pages link here: <a href={href({ page: 'topology' })}>open one from the topology</a>.
      </p>
    </div>
  );
}
