// NATS failures as the relay answers them: a per-subject cap refusal (JetStream API error 10077)
// is the recipient's full queue, 429 queue_full; anything else (no connection, a timeout, a
// JetStream error) is 503 store_unavailable. An AmpError passes through.

import { JetStreamApiError } from '@nats-io/jetstream';
import { AmpError } from '../../../proto/index.js';

const API_PER_SUBJECT_FULL = 10077;
/** Seconds a client should wait before retrying when NATS did not answer. */
const UNAVAILABLE_RETRY_AFTER_S = 5;

export function isQueueFull(e: unknown): boolean {
  return (
    (e instanceof JetStreamApiError && e.code === API_PER_SUBJECT_FULL) ||
    (e instanceof Error && /maximum messages per subject exceeded/i.test(e.message))
  );
}

export function storeFailure(e: unknown, full?: { recipient: string; limit: number; retryAfter: number }): AmpError {
  if (e instanceof AmpError) return e;
  if (full && isQueueFull(e)) {
    return new AmpError('queue_full', `Recipient's queue is full (${full.limit} messages); retry later`, {
      details: { limit: full.limit },
      retryAfter: full.retryAfter,
    });
  }
  const why = e instanceof Error ? e.message : String(e);
  return new AmpError('store_unavailable', `The shared store (NATS) is unreachable: ${why}`, {
    retryAfter: UNAVAILABLE_RETRY_AFTER_S,
  });
}
