// Topology page: the mesh as a graph (services, split and upstream edges, traffic when the metrics exist), with lists that mirror it for keyboards and screen readers.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { TopologyWindow } from '../../api/topology.ts';
import { useLive } from '../live.ts';
import { partition } from '../model.ts';
import { href } from '../router.ts';
import { buildGraph, formatMs, formatPercent, HEALTH_THRESHOLDS, statsLabel, type Graph, type GraphEdge, type GraphNode } from '../topology/graph.ts';
import { useTraffic } from '../topology/traffic.ts';
import { GraphView, type GraphControls } from '../topology/view.tsx';

/** The windows the traffic API takes (src/api/topology.ts), repeated here because the dashboard takes only types from src/api. */
const WINDOWS: readonly TopologyWindow[] = ['1m', '5m', '15m', '1h'];

const FIRST_TRAFFIC_WAIT_MS = 400;
const EMPTY_GRAPH: Graph = { nodes: [], edges: [] };

function openNode(node: GraphNode | undefined): void {
  if (node?.kind === 'service' && !node.missing) location.hash = href({ page: 'service', namespace: node.namespace, name: node.name });
}

export function TopologyPage({ namespace }: { namespace: string | undefined }) {
  const live = useLive();
  const [timeWindow, setTimeWindow] = useState<string>('5m');
  const [showWorkloads, setShowWorkloads] = useState(false);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [search, setSearch] = useState('');
  const controls = useRef<GraphControls | undefined>(undefined);
  const traffic = useTraffic(timeWindow);
  // The first drawing waits (briefly) for the traffic too: its edges then take part in the first layout, which later updates never redo.
  const [waitedForTraffic, setWaitedForTraffic] = useState(false);
  useEffect(() => {
    const timer = setTimeout(() => setWaitedForTraffic(true), FIRST_TRAFFIC_WAIT_MS);
    return () => clearTimeout(timer);
  }, []);
  const drawable = live.synced && (traffic.loaded || waitedForTraffic);
  const objects = useMemo(() => partition(live.objects.values()), [live.objects]);
  const graph = useMemo(
    () => (drawable ? buildGraph({ ...objects, namespace, showWorkloads, traffic: traffic.data }) : EMPTY_GRAPH),
    [drawable, objects, namespace, showWorkloads, traffic.data],
  );
  const nodesById = useMemo(() => new Map(graph.nodes.map((n) => [n.id, n])), [graph]);
  const withTraffic = traffic.data !== undefined;
  const needle = search.trim().toLowerCase();
  const nodeList = useMemo(
    () =>
      graph.nodes
        .filter((n) => !needle || n.name.includes(needle) || n.namespace.includes(needle))
        .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`, 'en', { numeric: true })),
    [graph, needle],
  );
  // Namespaces are spelled out only when the graph spans more than one.
  const manyNamespaces = useMemo(() => new Set(graph.nodes.filter((n) => n.kind !== 'external').map((n) => n.namespace)).size > 1, [graph]);
  const labelOf = (n: GraphNode) => (n.kind === 'external' ? n.label : manyNamespaces ? `${n.namespace}/${n.name}` : n.name);
  const nameOf = (id: string) => {
    const n = nodesById.get(id);
    return n ? labelOf(n) : id;
  };
  const edgeList = useMemo(
    () => graph.edges.filter((e) => e.kind !== 'selects').filter((e) => !needle || nameOf(e.source).includes(needle) || nameOf(e.target).includes(needle)),
    [graph, needle, manyNamespaces],
  );
  const selectedNode = selected ? nodesById.get(selected) : undefined;
  const selectedEdge = selected && !selectedNode ? graph.edges.find((e) => e.id === selected) : undefined;
  const services = graph.nodes.filter((n) => n.kind === 'service').length;
  const gateways = graph.nodes.filter((n) => n.kind === 'gateway').length;
  const edgeCount = graph.edges.filter((e) => e.kind !== 'selects').length;

  return (
    <div class="page topology-page">
      <div class="toolbar" role="toolbar" aria-label="Topology">
        <h1>Topology</h1>
        <label>
          <span class="label">Window</span>
          <select value={timeWindow} onChange={(e) => setTimeWindow((e.currentTarget as HTMLSelectElement).value)} disabled={!withTraffic} title={withTraffic ? 'Traffic over this window' : 'No traffic data yet'}>
            {WINDOWS.map((w) => (
              <option key={w} value={w}>
                last {w}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={showWorkloads} onChange={(e) => setShowWorkloads((e.currentTarget as HTMLInputElement).checked)} />
          Workloads
        </label>
        <button type="button" onClick={() => controls.current?.fit()}>
          Fit
        </button>
        <button type="button" onClick={() => controls.current?.rearrange()} title="Lay every node out afresh">
          Re-arrange
        </button>
        <span class="muted count">
          {services} service{services === 1 ? '' : 's'}
          {gateways ? `, ${gateways} gateway${gateways === 1 ? '' : 's'}` : ''}, {edgeCount} edge{edgeCount === 1 ? '' : 's'}
        </span>
      </div>
      {!withTraffic && traffic.loaded && (
        <p class="notice" role="status" data-testid="no-traffic">
          No traffic data yet: edges come from the config (route splits with their configured shares, upstreams). Rates, success and latency appear here once the control plane collects metrics.
          {traffic.error ? ` (${traffic.error})` : ''}
        </p>
      )}
      {/* The graph mounts before the first list arrives: cytoscape starts while the events stream connects. */}
      <div class="topology-body" aria-busy={!drawable}>
          <GraphView
            graph={graph}
            withTraffic={withTraffic}
            selected={selected}
            onSelect={setSelected}
            onOpen={(id) => openNode(nodesById.get(id))}
            controls={controls}
            scope={`${namespace ?? ''}|${showWorkloads}`}
            label={`Topology graph of ${services} services and ${edgeCount} edges${namespace ? ` in namespace ${namespace}` : ''}`}
          />
          <aside class="side" aria-label="Topology details">
            {!drawable && <p class="muted">Loading the mesh…</p>}
            <section class="details" aria-live="polite">
              {selectedNode && <NodeDetails node={selectedNode} />}
              {selectedEdge && <EdgeDetails edge={selectedEdge} nameOf={nameOf} />}
              {!selectedNode && !selectedEdge && <p class="muted">Select a service or an edge to see its details. Double-click (or Enter) opens a service.</p>}
            </section>
            <label class="search">
              <span class="label">Find</span>
              <input type="search" value={search} placeholder="service name" onInput={(e) => setSearch((e.currentTarget as HTMLInputElement).value)} />
            </label>
            <section>
              <h2>
                {showWorkloads ? 'Services and workloads' : gateways ? 'Gateways and services' : 'Services'} <span class="muted">({nodeList.length})</span>
              </h2>
              <ul class="pick-list" aria-label={showWorkloads ? 'Services and workloads' : 'Services'} data-testid="topology-nodes">
                {nodeList.map((n) => (
                  <li key={n.id} data-node-id={n.id}>
                    <button type="button" class={`pick ${n.health} ${selected === n.id ? 'selected' : ''}`} aria-pressed={selected === n.id} onClick={() => controls.current?.focus(n.id)} onDblClick={() => openNode(n)}>
                      <span class={`dot ${n.health}`} aria-hidden="true" />
                      {labelOf(n)}
                      {(n.kind === 'workload' || n.kind === 'gateway') && <span class="muted"> {n.kind}</span>}
                      {n.missing && <span class="bad-text"> (not defined)</span>}
                    </button>
                    {n.kind === 'gateway' && !n.missing && (
                      <a class="open" href={href({ page: 'config', kind: 'Gateway', namespace: n.namespace, name: n.name })} aria-label={`Open gateway ${n.name}`}>
                        Open
                      </a>
                    )}
                    {n.kind === 'service' && !n.missing && (
                      <a class="open" href={href({ page: 'service', namespace: n.namespace, name: n.name })} aria-label={`Open service ${n.name}`}>
                        Open
                      </a>
                    )}
                  </li>
                ))}
              </ul>
            </section>
            <section>
              <h2>
                Edges <span class="muted">({edgeList.length})</span>
              </h2>
              {edgeList.length === 0 ? (
                <p class="muted">No edges: no route splits or upstreams{withTraffic ? ' and no traffic' : ''}.</p>
              ) : (
                <ul class="pick-list" aria-label="Edges" data-testid="topology-edges">
                  {edgeList.map((e) => (
                    <li
                      key={e.id}
                      data-edge-kind={e.kind}
                      data-edge-id={e.id}
                      data-health={e.health}
                      data-rps={e.stats?.requestsPerSecond}
                      data-share={e.share}
                      data-observed-share={e.observedShare}
                      data-mtls={e.mtls === undefined ? undefined : String(e.mtls)}
                    >
                      <button type="button" class={`pick ${selected === e.id ? 'selected' : ''}`} aria-pressed={selected === e.id} onClick={() => controls.current?.focus(e.id)}>
                        <span class={`dot ${e.health}`} aria-hidden="true" />
                        <span class="edge-ends">
                          {nameOf(e.source)} → {nameOf(e.target)}
                        </span>{' '}
                        <span class="edge-label">{describeEdge(e, withTraffic)}</span>
                      </button>
                    </li>
                  ))}
                </ul>
              )}
            </section>
            <Legend />
          </aside>
        </div>
    </div>
  );
}

function describeEdge(e: GraphEdge, withTraffic: boolean): string {
  const parts: string[] = [];
  if (e.kind === 'split') parts.push(e.label);
  if (e.kind === 'upstream') parts.push('upstream');
  if (e.observedShare !== undefined) parts.push(`seen ${formatPercent(e.observedShare)}`);
  if (withTraffic && e.stats) parts.push(e.stats.requestsPerSecond > 0 ? statsLabel(e.stats) : 'no requests');
  if (e.mtls) parts.push('mTLS');
  return parts.join(' · ');
}

function NodeDetails({ node }: { node: GraphNode }) {
  return (
    <div>
      <h2>{node.kind === 'external' ? node.label : node.name}</h2>
      <dl class="facts">
        {node.kind !== 'external' && (
          <>
            <dt>Namespace</dt>
            <dd>{node.namespace}</dd>
          </>
        )}
        <dt>Kind</dt>
        <dd>{node.missing ? `${node.kind}, referenced but not defined` : node.kind}</dd>
        {node.ready !== undefined && (
          <>
            <dt>Endpoints</dt>
            <dd>
              {node.ready} registered{node.expected !== undefined ? ` of ${node.expected}` : ''}
            </dd>
          </>
        )}
        <dt>Traffic</dt>
        <dd>{node.stats ? statsLabel(node.stats) || 'none' : 'no data yet'}</dd>
      </dl>
      {node.kind === 'service' && !node.missing && <a href={href({ page: 'service', namespace: node.namespace, name: node.name })}>Open the service page</a>}
    </div>
  );
}

function EdgeDetails({ edge, nameOf }: { edge: GraphEdge; nameOf: (id: string) => string }) {
  const kinds = { split: 'route split', upstream: 'upstream port', traffic: 'observed traffic', selects: 'selects' } as const;
  return (
    <div>
      <h2>
        {nameOf(edge.source)} → {nameOf(edge.target)}
      </h2>
      <dl class="facts">
        <dt>From</dt>
        <dd>{kinds[edge.kind]}</dd>
        {edge.route && (
          <>
            <dt>Route</dt>
            <dd>
              <a href={href({ page: 'config', kind: 'HTTPRoute', namespace: edge.route.split('/')[0], name: edge.route.split('/')[1]! })}>{edge.route}</a>
              {edge.rule !== undefined ? `, rule ${edge.rule + 1}` : ''}
            </dd>
          </>
        )}
        {edge.share !== undefined && (
          <>
            <dt>Configured share</dt>
            <dd>{formatPercent(edge.share)}</dd>
          </>
        )}
        {edge.observedShare !== undefined && (
          <>
            <dt>Observed share</dt>
            <dd>{formatPercent(edge.observedShare)}</dd>
          </>
        )}
        <dt>Traffic</dt>
        <dd>{edge.stats ? statsLabel(edge.stats) || 'none' : 'no data yet'}</dd>
        {edge.mtls !== undefined && (
          <>
            <dt>mTLS</dt>
            <dd>{edge.mtls ? 'yes' : 'no'}</dd>
          </>
        )}
      </dl>
    </div>
  );
}

function Legend() {
  return (
    <section class="legend" aria-label="Legend">
      <h2>Legend</h2>
      <ul>
        <li>
          <span class="swatch split" aria-hidden="true" /> route split (configured share)
        </li>
        <li>
          <span class="swatch upstream" aria-hidden="true" /> upstream port
        </li>
        <li class="legend-health">
          <span>
            <span class="dot healthy" aria-hidden="true" />
            healthy
          </span>
          <span>
            <span class="dot degraded" aria-hidden="true" />
            degraded
          </span>
          <span>
            <span class="dot failing" aria-hidden="true" />
            failing
          </span>
          <span>
            <span class="dot idle" aria-hidden="true" />
            idle
          </span>
          <span>
            <span class="dot unknown" aria-hidden="true" />
            no data
          </span>
        </li>
        <li class="muted small">
          Healthy: {HEALTH_THRESHOLDS.degradedSuccess * 100}% ok or more and p99 up to {formatMs(HEALTH_THRESHOLDS.degradedP99Ms)}; failing below {HEALTH_THRESHOLDS.failingSuccess * 100}% ok.
        </li>
        <li>■ at an edge's start: mTLS</li>
      </ul>
    </section>
  );
}
