// Positions for the topology: a left-to-right layered layout of the connected part, a grid of the rest, and a place for each newcomer that moves nobody. Pure: no DOM.
//
// cytoscape's force layouts move every node on every run and take seconds at
// 200 services; this one is a few milliseconds and deterministic, and once a
// node has a position it keeps it until the user asks to re-arrange.

export interface Point {
  x: number;
  y: number;
}

export interface LayoutNode {
  id: string;
  /** Sort key inside a column or the grid: namespace, then name. */
  order: string;
}

export interface LayoutEdge {
  source: string;
  target: string;
}

export const COLUMN_GAP = 300;
export const ROW_GAP = 90;
const GRID_COLUMN = 210;
const GRID_ROW = 64;
const COMPONENT_GAP = 40;

/** s2 before s10. A fixed locale: the layout must not depend on the browser's language. */
const collator = new Intl.Collator('en', { numeric: true });
const naturalOrder = (a: string, b: string) => collator.compare(a, b);

/** Longest-path layers over a DAG; edges that close a cycle (found by DFS in id order) are ignored. */
function layers(ids: readonly string[], edges: readonly LayoutEdge[]): Map<string, number> {
  const out = new Map<string, string[]>();
  for (const id of ids) out.set(id, []);
  for (const e of edges) if (e.source !== e.target && out.has(e.source) && out.has(e.target)) out.get(e.source)!.push(e.target);
  for (const targets of out.values()) targets.sort();
  const state = new Map<string, 1 | 2>(); // 1: on the stack, 2: done
  const forward = new Map<string, string[]>();
  const visit = (start: string) => {
    // Iterative DFS: 200 services in one chain must not overflow the stack.
    const stack: { id: string; next: number }[] = [{ id: start, next: 0 }];
    state.set(start, 1);
    forward.set(start, []);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const targets = out.get(top.id)!;
      if (top.next >= targets.length) {
        state.set(top.id, 2);
        stack.pop();
        continue;
      }
      const target = targets[top.next++]!;
      const seen = state.get(target);
      if (seen === 1) continue; // a back edge: drop it
      forward.get(top.id)!.push(target);
      if (seen === undefined) {
        state.set(target, 1);
        forward.set(target, []);
        stack.push({ id: target, next: 0 });
      }
    }
  };
  const sorted = [...ids].sort();
  const hasIncoming = new Set(edges.filter((e) => e.source !== e.target).map((e) => e.target));
  for (const id of sorted) if (!hasIncoming.has(id) && !state.has(id)) visit(id);
  for (const id of sorted) if (!state.has(id)) visit(id);
  // Kahn's order over the forward edges, then longest path.
  const indegree = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const targets of forward.values()) for (const t of targets) indegree.set(t, (indegree.get(t) ?? 0) + 1);
  const rank = new Map<string, number>(ids.map((id) => [id, 0]));
  const queue = sorted.filter((id) => indegree.get(id) === 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    for (const t of forward.get(id) ?? []) {
      rank.set(t, Math.max(rank.get(t)!, rank.get(id)! + 1));
      indegree.set(t, indegree.get(t)! - 1);
      if (indegree.get(t) === 0) queue.push(t);
    }
  }
  return rank;
}

function components(ids: readonly string[], edges: readonly LayoutEdge[]): string[][] {
  const parent = new Map(ids.map((id) => [id, id]));
  const find = (id: string): string => {
    let root = id;
    while (parent.get(root) !== root) root = parent.get(root)!;
    parent.set(id, root);
    return root;
  };
  for (const e of edges) if (parent.has(e.source) && parent.has(e.target)) parent.set(find(e.source), find(e.target));
  const groups = new Map<string, string[]>();
  for (const id of ids) {
    const root = find(id);
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root)!.push(id);
  }
  return [...groups.values()];
}

/**
 * Every node's position: each connected component as layered columns, the
 * components packed in rows (biggest first) to a screen-like width, then the
 * unconnected nodes in a grid below.
 */
