// Explain: a form for `weft explain` (POST /weft/v1/explain) and its decision trace: verdict, entry, every rule and why, filters, backends and endpoints, timeouts, retries.
import { useMemo, useState } from 'preact/hooks';
import type { ExplainBackend, ExplainRequest, ExplainTrace, LiveProxyState } from '../../api/explain.ts';
import type { ProxyStatus } from '../../api/stream.ts';
import { ApiFailure, explain, proxyBackends } from '../api.ts';
import { useLive } from '../live.ts';
import { partition } from '../model.ts';
import { href } from '../router.ts';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

/** "Name: value" per line → headers; the line that is not one is named. */
function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`header line ${i + 1} ("${line}") is not "Name: value"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * The calling proxy's live endpoint state (ejections, health checks), read
 * through the control plane's relay of its admin listener, as `weft explain`
 * reads it directly; or why there is none.
 */
async function liveStateOf(kind: string, who: string, proxies: readonly ProxyStatus[]): Promise<{ live: LiveProxyState } | { liveUnavailable: string }> {
  const [ns, name] = who.split('/');
  const proxy = proxies.find((p) => p.connected && p.namespace === ns && p.workload === name && (kind === 'gateway') === (p.mode === 'gateway'));
  if (!proxy) return { liveUnavailable: `no connected proxy of ${kind} ${who}: the trace is of the configuration alone` };
  if (!proxy.admin) return { liveUnavailable: `${proxy.id} announced no admin listener: the trace is of the configuration alone` };
  try {
    return { live: await proxyBackends(proxy.id, proxy.mode === 'node' ? who : undefined) };
  } catch (problem) {
    return { liveUnavailable: `could not read ${proxy.id}'s live state (${(problem as Error).message}): the trace is of the configuration alone` };
  }
}

