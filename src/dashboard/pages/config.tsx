// Config page: every object by kind and namespace with its conditions; YAML view; apply (dry run, diff, confirmation) and delete (confirmation); field-path errors.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Resource } from '../../api/meta.ts';
import { ApiFailure, apply, dryRunApply, remove, type DryRunResult, type KindEntry, type StatusCause } from '../api.ts';
import { ConditionBadges, ConditionTable } from '../components/conditions.tsx';
import { Dialog } from '../components/dialog.tsx';
import { diffLines, withContext, type DiffLine } from '../components/diff.ts';
import { toYaml } from '../components/yaml.ts';
import { useAsync, useNow } from '../hooks.ts';
import { findKind, useKinds } from '../kinds.ts';
import { useLive } from '../live.ts';
import { age, byName, displayName, editable, groupOf, PROXY_ANNOTATION } from '../model.ts';
import { href, type Route } from '../router.ts';

type ConfigRoute = Extract<Route, { page: 'config' }>;

interface Review {
  yaml: string;
  results: (DryRunResult & { diff: DiffLine[] | undefined; beforeYaml: string; afterYaml: string })[];
}

type Editing = { mode: 'edit'; text: string; title: string } | { mode: 'new'; text: string; title: string };

const NEW_OBJECT_HINT = `# Paste or write one or more objects (separate them with ---), then review the changes.
apiVersion: v1
kind: Service
metadata:
  name: example
  namespace: default
spec:
  selector: {app: example}
  ports:
    - {name: http, port: 8080, appProtocol: http}
`;

function isInstance(o: Resource): boolean {
  return o.kind === 'Workload' && !!o.metadata.annotations?.[PROXY_ANNOTATION];
}

