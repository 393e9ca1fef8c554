// Time as the outbound engine sees it: injectable, so tests step through retry schedules and
// breaker cool-downs without waiting (test/helpers/manual-clock.ts).

export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** ms since the epoch */
  now(): number;
  /** Call `fn` once, `ms` from now. */
  setTimer(fn: () => void, ms: number): ClockTimer;
}

/** setTimeout's limit (about 24.8 days); a later wake-up fires early and is set again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. Its timers do not keep the process alive (the server's sockets do). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
