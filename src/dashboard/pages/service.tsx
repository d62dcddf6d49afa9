// Service page: ports, routes and their rules with backends and weights, endpoints with readiness, the workloads behind it, its callers and charts.
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Resource } from '../../api/meta.ts';
import type { HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec, ServiceSpec } from '../../api/resources.ts';
import type { ServiceTraffic, TrafficEdge, TrafficPeer, TrafficStats } from '../../api/topology.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import { proxyBackends, serviceTraffic } from '../api.ts';
import { Chart } from '../components/chart.tsx';
import { ConditionBadges, ConditionTable } from '../components/conditions.tsx';
import { useLive } from '../live.ts';
import { endpointsOf, isServiceParent, parseServiceRef, partition, policiesOf, routesOfService, ruleBackends, selects, shortVersion, WORKLOAD_LABEL } from '../model.ts';
import { href } from '../router.ts';
import { formatPercent, mergeStats, statsLabel } from '../topology/graph.ts';
import { historyOf, useHistoryVersion, useTraffic, type HistoryPoint } from '../topology/traffic.ts';

/** The window of the Service page's charts and tables. */
const SERVICE_WINDOW = '5m';
const SERVICE_POLL_MS = 5000;

/** Polls GET /api/v1/services/<ns>/<name> while the page is shown: the golden metrics over time, edges and per-rule traffic. */
function useServiceTraffic(namespace: string, name: string): ServiceTraffic | undefined {
  const [data, setData] = useState<ServiceTraffic | undefined>(undefined);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      const next = await serviceTraffic(namespace, name, SERVICE_WINDOW).catch(() => undefined);
      if (stopped) return;
      setData(next);
      timer = setTimeout(() => void poll(), SERVICE_POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [namespace, name]);
  return data;
}

/** One endpoint as the calling proxies' balancers see it: ejections by outlier detection, failing health checks. */
interface CallerView {
  callers: number;
  ejectedBy: number;
  ejectedForMs: number;
  ejections: number;
  unhealthyBy: number;
}

const CALLER_VIEW_POLL_MS = 10_000;
/** Enough callers to tell an ejection; a Service with hundreds of callers is not read from every one. */
const MAX_CALLERS_READ = 12;

/**
 * Reads the live balancer state of the proxies that call this Service (the
 * sources of its inbound edges), relayed by the control plane from their
 * admin listeners, and sums it per endpoint id ("<ns>/<instance>").
 */
function useCallerView(traffic: ServiceTraffic | undefined, proxies: readonly ProxyStatus[]): Map<string, CallerView> | undefined {
  const callerIds = useMemo(() => {
    const sources = new Set((traffic?.inbound ?? []).filter((e) => e.source.workload).map((e) => `${e.source.namespace}/${e.source.workload}`));
    return proxies
      .filter((p) => p.connected && p.admin && p.workload && sources.has(`${p.namespace}/${p.workload}`))
      .map((p) => p.id)
      .sort()
      .slice(0, MAX_CALLERS_READ)
      .join(',');
  }, [traffic, proxies]);
  const [view, setView] = useState<Map<string, CallerView> | undefined>(undefined);
  useEffect(() => {
    if (!callerIds) {
      setView(undefined);
      return;
    }
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      const states = await Promise.all(callerIds.split(',').map((id) => proxyBackends(id).catch(() => undefined)));
      if (stopped) return;
      const byEndpoint = new Map<string, CallerView>();
      for (const state of states) {
        if (!state) continue;
        const seen = new Map<string, { ejectedForMs: number; ejections: number; healthy: boolean }>();
        for (const backend of state.backends) {
          for (const e of backend.endpoints) {
            const prior = seen.get(e.id);
            seen.set(e.id, {
              ejectedForMs: Math.max(prior?.ejectedForMs ?? 0, e.ejectedForMs),
              ejections: (prior?.ejections ?? 0) + e.ejections,
              healthy: (prior?.healthy ?? true) && e.healthy,
            });
          }
        }
        for (const [id, e] of seen) {
          const v = byEndpoint.get(id) ?? { callers: 0, ejectedBy: 0, ejectedForMs: 0, ejections: 0, unhealthyBy: 0 };
          v.callers++;
          if (e.ejectedForMs > 0) v.ejectedBy++;
          v.ejectedForMs = Math.max(v.ejectedForMs, e.ejectedForMs);
          v.ejections += e.ejections;
          if (!e.healthy) v.unhealthyBy++;
          byEndpoint.set(id, v);
        }
      }
      setView(byEndpoint);
      timer = setTimeout(() => void read(), CALLER_VIEW_POLL_MS);
    };
    void read();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [callerIds]);
  return view;
}

