// Riding out a JetStream leader election. When the server leading a stream dies, its followers
// elect a new leader (nats-server 2.9: 4 to 9 s; up to 6.2 s measured here with two relays routing
// through it, longer on a loaded machine, hence the margin). Meanwhile a publish finds nobody to
// answer it (503 no responders, which the client reports as "jetstream is not enabled"), times
// out, or is told "JetStream system temporarily unavailable". Such a call is tried again with a
// short backoff for up to RIDE_OUT_MS in all; only then does it fail (and the caller answers 503).
// A call gives up sooner when the connection has been down for GIVE_UP_DOWN_MS: the client finds
// another seed within a second or two, so that long means no server answers (NATS unreachable),
// and the client gets its 503 in seconds rather than after the whole budget.
// Errors that are answers (a full queue, a compare-and-set lost, a missing message) fail at once.
// A retried write must be idempotent: callers give their publishes a Nats-Msg-Id, so a retry of
// a write that was stored after all is acknowledged as a duplicate, not stored twice.

import { JetStreamApiError, type JetStreamClient, type JetStreamPublishOptions, type PubAck } from '@nats-io/jetstream';
import { AmpError } from '../../../proto/index.js';

/** How long a call keeps trying through an election before it gives up. */
export const RIDE_OUT_MS = 20_000;
/** How long the connection may have been down (no seed answers) before a call gives up. */
export const GIVE_UP_DOWN_MS = 5000;
/** The longest one attempt waits for its answer. */
const ATTEMPT_MS = 3000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 1000;

/** JetStream API error codes that mean "no leader or no JetStream right now". */
const TRANSIENT_API_CODES = new Set([
  10008, // JetStream system temporarily unavailable
  10039, // JetStream not enabled for account
  10076, // JetStream not enabled
]);

/** Whether the error means NATS could not answer now (as opposed to an answer). */
export function isTransient(e: unknown): boolean {
  if (e instanceof AmpError) return false;
  if (e instanceof JetStreamApiError) return TRANSIENT_API_CODES.has(e.code);
  if (!(e instanceof Error)) return false;
  if (e.name === 'ClosedConnectionError' || /connection closed/i.test(e.message)) return false;
  // Timeouts, no responders ("jetstream is not enabled"), a connection being re-established.
  return /timeout|timed out|no responders|not enabled|temporarily unavailable|disconnect|reconnect|503|TIMEOUT/i.test(
    `${e.name} ${e.message} ${String((e as { code?: unknown }).code ?? '')}`,
  );
}

/** What a ride-out looks at besides the call: the connection (NatsParts has it). */
export interface Connection {
  /** How long the connection has been down (ms; 0 while connected). */
  downForMs(): number;
}

/**
 * Runs `call(attemptTimeoutMs)` until it succeeds, fails with an error that is not transient,
 * `totalMs` passed, or the connection has been down for GIVE_UP_DOWN_MS (then the last error is
 * thrown).
 */
export async function rideOut<T>(
  conn: Connection,
  call: (attemptTimeoutMs: number) => Promise<T>,
  totalMs: number = RIDE_OUT_MS,
): Promise<T> {
  const deadline = Date.now() + totalMs;
  for (let i = 0; ; i++) {
    const left = deadline - Date.now();
    try {
      return await call(Math.max(500, Math.min(ATTEMPT_MS, left)));
    } catch (e) {
      const after = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** i);
      if (!isTransient(e) || Date.now() + after >= deadline || conn.downForMs() >= GIVE_UP_DOWN_MS) throw e;
      await new Promise((r) => setTimeout(r, after));
    }
  }
}

/** A JetStream publish ridden through an election (give it a `msgID`: a retry is then stored once). */
export function publishRetried(
  parts: Connection & { js: JetStreamClient },
  subject: string,
  data: string | Uint8Array,
  opts: Partial<JetStreamPublishOptions> & { msgID: string },
): Promise<PubAck> {
  return rideOut(parts, (t) => parts.js.publish(subject, data, { ...opts, timeout: t }));
}
