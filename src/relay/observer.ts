// What the relay core tells operators about messages: ops/telemetry.ts turns these calls into
// Prometheus counters and `debug` log lines. The relay only calls; it never reads anything back.
// Calls are on the hot path: an implementation does a few increments and, at debug level only,
// writes a line.

/** How a message or an ack reached the relay. */
export type Via = 'rest' | 'ws';

/** How an ack came: the recipient over REST or WebSocket, or its webhook's 2xx (§18). */
export type AckVia = Via | 'webhook';

export interface RelayObserver {
  /** A message was accepted and committed to the recipient's queue (not an idempotent replay). */
  routed(via: Via, id: string, senderId: string, recipientId: string): void;
  /** A message was written to `sessions` WebSocket sessions of the recipient (live or catch-up). */
  pushed(id: string, recipientId: string, sessions: number): void;
  /** The recipient acknowledged these messages (only those newly acknowledged). */
  acked(via: AckVia, recipientId: string, ids: readonly string[]): void;
}
