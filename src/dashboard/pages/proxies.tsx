// Workloads and proxies page: every proxy with its mode, connection, readiness, config version acked or its last NACK and reason; one proxy's running config and live backends.
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { LiveProxyState } from '../../api/explain.ts';
import { proxyBackends, proxyConfig, replicas } from '../api.ts';
import { loadYaml } from '../components/yaml.ts';
import { useAsync, useNow } from '../hooks.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import { useLive } from '../live.ts';
import { age, partition, servicesOf, shortVersion, WORKLOAD_LABEL } from '../model.ts';
import { href } from '../router.ts';

type Filter = 'all' | 'problems';

/** A NACK matters while the proxy is still being sent the version it refused. */
function nackIsCurrent(p: ProxyStatus): boolean {
  return !!p.lastNack && p.lastNack.version === p.sentVersion;
}

/** "23h", "5m": how long until an ISO time; "expired" after it. */
function until(iso: string, now: number): string {
  const ms = Date.parse(iso) - now;
  if (!Number.isFinite(ms)) return '-';
  if (ms <= 0) return 'no time: expired';
  return age(new Date(now - ms).toISOString(), now);
}

function problemOf(p: ProxyStatus): string | undefined {
  if (!p.connected) return 'disconnected';
  if (nackIsCurrent(p)) return 'rejects its config';
  if (!p.ready) return 'app not ready';
  if (p.sentVersion && p.ackedVersion !== p.sentVersion) return 'config not acked yet';
  return undefined;
}

