// The compiler entry points the control plane calls, as one interface so that tests can substitute a compiler.
import type { NodeInfo, ProxySnapshot } from '../api/snapshot.ts';
import type { CheckSnapshotOptions } from '../compiler/compile.ts';
import type { CompilerInput } from '../compiler/types.ts';

export interface CompilerFunctions {
  compile(input: CompilerInput, node: NodeInfo): ProxySnapshot;
  /** Proxies with equal keys get equal snapshots, so they share one. */
  snapshotInputKey(node: NodeInfo): string;
  /** Problems found in a snapshot; empty when it may be published. */
  checkSnapshot(snapshot: ProxySnapshot, options?: CheckSnapshotOptions): string[];
  /** The status every object should have, by object key. */
  computeStatuses(input: CompilerInput): Map<string, unknown>;
}
