// The cytoscape view of the topology: updates elements in place (never redraws from scratch), keeps zoom, pan, selection and positions.
import cytoscape from 'cytoscape';
import type { Core, ElementDefinition, EventObject, StylesheetJson } from 'cytoscape';
import { useLayoutEffect, useRef } from 'preact/hooks';
import { edgeLabel, type Graph, type GraphEdge, type GraphNode } from './graph.ts';
import { layeredLayout, placeNewcomers, type LayoutNode, type Point } from './layout.ts';

export interface GraphControls {
  fit(): void;
  /** Lays every node out afresh (the only thing that moves nodes the user has seen). */
  rearrange(): void;
  focus(id: string): void;
}

export interface GraphViewProps {
  graph: Graph;
  withTraffic: boolean;
  selected: string | undefined;
  onSelect: (id: string | undefined) => void;
  onOpen: (id: string) => void;
  controls: { current: GraphControls | undefined };
  label: string;
  /** What the graph shows (the namespace filter): when it changes, the view fits the new set of nodes. */
  scope: string;
}

/** From this many nodes on, panning and zooming draw a cheap stand-in. */
const LARGE_GRAPH = 120;

// Kept across visits to the page: coming back shows the graph as it was left.
const positions = new Map<string, Point>();
let savedViewport: { zoom: number; pan: Point } | undefined;

const COLORS = { healthy: '#16a34a', degraded: '#d97706', failing: '#dc2626', idle: '#94a3b8', unknown: '#64748b', split: '#2563eb', selected: '#7c3aed' };

const STYLE: StylesheetJson = [
  {
    selector: 'node',
    style: {
      shape: 'round-rectangle',
      width: 'data(w)',
      height: 'data(h)',
      'background-color': '#ffffff',
      'border-width': 2,
      'border-color': COLORS.unknown,
      label: 'data(label)',
      'text-wrap': 'wrap',
      'text-valign': 'center',
      'text-halign': 'center',
      'font-size': 12,
      'font-family': 'system-ui, sans-serif',
      color: '#0f172a',
      'min-zoomed-font-size': 7,
    },
  },
  { selector: 'node.workload', style: { shape: 'ellipse', 'background-color': '#f1f5f9', 'font-size': 11 } },
  { selector: 'node.gateway', style: { shape: 'round-tag', 'background-color': '#dbeafe' } },
  { selector: 'node.external', style: { shape: 'hexagon', 'background-color': '#f8fafc' } },
  { selector: 'node.foreign', style: { opacity: 0.55 } },
  { selector: 'node.missing', style: { 'border-style': 'dashed', color: '#b91c1c' } },
  { selector: 'node.healthy', style: { 'border-color': COLORS.healthy } },
  { selector: 'node.degraded', style: { 'border-color': COLORS.degraded, 'border-width': 3 } },
  { selector: 'node.failing', style: { 'border-color': COLORS.failing, 'border-width': 4 } },
  { selector: 'node:selected', style: { 'border-color': COLORS.selected, 'border-width': 4, 'background-color': '#ede9fe' } },
  {
    selector: 'edge',
    style: {
      width: 'data(width)',
      'curve-style': 'bezier',
      'line-color': COLORS.unknown,
      'target-arrow-shape': 'triangle',
      'target-arrow-color': COLORS.unknown,
      'arrow-scale': 0.9,
      label: 'data(label)',
      'font-size': 11,
      'font-family': 'system-ui, sans-serif',
      color: '#0f172a',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.9,
      'text-background-padding': '2px',
      'text-wrap': 'wrap',
      // Along the edge: labels of edges fanning out of one node then sit apart instead of on top of each other.
      'text-rotation': 'autorotate',
      'min-zoomed-font-size': 7,
    },
  },
  { selector: 'edge.split', style: { 'line-color': COLORS.split, 'target-arrow-color': COLORS.split } },
  { selector: 'edge.upstream', style: { 'line-style': 'dashed' } },
  { selector: 'edge.selects', style: { 'line-style': 'dotted', 'target-arrow-shape': 'none', 'line-color': '#cbd5e1', width: 1 } },
  { selector: 'edge.healthy', style: { 'line-color': COLORS.healthy, 'target-arrow-color': COLORS.healthy } },
  { selector: 'edge.degraded', style: { 'line-color': COLORS.degraded, 'target-arrow-color': COLORS.degraded } },
  { selector: 'edge.failing', style: { 'line-color': COLORS.failing, 'target-arrow-color': COLORS.failing } },
  { selector: 'edge.idle', style: { opacity: 0.6 } },
  { selector: 'edge.mtls', style: { 'source-arrow-shape': 'square', 'source-arrow-color': '#0f172a', 'arrow-scale': 0.8 } },
  { selector: 'edge:selected', style: { 'line-color': COLORS.selected, 'target-arrow-color': COLORS.selected, 'z-index': 10 } },
];

