// The AID audit trail (agent-identity §11): append-only events per tenant, listed newest first
// with filters by type and time window. Records never hold tokens, proofs, codes or keys.

import { randomUUID } from '../crypto/random.js';
import { isoTime, parseIsoDateTime } from '../../proto/index.js';
import type { RecordsStore } from '../store/types.js';
import { AidError } from './errors.js';

export const EVENT_TYPES = [
  'registration_requested',
  'registration_created',
  'registration_approved',
  'registration_rejected',
  'registration_suspended',
  'registration_reactivated',
  'registration_updated',
  'registration_deleted',
  'authorization_code_resolved',
  'token_issued',
  'token_denied',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface Actor {
  type: 'admin' | 'agent' | 'system';
  id: string;
  email: string | null;
  address: string | null;
  ip: string | null;
  userAgent: string | null;
}

export interface AuditEvent {
  id: string;
  agent_registration_id: string;
  company_url_id: string;
  event_type: EventType;
  actor_type: Actor['type'];
  actor_id: string;
  actor_email: string | null;
  actor_address: string | null;
  ip_address: string | null;
  user_agent: string | null;
  previous_status: string | null;
  new_status: string | null;
  previous_role_id: number | null;
  new_role_id: number | null;
  previous_role_name: string | null;
  new_role_name: string | null;
  reason: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
}

export interface EventChange {
  previous_status: string | null;
  new_status: string | null;
  previous_role?: { id: number; name: string } | null;
  new_role?: { id: number; name: string } | null;
  reason?: string | null;
  metadata?: Record<string, unknown>;
}

/** Sortable key: tenant, time (ms, zero-padded), id. Listing walks it backwards. */
const key = (tenant: string, ms: number, id: string) => `${tenant}/${String(ms).padStart(15, '0')}/${id}`;

export class AuditTrail {
  private lastMs = 0;

  constructor(private readonly store: RecordsStore) {}

  async record(
    tenant: string,
    registrationId: string,
    type: EventType,
    actor: Actor,
    change: EventChange,
  ): Promise<AuditEvent> {
    // Strictly increasing times keep events of one request burst in order.
    const ms = Math.max(Date.now(), this.lastMs + 1);
    this.lastMs = ms;
    const ev: AuditEvent = {
      id: randomUUID(),
      agent_registration_id: registrationId,
      company_url_id: tenant,
      event_type: type,
      actor_type: actor.type,
      actor_id: actor.id,
      actor_email: actor.email,
      actor_address: actor.address,
      ip_address: actor.ip,
      user_agent: actor.userAgent,
      previous_status: change.previous_status,
      new_status: change.new_status,
      previous_role_id: change.previous_role?.id ?? null,
      new_role_id: change.new_role?.id ?? null,
      previous_role_name: change.previous_role?.name ?? null,
      new_role_name: change.new_role?.name ?? null,
      reason: change.reason ?? null,
      metadata: change.metadata ?? {},
      created_at: isoTime(ms),
    };
    await this.store.putRecord('audit', key(tenant, ms, ev.id), ev);
    return ev;
  }

  /** Every event of the tenant, oldest first (the console's merged audit log filters them itself). */
  events(tenant: string): AuditEvent[] {
    return this.store.recordsWithPrefix<AuditEvent>('audit', `${tenant}/`);
  }

  /** §11.3: filters, newest first, paginated. */
  list(tenant: string, q: URLSearchParams, registrationId?: string): Record<string, unknown> {
    const types = [...q.getAll('event_type'), ...q.getAll('event_type[]')]
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter(Boolean);
    for (const t of types)
      if (!(EVENT_TYPES as readonly string[]).includes(t))
        throw new AidError('validation_failed', `Unknown event_type: ${t}`);
    const since = timeParam(q.get('since'), 'since');
    const before = timeParam(q.get('before'), 'before');
    if (since !== undefined && before !== undefined && since >= before)
      throw new AidError('validation_failed', 'since must be earlier than before');
    const regFilter = registrationId ?? q.get('agent_registration_id') ?? undefined;
    const matches = this.store
      .recordsWithPrefix<AuditEvent>('audit', `${tenant}/`)
      .filter((e) => {
        const ms = Date.parse(e.created_at);
        return (
          (!regFilter || e.agent_registration_id === regFilter) &&
          (!types.length || types.includes(e.event_type)) &&
          (since === undefined || ms >= since) &&
          (before === undefined || ms < before)
        );
      })
      .reverse();
    return paginate(
      matches.map((e) => ({ id: e.id, type: 'agent_registration_activity_log', attributes: e })),
      q,
    );
  }
}

function timeParam(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === '') return undefined;
  if (/^\d{1,12}$/.test(raw)) return Number(raw) * 1000;
  const ms = parseIsoDateTime(raw);
  if (ms === null)
    throw new AidError('validation_failed', `${name} must be an ISO 8601 date-time with zone or unix seconds`);
  return ms;
}

/** `page` (1-based) and `records` (default 25, max 100) over a list. */
export function paginate<T>(items: T[], q: URLSearchParams): { data: T[]; meta: Record<string, number> } {
  const page = Math.max(1, Number.parseInt(q.get('page') ?? '1', 10) || 1);
  const records = Math.min(100, Math.max(1, Number.parseInt(q.get('records') ?? '25', 10) || 25));
  return {
    data: items.slice((page - 1) * records, page * records),
    meta: { total_count: items.length, page, records, total_pages: Math.max(1, Math.ceil(items.length / records)) },
  };
}
