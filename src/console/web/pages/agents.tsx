// Agents of the tenant: search as you type, status, online, queue depth; suspend (with a reason),
// unsuspend and deregister (after a confirmation).

import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc, query } from '../api';
import { Badge, PageHead, attempt } from '../components';
import { ask } from '../dialog';
import { type Session, canWriteAmp } from '../session';

interface AgentRow {
  id?: string;
  agent_id?: string;
  address: string;
  name?: string | null;
  alias?: string | null;
  status: string;
  online: boolean;
  queue_depth: number;
}

const idOf = (a: AgentRow) => a.id ?? a.agent_id ?? a.address;
const nameOf = (a: AgentRow) => a.name ?? a.alias ?? a.address.split('@')[0];

async function suspend(a: AgentRow): Promise<boolean> {
  const reason = await ask({
    title: 'Suspend agent',
    detail: `${a.address} is disconnected and may not send or receive until unsuspended.`,
    confirmLabel: 'Suspend',
    reason: true,
    danger: true,
  });
  if (reason === null) return false;
  await api(`/v1/agents/${enc(idOf(a))}/suspend`, { method: 'POST', body: reason ? { reason } : {} });
  return true;
}

async function unsuspend(a: AgentRow): Promise<boolean> {
  await api(`/v1/agents/${enc(idOf(a))}/unsuspend`, { method: 'POST', body: {} });
  return true;
}

async function deregister(a: AgentRow): Promise<boolean> {
  const ok = await ask({
    title: 'Deregister agent',
    detail: `${a.address} loses its registration, its keys and its queued messages. This cannot be undone.`,
    confirmLabel: 'Deregister',
    danger: true,
  });
  if (ok === null) return false;
  await api(`/v1/admin/agents/${enc(idOf(a))}`, { method: 'DELETE' });
  return true;
}

function Row(props: { a: AgentRow; write: boolean; act: (fn: (a: AgentRow) => Promise<boolean>) => void }) {
  const { a, write, act } = props;
  return (
    <tr data-testid="agent-row" data-id={idOf(a)}>
      <td class="mono" data-testid="agent-address">
        {a.address}
      </td>
      <td data-testid="agent-name">{nameOf(a)}</td>
      <td>
        <Badge status={a.status} testid="agent-status" />
      </td>
      <td data-testid="agent-online" class={a.online ? 'yes' : 'no'}>
        {a.online ? 'yes' : 'no'}
      </td>
      <td class="num" data-testid="agent-queue">
        {String(a.queue_depth)}
      </td>
      {write && (
        <td class="actions">
          {a.status === 'suspended' ? (
            <button type="button" data-testid="agent-unsuspend" onClick={() => act(unsuspend)}>
              Unsuspend
            </button>
          ) : (
            <button type="button" class="danger" data-testid="agent-suspend" onClick={() => act(suspend)}>
              Suspend
            </button>
          )}
          <button type="button" class="danger" data-testid="agent-deregister" onClick={() => act(deregister)}>
            Deregister
          </button>
        </td>
      )}
    </tr>
  );
}

export function AgentsPage(props: { session: Session }) {
  const write = canWriteAmp(props.session);
  const [q, setQ] = useState('');
  const [rows, setRows] = useState<AgentRow[] | null>(null);
  const [total, setTotal] = useState(0);
  const seq = useRef(0);
  const load = (search: string) => {
    const mine = ++seq.current;
    return attempt(async () => {
      const r = await api<{ agents: AgentRow[]; total?: number }>(
        `/v1/admin/agents${query({ q: search, limit: 200 })}`,
      );
      if (mine !== seq.current) return; // a later search answered first
      setRows(r.agents);
      setTotal(r.total ?? r.agents.length);
    });
  };
  useEffect(() => {
    load(q);
  }, [q]);
  const act = (row: AgentRow) => (fn: (a: AgentRow) => Promise<boolean>) =>
    attempt(async () => {
      if (await fn(row)) await load(q);
    });
  return (
    <section>
      <PageHead title="Agents">
        <input
          type="search"
          class="search"
          placeholder="Search address, name or id"
          data-testid="agents-search"
          value={q}
          onInput={(e) => setQ(e.currentTarget.value)}
          onKeyDown={(e) => e.key === 'Enter' && load(e.currentTarget.value)}
        />
      </PageHead>
      {!rows ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p class="empty">No agents{q ? ' match' : ''}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Address</th>
              <th>Name</th>
              <th>Status</th>
              <th>Online</th>
              <th class="num">Queue</th>
              {write && <th />}
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => (
              <Row key={idOf(a)} a={a} write={write} act={act(a)} />
            ))}
          </tbody>
        </table>
      )}
      {rows && total > rows.length && (
        <p class="muted">
          Showing {rows.length} of {total}; narrow the search to see others.
        </p>
      )}
    </section>
  );
}
