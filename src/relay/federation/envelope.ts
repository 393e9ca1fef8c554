// The body of POST /v1/federation/deliver (spec §19.1): {"envelope", "payload", "sender_public_key"}
// with the envelope as the sender's provider built and the sender signed it. Shape only here; the
// checks that need keys and clocks are in inbound.ts.

import {
  AmpError,
  type Envelope,
  invalidField,
  isAcceptedMessageId,
  isFullAddress,
  MAX_STORED_MESSAGE_BYTES,
  MAX_SUBJECT_CHARS,
  PRIORITIES,
  type Priority,
  tooLarge,
} from '../../../proto/index.js';

export interface DeliverBody {
  envelope: Envelope;
  payload: Record<string, unknown>;
  sender_public_key: string;
}

const OPTIONAL = ['in_reply_to', 'expires_at', 'idempotency_key'] as const;

export function decodeDeliverBody(body: Record<string, unknown>): DeliverBody {
  const envelope = object(body.envelope, 'envelope');
  const payload = object(body.payload, 'payload');
  const key = body.sender_public_key;
  if (key !== undefined && typeof key !== 'string') throw invalidField('sender_public_key', 'must be a string');
  const out = { envelope: decodeEnvelope(envelope), payload, sender_public_key: key ?? '' };
  // §8.3: the stored message's limit holds for messages from other providers too.
  const stored = Buffer.byteLength(JSON.stringify({ envelope: out.envelope, payload }), 'utf8');
  if (stored > MAX_STORED_MESSAGE_BYTES) {
    throw tooLarge('payload', 'The stored message', MAX_STORED_MESSAGE_BYTES, stored, 'bytes');
  }
  return out;
}

function decodeEnvelope(e: Record<string, unknown>): Envelope {
  const id = text(e, 'id');
  if (!isAcceptedMessageId(id)) throw invalidField('envelope.id', 'envelope.id is not a valid message id');
  const from = text(e, 'from');
  const to = text(e, 'to');
  for (const [f, v] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (!isFullAddress(v.toLowerCase())) throw invalidField(`envelope.${f}`, `envelope.${f} is not a full address`);
  }
  const subject = text(e, 'subject');
  if ([...subject].length > MAX_SUBJECT_CHARS) throw invalidField('envelope.subject', 'envelope.subject is too long');
  const priority = e.priority === undefined ? 'normal' : text(e, 'priority');
  if (!(PRIORITIES as readonly string[]).includes(priority))
    throw invalidField('envelope.priority', 'unknown priority');
  const timestamp = text(e, 'timestamp');
  if (!Number.isFinite(Date.parse(timestamp))) throw invalidField('envelope.timestamp', 'not an ISO 8601 time');
  const signature = e.signature === undefined ? '' : text(e, 'signature');
  const thread = e.thread_id === undefined ? id : text(e, 'thread_id');
  const out: Envelope = {
    version: 'amp/0.1',
    ...{ id, from, to, subject, priority: priority as Priority, timestamp, signature },
    thread_id: thread,
  };
  for (const f of OPTIONAL) if (e[f] !== undefined) out[f] = text(e, f);
  return out;
}

function text(o: Record<string, unknown>, f: string): string {
  const v = o[f];
  if (v === undefined || v === null) {
    throw new AmpError('missing_field', `envelope.${f} is required`, { field: `envelope.${f}` });
  }
  if (typeof v !== 'string' || v.length > 1024) throw invalidField(`envelope.${f}`, `envelope.${f} must be a string`);
  return v;
}

function object(v: unknown, f: string): Record<string, unknown> {
  if (v === undefined || v === null) throw new AmpError('missing_field', `${f} is required`, { field: f });
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidField(f, `${f} must be a JSON object`);
  return v as Record<string, unknown>;
}
