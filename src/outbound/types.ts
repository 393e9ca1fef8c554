// What an adapter (mesh, federation, webhooks) gives the outbound engine, and what the engine
// reports. An adapter signs and addresses one item per call; the engine owns queueing, retries,
// breakers and concurrency.

import type { OutboundItem } from '../store/types.js';
import type { BreakerState } from './breaker.js';

export type { OutboundItem } from '../store/types.js';

/**
 * How an attempt ended:
 * - `delivered`: the target took it (e.g. a 2xx); the item leaves the queue.
 * - `obsolete`: no longer to be sent (e.g. acked over a socket meanwhile); leaves the queue.
 * - `retry`: a transient failure (5xx, timeout, network); tried again after the policy's delay
 *   (at least `retryAfterMs` when given, e.g. a 429's Retry-After), parked once retries run out.
 * - `park`: a refusal not worth repeating (e.g. a webhook 4xx); kept, not tried again until released.
 */
export type Outcome =
  | 'delivered'
  | 'obsolete'
  | { retry: true; reason: string; retryAfterMs?: number }
  | { park: true; reason: string; refusal?: Refusal };

/** A target's answer that parked an item (e.g. a peer's 404 JSON), for whoever waits on the first attempt. */
export interface Refusal {
  status: number;
  body: unknown;
}

/** One kind of target (the part of the target id before ':'). */
export interface Adapter {
  /**
   * Send one item. `signal` aborts on the attempt timeout and on engine close: the adapter must
   * then settle promptly (rejecting is fine). A rejection counts as `retry` with its message.
   * `item.attempts` is the number of earlier failed attempts (a first attempt sees 0).
   */
  deliver(item: OutboundItem, signal: AbortSignal): Promise<Outcome>;
}

/** Counters per target kind, for metrics (plain numbers; ops wires them to prom-client). */
export interface KindStats {
  attempts: number;
  delivered: number;
  /** Attempts that ended in `retry` (timeouts and adapter errors included). */
  failures: number;
  parked: number;
  expired: number;
  obsolete: number;
  /** Sum, count and max of attempt durations (ms), every outcome. */
  latencyMsSum: number;
  latencyCount: number;
  latencyMsMax: number;
}

export interface TargetStats {
  target: string;
  kind: string;
  pending: number;
  parked: number;
  inFlight: number;
  breaker: BreakerState;
  consecutiveFailures: number;
}

/** Events of the engine (an EventEmitter), each after its store write is durable. */
export interface OutboundEvents {
  delivered: [item: OutboundItem, latencyMs: number];
  retry: [item: OutboundItem, reason: string, nextAt: number];
  parked: [item: OutboundItem, reason: string, refusal?: Refusal];
  expired: [item: OutboundItem];
  obsolete: [item: OutboundItem];
  breaker: [target: string, state: BreakerState];
  /** A store write failed (the item keeps its previous durable state). */
  storeError: [target: string, error: unknown];
}

export type OutboundEventName = keyof OutboundEvents;
