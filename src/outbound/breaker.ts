// A per-target circuit breaker: after `failures` consecutive failed attempts the target is paused
// for `coolDownMs`; then one probe attempt decides (success closes, failure opens it again).

import type { BreakerPolicy } from './policy.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export class Breaker {
  state: BreakerState = 'closed';
  /** Consecutive failed attempts. */
  failures = 0;
  /** While open: when the probe may go (ms). */
  openUntil = 0;
  private probing = false;

  constructor(private readonly policy: BreakerPolicy) {}

  /**
   * How many attempts may start now: Infinity when closed, 1 when a probe may go, else 0. Moves an
   * open breaker whose cool-down is over to half-open (the caller reports that transition).
   */
  admit(nowMs: number): number {
    if (this.state === 'open' && nowMs >= this.openUntil) this.state = 'half-open';
    if (this.state === 'closed') return Number.POSITIVE_INFINITY;
    if (this.state === 'half-open' && !this.probing) return 1;
    return 0;
  }

  /** An attempt starts (a half-open breaker's one probe). */
  started(): void {
    if (this.state === 'half-open') this.probing = true;
  }

  /** The target answered: closes the breaker. */
  success(): void {
    this.failures = 0;
    this.probing = false;
    this.state = 'closed';
  }

  /** An attempt ended without telling anything of the target (e.g. no longer wanted). */
  neutral(): void {
    this.probing = false;
  }

  /** A failed attempt; opens the breaker at the threshold or when the probe failed. */
  failure(nowMs: number): void {
    this.failures++;
    const probeFailed = this.state === 'half-open' && this.probing;
    this.probing = false;
    if (probeFailed || (this.state === 'closed' && this.failures >= this.policy.failures)) {
      this.state = 'open';
      this.openUntil = nowMs + this.policy.coolDownMs;
    }
  }
}
