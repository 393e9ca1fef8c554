// GET /v1/admin/audit: one audit log of a tenant merged from three trails, newest first: the AID
// activity log (registrations, tokens: identity/audit.ts), the attachment decisions
// (attachments/admin.ts) and the AMP operators' actions on agents (relay/admin-actions.ts).
// Filters: exact type, actor substring, time window; JSON pages or the whole match as CSV.

import { invalidField, parseIsoDateTime } from '../../proto/index.js';
import type { AttachmentAuditEvent } from '../attachments/admin.js';
import { type AuditEvent, EVENT_TYPES, paginate } from '../identity/audit.js';
import type { AdminActionRecord } from '../relay/admin-actions.js';

export type AuditSource = 'aid' | 'amp' | 'attachments';

export interface AuditRow {
  id: string;
  at: string;
  type: string;
  actor: string | null;
  ip: string | null;
  target: string | null;
  reason: string | null;
  source: AuditSource;
}

export const AMP_ACTION_TYPES = ['agent_suspended', 'agent_unsuspended', 'agent_deregistered'] as const;
export const ATTACHMENT_TYPES = ['attachment_approved', 'attachment_rejected'] as const;
export const AUDIT_TYPES: readonly string[] = [...EVENT_TYPES, ...AMP_ACTION_TYPES, ...ATTACHMENT_TYPES];

/** A CSV export holds at most this many rows (the newest). */
export const CSV_MAX_ROWS = 50_000;

export interface AuditTrails {
  aid(tenant: string): AuditEvent[];
  attachments(tenant: string): AttachmentAuditEvent[];
  amp(tenant: string): AdminActionRecord[];
}

interface Filters {
  type: string | null;
  actor: string | null;
  since: number | undefined;
  before: number | undefined;
}

const fromAid = (e: AuditEvent): AuditRow & { actors: string[] } => ({
  id: e.id,
  at: e.created_at,
  type: e.event_type,
  actor: e.actor_email ?? e.actor_address ?? e.actor_id,
  ip: e.ip_address,
  target: e.agent_registration_id,
  reason: e.reason,
  source: 'aid',
  actors: [e.actor_email, e.actor_address, e.actor_id].filter((x): x is string => !!x),
});

const fromAttachment = (e: AttachmentAuditEvent): AuditRow & { actors: string[] } => ({
  id: e.id,
  at: e.at,
  type: `attachment_${e.action}`,
  actor: e.by,
  ip: e.ip,
  target: `${e.filename} (${e.attachment_id})`,
  reason: e.reason,
  source: 'attachments',
  actors: [e.by],
});

const fromAmp = (e: AdminActionRecord): AuditRow & { actors: string[] } => ({
  id: e.id,
  at: e.at,
  type: e.type,
  actor: e.actor_email,
  ip: e.ip,
  target: e.target,
  reason: e.reason,
  source: 'amp',
  actors: [e.actor_email],
});

/** ISO 8601 with a zone, or unix seconds; anything else is 400 invalid_field. */
function timeParam(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === '') return undefined;
  if (/^\d{1,12}$/.test(raw)) return Number(raw) * 1000;
  const ms = parseIsoDateTime(raw);
  if (ms === null) throw invalidField(name, `${name} must be an ISO 8601 date-time with a zone, or unix seconds`);
  return ms;
}

function filters(q: URLSearchParams): Filters {
  const type = q.get('type') || null;
  if (type !== null && !AUDIT_TYPES.includes(type))
    throw invalidField('type', `type must be one of: ${AUDIT_TYPES.join(', ')}`);
  const actor = (q.get('actor') ?? '').trim().toLowerCase() || null;
  return { type, actor, since: timeParam(q.get('since'), 'since'), before: timeParam(q.get('before'), 'before') };
}

export class AuditView {
  constructor(private readonly trails: AuditTrails) {}

  /** The JSON page: `{data, meta, types}`. */
  page(tenant: string, q: URLSearchParams): Record<string, unknown> {
    return { ...paginate(this.rows(tenant, filters(q)), q), types: AUDIT_TYPES };
  }

  /** Every matching row (the newest CSV_MAX_ROWS) as CSV text. */
  csv(tenant: string, q: URLSearchParams): string {
    const rows = this.rows(tenant, filters(q)).slice(0, CSV_MAX_ROWS);
    const cols = ['at', 'type', 'actor', 'ip', 'target', 'reason', 'source'] as const;
    const lines = [cols.join(',')];
    for (const r of rows) lines.push(cols.map((c) => csvCell(r[c])).join(','));
    return `${lines.join('\r\n')}\r\n`;
  }

  private rows(tenant: string, f: Filters): AuditRow[] {
    const all = [
      ...this.trails.aid(tenant).map(fromAid),
      ...this.trails.attachments(tenant).map(fromAttachment),
      ...this.trails.amp(tenant).map(fromAmp),
    ];
    const out: AuditRow[] = [];
    for (const { actors, ...row } of all) {
      if (f.type !== null && row.type !== f.type) continue;
      if (f.actor !== null && !actors.some((a) => a.toLowerCase().includes(f.actor!))) continue;
      const ms = Date.parse(row.at);
      if (f.since !== undefined && ms < f.since) continue;
      if (f.before !== undefined && ms >= f.before) continue;
      out.push(row);
    }
    // ISO times of one format sort as text; the id breaks ties (stable across pages).
    return out.sort((a, b) => (a.at === b.at ? (a.id < b.id ? 1 : -1) : a.at < b.at ? 1 : -1));
  }
}

/**
 * A quoted CSV cell. A value a spreadsheet would read as a formula (starting with = + - @, a tab or
 * a carriage return) gets a leading apostrophe, so it shows as text.
 */
export function csvCell(v: string | null): string {
  let s = v ?? '';
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}
