// A clock the test moves by hand: timers fire only inside advance(), in time order, so retry
// schedules and breaker cool-downs are stepped through without waiting.

import type { Clock, ClockTimer } from '../../src/outbound/index.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Timers one advance() may fire at most (a bound on every loop). */
const MAX_FIRES = 100_000;

export class ManualClock implements Clock {
  private readonly timers = new Set<Timer>();
  private seq = 0;

  constructor(private t = 1_767_225_600_000) {}

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): ClockTimer {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way (earliest first). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let fired = 0; fired < MAX_FIRES; fired++) {
      let next: Timer | undefined;
      for (const timer of this.timers) {
        if (timer.at <= end && (!next || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) {
          next = timer;
        }
      }
      if (!next) break;
      this.timers.delete(next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  /** When the earliest timer is due (ms), or null. */
  nextTimerAt(): number | null {
    let at: number | null = null;
    for (const timer of this.timers) if (at === null || timer.at < at) at = timer.at;
    return at;
  }
}
