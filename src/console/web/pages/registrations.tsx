// Registrations: pending requests first, a status filter, approve / reject in the rows.

import { useCallback, useEffect, useState } from 'preact/hooks';
import { Badge, Link, PageHead, attempt } from '../components';
import { when } from '../format';
import { type Registration, type Transition, listRegistrations, transition } from '../registrations-api';
import { type Session, canWriteAid } from '../session';

const STATUSES = ['all', 'pending', 'approved', 'rejected', 'suspended'];

/** Pending first (newest first within each group, as the server lists them). */
async function load(tenant: string, status: string): Promise<{ rows: Registration[]; total: number }> {
  if (status !== 'all') {
    const r = await listRegistrations(tenant, status);
    return { rows: r.data, total: r.meta.total_count };
  }
  const [pending, all] = await Promise.all([listRegistrations(tenant, 'pending'), listRegistrations(tenant, 'all')]);
  const rest = all.data.filter((r) => r.attributes.status !== 'pending');
  return { rows: [...pending.data, ...rest], total: all.meta.total_count };
}

function Row(props: { reg: Registration; write: boolean; act: (r: Registration, a: Transition) => void }) {
  const { reg, write, act } = props;
  const a = reg.attributes;
  return (
    <tr data-testid="reg-row" data-id={reg.id}>
      <td>
        <span data-testid="reg-name">{a.name}</span>
      </td>
      <td class="mono">{a.address}</td>
      <td>
        <Badge status={a.status} testid="reg-status" />
      </td>
      <td class="when">{when(a.created_at)}</td>
      <td class="actions">
        <Link href={`/admin/registrations/${encodeURIComponent(reg.id)}`} testid="reg-open">
          Open
        </Link>
        {write && a.status === 'pending' && (
          <>
            <button type="button" class="primary" data-testid="reg-approve" onClick={() => act(reg, 'approve')}>
              Approve
            </button>
            <button type="button" class="danger" data-testid="reg-reject" onClick={() => act(reg, 'reject')}>
              Reject
            </button>
          </>
        )}
      </td>
    </tr>
  );
}

export function RegistrationsPage(props: { session: Session }) {
  const { tenant } = props.session;
  const write = canWriteAid(props.session);
  const [status, setStatus] = useState('all');
  const [data, setData] = useState<{ rows: Registration[]; total: number } | null>(null);
  const refresh = useCallback(() => attempt(async () => setData(await load(tenant, status))), [tenant, status]);
  useEffect(() => {
    refresh();
  }, [refresh]);
  const act = (reg: Registration, action: Transition) =>
    attempt(async () => {
      if (await transition(tenant, reg, action)) await refresh();
    });
  return (
    <section>
      <PageHead title="Registrations">
        <label class="inline">
          Status{' '}
          <select data-testid="reg-status-filter" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </PageHead>
      {!data ? (
        <p class="muted">Loading…</p>
      ) : data.rows.length === 0 ? (
        <p class="empty">No registrations{status === 'all' ? '' : ` with status ${status}`}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Address</th>
              <th>Status</th>
              <th>Requested</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.rows.map((r) => (
              <Row key={r.id} reg={r} write={write} act={act} />
            ))}
          </tbody>
        </table>
      )}
      {data && data.total > data.rows.length && (
        <p class="muted">
          Showing {data.rows.length} of {data.total}.
        </p>
      )}
    </section>
  );
}
