// Attachments (spec §22): limits, ids, the upload-init body and the references a message's
// `payload.attachments` makes. Pure protocol code: what the store keeps and how files are scanned
// live in src/attachments.

import { AmpError, invalidField, missingField } from './errors.js';

export const MAX_ATTACHMENT_BYTES = 26_214_400;
export const MAX_TOTAL_ATTACHMENT_BYTES = 104_857_600;
export const MAX_ATTACHMENTS_PER_MESSAGE = 10;
export const MAX_FILENAME_CHARS = 255;
/** Seconds an upload URL is valid. */
export const UPLOAD_URL_TTL_S = 3600;

export const SCAN_STATUSES = ['pending', 'clean', 'basic_clean', 'unscanned', 'suspicious', 'rejected'] as const;
export type ScanStatus = (typeof SCAN_STATUSES)[number];

/** Ours: `att_<unix s>_<16 hex>`; the reference CLI adopts any `att[_-]<digits>[_-]<alphanumerics>`. */
export const ATTACHMENT_ID_RE = /^att_[0-9]{1,12}_[0-9a-f]{16}$/;
const DIGEST_RE = /^sha256:[0-9a-fA-F]{64}$/;
/** `type/subtype` with RFC 6838 characters, optional parameters dropped. */
const MIME_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isAttachmentId(id: unknown): id is string {
  return typeof id === 'string' && ATTACHMENT_ID_RE.test(id);
}

/**
 * A filename safe in a header and on any disk: characters outside `[a-zA-Z0-9._-]` become `_`,
 * leading dots are dropped (no hidden files, no `..`), at most 255 characters; `attachment` if
 * nothing is left.
 */
export function sanitiseFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  const clean = base
    .replace(/[^a-zA-Z0-9._-]/g, '_')
    .replace(/^\.+/, '')
    .slice(0, MAX_FILENAME_CHARS);
  return clean === '' || /^[._-]*$/.test(clean) ? 'attachment' : clean;
}

export interface UploadInit {
  filename: string;
  content_type: string;
  size: number;
  /** `sha256:<64 lowercase hex>`. */
  digest: string;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function requiredString(b: Record<string, unknown>, field: string): string {
  const v = b[field];
  if (v === undefined || v === null) throw missingField(field);
  if (typeof v !== 'string' || v.trim() === '') throw invalidField(field, `${field} must be a non-empty string`);
  return v;
}

/** `sha256:<hex>` lowercased; another algorithm is 422 `invalid_digest_algorithm`, bad hex 400. */
export function decodeDigest(v: unknown, field = 'digest'): string {
  if (typeof v !== 'string') throw invalidField(field, `${field} must be a string "sha256:<64 hex>"`);
  if (DIGEST_RE.test(v)) return `sha256:${v.slice(7).toLowerCase()}`;
  const algo = /^([A-Za-z0-9-]+):/.exec(v)?.[1];
  if (algo && algo.toLowerCase() !== 'sha256') {
    throw new AmpError('invalid_digest_algorithm', `Digest algorithm '${algo}' is not supported; use sha256:<64 hex>`, {
      field,
      details: { supported: ['sha256'] },
    });
  }
  throw invalidField(field, `${field} must be "sha256:" followed by 64 hex digits`);
}

/** POST attachments/upload. */
export function decodeUploadInit(body: unknown): UploadInit {
  const b = objectBody(body);
  const filename = sanitiseFilename(requiredString(b, 'filename'));
  const contentType = requiredString(b, 'content_type').split(';')[0].trim().toLowerCase();
  if (!MIME_RE.test(contentType))
    throw invalidField('content_type', 'content_type must be a MIME type like text/plain');
  if (b.size === undefined || b.size === null) throw missingField('size');
  const size = b.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalidField('size', 'size must be a whole number of bytes');
  if (size > MAX_ATTACHMENT_BYTES) {
    throw new AmpError('attachment_too_large', `An attachment may be at most ${MAX_ATTACHMENT_BYTES} bytes`, {
      field: 'size',
      details: { limit: MAX_ATTACHMENT_BYTES, actual: size },
    });
  }
  if (b.digest === undefined || b.digest === null) throw missingField('digest');
  return { filename, content_type: contentType, size, digest: decodeDigest(b.digest) };
}

/** One `payload.attachments` entry, as the route checks it against the provider's record. */
export interface AttachmentRef {
  id: string;
  /** As sent, when sent (checked against the record). */
  digest?: string;
  size?: number;
}

/** `payload.attachments` of a route body: an array of at most 10 objects naming an attachment id. */
export function decodeAttachmentRefs(value: unknown): AttachmentRef[] {
  if (!Array.isArray(value)) throw invalidField('payload.attachments', 'payload.attachments must be an array');
  if (value.length > MAX_ATTACHMENTS_PER_MESSAGE) {
    throw new AmpError(
      'too_many_attachments',
      `A message may carry at most ${MAX_ATTACHMENTS_PER_MESSAGE} attachments`,
      {
        field: 'payload.attachments',
        details: { limit: MAX_ATTACHMENTS_PER_MESSAGE, actual: value.length },
      },
    );
  }
  return value.map((entry, i) => decodeRef(entry, `payload.attachments[${i}]`));
}

function decodeRef(entry: unknown, field: string): AttachmentRef {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    throw invalidField(field, `${field} must be an object naming an attachment by id`);
  const e = entry as Record<string, unknown>;
  const id = e.id ?? e.attachment_id;
  if (typeof id !== 'string' || id === '') throw missingField(`${field}.id`);
  const ref: AttachmentRef = { id };
  if (e.digest !== undefined && e.digest !== null) ref.digest = decodeDigest(e.digest, `${field}.digest`);
  if (e.size !== undefined && e.size !== null) {
    if (typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0)
      throw invalidField(`${field}.size`, `${field}.size must be a whole number of bytes`);
    ref.size = e.size;
  }
  return ref;
}