function nodeData(node: GraphNode, showNamespace: boolean): Record<string, unknown> {
  const label = node.kind === 'external' ? node.label : showNamespace ? `${node.name}\n${node.namespace}` : node.name;
  const widest = Math.max(...label.split('\n').map((l) => l.length));
  const suffix = node.kind === 'workload' && node.expected !== undefined ? ` ${node.ready ?? 0}/${node.expected}` : '';
  return {
    id: node.id,
    label: label + suffix,
    w: Math.max(72, (widest + suffix.length) * 7.4 + 26),
    h: showNamespace ? 44 : 34,
  };
}

function nodeClasses(node: GraphNode): string {
  return [node.kind, node.health, node.foreign ? 'foreign' : '', node.missing ? 'missing' : ''].filter(Boolean).join(' ');
}

function edgeWidth(edge: GraphEdge): number {
  if (edge.stats && edge.stats.requestsPerSecond > 0) return Math.min(8, 1.5 + Math.log10(1 + edge.stats.requestsPerSecond) * 2);
  if (edge.kind === 'split') return 1.5 + 3 * (edge.share ?? 0);
  return 1.5;
}

function edgeClasses(edge: GraphEdge): string {
  return [edge.kind, edge.health, edge.mtls ? 'mtls' : ''].filter(Boolean).join(' ');
}

function sameData(current: Record<string, unknown>, next: Record<string, unknown>): boolean {
  for (const key of Object.keys(next)) if (current[key] !== next[key]) return false;
  return true;
}

/** Brings cy's elements to `graph` by adding, updating and removing: what is there stays where it is. */
function sync(cy: Core, graph: Graph, withTraffic: boolean): { added: number } {
  const nodeIds = new Set(graph.nodes.map((n) => n.id));
  const edgeIds = new Set(graph.edges.map((e) => e.id));
  const showNamespace = new Set(graph.nodes.filter((n) => n.kind !== 'external').map((n) => n.namespace)).size > 1;
  const newcomers: LayoutNode[] = graph.nodes.filter((n) => !positions.has(n.id)).map((n) => ({ id: n.id, order: `${n.namespace}/${n.name}` }));
  const edges = graph.edges.map((e) => ({ source: e.source, target: e.target }));
  for (const [id, p] of placeNewcomers(positions, newcomers, edges)) positions.set(id, p);
  let added = 0;
  cy.batch(() => {
    cy.edges().forEach((e) => {
      if (!edgeIds.has(e.id())) e.remove();
    });
    cy.nodes().forEach((n) => {
      if (!nodeIds.has(n.id())) n.remove();
    });
    const toAdd: ElementDefinition[] = [];
    for (const node of graph.nodes) {
      const data = nodeData(node, showNamespace);
      const classes = nodeClasses(node);
      const existing = cy.getElementById(node.id);
      if (existing.nonempty()) {
        if (!sameData(existing.data() as Record<string, unknown>, data)) existing.data(data);
        if (existing.classes().join(' ') !== classes) existing.classes(classes);
      } else {
        toAdd.push({ group: 'nodes', data, classes, position: { ...positions.get(node.id)! } });
      }
    }
    for (const edge of graph.edges) {
      const data = { id: edge.id, source: edge.source, target: edge.target, label: edgeLabel(edge, withTraffic), width: edgeWidth(edge) };
      const classes = edgeClasses(edge);
      const existing = cy.getElementById(edge.id);
      if (existing.nonempty()) {
        const { source: _s, target: _t, ...changing } = data;
        if (!sameData(existing.data() as Record<string, unknown>, changing)) existing.data(changing);
        if (existing.classes().join(' ') !== classes) existing.classes(classes);
      } else {
        toAdd.push({ group: 'edges', data, classes });
      }
    }
    added = toAdd.length;
    if (toAdd.length) cy.add(toAdd);
  });
  return { added };
}

