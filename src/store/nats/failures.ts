// How NATS failures reach the relay: a compare-and-set that lost is an answer (the caller decides),
// anything else (no connection, no quorum, a timeout) is 503 `store_unavailable`: never a 2xx for a
// write that was not stored.

import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { AmpError } from '../../../proto/index.js';

/** Time a write waits for its own change to come back through the mirror. */
export const APPLY_TIMEOUT_MS = 10_000;

export function unavailable(cause?: unknown): AmpError {
  const why = cause instanceof Error ? `: ${cause.message}` : '';
  return new AmpError('store_unavailable', `The cluster store did not answer${why}; retry shortly`, {
    retryAfter: 1,
  });
}

/** The write's expected last revision did not match (a create of an existing key, a lost update). */
export function isWrongLastSequence(e: unknown): boolean {
  if (e instanceof JetStreamApiError) {
    return (
      e.code === JetStreamApiCodes.StreamWrongLastSequence ||
      e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
    );
  }
  return e instanceof Error && /wrong last sequence/i.test(e.message);
}

/** Runs a NATS call; its failure becomes 503 `store_unavailable` (AmpErrors pass through). */
export async function guarded<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof AmpError) throw e;
    throw unavailable(e);
  }
}
