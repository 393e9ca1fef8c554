// Decoding a route request (spec §8, §12.1) into one normalised shape, whether it came flat
// (the brief's curl / Python, the CLI's local path, WS `route` frames) or as `{envelope, payload}`.
// Pure: no lookups, no clock other than the `nowMs` passed in.

import { type AttachmentRef, decodeAttachmentRefs } from './attachments.js';
import { AmpError, invalidField, tooLarge } from './errors.js';
import { isAcceptedMessageId } from './ids.js';
import {
  IDEMPOTENCY_KEY_RE,
  MAX_FUTURE_SKEW_S,
  MAX_CONTEXT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_STORED_MESSAGE_BYTES,
  MAX_SUBJECT_CHARS,
  PAYLOAD_TYPE_RE,
  PRIORITIES,
  type Priority,
  codePointLength,
  parseIsoDateTime,
} from './limits.js';
import { RouteBodySchema, assertShape, compile } from './schemas.js';

const checkRouteBody = compile(RouteBodySchema);

/** Bytes the provider's record of one attachment (`attachments` beside the payload) may take. */
const ATTACHMENT_RECORD_RESERVE_BYTES = 1024;

export interface RouteRequest {
  /** `to` exactly as received (signatures may cover this spelling). */
  to: string;
  subject: string;
  /** As received; `normal` when absent. */
  priority: Priority;
  in_reply_to?: string;
  thread_id?: string;
  /** Normalised to ISO UTC milliseconds. */
  expires_at?: string;
  expiresAtMs?: number;
  /** The signature as sent, and its decoded 64 bytes. */
  signature?: string;
  signatureBytes?: Buffer;
  from?: string;
  idempotency_key?: string;
  receipt: boolean;
  payload: Record<string, unknown>;
  /** `payload.attachments`, decoded, when the provider has the capability and the message carries some. */
  attachments?: AttachmentRef[];
}

const ENVELOPE_FIELDS = [
  'to',
  'subject',
  'priority',
  'in_reply_to',
  'thread_id',
  'expires_at',
  'signature',
  'idempotency_key',
  'from',
  'options',
] as const;

/**
 * The envelope form carries its signed fields in `envelope`; fold it into the flat form, where
 * the envelope's values win. In both forms a top-level `null` means absent (§12.1).
 */
function flatten(body: Record<string, unknown>): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (v !== null && k !== 'envelope') flat[k] = v;
  const env = body.envelope;
  if (env !== null && typeof env === 'object' && !Array.isArray(env)) {
    const e = env as Record<string, unknown>;
    if (typeof e.timestamp === 'string') flat[ENVELOPE_TIMESTAMP] = e.timestamp;
    for (const k of ENVELOPE_FIELDS) if (e[k] !== undefined && e[k] !== null) flat[k] = e[k];
  }
  return flat;
}

/** The client's envelope timestamp: ignored (the server assigns its own) unless far in the future. */
const ENVELOPE_TIMESTAMP = '\u0000envelope_timestamp';

/**
 * Upper bound of what the server adds to the stored `{envelope, payload}` beyond the request's own
 * fields: version, id, timestamp, from (≤ 254), the expanded to (≤ 254), thread_id (≤ 128), keys.
 * Under 850 bytes, so the estimate below is never smaller than the stored size.
 */
const ENVELOPE_RESERVE_BYTES = 1024;

/** Standard or URL-safe base64, padding optional; exactly 64 bytes. */
export function decodeSignature(sig: string): Buffer | null {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(sig)) return null;
  const std = sig.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (std.length % 4 === 1) return null;
  const bytes = Buffer.from(std, 'base64');
  return bytes.length === 64 ? bytes : null;
}

export interface DecodeRouteOptions {
  nowMs: number;
  headerIdempotencyKey?: string;
  /** The provider has the `attachments` capability (§22); else `payload.attachments` is 422. */
  attachments?: boolean;
}

