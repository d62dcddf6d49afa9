// Status conditions as a table and as a compact badge row.
import type { Resource } from '../../api/meta.ts';
import { conditionsOf } from '../model.ts';

export function ConditionBadges({ object }: { object: Resource }) {
  const conditions = conditionsOf(object);
  if (conditions.length === 0) return <span class="muted">pending</span>;
  return (
    <span class="badges">
      {conditions.map(({ scope, condition }, i) => (
        <span
          key={i}
          class={`badge ${condition.status === 'True' ? 'ok' : condition.status === 'False' ? 'bad' : 'unknown'}`}
          title={`${scope ? `${scope}: ` : ''}${condition.type}=${condition.status} (${condition.reason})${condition.message ? `: ${condition.message}` : ''}`}
        >
          {condition.status === 'True' ? '✓' : condition.status === 'False' ? '✗' : '?'} {condition.type}
        </span>
      ))}
    </span>
  );
}

export function ConditionTable({ object }: { object: Resource }) {
  const conditions = conditionsOf(object);
  if (conditions.length === 0) return <p class="muted">No status conditions yet: the control plane writes them after its next compile.</p>;
  const scoped = conditions.some((c) => c.scope);
  return (
    <table class="table compact">
      <thead>
        <tr>
          {scoped && <th scope="col">Parent</th>}
          <th scope="col">Type</th>
          <th scope="col">Status</th>
          <th scope="col">Reason</th>
          <th scope="col">Message</th>
        </tr>
      </thead>
      <tbody>
        {conditions.map(({ scope, condition }, i) => (
          <tr key={i}>
            {scoped && <td>{scope ?? ''}</td>}
            <td>{condition.type}</td>
            <td>
              <span class={`badge ${condition.status === 'True' ? 'ok' : condition.status === 'False' ? 'bad' : 'unknown'}`}>{condition.status}</span>
            </td>
            <td>{condition.reason}</td>
            <td class="wrap">{condition.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
