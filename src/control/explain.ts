// `weft explain` on the control plane: compiles the snapshot the named workload's sidecar (or Gateway's proxy) gets, and replays the request against it.
import { ErrorCodes, WeftError } from '../api/errors.ts';
import type { ExplainRequest, ExplainTrace } from '../api/explain.ts';
import { gatewayWorkloadName, type NodeInfo, type ProxySnapshot } from '../api/snapshot.ts';
import type { ProxyStatus } from '../api/stream.ts';
import { explainRequest, type ExplainSource } from '../compiler/explain.ts';
import { explainAuthorization } from '../compiler/explain-authorization.ts';
import type { CompilerInput } from '../compiler/types.ts';

export interface ExplainContext {
  input(): CompilerInput;
  compile(input: CompilerInput, node: NodeInfo): ProxySnapshot;
  proxies(): ProxyStatus[];
  /** Epoch ms, to judge a token's `exp`; without it expiry is shown, not judged. */
  now?: () => number;
}

function splitName(text: string, field: string): { namespace: string; name: string } {
  const parts = text.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new WeftError(ErrorCodes.INVALID, `${field}: "${text}" is not "<namespace>/<name>"`);
  return { namespace: parts[0], name: parts[1] };
}

/** The trace for one request, from the control plane's current config; throws WEFT_ERR_INVALID / WEFT_ERR_NOT_FOUND naming the field. */
export function explainFromConfig(request: ExplainRequest, context: ExplainContext): ExplainTrace {
  if ((request.from === undefined) === (request.gateway === undefined)) throw new WeftError(ErrorCodes.INVALID, 'give exactly one of from (a workload, "<ns>/<name>") and gateway ("<ns>/<name>")');
  const input = context.input();
  let node: NodeInfo;
  let source: ExplainSource;
  if (request.from !== undefined) {
    const { namespace, name } = splitName(request.from, 'from');
    const template = input.workloads.find((w) => !w.spec?.address && w.metadata.name === name && (w.metadata.namespace ?? 'default') === namespace);
    if (!template) throw new WeftError(ErrorCodes.NOT_FOUND, `from: no Workload ${namespace}/${name}`);
    node = { id: `${namespace}/explain`, mode: 'sidecar', namespace, workload: name, address: '127.0.0.1', tunnelPort: 0, appPorts: [] };
    source = { kind: 'workload', name: `${namespace}/${name}` };
  } else {
    const { namespace, name } = splitName(request.gateway!, 'gateway');
    const gateway = (input.gateways ?? []).find((g) => g.metadata.name === name && (g.metadata.namespace ?? 'default') === namespace);
    if (!gateway) throw new WeftError(ErrorCodes.NOT_FOUND, `gateway: no Gateway ${namespace}/${name}`);
    // What `weft proxy --mode gateway` says in its hello, so that the snapshot is the one that proxy gets.
    node = { id: `${namespace}/explain`, mode: 'gateway', namespace, workload: gatewayWorkloadName(name), gateway: `${namespace}/${name}`, address: '127.0.0.1', tunnelPort: 0, appPorts: [] };
    source = { kind: 'gateway', name: `${namespace}/${name}` };
  }
  const snapshot = context.compile(input, node);
  const trace = explainRequest(snapshot, request, source);
  // RequestAuthentications and AuthorizationPolicies are enforced at the gateway and at the destination: their decisions join the trace.
  explainAuthorization(trace, input, snapshot, source, context.now?.());
  // The proxies that would send it: whether they run the config the trace was made from.
  const serving = context.proxies().filter((p) => p.namespace === node.namespace && p.workload === node.workload);
  if (serving.length === 0) trace.notes.push(`No proxy of ${source.name} is connected to this control plane: the trace is what it would do once it runs.`);
  for (const p of serving) {
    if (!p.connected) trace.notes.push(`Proxy ${p.id} is not connected; it keeps its last config.`);
    else if (p.ackedVersion !== snapshot.version) trace.notes.push(`Proxy ${p.id} runs config ${p.ackedVersion ?? '(none yet)'}, this trace used ${snapshot.version}: a push is pending or was refused${p.lastNack ? ` (${p.lastNack.code}: ${p.lastNack.message})` : ''}.`);
  }
  return trace;
}