export function ProxiesPage({ namespace, selectedId }: { namespace: string | undefined; selectedId?: string | undefined }) {
  const live = useLive();
  const [filter, setFilter] = useState<Filter>('all');
  const [search, setSearch] = useState('');
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
  const now = useNow(5000);
  const needle = search.trim().toLowerCase();
  const proxies = live.proxies
    .filter((p) => !namespace || p.namespace === namespace)
    .filter((p) => filter === 'all' || problemOf(p) !== undefined)
    .filter((p) => !needle || p.id.toLowerCase().includes(needle) || (p.workload ?? '').toLowerCase().includes(needle));
  const all = live.proxies.filter((p) => !namespace || p.namespace === namespace);
  // With several control-plane replicas, each proxy says which one holds its stream, and a table shows the replicas (asked again every 10 s).
  const manyReplicas = new Set(live.proxies.map((p) => p.replica).filter(Boolean)).size > 1;
  const controlPlane = useAsync(() => replicas(), [Math.floor(now / 10_000)]);
  const counts = {
    connected: all.filter((p) => p.connected).length,
    ready: all.filter((p) => p.ready).length,
    inSync: all.filter((p) => p.sentVersion !== undefined && p.ackedVersion === p.sentVersion).length,
    nacking: all.filter(nackIsCurrent).length,
  };

  return (
    <div class="page proxies-page">
      <div class="toolbar">
        <h1>Workloads and proxies</h1>
        <label>
          <span class="label">Show</span>
          <select value={filter} onChange={(e) => setFilter((e.currentTarget as HTMLSelectElement).value as Filter)}>
            <option value="all">all proxies</option>
            <option value="problems">only problems</option>
          </select>
        </label>
        <label class="search">
          <span class="label">Find</span>
          <input type="search" value={search} placeholder="proxy or workload" onInput={(e) => setSearch((e.currentTarget as HTMLInputElement).value)} />
        </label>
      </div>
      {controlPlane && controlPlane.replicas.length > 1 && (
        <div class="table-scroll">
          <table class="table" data-testid="replicas">
            <caption>Control-plane replicas: each shows every proxy; a proxy's stream is held by one</caption>
            <thead>
              <tr>
                <th scope="col">Replica</th>
                <th scope="col">Stream</th>
                <th scope="col">Leads</th>
                <th scope="col">Proxies</th>
                <th scope="col">Reachable</th>
              </tr>
            </thead>
            <tbody>
              {controlPlane.replicas.map((r) => (
                <tr key={r.name} data-replica={r.name}>
                  <th scope="row">
                    {r.name}
                    {r.self && <div class="muted small">answering this page</div>}
                  </th>
                  <td class="small">
                    <code>{r.stream}</code>
                  </td>
                  <td>{r.name === controlPlane.leader ? 'yes' : 'no'}</td>
                  <td>{r.proxies}</td>
                  <td>
                    <span class={`badge ${r.reachable ? 'ok' : 'bad'}`}>{r.reachable ? 'yes' : 'no'}</span>
                    {r.error && <div class="small bad-text">{r.error}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="summary" role="status" aria-live="polite">
        {all.length} prox{all.length === 1 ? 'y' : 'ies'}: {counts.connected} connected, {counts.ready} ready, {counts.inSync} up to date,{' '}
        <span class={counts.nacking ? 'bad-text' : ''}>{counts.nacking} rejecting their config</span>
      </p>
      {!live.proxiesSynced ? (
        <p class="muted">Loading…</p>
      ) : proxies.length === 0 ? (
        <p class="muted">{all.length === 0 ? 'No proxy has connected to this control plane.' : 'No proxy matches.'}</p>
      ) : (
        <div class="table-scroll">
          <table class="table" data-testid="proxies">
            <caption class="sr-only">Proxies known to the control plane</caption>
            <thead>
              <tr>
                <th scope="col">Proxy</th>
                <th scope="col">Mode</th>
                <th scope="col">Workload</th>
                <th scope="col">Services</th>
                <th scope="col">Connected</th>
                <th scope="col">Ready</th>
                <th scope="col">Config</th>
                <th scope="col">Last NACK</th>
                <th scope="col">Identity</th>
                <th scope="col">Seen</th>
              </tr>
            </thead>
            <tbody>
              {proxies.map((p) => {
                const instance = objects.instances.find((i) => i.metadata.namespace === p.namespace && i.metadata.name === p.instance);
                const template = objects.workloads.find((w) => w.metadata.namespace === p.namespace && w.metadata.name === (instance?.metadata.labels?.[WORKLOAD_LABEL] ?? p.workload));
                const services = template ? servicesOf(template, objects.services) : [];
                const problem = problemOf(p);
                return (
                  <tr key={p.id} data-proxy-id={p.id} class={problem ? 'problem' : ''}>
                    <th scope="row">
                      {p.id}
                      <div class="muted small">
                        {p.address}:{p.tunnelPort}
                      </div>
                    </th>
                    <td>{p.mode}</td>
                    <td>
                      {template ? <a href={href({ page: 'config', kind: 'Workload', namespace: p.namespace, name: template.metadata.name })}>{template.metadata.name}</a> : (p.workload ?? '-')}
                      {p.instance && <div class="muted small">{p.instance}</div>}
                    </td>
                    <td>
                      {services.map((s, i) => (
                        <span key={s.metadata.name}>
                          {i > 0 && ', '}
                          <a href={href({ page: 'service', namespace: p.namespace, name: s.metadata.name })}>{s.metadata.name}</a>
                        </span>
                      ))}
                      {services.length === 0 && '-'}
                    </td>
                    <td>
                      <span class={`badge ${p.connected ? 'ok' : 'bad'}`}>{p.connected ? 'yes' : 'no'}</span>
                      {p.connectedAt && p.connected && <div class="muted small">{age(p.connectedAt, now)}</div>}
                      {manyReplicas && p.replica && (
                        <div class="muted small" data-testid="replica">
                          via {p.replica}
                        </div>
                      )}
                    </td>
                    <td>
                      <span class={`badge ${p.ready ? 'ok' : 'bad'}`}>{p.ready ? 'yes' : 'no'}</span>
                    </td>
                    <td>
                      <div>
                        acked <code>{shortVersion(p.ackedVersion)}</code>
                      </div>
                      {p.sentVersion !== p.ackedVersion && (
                        <div class="small">
                          sent <code>{shortVersion(p.sentVersion)}</code>
                        </div>
                      )}
                      {p.admin && p.connected && (
                        <a class="small" href={href({ page: 'proxies', id: p.id })} aria-label={`Running config of ${p.id}`} aria-current={selectedId === p.id ? 'true' : undefined}>
                          running config
                        </a>
                      )}
                    </td>
                    <td class="wrap nack" data-testid="nack">
                      {p.lastNack ? (
                        <>
                          <span class={`badge ${nackIsCurrent(p) ? 'bad' : 'unknown'}`}>{nackIsCurrent(p) ? 'NACK' : 'earlier NACK'}</span> <code>{p.lastNack.code}</code>
                          <div class="nack-reason">{p.lastNack.message}</div>
                          <div class="muted small">
                            version <code>{shortVersion(p.lastNack.version)}</code>, {age(p.lastNack.at, now)} ago
                          </div>
                        </>
                      ) : (
                        <span class="muted">-</span>
                      )}
                    </td>
                    <td class="small wrap">
                      {p.identity ? <code>{p.identity}</code> : <span class="muted">-</span>}
                      {p.certExpiresAt && <div class={`small ${Date.parse(p.certExpiresAt) - now < 3_600_000 ? 'bad-text' : 'muted'}`}>expires in {until(p.certExpiresAt, now)}</div>}
                    </td>
                    <td class="small">{age(p.lastSeen, now)} ago</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {selectedId && <ProxyDetail key={selectedId} proxy={live.proxies.find((p) => p.id === selectedId)} id={selectedId} />}
    </div>
  );
}

type Loaded<T> = { state: 'loading' } | { state: 'ok'; value: T } | { state: 'failed'; message: string };

/** One proxy's own account, relayed by the control plane from its admin listener: what it runs and how its balancers see their endpoints. */
function ProxyDetail({ id, proxy }: { id: string; proxy: ProxyStatus | undefined }) {
  const [config, setConfig] = useState<Loaded<string>>({ state: 'loading' });
  const [backends, setBackends] = useState<Loaded<LiveProxyState>>({ state: 'loading' });
  const [refreshed, setRefreshed] = useState(0);
  const workload = proxy?.mode === 'node' && proxy.workload ? `${proxy.namespace}/${proxy.workload}` : undefined;
  useEffect(() => {
    let current = true;
    const failed = (error: unknown) => ({ state: 'failed' as const, message: (error as Error).message });
    proxyConfig(id)
      .then(async (value) => {
        const yaml = await loadYaml();
        if (current) setConfig({ state: 'ok', value: yaml.stringify(value, { lineWidth: 0, aliasDuplicateObjects: false }) });
      })
      .catch((error: unknown) => current && setConfig(failed(error)));
    proxyBackends(id, workload)
      .then((value) => current && setBackends({ state: 'ok', value }))
      .catch((error: unknown) => current && setBackends(failed(error)));
    return () => {
      current = false;
    };
  }, [id, workload, refreshed]);

  useEffect(() => {
    document.getElementById('proxy-detail')?.focus();
  }, [id]);

  return (
    <section class="card proxy-detail" id="proxy-detail" tabIndex={-1} aria-labelledby="proxy-detail-title" data-testid="proxy-detail">
      <div class="toolbar">
        <h2 id="proxy-detail-title">Proxy {id}</h2>
        <button type="button" onClick={() => setRefreshed((n) => n + 1)}>
          Refresh
        </button>
        <a href={href({ page: 'proxies' })}>Close</a>
      </div>
      <p class="muted small">
        What the proxy itself reports on its admin listener{proxy?.admin ? ` (${proxy.admin})` : ''}, relayed by the control plane: the config it runs (the last one it
        accepted{proxy && nackIsCurrent(proxy) ? `; it refused version ${shortVersion(proxy.lastNack?.version)}` : ''}) and its balancers' view of their endpoints.
      </p>
      <h3>Endpoints as this proxy's balancers see them</h3>
      {backends.state === 'loading' && <p class="muted">Loading…</p>}
      {backends.state === 'failed' && <p class="bad-text">{backends.message}</p>}
      {backends.state === 'ok' &&
        (backends.value.backends.length === 0 ? (
          <p class="muted">No backend has been called through this proxy yet (balancers are made on first use).</p>
        ) : (
          <div class="table-scroll">
            <table class="table compact" data-testid="proxy-backends">
              <thead>
                <tr>
                  <th scope="col">Backend</th>
                  <th scope="col">Endpoint</th>
                  <th scope="col">Health</th>
                  <th scope="col">In flight</th>
                  <th scope="col">Ejections</th>
                  <th scope="col">Consecutive errors</th>
                </tr>
              </thead>
              <tbody>
                {backends.value.backends.flatMap((b) =>
                  b.endpoints.map((e, i) => (
                    <tr key={`${b.key}|${e.id}`}>
                      <td>{i === 0 ? b.key : ''}</td>
                      <td>
                        <code>{e.id}</code>
                      </td>
                      <td>
                        {e.ejectedForMs > 0 ? (
                          <span class="badge bad">ejected {Math.ceil(e.ejectedForMs / 1000)} s more</span>
                        ) : e.healthy ? (
                          <span class="badge ok">{b.healthChecked ? 'passing checks' : 'in rotation'}</span>
                        ) : (
                          <span class="badge bad">failing checks</span>
                        )}
                      </td>
                      <td>{e.inFlight}</td>
                      <td>{e.ejections}</td>
                      <td class="small">
                        5xx {e.consecutive5xx}, gateway {e.consecutiveGatewayErrors}, connect {e.consecutiveConnectFailures}
                      </td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          </div>
        ))}
      <h3>Running config</h3>
      {config.state === 'loading' && <p class="muted">Loading…</p>}
      {config.state === 'failed' && <p class="bad-text">{config.message}</p>}
      {config.state === 'ok' && (
        <pre class="yaml" data-testid="proxy-config" tabIndex={0} aria-label={`Running config of ${id}`}>
          {config.value}
        </pre>
      )}
    </section>
  );
}