export function layeredLayout(nodes: readonly LayoutNode[], edges: readonly LayoutEdge[]): Map<string, Point> {
  const order = new Map(nodes.map((n) => [n.id, n.order]));
  const byOrder = (a: string, b: string) => naturalOrder(order.get(a)!, order.get(b)!);
  const known = edges.filter((e) => e.source !== e.target && order.has(e.source) && order.has(e.target));
  const connected = new Set(known.flatMap((e) => [e.source, e.target]));
  const positions = new Map<string, Point>();

  // Each component on its own, at the origin.
  const blocks: { width: number; height: number; local: Map<string, Point> }[] = [];
  const groups = components([...connected], known).map((g) => g.sort(byOrder));
  groups.sort((a, b) => b.length - a.length || byOrder(a[0]!, b[0]!));
  for (const group of groups) {
    const members = new Set(group);
    const groupEdges = known.filter((e) => members.has(e.source));
    const rank = layers(group, groupEdges);
    const columns: string[][] = [];
    for (const id of group) (columns[rank.get(id)!] ??= []).push(id);
    // One barycentre pass: a node sits near the nodes that point at it, which keeps split edges from crossing.
    const rowOf = new Map<string, number>();
    columns.forEach((column, c) => {
      if (c > 0) {
        const score = (id: string) => {
          const rows = groupEdges.filter((e) => e.target === id && rowOf.has(e.source)).map((e) => rowOf.get(e.source)!);
          return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Number.MAX_SAFE_INTEGER;
        };
        column.sort((a, b) => score(a) - score(b) || byOrder(a, b));
      }
      column.forEach((id, row) => rowOf.set(id, row));
    });
    const height = Math.max(...columns.map((c) => c?.length ?? 0));
    const local = new Map<string, Point>();
    columns.forEach((column, c) => {
      const offset = ((height - column.length) * ROW_GAP) / 2;
      column.forEach((id, row) => local.set(id, { x: c * COLUMN_GAP, y: offset + row * ROW_GAP }));
    });
    blocks.push({ width: columns.length * COLUMN_GAP, height: height * ROW_GAP, local });
  }

  const loose = nodes.filter((n) => !connected.has(n.id)).map((n) => n.id).sort(byOrder);
  // Wider than tall, like the screens it is shown on.
  const area = blocks.reduce((sum, b) => sum + b.width * b.height, 0) + loose.length * GRID_COLUMN * GRID_ROW;
  const rowWidth = Math.max(...blocks.map((b) => b.width), Math.sqrt(area * 1.8));

  // Shelf packing: left to right, a new shelf when the next block would overflow the width.
  let x = 0;
  let top = 0;
  let shelf = 0;
  for (const block of blocks) {
    if (x > 0 && x + block.width > rowWidth) {
      top += shelf + COMPONENT_GAP;
      x = 0;
      shelf = 0;
    }
    for (const [id, p] of block.local) positions.set(id, { x: x + p.x, y: top + p.y });
    x += block.width;
    shelf = Math.max(shelf, block.height);
  }
  if (blocks.length) top += shelf + COMPONENT_GAP;

  const perRow = Math.max(1, Math.min(loose.length, Math.max(Math.floor(rowWidth / GRID_COLUMN), Math.ceil(Math.sqrt(loose.length * 2.2)))));
  loose.forEach((id, i) => positions.set(id, { x: (i % perRow) * GRID_COLUMN, y: top + Math.floor(i / perRow) * GRID_ROW }));
  return positions;
}

function collides(p: Point, placed: Iterable<Point>): boolean {
  for (const q of placed) if (Math.abs(p.x - q.x) < GRID_COLUMN * 0.8 && Math.abs(p.y - q.y) < GRID_ROW * 0.8) return true;
  return false;
}

/**
 * Positions for nodes that have none yet, leaving every placed node where it
 * is: next to a placed neighbour (right of what points at it, left of what it
 * points at), else below everything, then nudged down until nothing overlaps.
 */
export function placeNewcomers(
  placed: ReadonlyMap<string, Point>,
  newcomers: readonly LayoutNode[],
  edges: readonly LayoutEdge[],
): Map<string, Point> {
  const result = new Map<string, Point>();
  if (newcomers.length === 0) return result;
  if (placed.size === 0) return layeredLayout(newcomers, edges);
  const all = new Map(placed);
  let bottom = -Infinity;
  let left = Infinity;
  for (const p of placed.values()) {
    bottom = Math.max(bottom, p.y);
    left = Math.min(left, p.x);
  }
  // Newcomers without a placed neighbour are laid out among themselves, as a block below the graph.
  const loose: LayoutNode[] = [];
  const ordered = [...newcomers].sort((a, b) => naturalOrder(a.order, b.order));
  for (const n of ordered) {
    const from = edges.find((e) => e.target === n.id && e.source !== n.id && all.has(e.source));
    const to = edges.find((e) => e.source === n.id && e.target !== n.id && all.has(e.target));
    const anchor = from ? all.get(from.source)! : to ? all.get(to.target)! : undefined;
    if (!anchor) {
      loose.push(n);
      continue;
    }
    const p = { x: anchor.x + (from ? COLUMN_GAP : -COLUMN_GAP), y: anchor.y };
    for (let i = 0; i < 400 && collides(p, all.values()); i++) p.y += GRID_ROW;
    all.set(n.id, p);
    result.set(n.id, p);
  }
  if (loose.length) {
    const block = layeredLayout(loose, edges);
    const top = bottom + GRID_ROW * 1.5;
    for (const [id, p] of block) {
      const q = { x: left + p.x, y: top + p.y };
      for (let i = 0; i < 400 && collides(q, all.values()); i++) q.y += GRID_ROW;
      all.set(id, q);
      result.set(id, q);
    }
  }
  return result;
}
