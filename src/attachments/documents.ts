// What the API shows of an attachment: the status document (§22 GET attachments/{id}), the
// provider's record a message carries, and whether its bytes may be downloaded.

import { type AttachmentMeta, isoTime } from '../../proto/index.js';
import type { AttachmentRecord } from '../store/types.js';

/** The bytes may be fetched: scanned clean, or held and then approved by an admin. */
export function downloadable(rec: AttachmentRecord, nowMs: number): boolean {
  if (!rec.stored || rec.expiresAt <= nowMs) return false;
  if (rec.scanStatus === 'clean' || rec.scanStatus === 'basic_clean') return true;
  return rec.scanStatus === 'suspicious' && rec.approval?.status === 'approved';
}

function approvalDoc(rec: AttachmentRecord): Record<string, unknown> | undefined {
  const a = rec.approval;
  if (!a) return undefined;
  const doc: Record<string, unknown> = { status: a.status };
  if (a.by !== undefined) doc.by = a.by;
  if (a.at !== undefined) doc.at = isoTime(a.at);
  if (a.reason !== undefined) doc.reason = a.reason;
  return doc;
}

/** GET attachments/{id}: `scan_status` always present (`pending` until the scan ends). */
export function statusDoc(rec: AttachmentRecord, url: string | undefined): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    attachment_id: rec.id,
    filename: rec.filename,
    content_type: rec.contentType,
    size: rec.size,
    digest: rec.digest,
    scan_status: rec.scanStatus ?? 'pending',
    uploaded_at: rec.uploadedAt === undefined ? null : isoTime(rec.uploadedAt),
    expires_at: isoTime(rec.expiresAt),
  };
  if (url !== undefined) doc.url = url;
  if (rec.scanReasons?.length) doc.scan_reasons = rec.scanReasons;
  const approval = approvalDoc(rec);
  if (approval) doc.approval = approval;
  return doc;
}

/** The provider's record of an attachment inside the message that carries it. */
export function messageMeta(rec: AttachmentRecord, url: string): AttachmentMeta {
  return {
    id: rec.id,
    filename: rec.filename,
    content_type: rec.contentType,
    size: rec.size,
    digest: rec.digest,
    scan_status: rec.scanStatus ?? 'pending',
    url,
    expires_at: isoTime(rec.expiresAt),
  };
}
