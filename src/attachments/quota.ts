// Per agent, at most MAX_OPEN_ATTACHMENTS attachments declared and not (yet) sent, of at most
// MAX_OPEN_BYTES in all (sent, rejected and expired ones do not count): 429 beyond, so that one
// agent cannot fill the disk with files it never sends.

import { AmpError } from '../../proto/index.js';
import type { AttachmentRecord, AttachmentStore } from '../store/types.js';

export const MAX_OPEN_ATTACHMENTS = 100;
export const MAX_OPEN_BYTES = 256 * 1024 * 1024;

export class UnsentQuota {
  /** Per owner, the attachments it declared that may still be unsent (pruned when counted). */
  private readonly unsent = new Map<string, Set<string>>();

  constructor(private readonly store: AttachmentStore) {}

  /** An attachment that counts until it is sent, rejected or expired. */
  track(rec: AttachmentRecord): void {
    let ids = this.unsent.get(rec.ownerId);
    if (!ids) this.unsent.set(rec.ownerId, (ids = new Set()));
    ids.add(rec.id);
  }

  /** Room for one more of `size` bytes, or 429 `attachment_quota_exceeded`. */
  assert(ownerId: string, size: number, nowMs: number): void {
    const ids = this.unsent.get(ownerId) ?? new Set<string>();
    let count = 0;
    let bytes = 0;
    for (const id of ids) {
      const rec = this.store.getAttachment(id);
      if (!rec || !counts(rec, nowMs)) {
        ids.delete(id);
        continue;
      }
      count++;
      bytes += rec.size;
    }
    if (count < MAX_OPEN_ATTACHMENTS && bytes + size <= MAX_OPEN_BYTES) return;
    throw new AmpError(
      'attachment_quota_exceeded',
      `Too many unsent attachments (at most ${MAX_OPEN_ATTACHMENTS}, ${MAX_OPEN_BYTES} bytes): send or let some expire first`,
      {
        details: { count, bytes, limit_count: MAX_OPEN_ATTACHMENTS, limit_bytes: MAX_OPEN_BYTES },
        retryAfter: 60,
      },
    );
  }
}

function counts(rec: AttachmentRecord, nowMs: number): boolean {
  const rejected = rec.scanStatus === 'rejected' || rec.approval?.status === 'rejected';
  return rec.messageId === undefined && !rejected && rec.expiresAt > nowMs;
}
