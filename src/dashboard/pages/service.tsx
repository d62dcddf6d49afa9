// Service page: ports, routes and their rules with backends and weights, endpoints with readiness, the workloads behind it, its callers and charts.
import { useMemo } from 'preact/hooks';
import type { Resource } from '../../api/meta.ts';
import type { HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec, ServiceSpec } from '../../api/resources.ts';
import { Chart } from '../components/chart.tsx';
import { ConditionBadges, ConditionTable } from '../components/conditions.tsx';
import { useLive } from '../live.ts';
import { endpointsOf, isServiceParent, parseServiceRef, partition, routesOfService, ruleBackends, selects, shortVersion, WORKLOAD_LABEL } from '../model.ts';
import { href } from '../router.ts';
import { formatPercent } from '../topology/graph.ts';
import { historyOf, useHistoryVersion, useTraffic } from '../topology/traffic.ts';

export function ServicePage({ namespace, name }: { namespace: string; name: string }) {
  const live = useLive();
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
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
        <TrafficCharts serviceKey={`${namespace}/${name}`} />
      </div>

      <section class="card">
        <h2>Routes</h2>
        {attached.length === 0 ? (
          <p class="muted">No HTTPRoute is attached to this service: calls to it go to its own endpoints.</p>
        ) : (
          attached.map((route) => <RouteCard key={route.metadata.name} route={route} namespace={namespace} name={name} />)
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
                    <td>{e.proxy ? <a href={href({ page: 'proxies' })}>{e.proxy.id}</a> : '-'}</td>
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

function RouteCard({ route, namespace, name }: { route: Resource<HTTPRouteSpec>; namespace: string; name: string }) {
  const routeNs = route.metadata.namespace ?? 'default';
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
          </tr>
        </thead>
        <tbody>
          {(route.spec?.rules ?? []).map((rule, r) => {
            const backends = ruleBackends(route, r);
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
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td class="small">{describeRule(rule).join('; ') || '-'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </article>
  );
}

function TrafficCharts({ serviceKey }: { serviceKey: string }) {
  const traffic = useTraffic('5m');
  useHistoryVersion();
  const points = historyOf(serviceKey);
  if (!traffic.data || points.length < 2) {
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
    <section class="card">
      <h2>Traffic</h2>
      <Chart title="Requests per second" unit="rps" times={times} series={[{ label: 'rate', color: '#2563eb', values: points.map((p) => p.requestsPerSecond) }]} height={140} />
      <Chart title="Success rate" unit="%" times={times} series={[{ label: 'success', color: '#16a34a', values: points.map((p) => (p.successRate === undefined ? null : p.successRate * 100)) }]} height={140} />
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

