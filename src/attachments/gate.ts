// The route's attachment checks (§22): every attachment a message names must be the sender's own,
// alive, scanned and not rejected or held, as declared, and carried by no other message; then it is
// claimed for this message (written in the same commit as the message, so a 2xx holds both).

import { AmpError, type AttachmentMeta, type AttachmentRef, MAX_TOTAL_ATTACHMENT_BYTES } from '../../proto/index.js';
import type { AgentRecord, AttachmentRecord } from '../store/types.js';
import { messageMeta } from './documents.js';
import { type Attachments, notFound, ROUTED_TTL_MS } from './service.js';

/** What a message carries once its attachments passed: the provider's records, and how to claim them. */
export interface CarriedAttachments {
  metas: AttachmentMeta[];
  warnings: string[];
  /** Bind them to the message (issue in the same turn as the append; resolves once durable). */
  claim(messageId: string, recipientId: string): Promise<void>;
}

export class AttachmentGate {
  /** Attachments claimed by a message whose commit is under way. */
  private readonly claiming = new Set<string>();

  constructor(
    private readonly attachments: Attachments,
    /**
     * The API base of the `url` a message carries: AMP_PUBLIC_URL, else this server's own
     * `localhost:<port>`. Never the sender's Host header: the URL is for another agent to fetch.
     */
    private readonly endpoint: () => string,
  ) {}

  check(
    sender: AgentRecord,
    refs: readonly AttachmentRef[],
    nowMs: number,
    endpoint?: () => string,
  ): CarriedAttachments {
    const seen = new Set<string>();
    const recs = refs.map((ref, i) => {
      const rec = this.checkOne(sender, ref, i, nowMs);
      if (seen.has(rec.id)) throw alreadyUsed(i);
      seen.add(rec.id);
      return rec;
    });
    const total = recs.reduce((n, r) => n + r.size, 0);
    if (total > MAX_TOTAL_ATTACHMENT_BYTES) {
      throw new AmpError(
        'attachments_too_large',
        `A message's attachments may total at most ${MAX_TOTAL_ATTACHMENT_BYTES} bytes`,
        {
          field: 'payload.attachments',
          details: { limit: MAX_TOTAL_ATTACHMENT_BYTES, actual: total },
        },
      );
    }
    const expiresAt = nowMs + ROUTED_TTL_MS;
    const base = this.endpoint();
    const metas = recs.map((r) => messageMeta({ ...r, expiresAt }, this.attachments.fileUrl(base, r.id)));
    const warnings = recs.some((r) => r.scanStatus === 'suspicious') ? ['attachment_suspicious'] : [];
    return { metas, warnings, claim: (messageId, recipientId) => this.claim(recs, messageId, recipientId, nowMs) };
  }

  private checkOne(sender: AgentRecord, ref: AttachmentRef, i: number, nowMs: number): AttachmentRecord {
    const field = `payload.attachments[${i}]`;
    const rec = this.attachments.lookup(ref);
    if (!rec || rec.ownerId !== sender.id) throw withField(notFound(), `${field}.id`);
    if (rec.messageId !== undefined || this.claiming.has(rec.id)) throw alreadyUsed(i);
    if (rec.expiresAt <= nowMs)
      throw new AmpError('attachment_expired', `Attachment ${rec.id} has expired; upload it again`, { field });
    if (rec.scanStatus === 'rejected' || rec.approval?.status === 'rejected')
      throw new AmpError('attachment_rejected', `Attachment ${rec.id} was rejected and cannot be sent`, { field });
    if (rec.state !== 'confirmed' || rec.scanStatus === 'pending')
      throw new AmpError('attachment_pending', `Attachment ${rec.id} is not scanned yet; poll its status and retry`, {
        field,
        retryAfter: 2,
      });
    if (rec.scanStatus === 'suspicious' && rec.approval?.status !== 'approved')
      throw new AmpError('attachment_held', `Attachment ${rec.id} is held for human approval`, { field });
    if (ref.digest !== undefined && ref.digest !== rec.digest)
      throw mismatch(`${field}.digest`, `digest differs from the uploaded file's (${rec.digest})`);
    if (ref.size !== undefined && ref.size !== rec.size)
      throw mismatch(`${field}.size`, `size differs from the uploaded file's (${rec.size})`);
    return rec;
  }

  private async claim(recs: AttachmentRecord[], messageId: string, recipientId: string, nowMs: number): Promise<void> {
    for (const r of recs) this.claiming.add(r.id);
    try {
      await Promise.all(
        recs.map((r) =>
          this.attachments.store.putAttachment({
            ...r,
            messageId,
            recipientId,
            routedAt: nowMs,
            expiresAt: nowMs + ROUTED_TTL_MS,
          }),
        ),
      );
    } finally {
      for (const r of recs) this.claiming.delete(r.id);
    }
  }
}

function alreadyUsed(i: number): AmpError {
  return new AmpError('attachment_already_used', 'This attachment is carried by another message already', {
    field: `payload.attachments[${i}].id`,
  });
}

function mismatch(field: string, message: string): AmpError {
  return new AmpError('invalid_field', `${field}: ${message}`, { field, status: 422 });
}

function withField(e: AmpError, field: string): AmpError {
  return new AmpError(e.code, e.message, { field });
}