export function GraphView({ graph, withTraffic, selected, onSelect, onOpen, controls, label, scope }: GraphViewProps) {
  const container = useRef<HTMLDivElement>(null);
  const cyRef = useRef<Core | undefined>(undefined);
  const handlers = useRef({ onSelect, onOpen });
  handlers.current = { onSelect, onOpen };
  const firstFit = useRef(false);
  const shownScope = useRef(scope);

  // Layout effects, not effects: they run before the browser paints, so the first data is drawn a frame or two sooner.
  useLayoutEffect(() => {
    const el = container.current!;
    const cy = cytoscape({
      container: el,
      style: STYLE,
      layout: { name: 'preset' },
      minZoom: 0.05,
      maxZoom: 3,
      boxSelectionEnabled: false,
      selectionType: 'single',
    });
    cyRef.current = cy;
    performance.mark('weft:graph-created');
    cy.on('select', 'node, edge', (event: EventObject) => handlers.current.onSelect(event.target.id()));
    cy.on('unselect', 'node, edge', () => {
      // Selecting another element unselects this one first: report "nothing" only if nothing is left.
      setTimeout(() => {
        if (cy.destroyed()) return;
        if (cy.$(':selected').empty()) handlers.current.onSelect(undefined);
      }, 0);
    });
    cy.on('dbltap', 'node', (event: EventObject) => handlers.current.onOpen(event.target.id()));
    cy.on('dragfree', 'node', (event: EventObject) => positions.set(event.target.id(), { ...event.target.position() }));
    cy.on('viewport', () => {
      savedViewport = { zoom: cy.zoom(), pan: { ...cy.pan() } };
    });
    if (savedViewport) {
      cy.viewport({ zoom: savedViewport.zoom, pan: savedViewport.pan });
      firstFit.current = true;
    }
    const resize = new ResizeObserver(() => cy.resize());
    resize.observe(el);
    controls.current = {
      fit: () => cy.animate({ fit: { eles: cy.elements(), padding: 40 }, duration: 250 }),
      rearrange: () => {
        const nodes = cy.nodes().map((n) => ({ id: n.id(), order: n.id() }));
        const edges = cy.edges().map((e) => ({ source: e.source().id(), target: e.target().id() }));
        const fresh = layeredLayout(nodes, edges);
        for (const [id, p] of fresh) positions.set(id, p);
        cy.nodes().forEach((n) => {
          const p = fresh.get(n.id());
          if (p) n.animate({ position: p, duration: 300 });
        });
        setTimeout(() => !cy.destroyed() && cy.animate({ fit: { eles: cy.elements(), padding: 40 }, duration: 250 }), 320);
      },
      focus: (id: string) => {
        const target = cy.getElementById(id);
        if (target.empty()) return;
        cy.$(':selected').unselect();
        target.select();
        cy.animate({ center: { eles: target }, duration: 250 });
      },
    };
    return () => {
      resize.disconnect();
      controls.current = undefined;
      cy.destroy();
      cyRef.current = undefined;
    };
  }, []);

  useLayoutEffect(() => {
    const cy = cyRef.current;
    if (!cy) return;
    const { added } = sync(cy, graph, withTraffic);
    // Big meshes: a bitmap while panning and zooming, the real drawing when it stops. The graph is
    // created before the first data, so the options go to the renderer (which reads them on every frame).
    const renderer = (cy as unknown as { renderer(): { textureOnViewport: boolean; hideEdgesOnViewport: boolean } }).renderer();
    renderer.textureOnViewport = renderer.hideEdgesOnViewport = graph.nodes.length > LARGE_GRAPH;
    if (!firstFit.current && cy.nodes().nonempty()) {
      firstFit.current = true;
      cy.fit(undefined, 40);
      if (cy.zoom() > 1.4) {
        cy.zoom(1.4);
        cy.center();
      }
      cy.one('render', () => {
        performance.mark('weft:topology-rendered');
        document.documentElement.dataset.topologyRendered = String(Math.round(performance.now()));
      });
    } else if (shownScope.current !== scope) {
      cy.animate({ fit: { eles: cy.elements(), padding: 40 }, duration: 250 });
    } else if (added && graph.nodes.length <= 40) {
      // A small graph that grew: keep it all in view. Large ones keep the user's viewport.
      const outside = cy.nodes().some((n) => {
        const box = n.renderedBoundingBox();
        return box.x2 < 0 || box.y2 < 0 || box.x1 > cy.width() || box.y1 > cy.height();
      });
      if (outside) cy.animate({ fit: { eles: cy.elements(), padding: 40 }, duration: 250 });
    }
    shownScope.current = scope;
  }, [graph, withTraffic, scope]);

  useLayoutEffect(() => {
    const cy = cyRef.current;
    if (!cy) return;
    const current = cy.$(':selected');
    if (selected === undefined) {
      if (current.nonempty()) current.unselect();
      return;
    }
    if (current.length === 1 && current.id() === selected) return;
    current.unselect();
    cy.getElementById(selected).select();
  }, [selected, graph]);

  const onKeyDown = (event: KeyboardEvent) => {
    const cy = cyRef.current;
    if (!cy) return;
    const step = 60;
    const center = { x: cy.width() / 2, y: cy.height() / 2 };
    const actions: Record<string, () => void> = {
      '+': () => cy.zoom({ level: cy.zoom() * 1.2, renderedPosition: center }),
      '=': () => cy.zoom({ level: cy.zoom() * 1.2, renderedPosition: center }),
      '-': () => cy.zoom({ level: cy.zoom() / 1.2, renderedPosition: center }),
      ArrowLeft: () => cy.panBy({ x: step, y: 0 }),
      ArrowRight: () => cy.panBy({ x: -step, y: 0 }),
      ArrowUp: () => cy.panBy({ x: 0, y: step }),
      ArrowDown: () => cy.panBy({ x: 0, y: -step }),
      '0': () => controls.current?.fit(),
      f: () => controls.current?.fit(),
      Escape: () => cy.$(':selected').unselect(),
      Enter: () => {
        const node = cy.$('node:selected');
        if (node.nonempty()) handlers.current.onOpen(node.id());
      },
    };
    const action = actions[event.key];
    if (action && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      action();
    }
  };

  return (
    <div
      ref={container}
      class="graph"
      tabIndex={0}
      role="application"
      aria-roledescription="graph"
      aria-label={`${label}. Keys: + and - zoom, arrows pan, 0 fits, Enter opens the selected service, Escape clears the selection. The lists beside the graph hold the same nodes and edges.`}
      onKeyDown={onKeyDown}
    />
  );
}
