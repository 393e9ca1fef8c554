// Human approval of suspicious attachments (§22): an `amp:admin` of the owner's tenant lists what
// is held, approves (the file may then be sent, and messages carry a warning) or rejects it (its
// bytes are deleted). Every decision is written to the attachment audit trail: who, when, from where.

import { AmpError, isoTime } from '../../proto/index.js';
import { randomUUID } from '../crypto/random.js';
import type { AttachmentRecord, RecordsStore } from '../store/types.js';
import { statusDoc } from './documents.js';
import { type Preview, preview } from './preview.js';
import { type Attachments, notFound } from './service.js';

export interface AdminActor {
  email: string;
  tenant: string;
  ip: string;
}

export interface AttachmentAuditEvent {
  id: string;
  attachment_id: string;
  action: 'approved' | 'rejected';
  by: string;
  ip: string;
  at: string;
  reason: string | null;
  owner_id: string;
  filename: string;
  digest: string;
}

const APPROVALS = ['pending', 'approved', 'rejected'] as const;
const MAX_LIST = 1000;

/** `limit`: a whole number 1-1000, 100 when absent; anything else is 400. */
function listLimit(q: URLSearchParams): number {
  const raw = q.get('limit');
  if (raw === null) return 100;
  const n = Number(raw);
  if (!/^[0-9]{1,4}$/.test(raw) || n < 1 || n > MAX_LIST)
    throw new AmpError('invalid_field', `limit must be a whole number from 1 to ${MAX_LIST}`, { field: 'limit' });
  return n;
}

export class AttachmentAdmin {
  private lastMs = 0;

  constructor(
    private readonly attachments: Attachments,
    private readonly records: RecordsStore,
    /** Address of an agent id (for listings); undefined once it is gone. */
    private readonly addressOf: (agentId: string) => string | undefined,
  ) {}

  /** GET admin/attachments[?approval=pending|approved|rejected][&limit=N]: newest first. */
  list(tenant: string, q: URLSearchParams): { attachments: Record<string, unknown>[] } {
    const approval = q.get('approval');
    if (approval !== null && !(APPROVALS as readonly string[]).includes(approval))
      throw new AmpError('invalid_field', `approval must be one of ${APPROVALS.join(', ')}`, { field: 'approval' });
    const limit = listLimit(q);
    const out: Record<string, unknown>[] = [];
    for (const rec of this.attachments.store.allAttachments()) {
      if (rec.tenant !== tenant || rec.state !== 'confirmed') continue;
      if (approval !== null && rec.approval?.status !== approval) continue;
      out.push(this.doc(rec));
    }
    out.sort((a, b) => String(b.attachment_id).localeCompare(String(a.attachment_id)));
    return { attachments: out.slice(0, limit) };
  }

  async approve(actor: AdminActor, id: string): Promise<Record<string, unknown>> {
    const rec = this.held(actor.tenant, id);
    if (rec.approval?.status === 'rejected')
      throw new AmpError('attachment_rejected', 'This attachment was rejected already; its file is gone');
    if (rec.approval?.status === 'approved') return this.doc(rec);
    const next = { ...rec, approval: { status: 'approved' as const, by: actor.email, at: Date.now(), ip: actor.ip } };
    await this.attachments.store.putAttachment(next);
    await this.audit(actor, next, 'approved', null);
    return this.doc(next);
  }

  async reject(actor: AdminActor, id: string, reason: string | null): Promise<Record<string, unknown>> {
    const rec = this.held(actor.tenant, id);
    if (rec.approval?.status === 'rejected') return this.doc(rec);
    const approval = { status: 'rejected' as const, by: actor.email, at: Date.now(), ip: actor.ip };
    const decided = { ...rec, approval: reason === null ? approval : { ...approval, reason } };
    await this.attachments.store.putAttachment(decided);
    const next = await this.attachments.dropBytes(decided);
    await this.audit(actor, next, 'rejected', reason);
    return this.doc(next);
  }

  /** GET admin/attachments/audit: the tenant's decisions, newest first. */
  auditTrail(tenant: string, q: URLSearchParams): { events: AttachmentAuditEvent[] } {
    const limit = listLimit(q);
    const events = this.records.recordsWithPrefix<AttachmentAuditEvent>('attachment_audit', `${tenant}/`);
    return { events: events.reverse().slice(0, limit) };
  }

  /** GET admin/attachments/{id}/preview: the start of a text file of this tenant (others: 404). */
  async preview(tenant: string, id: string): Promise<Preview> {
    const rec = this.attachments.lookup({ id });
    if (!rec || rec.tenant !== tenant) throw notFound();
    return preview(rec, this.attachments.blobs.pathOf(rec.digest));
  }

  /** A suspicious attachment of this tenant (others: 404; not held: 409). */
  private held(tenant: string, id: string): AttachmentRecord {
    const rec = this.attachments.lookup({ id });
    if (!rec || rec.tenant !== tenant) throw notFound();
    if (rec.scanStatus !== 'suspicious') {
      throw new AmpError(
        'invalid_request',
        `Attachment ${id} is not held for approval (scan_status ${rec.scanStatus ?? 'pending'})`,
        {
          details: { scan_status: rec.scanStatus ?? 'pending' },
        },
      );
    }
    return rec;
  }

  private doc(rec: AttachmentRecord): Record<string, unknown> {
    const d = statusDoc(rec, undefined);
    d.owner = this.addressOf(rec.ownerId) ?? null;
    if (rec.messageId) d.message_id = rec.messageId;
    // statusDoc shows the approval; operators also see where it came from.
    if (d.approval && rec.approval?.ip) (d.approval as Record<string, unknown>).ip = rec.approval.ip;
    return d;
  }

  private async audit(
    actor: AdminActor,
    rec: AttachmentRecord,
    action: 'approved' | 'rejected',
    reason: string | null,
  ) {
    const ms = Math.max(Date.now(), this.lastMs + 1);
    this.lastMs = ms;
    const ev: AttachmentAuditEvent = {
      id: randomUUID(),
      attachment_id: rec.id,
      action,
      by: actor.email,
      ip: actor.ip,
      at: isoTime(ms),
      reason,
      owner_id: rec.ownerId,
      filename: rec.filename,
      digest: rec.digest,
    };
    await this.records.putRecord('attachment_audit', `${actor.tenant}/${String(ms).padStart(15, '0')}/${ev.id}`, ev);
  }
}
