// PeerAuthentication: the mTLS mode each sidecar's tunnel enforces, workload policy over namespace policy over MeshConfig (Istio's precedence).
import type { Condition } from '../api/meta.ts';
import type { PeerAuthentication } from '../api/resources.ts';
import type { MtlsMode } from '../api/snapshot.ts';
import type { ObjectStatus } from './types.ts';

export interface PeerAuthenticationInput {
  peerAuthentications?: readonly PeerAuthentication[] | undefined;
}

interface IndexedPeerAuthentication {
  key: string;
  /** undefined: UNSET (inherit). */
  mode: MtlsMode | undefined;
  matchLabels: Record<string, string> | undefined;
}

export interface PeerAuthenticationIndex {
  /** Per namespace: the policy without a selector that applies (the oldest). */
  namespaceWide: Map<string, IndexedPeerAuthentication>;
  /** Per namespace: the policies with a selector, oldest first. */
  selecting: Map<string, IndexedPeerAuthentication[]>;
  /** Keyed "namespace/name". */
  statuses: Map<string, ObjectStatus>;
}

const cache = new WeakMap<readonly PeerAuthentication[], PeerAuthenticationIndex>();
const EMPTY: readonly PeerAuthentication[] = Object.freeze([]);

/** Indexes the policies once per compiler input (the array is replaced whenever one changes). */
export function indexPeerAuthentications(input: PeerAuthenticationInput): PeerAuthenticationIndex {
  const policies = input.peerAuthentications ?? EMPTY;
  let index = cache.get(policies);
  if (!index) {
    index = indexUncached(policies);
    cache.set(policies, index);
  }
  return index;
}

function indexUncached(policies: readonly PeerAuthentication[]): PeerAuthenticationIndex {
  const index: PeerAuthenticationIndex = { namespaceWide: new Map(), selecting: new Map(), statuses: new Map() };
  // Istio: when several policies apply at one level, the oldest wins.
  for (const policy of [...policies].sort(compareAge)) {
    const ns = policy.metadata.namespace ?? 'default';
    const key = `${ns}/${policy.metadata.name}`;
    const mode = policy.spec.mtls?.mode;
    const entry: IndexedPeerAuthentication = { key, mode: mode === 'STRICT' || mode === 'PERMISSIVE' ? mode : undefined, matchLabels: policy.spec.selector?.matchLabels };
    const generation = policy.metadata.generation;
    if (entry.matchLabels === undefined) {
      const holder = index.namespaceWide.get(ns);
      if (holder) {
        index.statuses.set(key, {
          conditions: [condition('Accepted', 'False', 'Conflicted', `the older PeerAuthentication ${holder.key} is namespace ${ns}'s namespace-wide policy; this one is ignored`, generation)],
        });
        continue;
      }
      index.namespaceWide.set(ns, entry);
    } else {
      let list = index.selecting.get(ns);
      if (!list) index.selecting.set(ns, (list = []));
      list.push(entry);
    }
    index.statuses.set(key, { conditions: [condition('Accepted', 'True', 'Accepted', '', generation)] });
  }
  return index;
}

/**
 * The mode for a sidecar of the workload with `labels` in `namespace`
 * (labels undefined: no template, so only namespace-wide policies apply):
 * the oldest matching workload policy, else the namespace-wide one, else
 * MeshConfig's; UNSET at a level defers to the next.
 */
export function workloadMtlsMode(index: PeerAuthenticationIndex, namespace: string, labels: Record<string, string> | undefined, meshMode: MtlsMode): MtlsMode {
  if (labels !== undefined) {
    const selected = index.selecting.get(namespace)?.find((p) => Object.entries(p.matchLabels!).every(([k, v]) => labels[k] === v));
    if (selected?.mode) return selected.mode;
  }
  return index.namespaceWide.get(namespace)?.mode ?? meshMode;
}

function compareAge(a: PeerAuthentication, b: PeerAuthentication): number {
  const ta = a.metadata.creationTimestamp;
  const tb = b.metadata.creationTimestamp;
  if (ta !== tb) {
    if (ta === undefined) return 1;
    if (tb === undefined) return -1;
    const byTime = Date.parse(ta) - Date.parse(tb);
    if (byTime !== 0) return byTime;
  }
  const ka = `${a.metadata.namespace ?? 'default'}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? 'default'}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function condition(type: string, status: Condition['status'], reason: string, message: string, observedGeneration: number | undefined): Condition {
  const c: Condition = { type, status, reason, message };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}