export function ConfigPage({ namespace, route }: { namespace: string | undefined; route: ConfigRoute }) {
  const live = useLive();
  const kinds = useKinds();
  const now = useNow(10_000);
  const [search, setSearch] = useState('');
  const [showInstances, setShowInstances] = useState(true);
  const [editing, setEditing] = useState<Editing | undefined>(undefined);
  const [message, setMessage] = useState<{ text: string; bad?: boolean } | undefined>(undefined);

  // The kind filter starts from #/config/<Kind>; choosing an object to look at does not narrow the list.
  const [kind, setKind] = useState<string | undefined>(route.name ? undefined : route.kind);
  useEffect(() => {
    if (!route.name) setKind(route.kind);
  }, [route.kind, route.name]);
  const all = useMemo(() => [...live.objects.values()].sort(byName), [live.objects]);
  const counts = useMemo(() => {
    const c = new Map<string, number>();
    for (const o of all) if (!namespace || o.metadata.namespace === namespace || !o.metadata.namespace) c.set(o.kind, (c.get(o.kind) ?? 0) + 1);
    return c;
  }, [all, namespace]);
  const kindNames = useMemo(() => [...new Set([...(kinds ?? []).map((k) => k.kind), ...counts.keys()])], [kinds, counts]);
  const needle = search.trim().toLowerCase();
  const rows = all.filter(
    (o) =>
      (!kind || o.kind === kind) &&
      (!namespace || o.metadata.namespace === namespace || !o.metadata.namespace) &&
      (showInstances || !isInstance(o)) &&
      (!needle || o.metadata.name.includes(needle) || o.kind.toLowerCase().includes(needle)),
  );
  const selected = route.name
    ? all.find((o) => o.kind === route.kind && o.metadata.name === route.name && (o.metadata.namespace ?? undefined) === route.namespace)
    : undefined;

  // A different object (or none) ends an edit of the previous one.
  const selectedKey = selected ? `${selected.kind}/${selected.metadata.namespace ?? ''}/${selected.metadata.name}` : '';
  const editedKey = useRef('');
  useEffect(() => {
    if (editing?.mode === 'edit' && editedKey.current !== selectedKey) setEditing(undefined);
  }, [selectedKey]);

  const startEdit = async (o: Resource) => {
    editedKey.current = selectedKey;
    setEditing({ mode: 'edit', text: await toYaml(editable(o)), title: `Edit ${o.kind} ${displayName(o)}` });
  };

  return (
    <div class="page config-page">
      <div class="toolbar">
        <h1>Config</h1>
        <label>
          <span class="label">Kind</span>
          <select value={kind ?? ''} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value || undefined)}>
            <option value="">All kinds ({[...counts.values()].reduce((a, b) => a + b, 0)})</option>
            {kindNames.map((k) => (
              <option key={k} value={k}>
                {k} ({counts.get(k) ?? 0})
              </option>
            ))}
          </select>
        </label>
        <label class="search">
          <span class="label">Find</span>
          <input type="search" value={search} placeholder="name" onInput={(e) => setSearch((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={showInstances} onChange={(e) => setShowInstances((e.currentTarget as HTMLInputElement).checked)} />
          Registered instances
        </label>
        <button type="button" class="primary" onClick={() => setEditing({ mode: 'new', text: NEW_OBJECT_HINT, title: 'Apply YAML' })}>
          Apply YAML…
        </button>
      </div>
      <p class="sr-only" role="status" aria-live="polite">
        {message?.text ?? ''}
      </p>
      {message && (
        <p class={`notice ${message.bad ? 'bad' : 'good'}`} data-testid="config-message">
          {message.text}{' '}
          <button type="button" class="link" onClick={() => setMessage(undefined)}>
            Dismiss
          </button>
        </p>
      )}
      <div class="config-body">
        <section class="card objects" aria-label="Objects">
          {!live.synced ? (
            <p class="muted">Loading…</p>
          ) : rows.length === 0 ? (
            <p class="muted">No objects{kind ? ` of kind ${kind}` : ''}{namespace ? ` in ${namespace}` : ''}.</p>
          ) : (
            <div class="table-scroll">
              <table class="table" data-testid="objects">
                <thead>
                  <tr>
                    <th scope="col">Kind</th>
                    <th scope="col">Namespace</th>
                    <th scope="col">Name</th>
                    <th scope="col">Status</th>
                    <th scope="col">Gen.</th>
                    <th scope="col">Age</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((o) => {
                    const to = href({ page: 'config', kind: o.kind, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), name: o.metadata.name });
                    const current = selected === o;
                    return (
                      <tr key={`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`} class={current ? 'selected' : ''}>
                        <td>{o.kind}</td>
                        <td>{o.metadata.namespace ?? '-'}</td>
                        <td>
                          <a href={to} aria-current={current ? 'true' : undefined}>
                            {o.metadata.name}
                          </a>
                          {isInstance(o) && <span class="tag">registered</span>}
                        </td>
                        <td>
                          <ConditionBadges object={o} />
                        </td>
                        <td>{o.metadata.generation ?? '-'}</td>
                        <td>{age(o.metadata.creationTimestamp, now)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </section>
        <section class="card detail" aria-label="Object">
          {editing ? (
            <Editor
              key={editing.title}
              editing={editing}
              onCancel={() => setEditing(undefined)}
              onApplied={(text) => {
                setEditing(undefined);
                setMessage({ text });
              }}
            />
          ) : selected ? (
            <ObjectDetail object={selected} kinds={kinds} onEdit={() => void startEdit(selected)} onDeleted={(text) => {
              setMessage({ text });
              location.hash = href({ page: 'config' });
            }} onError={(text) => setMessage({ text, bad: true })} />
          ) : route.name ? (
            <p class="muted">
              {route.kind} {route.namespace ? `${route.namespace}/` : ''}
              {route.name} does not exist (any more).
            </p>
          ) : (
            <p class="muted">Choose an object to see its YAML and status, edit or delete it; or apply new YAML.</p>
          )}
        </section>
      </div>
    </div>
  );
}

function ObjectDetail({
  object,
  kinds,
  onEdit,
  onDeleted,
  onError,
}: {
  object: Resource;
  kinds: KindEntry[] | undefined;
  onEdit: () => void;
  onDeleted: (text: string) => void;
  onError: (text: string) => void;
}) {
  const yaml = useAsync(() => toYaml(object), [object]);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const kind = findKind(kinds, object.kind, groupOf(object.apiVersion));
  const instance = isInstance(object);
  // The events stream sends a Secret's keys, not its values (the control plane redacts them): editing here would write the placeholders.
  const secret = object.kind === 'Secret' && groupOf(object.apiVersion) === '';

  const doDelete = async () => {
    if (!kind) return;
    setBusy(true);
    try {
      await remove(kind, object.metadata.namespace, object.metadata.name);
      setConfirming(false);
      onDeleted(`Deleted ${object.kind} ${displayName(object)}.`);
    } catch (error) {
      setConfirming(false);
      onError(`Could not delete ${object.kind} ${displayName(object)}: ${(error as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <header class="detail-header">
        <h2>
          {object.kind} {displayName(object)}
        </h2>
        <div class="buttons">
          <button
            type="button"
            onClick={onEdit}
            disabled={instance || secret}
            title={instance ? 'Registered by its proxy; edit the template Workload instead' : secret ? 'Secret values are not sent to the dashboard; apply Secrets with weft apply' : undefined}
          >
            Edit
          </button>
          <button type="button" class="danger" onClick={() => setConfirming(true)} disabled={!kind}>
            Delete…
          </button>
        </div>
      </header>
      {instance && <p class="muted small">Registered by proxy {object.metadata.annotations?.[PROXY_ANNOTATION]} under a lease; it goes away with the proxy.</p>}
      <h3>Status</h3>
      <ConditionTable object={object} />
      <h3>YAML</h3>
      <pre class="yaml" tabIndex={0} aria-label={`YAML of ${object.kind} ${displayName(object)}`} data-testid="yaml">
        {yaml ?? 'Loading…'}
      </pre>
      <Dialog
        open={confirming}
        title={`Delete ${object.kind} ${displayName(object)}?`}
        onClose={() => setConfirming(false)}
        actions={
          <>
            <button type="button" autoFocus onClick={() => setConfirming(false)}>
              Cancel
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => void doDelete()}>
              Delete
            </button>
          </>
        }
      >
        <p>
          The control plane removes it at once and the proxies stop using it on their next config push.
          {object.kind === 'Service' ? ' Routes that send traffic to this service will answer errors.' : ''}
        </p>
      </Dialog>
    </div>
  );
}

function Editor({ editing, onCancel, onApplied }: { editing: Editing; onCancel: () => void; onApplied: (text: string) => void }) {
  const [text, setText] = useState(editing.text);
  const [causes, setCauses] = useState<{ message: string; causes: StatusCause[] } | undefined>(undefined);
  const [review, setReview] = useState<Review | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => area.current?.focus(), []);

  const fail = (error: unknown) => {
    if (error instanceof ApiFailure) setCauses({ message: error.status.message, causes: error.status.details?.causes ?? [] });
    else setCauses({ message: (error as Error).message, causes: [] });
  };

  const doReview = async () => {
    setBusy(true);
    setCauses(undefined);
    try {
      const { results } = await dryRunApply(text);
      const withDiffs = await Promise.all(
        results.map(async (r) => {
          const beforeYaml = r.before ? await toYaml(editable(r.before)) : '';
          const afterYaml = await toYaml(editable(r.object));
          return { ...r, beforeYaml, afterYaml, diff: diffLines(beforeYaml, afterYaml) };
        }),
      );
      setReview({ yaml: text, results: withDiffs });
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  };

  const doApply = async () => {
    if (!review) return;
    setBusy(true);
    try {
      const { results } = await apply(review.yaml);
      setReview(undefined);
      onApplied(`Applied: ${results.map((r) => `${r.object.kind.toLowerCase()}/${r.object.metadata.name} ${r.action}`).join(', ')}.`);
    } catch (error) {
      setReview(undefined);
      fail(error);
    } finally {
      setBusy(false);
    }
  };

  const changing = review?.results.filter((r) => r.action !== 'unchanged').length ?? 0;
  return (
    <div class="editor">
      <h2>{editing.title}</h2>
      <label for="yaml-editor" class="label">
        YAML (several objects may be separated with ---)
      </label>
      <textarea
        id="yaml-editor"
        ref={area}
        class="yaml-editor"
        spellcheck={false}
        autocomplete="off"
        value={text}
        rows={Math.min(40, Math.max(14, text.split('\n').length + 2))}
        onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)}
        aria-describedby={causes ? 'editor-errors' : undefined}
        aria-invalid={causes ? true : undefined}
      />
      {causes && (
        <div id="editor-errors" class="errors" role="alert" data-testid="validation-errors">
          <p>{causes.message}</p>
          {causes.causes.length > 0 && (
            <ul>
              {causes.causes.map((c, i) => (
                <li key={i}>
                  {c.object && <span class="muted">{c.object}: </span>}
                  {c.field && <code class="field">{c.field}</code>}
                  {c.line ? <span class="muted"> (line {c.line}{c.column ? `, column ${c.column}` : ''})</span> : null}: {c.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div class="buttons">
        <button type="button" class="primary" disabled={busy} onClick={() => void doReview()}>
          Review changes…
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <Dialog
        open={review !== undefined}
        wide
        title={changing ? `Apply ${changing} change${changing === 1 ? '' : 's'}?` : 'Nothing would change'}
        onClose={() => setReview(undefined)}
        actions={
          <>
            <button type="button" onClick={() => setReview(undefined)}>
              Cancel
            </button>
            <button type="button" class="primary" autoFocus disabled={busy || changing === 0} onClick={() => void doApply()}>
              Apply
            </button>
          </>
        }
      >
        <p class="muted small">A dry run on the control plane: nothing has been written yet.</p>
        {review?.results.map((r, i) => (
          <div key={i} class="review-item" data-testid="review-item">
            <h3>
              <span class={`badge ${r.action === 'unchanged' ? 'unknown' : 'ok'}`}>{r.action}</span> {r.object.kind} {displayName(r.object)}
            </h3>
            {r.changes.length > 0 && r.action === 'configured' && (
              <ul class="changes">
                {r.changes.slice(0, 12).map((c, k) => (
                  <li key={k}>
                    <code class="field">{c.path}</code>: {c.before === undefined ? '(none)' : JSON.stringify(c.before)} → {c.after === undefined ? '(removed)' : JSON.stringify(c.after)}
                  </li>
                ))}
                {r.changes.length > 12 && <li class="muted">and {r.changes.length - 12} more</li>}
              </ul>
            )}
            {r.action !== 'unchanged' && <DiffView lines={r.diff} before={r.beforeYaml} after={r.afterYaml} />}
          </div>
        ))}
      </Dialog>
    </div>
  );
}

function DiffView({ lines, before, after }: { lines: DiffLine[] | undefined; before: string; after: string }) {
  if (!lines) {
    return (
      <div class="grid-2">
        <pre class="yaml">{before}</pre>
        <pre class="yaml">{after}</pre>
      </div>
    );
  }
  return (
    <pre class="diff" data-testid="diff" tabIndex={0} aria-label="Changes: lines starting with + are added, - removed">
      {withContext(lines, 4).map((line, i) =>
        line.op === '…' ? (
          <span key={i} class="fold">
            {`  … ${line.count} unchanged line${line.count === 1 ? '' : 's'}\n`}
          </span>
        ) : (
          <span key={i} class={line.op === '+' ? 'add' : line.op === '-' ? 'del' : ''}>
            {`${line.op} ${line.text}\n`}
          </span>
        ),
      )}
    </pre>
  );
}
