// One registration: its key fingerprint, status, the actions its status allows, and its audit trail.

import { useCallback, useEffect, useState } from 'preact/hooks';
import { Badge, Link, PageHead, attempt } from '../components';
import { str, when } from '../format';
import {
  type AuditAttrs,
  type Registration,
  type Resource,
  type Transition,
  activity,
  getRegistration,
  transition,
} from '../registrations-api';
import { type Session, canWriteAid } from '../session';

/** Which actions a status allows (agent-identity T3-T6). */
const ACTIONS: Record<string, Transition[]> = {
  pending: ['approve', 'reject'],
  active: ['suspend'],
  suspended: ['reactivate'],
};
const LABEL: Record<Transition, string> = {
  approve: 'Approve',
  reject: 'Reject',
  suspend: 'Suspend',
  reactivate: 'Reactivate',
};

function AuditTrail(props: { events: Resource<AuditAttrs>[] }) {
  if (!props.events.length) return <p class="empty">No events.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>When</th>
          <th>Event</th>
          <th>Actor</th>
          <th>Status</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map(({ id, attributes: e }) => (
          <tr key={id} data-testid="reg-audit-row">
            <td class="when">{when(e.created_at)}</td>
            <td class="mono nowrap">{e.event_type}</td>
            <td>
              {e.actor_email ?? `${e.actor_type} ${e.actor_id}`}
              {e.ip_address && <span class="muted"> ({e.ip_address})</span>}
            </td>
            <td>
              {e.new_status && e.previous_status !== e.new_status ? `${str(e.previous_status)} → ${e.new_status}` : ''}
            </td>
            <td>{e.reason ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Facts(props: { reg: Registration }) {
  const a = props.reg.attributes;
  const rows: [string, string, string?][] = [
    ['Address', a.address],
    ['Fingerprint', a.fingerprint, 'reg-fingerprint'],
    ['Description', str(a.description)],
    ['Method', a.registration_method],
    ['Role', str(a.role_name)],
    ['Requested', when(a.created_at)],
    ['Approved', when(a.approved_at)],
  ];
  if (a.rejection_reason) rows.push(['Rejection reason', a.rejection_reason]);
  if (a.suspension_reason) rows.push(['Suspension reason', a.suspension_reason]);
  return (
    <dl class="facts">
      {rows.map(([k, v, testid]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd class={k === 'Fingerprint' || k === 'Address' ? 'mono' : undefined} data-testid={testid}>
            {v}
          </dd>
        </div>
      ))}
    </dl>
  );
}

export function RegistrationPage(props: { session: Session; id: string }) {
  const { tenant } = props.session;
  const write = canWriteAid(props.session);
  const [reg, setReg] = useState<Registration | null>(null);
  const [events, setEvents] = useState<Resource<AuditAttrs>[]>([]);
  const refresh = useCallback(
    () =>
      attempt(async () => {
        const [r, ev] = await Promise.all([getRegistration(tenant, props.id), activity(tenant, props.id)]);
        setReg(r);
        setEvents(ev);
      }),
    [tenant, props.id],
  );
  useEffect(() => {
    refresh();
  }, [refresh]);
  const act = (action: Transition) =>
    attempt(async () => {
      if (reg && (await transition(tenant, reg, action))) await refresh();
    });
  if (!reg) return <p class="muted">Loading…</p>;
  const a = reg.attributes;
  return (
    <section>
      <p class="crumbs">
        <Link href="/admin/registrations">← Registrations</Link>
      </p>
      <PageHead
        title={
          <>
            <span data-testid="reg-detail-name">{a.name}</span> <Badge status={a.status} testid="reg-detail-status" />
          </>
        }
      >
        {write &&
          (ACTIONS[a.status] ?? []).map((action) => (
            <button
              key={action}
              type="button"
              class={action === 'approve' || action === 'reactivate' ? 'primary' : 'danger'}
              data-testid={`reg-${action}`}
              onClick={() => act(action)}
            >
              {LABEL[action]}
            </button>
          ))}
      </PageHead>
      <Facts reg={reg} />
      <h2>Audit trail</h2>
      <AuditTrail events={events} />
    </section>
  );
}
