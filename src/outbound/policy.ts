// How the engine treats one kind of target: how many attempts at once, when to retry, when to
// pause the target. Pure functions of their inputs (the random source is passed in).

export interface RetryPolicy {
  /**
   * Fixed delays after the 1st, 2nd, ... failed attempt; once they run out the item is parked.
   * When absent, delays grow exponentially: baseMs * factor^(failures - 1), at most maxMs.
   */
  delaysMs?: readonly number[];
  baseMs: number;
  factor: number;
  maxMs: number;
  /** Failed attempts after which the item is parked (Infinity: retried until it expires). */
  maxAttempts: number;
  /** Share of each delay taken off at random (0.2: a delay d becomes one in [0.8 d, d]). */
  jitter: number;
}

export interface BreakerPolicy {
  /** Consecutive failed attempts that open the breaker (the target is paused). */
  failures: number;
  /** How long an open breaker pauses the target before one probe attempt. */
  coolDownMs: number;
}

export interface TargetPolicy {
  /** Attempts in flight at once, per target. */
  concurrency: number;
  retry: RetryPolicy;
  breaker: BreakerPolicy;
  /** An attempt still running after this long is aborted and counts as failed. */
  attemptTimeoutMs: number;
  /**
   * Head of line per group: only the oldest pending (not parked) item of each ordering group (the
   * enqueue's `group`, e.g. the sender; absent: the whole target) may be attempted, so a group's
   * items arrive in enqueue order (a later one never overtakes one waiting for its retry), while
   * `concurrency` groups are attempted at once. Default false.
   */
  ordered?: boolean;
}

/** Mesh peers and federated providers: retried until the message expires. */
export const DEFAULT_POLICY: TargetPolicy = {
  concurrency: 4,
  retry: { baseMs: 1000, factor: 2, maxMs: 5 * 60_000, maxAttempts: Number.POSITIVE_INFINITY, jitter: 0.2 },
  breaker: { failures: 5, coolDownMs: 30_000 },
  attemptTimeoutMs: 15_000,
};

/**
 * Webhooks (§18): retry after 30 s, then 2 min, then the item stays parked; 10 consecutive
 * failures pause the agent's webhook for 5 min; connect 5 s + response 10 s per attempt.
 */
export const WEBHOOK_POLICY: TargetPolicy = {
  concurrency: 1,
  retry: { delaysMs: [30_000, 120_000], baseMs: 30_000, factor: 4, maxMs: 120_000, maxAttempts: 3, jitter: 0 },
  breaker: { failures: 10, coolDownMs: 5 * 60_000 },
  attemptTimeoutMs: 15_000,
};

/**
 * The delay (ms) before the next attempt after `failures` failed attempts (1 after the first), or
 * null when the item should be parked. `random` returns a number in [0, 1).
 */
export function retryDelay(p: RetryPolicy, failures: number, random: () => number): number | null {
  if (failures >= p.maxAttempts) return null;
  let d: number;
  if (p.delaysMs) {
    const fixed = p.delaysMs[failures - 1];
    if (fixed === undefined) return null;
    d = fixed;
  } else {
    d = Math.min(p.maxMs, p.baseMs * p.factor ** Math.max(0, failures - 1));
  }
  return Math.round(d * (1 - p.jitter * random()));
}

/** A policy with some fields replaced (nested ones merged). */
export function withPolicy(base: TargetPolicy, over: PolicyOverride = {}): TargetPolicy {
  return {
    concurrency: over.concurrency ?? base.concurrency,
    retry: { ...base.retry, ...over.retry },
    breaker: { ...base.breaker, ...over.breaker },
    attemptTimeoutMs: over.attemptTimeoutMs ?? base.attemptTimeoutMs,
    ordered: over.ordered ?? base.ordered ?? false,
  };
}

export interface PolicyOverride {
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  breaker?: Partial<BreakerPolicy>;
  attemptTimeoutMs?: number;
  ordered?: boolean;
}

const DEFER_MIN_MS = 1000;
const DEFER_MAX_MS = 5 * 60_000;

/**
 * When a deferred item (a refusal of this one message that may clear, e.g. a suspended recipient)
 * is tried again: about as long again as it has waited (so waits double), 1 s … 5 min, ±20 %.
 */
export function deferUntil(createdAt: number, now = Date.now()): number {
  const wait = Math.min(DEFER_MAX_MS, Math.max(DEFER_MIN_MS, now - createdAt));
  return now + Math.round(wait * (0.8 + 0.4 * Math.random()));
}