function CallerViewCell({ view }: { view: CallerView | undefined }) {
  if (!view) return <span class="muted">no caller has called it yet</span>;
  const of = `${view.callers} caller${view.callers === 1 ? '' : 's'}`;
  if (view.ejectedBy > 0) return <span class="badge bad">ejected by {view.ejectedBy} of {of}, {Math.ceil(view.ejectedForMs / 1000)} s more</span>;
  if (view.unhealthyBy > 0) return <span class="badge bad">failing health checks for {view.unhealthyBy} of {of}</span>;
  return (
    <span>
      <span class="badge ok">in rotation</span> <span class="muted small">for {of}{view.ejections ? `, ejected ${view.ejections}× before` : ''}</span>
    </span>
  );
}

export function ServicePage({ namespace, name }: { namespace: string; name: string }) {
  const live = useLive();
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
  const traffic = useServiceTraffic(namespace, name);
  const callerView = useCallerView(traffic, live.proxies);
  const service = objects.services.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
  if (!live.synced) return <p class="muted page">Loading…</p>;
  if (!service) {
    return (
      <div class="page">
        <h1>Service {namespace}/{name}</h1>
        <p class="notice">There is no such Service (it may have been deleted). <a href={href({ page: 'topology' })}>Back to the topology</a></p>
      </div>
    );
  }
  const { attached, sendingHere } = routesOfService(namespace, name, objects.routes);
  const endpoints = endpointsOf(service, objects.instances, live.proxies);
  const templates = objects.workloads.filter((w) => w.metadata.namespace === namespace && selects(service.spec?.selector, w.metadata.labels));
  const policies = policiesOf(namespace, name, objects.all, templates, attached);
  const callers = objects.workloads.filter((w) =>
    (w.spec?.upstreams ?? []).some((u) => {
      const ref = parseServiceRef(u.service, w.metadata.namespace ?? 'default');
      return ref.namespace === namespace && ref.name === name;
    }),
  );

  return (
    <div class="page service-page">
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href({ page: 'topology' })}>Topology</a> › <span>{namespace}</span> › <span aria-current="page">{name}</span>
      </nav>
      <header class="page-header">
        <h1>{name}</h1>
        <span class="muted">Service in {namespace}</span>
        <ConditionBadges object={service} />
        <a class="button-link" href={href({ page: 'traffic', namespace, target: `svc/${name}` })}>
          Live traffic
        </a>
        <a class="button-link" href={href({ page: 'config', kind: 'Service', namespace, name })}>
          YAML and status
        </a>
      </header>

      <div class="grid-2">
        <section class="card">
          <h2>Ports</h2>
          <PortsTable service={service} />
          <p class="muted small">
            Selector: {service.spec?.selector ? Object.entries(service.spec.selector).map(([k, v]) => `${k}=${v}`).join(', ') : 'none (no endpoints are selected)'}
          </p>
        </section>
        <TrafficCharts serviceKey={`${namespace}/${name}`} traffic={traffic} />
      </div>

      <TrafficTables traffic={traffic} />

      <section class="card">
        <h2>Routes</h2>
        {attached.length === 0 ? (
          <p class="muted">No HTTPRoute is attached to this service: calls to it go to its own endpoints.</p>
        ) : (
          attached.map((route) => <RouteCard key={route.metadata.name} route={route} namespace={namespace} name={name} traffic={traffic} />)
        )}
        {sendingHere.filter((r) => !attached.includes(r)).length > 0 && (
          <>
            <h3>Routes that send traffic here</h3>
            <ul>
              {sendingHere
                .filter((r) => !attached.includes(r))
                .map((r) => (
                  <li key={r.metadata.name}>
                    <a href={href({ page: 'config', kind: 'HTTPRoute', namespace: r.metadata.namespace, name: r.metadata.name })}>
                      {r.metadata.namespace}/{r.metadata.name}
                    </a>{' '}
                    from{' '}
                    {(r.spec?.parentRefs ?? [])
                      .filter(isServiceParent)
                      .map((p) => p.name)
                      .join(', ') || 'a gateway'}
                  </li>
                ))}
            </ul>
          </>
        )}
      </section>

      <section class="card">
        <h2>
          Policies that apply <span class="muted">({policies.length})</span>
        </h2>
        {policies.length === 0 ? (
          <p class="muted">No BackendTrafficPolicy, RateLimitPolicy, RequestAuthentication, AuthorizationPolicy or PeerAuthentication applies to this service.</p>
        ) : (
          <table class="table compact" data-testid="policies">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Name</th>
                <th scope="col">Applies because it</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {policies.map(({ policy, why }) => (
                <tr key={`${policy.kind}/${policy.metadata.name}`} data-policy={`${policy.kind}/${policy.metadata.name}`}>
                  <td>{policy.kind}</td>
                  <td>
                    <a href={href({ page: 'config', kind: policy.kind, namespace, name: policy.metadata.name })}>{policy.metadata.name}</a>
                  </td>
                  <td>{why}</td>
                  <td>
                    <ConditionBadges object={policy} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section class="card">
        <h2>
          Endpoints <span class="muted">({endpoints.filter((e) => e.ready).length} ready of {endpoints.length})</span>
        </h2>
        {endpoints.length === 0 ? (
          <p class="muted">No registered instance matches the selector. Instances register when their proxy reports the app ready.</p>
        ) : (
          <div class="table-scroll">
            <table class="table" data-testid="endpoints">
              <thead>
                <tr>
                  <th scope="col">Instance</th>
                  <th scope="col">Address</th>
                  <th scope="col">Ports</th>
                  <th scope="col">Locality</th>
                  <th scope="col">Readiness</th>
                  <th scope="col">Outlier detection (callers' view)</th>
                  <th scope="col">Proxy</th>
                  <th scope="col">Config acked</th>
                </tr>
              </thead>
              <tbody>
                {endpoints.map((e) => (
                  <tr key={e.instance.metadata.name}>
                    <td>{e.instance.metadata.name}</td>
                    <td>
                      {e.instance.spec?.address}
                      {e.instance.spec?.tunnelPort ? `:${e.instance.spec.tunnelPort}` : ''}
                    </td>
                    <td>{(e.instance.spec?.ports ?? []).map((p) => `${p.name ? `${p.name}:` : ''}${p.port}`).join(', ') || '-'}</td>
                    <td>{[e.instance.spec?.locality?.region, e.instance.spec?.locality?.zone, e.instance.spec?.locality?.subzone].filter(Boolean).join('/') || '-'}</td>
                    <td>
                      <span class={`badge ${e.ready ? 'ok' : 'bad'}`}>{e.ready ? 'Ready' : 'Not ready'}</span>
                      {e.reason !== 'ready' && <span class="muted small"> {e.reason}</span>}
                    </td>
                    <td class="small" data-testid="caller-view">
                      <CallerViewCell view={callerView?.get(`${e.instance.metadata.namespace ?? namespace}/${e.instance.metadata.name}`)} />
                    </td>
                    <td>{e.proxy ? <a href={href({ page: 'proxies', id: e.proxy.id })}>{e.proxy.id}</a> : '-'}</td>
                    <td>
                      <code>{shortVersion(e.proxy?.ackedVersion)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <div class="grid-2">
        <section class="card">
          <h2>Workloads</h2>
          {templates.length === 0 ? (
            <p class="muted">No Workload template matches the selector.</p>
          ) : (
            <table class="table compact">
              <thead>
                <tr>
                  <th scope="col">Workload</th>
                  <th scope="col">Labels</th>
                  <th scope="col">Registered</th>
                </tr>
              </thead>
              <tbody>
                {templates.map((w) => (
                  <tr key={w.metadata.name}>
                    <td>
                      <a href={href({ page: 'config', kind: 'Workload', namespace, name: w.metadata.name })}>{w.metadata.name}</a>
                    </td>
                    <td class="small">{Object.entries(w.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ')}</td>
                    <td>
                      {objects.instances.filter((i) => i.metadata.namespace === namespace && i.metadata.labels?.[WORKLOAD_LABEL] === w.metadata.name).length} of{' '}
                      {w.spec?.replicas ?? 1}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section class="card">
          <h2>Callers through upstream ports</h2>
          {callers.length === 0 ? (
            <p class="muted">No workload declares an upstream port for this service.</p>
          ) : (
            <ul>
              {callers.map((w) => (
                <li key={`${w.metadata.namespace}/${w.metadata.name}`}>
                  {w.metadata.namespace}/{w.metadata.name}:{' '}
                  {(w.spec?.upstreams ?? [])
                    .filter((u) => parseServiceRef(u.service, w.metadata.namespace ?? 'default').name === name)
                    .map((u) => `127.0.0.1:${u.localPort} → :${u.port}`)
                    .join(', ')}
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>

      <section class="card">
        <h2>Status</h2>
        <ConditionTable object={service} />
      </section>
    </div>
  );
}

function PortsTable({ service }: { service: Resource<ServiceSpec> }) {
  return (
    <table class="table compact">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Port</th>
          <th scope="col">Target</th>
          <th scope="col">Protocol</th>
        </tr>
      </thead>
      <tbody>
        {(service.spec?.ports ?? []).map((p, i) => (
          <tr key={i}>
            <td>{p.name ?? '-'}</td>
            <td>{p.port}</td>
            <td>{p.targetPort ?? p.port}</td>
            <td>{p.appProtocol ?? p.protocol ?? 'TCP'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function describeMatch(m: HTTPRouteMatch): string {
  const parts: string[] = [];
  if (m.method) parts.push(m.method);
  if (m.path) parts.push(`${m.path.type === 'Exact' ? '=' : m.path.type === 'RegularExpression' ? '~' : ''}${m.path.value}${m.path.type === 'PathPrefix' || m.path.type === undefined ? '*' : ''}`);
  for (const h of m.headers ?? []) parts.push(`${h.name}${h.type === 'RegularExpression' ? '~' : '='}${h.value}`);
  for (const q of m.queryParams ?? []) parts.push(`?${q.name}${q.type === 'RegularExpression' ? '~' : '='}${q.value}`);
  return parts.join(' ') || 'every request';
}

function describeRule(rule: HTTPRouteRule): string[] {
  const extras: string[] = [];
  if (rule.filters?.length) extras.push(`filters: ${rule.filters.map((f) => f.type).join(', ')}`);
  if (rule.timeouts?.request) extras.push(`timeout ${rule.timeouts.request}`);
  if (rule.timeouts?.backendRequest) extras.push(`backend timeout ${rule.timeouts.backendRequest}`);
  if (rule.retry) extras.push(`retry ${rule.retry.attempts ?? 'default'}×${rule.retry.codes?.length ? ` on ${rule.retry.codes.join(',')}` : ''}`);
  return extras;
}

function RouteCard({ route, namespace, name, traffic }: { route: Resource<HTTPRouteSpec>; namespace: string; name: string; traffic: ServiceTraffic | undefined }) {
  const routeNs = route.metadata.namespace ?? 'default';
  // Per rule: what the callers counted under the rule's ids ("<ns>/<route>/<rule>/<match>"), in all and per backend.
  const ruleTraffic = (r: number) => {
    const prefix = `${routeNs}/${route.metadata.name}/${r}/`;
    let total: TrafficStats | undefined;
    const perBackend = new Map<string, number>();
    for (const t of traffic?.routes ?? []) {
      if (!t.route.startsWith(prefix)) continue;
      const { route: _r, source: _s, destination, via: _v, ...stats } = t;
      total = mergeStats(total, stats);
      const key = `${destination.namespace}/${destination.service}`;
      perBackend.set(key, (perBackend.get(key) ?? 0) + stats.requestsPerSecond);
    }
    return { total, perBackend };
  };
  const parents = (route.spec?.parentRefs ?? []).filter((p) => isServiceParent(p) && p.name === name && (p.namespace ?? routeNs) === namespace);
  return (
    <article class="route" data-route={`${routeNs}/${route.metadata.name}`}>
      <header class="route-header">
        <h3>
          <a href={href({ page: 'config', kind: 'HTTPRoute', namespace: routeNs, name: route.metadata.name })}>
            HTTPRoute {routeNs}/{route.metadata.name}
          </a>
        </h3>
        <span class="muted small">
          on {parents.map((p) => (p.port ? `port ${p.port}` : p.sectionName ? `port ${p.sectionName}` : 'every HTTP port')).join(', ')}
          {route.spec?.hostnames?.length ? `; hostnames ${route.spec.hostnames.join(', ')}` : ''}
        </span>
        <ConditionBadges object={route} />
      </header>
      <table class="table compact">
        <thead>
          <tr>
            <th scope="col">Rule</th>
            <th scope="col">Matches</th>
            <th scope="col">Backends and weights</th>
            <th scope="col">Also</th>
            <th scope="col">Traffic</th>
          </tr>
        </thead>
        <tbody>
          {(route.spec?.rules ?? []).map((rule, r) => {
            const backends = ruleBackends(route, r);
            const seen = ruleTraffic(r);
            return (
              <tr key={r}>
                <td>{rule.name ?? r + 1}</td>
                <td>{(rule.matches?.length ? rule.matches : [{}]).map((m, i) => <div key={i}>{describeMatch(m as HTTPRouteMatch)}</div>)}</td>
                <td>
                  {backends.length === 0 ? (
                    <span class="bad-text">no backends: answers 500</span>
                  ) : (
                    <ul class="backends">
                      {backends.map((b, i) => (
                        <li key={i} data-backend={`${b.namespace}/${b.name}`}>
                          <a href={href({ page: 'service', namespace: b.namespace, name: b.name })}>{b.namespace === routeNs ? b.name : `${b.namespace}/${b.name}`}</a>
                          {b.port ? `:${b.port}` : ''} <span class="muted">weight {b.weight}</span> <strong>{formatPercent(b.share)}</strong>
                          <span class="share-bar" aria-hidden="true">
                            <span style={{ width: `${Math.round(b.share * 100)}%` }} />
                          </span>
                          {seen.total && seen.total.requestsPerSecond > 0 && <span class="muted small"> seen {formatPercent((seen.perBackend.get(`${b.namespace}/${b.name}`) ?? 0) / seen.total.requestsPerSecond)}</span>}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td class="small">{describeRule(rule).join('; ') || '-'}</td>
                <td class="small" data-testid="rule-traffic">{seen.total ? statsLabel(seen.total) || '-' : <span class="muted">no data</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </article>
  );
}

function TrafficCharts({ serviceKey, traffic: mine }: { serviceKey: string; traffic: ServiceTraffic | undefined }) {
  const traffic = useTraffic(SERVICE_WINDOW);
  useHistoryVersion();
  // The control plane's series covers the whole window at once; without it (an older server), what this tab saw since it opened.
  const series: readonly HistoryPoint[] | undefined = mine?.available && mine.series && mine.series.length >= 2 ? mine.series.map((p) => ({ ...p, t: p.t / 1000 })) : undefined;
  const points = series ?? historyOf(serviceKey);
  if ((!traffic.data && !series) || points.length < 2) {
    return (
      <section class="card">
        <h2>Traffic</h2>
        <p class="notice" role="status">
          {traffic.data ? 'Collecting: the charts start after two samples.' : 'No traffic data yet: rate, success rate and latency charts appear once the control plane collects metrics.'}
        </p>
      </section>
    );
  }
  const times = points.map((p) => p.t);
  return (
    <section class="card" data-testid="traffic-charts" data-points={points.length}>
      <h2>
        Traffic <span class="muted small">last {SERVICE_WINDOW}</span>
      </h2>
      <Chart title="Requests per second" unit="rps" times={times} series={[{ label: 'rate', color: '#2563eb', values: points.map((p) => p.requestsPerSecond) }]} height={140} />
      <Chart title="Success rate" unit="%" range={[0, 100]} times={times} series={[{ label: 'success', color: '#16a34a', values: points.map((p) => (p.successRate === undefined ? null : p.successRate * 100)) }]} height={140} />
      <Chart
        title="Latency"
        unit="ms"
        times={times}
        height={140}
        series={[
          { label: 'p50', color: '#64748b', values: points.map((p) => p.p50Ms ?? null) },
          { label: 'p90', color: '#d97706', values: points.map((p) => p.p90Ms ?? null) },
          { label: 'p99', color: '#dc2626', values: points.map((p) => p.p99Ms ?? null) },
        ]}
      />
    </section>
  );
}


const rps = (s: TrafficStats) => s.requestsPerSecond.toFixed(s.requestsPerSecond < 10 ? 2 : 1);
const percentOf = (s: TrafficStats) => (s.successRate === undefined ? '-' : `${(s.successRate * 100).toFixed(1)}%`);
const msOf = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v)} ms`);
const peerName = (p: TrafficPeer) => `${p.namespace}/${p.service ?? p.workload ?? 'outside the mesh'}`;

function StatsCells({ stats }: { stats: TrafficStats }) {
  return (
    <>
      <td>{rps(stats)}</td>
      <td>{percentOf(stats)}</td>
      <td>{msOf(stats.p50Ms)}</td>
      <td>{msOf(stats.p99Ms)}</td>
    </>
  );
}

function EdgeTable({ edges, side, testId }: { edges: readonly TrafficEdge[]; side: 'source' | 'destination'; testId: string }) {
  if (edges.length === 0) return <p class="muted">None in the window.</p>;
  return (
    <table class="table compact" data-testid={testId}>
      <thead>
        <tr>
          <th scope="col">{side === 'source' ? 'From' : 'To'}</th>
          <th scope="col">RPS</th>
          <th scope="col">Success</th>
          <th scope="col">P50</th>
          <th scope="col">P99</th>
          <th scope="col">mTLS</th>
        </tr>
      </thead>
      <tbody>
        {edges.map((e, i) => {
          const peer = side === 'source' ? e.source : { namespace: e.destination.namespace, service: e.destination.service };
          return (
            <tr key={i}>
              <td>
                {peer.service ? <a href={href({ page: 'service', namespace: peer.namespace, name: peer.service })}>{peerName(peer)}</a> : peerName(peer)}
                {side === 'destination' && e.via && <span class="muted small"> via {e.via.service}</span>}
                {side === 'source' && e.via && <span class="muted small"> → {e.destination.service}</span>}
              </td>
              <StatsCells stats={e} />
              <td>{e.mtls ? <span class="badge ok">mTLS</span> : <span class="badge">plain</span>}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** Inbound and outbound edges and traffic per route rule, over the page's window. */
function TrafficTables({ traffic }: { traffic: ServiceTraffic | undefined }) {
  if (!traffic?.available) return null;
  return (
    <>
      <div class="grid-2">
        <section class="card">
          <h2>Inbound edges</h2>
          <EdgeTable edges={traffic.inbound} side="source" testId="inbound-edges" />
        </section>
        <section class="card">
          <h2>Outbound edges</h2>
          <EdgeTable edges={traffic.outbound} side="destination" testId="outbound-edges" />
        </section>
      </div>
      <section class="card">
        <h2>Traffic per route rule</h2>
        {traffic.routes.length === 0 ? (
          <p class="muted">None in the window.</p>
        ) : (
          <table class="table compact" data-testid="route-traffic">
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">RPS</th>
                <th scope="col">Success</th>
                <th scope="col">P50</th>
                <th scope="col">P99</th>
              </tr>
            </thead>
            <tbody>
              {traffic.routes.map((r, i) => (
                <tr key={i}>
                  <td>
                    <code>{r.route}</code>
                  </td>
                  <td>{peerName(r.source)}</td>
                  <td>{peerName(r.destination)}</td>
                  <StatsCells stats={r} />
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