export function ExplainPage({ namespace }: { namespace: string | undefined }) {
  const live = useLive();
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
  const callers = useMemo(() => {
    const workloads = objects.workloads.filter((w) => !namespace || w.metadata.namespace === namespace).map((w) => `workload ${w.metadata.namespace ?? 'default'}/${w.metadata.name}`);
    const gateways = objects.gateways.filter((g) => !namespace || g.metadata.namespace === namespace).map((g) => `gateway ${g.metadata.namespace ?? 'default'}/${g.metadata.name}`);
    return [...workloads, ...gateways];
  }, [objects, namespace]);
  const [from, setFrom] = useState('');
  const [method, setMethod] = useState('GET');
  const [url, setUrl] = useState('');
  const [headers, setHeaders] = useState('');
  const [sourceIp, setSourceIp] = useState('');
  const [trace, setTrace] = useState<ExplainTrace | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const caller = from || callers[0] || '';

  const onSubmit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    let request: ExplainRequest;
    try {
      const [kind, who] = caller.split(' ');
      if (!who) throw new Error('choose the workload or gateway the request comes from');
      request = {
        ...(kind === 'gateway' ? { gateway: who } : { from: who }),
        method,
        url: url.trim(),
        headers: parseHeaders(headers),
        ...(sourceIp.trim() ? { sourceIp: sourceIp.trim() } : {}),
      };
    } catch (problem) {
      setError((problem as Error).message);
      return;
    }
    setBusy(true);
    try {
      const [kind, who] = caller.split(' ');
      setTrace(await explain({ ...request, ...(await liveStateOf(kind!, who!, live.proxies)) }));
    } catch (problem) {
      setTrace(undefined);
      setError(problem instanceof ApiFailure ? problem.status.message : (problem as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="page explain-page">
      <div class="toolbar">
        <h1>Explain a request</h1>
        <span class="muted small">What the mesh would do with it, and why: evaluated against the live configuration.</span>
      </div>
      <form class="card form-grid" onSubmit={onSubmit} aria-label="Request to explain">
        <label>
          <span class="label">From</span>
          <select value={caller} onChange={(e) => setFrom((e.currentTarget as HTMLSelectElement).value)} required>
            {callers.length === 0 && <option value="">No workload or gateway</option>}
            {callers.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="label">Method</span>
          <select value={method} onChange={(e) => setMethod((e.currentTarget as HTMLSelectElement).value)}>
            {METHODS.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label class="wide-field">
          <span class="label">URL</span>
          <input type="text" value={url} required placeholder="http://catalog:8080/products" onInput={(e) => setUrl((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          <span class="label">Caller address (optional)</span>
          <input
            type="text"
            value={sourceIp}
            placeholder="10.0.0.7"
            title="For AuthorizationPolicies on ipBlocks and source.ip: the client's address at a gateway, the calling instance's from a workload"
            onInput={(e) => setSourceIp((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <label class="wide-field">
          <span class="label">Headers (one "Name: value" per line)</span>
          <textarea rows={2} value={headers} onInput={(e) => setHeaders((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy || !url.trim()}>
            {busy ? 'Explaining…' : 'Explain'}
          </button>
        </div>
      </form>
      {error && (
        <p class="notice bad" role="alert">
          {error}
        </p>
      )}
      {trace && <Trace trace={trace} />}
    </div>
  );
}

function Trace({ trace }: { trace: ExplainTrace }) {
  const forwarded = trace.verdict.outcome === 'forwarded' || trace.verdict.outcome === 'redirected' || trace.verdict.outcome === 'preflight' || trace.verdict.outcome === 'graphql' || trace.verdict.outcome === 'portal';
  return (
    <div class="page" data-testid="explain-trace">
      <section class={`notice ${forwarded ? 'good' : 'bad'}`} aria-label="Verdict" data-testid="explain-verdict">
        <strong>{trace.verdict.outcome}</strong>
        {trace.verdict.status !== undefined && ` · answers ${trace.verdict.status}`}
        {trace.verdict.reason && <code> {trace.verdict.reason}</code>}
        <div>{trace.verdict.summary}</div>
        <div class="muted small">
          {trace.request.method} {trace.request.url} from {trace.from.kind} {trace.from.name}
          {trace.request.sourceIp !== undefined && ` (caller ${trace.request.sourceIp})`}, config <code>{trace.from.snapshotVersion.slice(0, 12)}</code>
        </div>
      </section>
      {trace.risks.length > 0 && (
        <section class="card">
          <h2>Risks</h2>
          <ul>
            {trace.risks.map((r, i) => (
              <li key={i}>
                {r.percent !== undefined && <strong>{r.percent}% </strong>}
                {r.why}
                {r.reason && <code> {r.reason}</code>}
              </li>
            ))}
          </ul>
        </section>
      )}
      {trace.entry && (
        <section class="card">
          <h2>Entry</h2>
          <p>{trace.entry.summary}</p>
          {trace.entry.steps.length > 0 && (
            <ol class="small">
              {trace.entry.steps.map((s, i) => (
                <li key={i}>{s}</li>
              ))}
            </ol>
          )}
        </section>
      )}
      <section class="card">
        <h2>Route rules, in precedence order</h2>
        {trace.rules.length === 0 ? (
          <p class="muted">No rule to check.</p>
        ) : (
          <div class="table-scroll">
            <table class="table compact" data-testid="explain-rules">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Result</th>
                  <th scope="col">Conditions</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {trace.rules.map((rule) => (
                  <tr key={rule.index} data-result={rule.result} class={rule.result === 'matched' ? 'selected' : undefined}>
                    <td>{rule.index + 1}</td>
                    <td>
                      <code>{rule.id}</code>
                    </td>
                    <td>
                      <span class={`badge ${rule.result === 'matched' ? 'ok' : rule.result === 'no-match' ? 'bad' : ''}`}>{rule.result}</span>
                    </td>
                    <td class="small">
                      {rule.conditions.length === 0
                        ? 'every request'
                        : rule.conditions.map((c, i) => (
                            <div key={i}>
                              <span aria-label={c.ok ? 'holds' : 'fails'}>{c.ok ? '✓' : '✗'}</span> {c.describe}
                            </div>
                          ))}
                    </td>
                    <td class="small">{rule.why}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {trace.rule && trace.rule.filters.length > 0 && (
          <>
            <h3>Filters of the rule</h3>
            <ul class="small">
              {trace.rule.filters.map((f, i) => (
                <li key={i}>
                  <strong>{f.type}</strong> {f.describe}
                  {f.effect && <span class="muted"> → {f.effect}</span>}
                </li>
              ))}
            </ul>
          </>
        )}
        {trace.rule && trace.rule.rateLimits.length > 0 && (
          <>
            <h3>Rate limits</h3>
            <ul class="small">
              {trace.rule.rateLimits.map((r) => (
                <li key={r.id}>
                  {r.policy} ({r.scope}): {r.requests} per {r.intervalMs / 1000} s, burst {r.burst}
                  {r.exhausted ? <span class="bad-text"> exhausted</span> : ''}
                </li>
              ))}
            </ul>
          </>
        )}
      </section>
      <section class="card">
        <h2>Backends</h2>
        {trace.backends.length === 0 ? <p class="muted">No backend: the proxy answers itself.</p> : trace.backends.map((b, i) => <BackendCard key={b.key ?? i} backend={b} />)}
      </section>
      <div class="grid-2">
        <section class="card">
          <h2>Timeouts and retries</h2>
          <p>{trace.timeouts?.summary ?? 'No timeout applies.'}</p>
          <p>{trace.retry?.summary ?? 'Connect failures only are retried.'}</p>
        </section>
        <section class="card">
          <h2>Notes</h2>
          <ul class="small">
            {trace.live.used ? (
              <li data-testid="explain-live">
                Endpoint state (ejections, health checks, in-flight requests) as {trace.live.source} sees it, {trace.live.why}.
              </li>
            ) : (
              <li data-testid="explain-live">Live proxy state not used: {trace.live.why ?? 'none was sent'}.</li>
            )}
            {trace.notes.map((n, i) => (
              <li key={i}>{n}</li>
            ))}
          </ul>
        </section>
      </div>
    </div>
  );
}

function BackendCard({ backend }: { backend: ExplainBackend }) {
  const name = backend.service ? `${backend.service.namespace}/${backend.service.name}:${backend.service.port}` : (backend.key ?? 'unresolved backend');
  return (
    <article class="route" data-backend={backend.key ?? ''}>
      <header class="route-header">
        <h3>
          {backend.service ? <a href={href({ page: 'service', namespace: backend.service.namespace, name: backend.service.name })}>{name}</a> : name}
        </h3>
        <span>
          weight {backend.weight} <strong>{backend.percent}%</strong>
        </span>
        {backend.lb && <span class="muted small">balancer {typeof backend.lb === 'string' ? backend.lb : JSON.stringify(backend.lb)}</span>}
        {backend.circuitBreaker?.open && <span class="badge bad">circuit open</span>}
      </header>
      {backend.problem && <p class="bad-text">{backend.problem}</p>}
      {backend.filters.length > 0 && (
        <ul class="small">
          {backend.filters.map((f, i) => (
            <li key={i}>
              <strong>{f.type}</strong> {f.describe}
            </li>
          ))}
        </ul>
      )}
      {backend.endpoints.length === 0 ? (
        <p class="muted small">No ready endpoint.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Endpoint</th>
              <th scope="col">Address</th>
              <th scope="col">Identity</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {backend.endpoints.map((e) => (
              <tr key={e.id}>
                <td>{e.id}</td>
                <td>
                  {e.address}:{e.tunnelPort ?? e.port}
                </td>
                <td class="small">{e.identity ?? '-'}</td>
                <td>
                  <span class={`badge ${e.available ? 'ok' : 'bad'}`}>{e.state}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </article>
  );
}
