// The audit log: AID registration events, attachment decisions and AMP admin actions in one
// list, newest first; filters by type, actor and time window; pages; a CSV export of all matches.

import { useEffect, useState } from 'preact/hooks';
import { api, query } from '../api';
import { Badge, PageHead, attempt } from '../components';
import { when } from '../format';
import type { Session } from '../session';

interface AuditRow {
  id: string;
  at: string;
  type: string;
  actor: string | null;
  ip: string | null;
  target: string | null;
  reason: string | null;
  source: string;
}

interface AuditAnswer {
  data: AuditRow[];
  meta: { total_count: number; page: number; records: number; total_pages: number };
  types: string[];
}

interface Filters {
  type: string;
  actor: string;
  since: string;
  before: string;
}

const EMPTY: Filters = { type: '', actor: '', since: '', before: '' };
const RECORDS = 25;

/** A datetime-local value (the browser's local time) as ISO; '' stays ''. */
function iso(local: string): string {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

const params = (f: Filters) => ({ type: f.type, actor: f.actor.trim(), since: iso(f.since), before: iso(f.before) });

function FilterBar(props: { types: string[]; onApply: (f: Filters) => void }) {
  const [f, setF] = useState<Filters>(EMPTY);
  const set = (k: keyof Filters) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const onSubmit = (e: Event) => {
    e.preventDefault();
    props.onApply(f);
  };
  return (
    <form class="filters" onSubmit={onSubmit}>
      <label class="field">
        <span>Type</span>
        <select data-testid="audit-type" value={f.type} onChange={set('type')}>
          <option value="">all types</option>
          {props.types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Actor</span>
        <input data-testid="audit-actor" value={f.actor} placeholder="e-mail or id" onInput={set('actor')} />
      </label>
      <label class="field">
        <span>Since</span>
        <input type="datetime-local" data-testid="audit-since" value={f.since} onInput={set('since')} />
      </label>
      <label class="field">
        <span>Before</span>
        <input type="datetime-local" data-testid="audit-before" value={f.before} onInput={set('before')} />
      </label>
      <button type="submit" class="primary" data-testid="audit-apply">
        Apply
      </button>
    </form>
  );
}

function Rows(props: { rows: AuditRow[] }) {
  if (!props.rows.length) return <p class="empty">No events match.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Type</th>
          <th>Actor</th>
          <th>IP</th>
          <th>Target</th>
          <th>Reason</th>
          <th>Source</th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={r.id} data-testid="audit-row">
            <td class="when">{when(r.at)}</td>
            <td class="mono nowrap">{r.type}</td>
            <td>{r.actor ?? ''}</td>
            <td class="mono nowrap">{r.ip ?? ''}</td>
            <td class="mono">{r.target ?? ''}</td>
            <td>{r.reason ?? ''}</td>
            <td>
              <Badge status={r.source} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AuditPage(_props: { session: Session }) {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [page, setPage] = useState(1);
  const [answer, setAnswer] = useState<AuditAnswer | null>(null);
  const [types, setTypes] = useState<string[]>([]);
  useEffect(() => {
    attempt(async () => {
      const a = await api<AuditAnswer>(`/v1/admin/audit${query({ ...params(filters), page, records: RECORDS })}`);
      setAnswer(a);
      if (a.types?.length) setTypes(a.types);
    });
  }, [filters, page]);
  const apply = (f: Filters) => {
    setFilters(f);
    setPage(1);
  };
  const pages = answer?.meta.total_pages ?? 1;
  const csv = `/v1/admin/audit${query({ ...params(filters), format: 'csv' })}`;
  return (
    <section>
      <PageHead title="Audit log">
        <a class="button" href={csv} download="amp-audit.csv" data-testid="audit-csv">
          Export CSV
        </a>
      </PageHead>
      <FilterBar types={types} onApply={apply} />
      {answer ? <Rows rows={answer.data} /> : <p class="muted">Loading…</p>}
      <div class="pager">
        <button type="button" data-testid="audit-prev" disabled={page <= 1} onClick={() => setPage(page - 1)}>
          ← Newer
        </button>
        <span data-testid="audit-page">{`${answer?.meta.page ?? page} / ${pages}`}</span>
        <button type="button" data-testid="audit-next" disabled={page >= pages} onClick={() => setPage(page + 1)}>
          Older →
        </button>
        {answer && (
          <span class="muted">
            {answer.meta.total_count} {answer.meta.total_count === 1 ? 'event' : 'events'}
          </span>
        )}
      </div>
    </section>
  );
}