export function decodeRouteBody(body: unknown, opts: DecodeRouteOptions): RouteRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  const flat = flatten(body as Record<string, unknown>);
  const sentAt = flat[ENVELOPE_TIMESTAMP];
  delete flat[ENVELOPE_TIMESTAMP];
  if (typeof sentAt === 'string') {
    const ms = parseIsoDateTime(sentAt);
    if (ms !== null && ms > opts.nowMs + MAX_FUTURE_SKEW_S * 1000) {
      throw new AmpError(
        'timestamp_future',
        `envelope.timestamp is more than ${MAX_FUTURE_SKEW_S} s ahead of the server clock`,
        { field: 'envelope.timestamp' },
      );
    }
  }
  assertShape(checkRouteBody, flat);

  const subjectChars = codePointLength(flat.subject);
  if (subjectChars === 0) throw invalidField('subject', 'subject must not be empty');
  if (subjectChars > MAX_SUBJECT_CHARS)
    throw tooLarge('subject', 'subject', MAX_SUBJECT_CHARS, subjectChars, 'characters');

  const priority = flat.priority ?? 'normal';
  if (!(PRIORITIES as readonly string[]).includes(priority)) {
    throw invalidField('priority', `priority must be one of ${PRIORITIES.join(', ')}`);
  }

  const payload = flat.payload as Record<string, unknown>;
  if (!PAYLOAD_TYPE_RE.test(flat.payload.type)) {
    throw invalidField('payload.type', 'payload.type must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$');
  }
  const messageBytes = Buffer.byteLength(flat.payload.message, 'utf8');
  if (messageBytes > MAX_MESSAGE_BYTES)
    throw tooLarge('payload.message', 'payload.message', MAX_MESSAGE_BYTES, messageBytes, 'bytes');
  if (flat.payload.context != null) {
    const contextBytes = Buffer.byteLength(JSON.stringify(flat.payload.context), 'utf8');
    if (contextBytes > MAX_CONTEXT_BYTES)
      throw tooLarge('payload.context', 'payload.context', MAX_CONTEXT_BYTES, contextBytes, 'bytes');
  }
  let attachments: AttachmentRef[] | undefined;
  if (payload.attachments !== undefined) {
    if (!opts.attachments)
      throw new AmpError('attachments_not_supported', 'This provider does not support attachments', {
        field: 'payload.attachments',
      });
    attachments = decodeAttachmentRefs(payload.attachments);
    if (attachments.length === 0) attachments = undefined;
  }

  // §8.3 stored-message limit, checked with the parse (§12.3 step 4) on an upper bound of the
  // envelope the server will build (it is the only check: the estimate is never below the truth).
  // The provider's record of each attachment (with its URL) is stored beside the payload.
  const attachmentReserve = (attachments?.length ?? 0) * ATTACHMENT_RECORD_RESERVE_BYTES;
  const storedEstimate = Buffer.byteLength(JSON.stringify(flat), 'utf8') + ENVELOPE_RESERVE_BYTES + attachmentReserve;
  if (storedEstimate > MAX_STORED_MESSAGE_BYTES) {
    throw tooLarge('payload', 'The stored message', MAX_STORED_MESSAGE_BYTES, storedEstimate, 'bytes');
  }

  const req: RouteRequest = {
    to: flat.to,
    subject: flat.subject,
    priority: priority as Priority,
    receipt: flat.options?.receipt === true,
    payload,
  };
  if (attachments) req.attachments = attachments;

  if (flat.in_reply_to != null && flat.in_reply_to !== '') {
    if (!isAcceptedMessageId(flat.in_reply_to))
      throw invalidField('in_reply_to', 'in_reply_to is not a valid message id');
    req.in_reply_to = flat.in_reply_to;
  }
  if (flat.thread_id != null && flat.thread_id !== '') {
    if (!isAcceptedMessageId(flat.thread_id)) throw invalidField('thread_id', 'thread_id is not a valid message id');
    req.thread_id = flat.thread_id;
  }
  if (flat.expires_at != null) {
    const ms = parseIsoDateTime(flat.expires_at);
    if (ms === null) throw invalidField('expires_at', 'expires_at must be an ISO 8601 date-time with a zone');
    if (ms <= opts.nowMs) throw invalidField('expires_at', 'expires_at is in the past');
    req.expiresAtMs = ms;
    req.expires_at = new Date(ms).toISOString();
  }
  if (flat.signature != null && flat.signature !== '') {
    const bytes = decodeSignature(flat.signature);
    if (!bytes) throw invalidField('signature', 'signature must be a base64 Ed25519 signature of 64 bytes');
    req.signature = flat.signature;
    req.signatureBytes = bytes;
  }
  if (flat.from != null) req.from = flat.from;

  const idem = flat.idempotency_key ?? opts.headerIdempotencyKey;
  if (idem != null) {
    if (!IDEMPOTENCY_KEY_RE.test(idem))
      throw invalidField('idempotency_key', 'idempotency_key must be 1-128 characters of [A-Za-z0-9_.:-]');
    req.idempotency_key = idem;
  }
  return req;
}
