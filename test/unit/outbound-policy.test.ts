// The outbound engine's pure parts: retry delays (fixed schedule, exponential, jitter, give-up)
// and the per-target breaker's states, with time passed in by hand.

import { describe, expect, it } from 'vitest';
import {
  Breaker,
  DEFAULT_POLICY,
  type RetryPolicy,
  retryDelay,
  WEBHOOK_POLICY,
  withPolicy,
} from '../../src/outbound/index.js';
import { ManualClock } from '../helpers/manual-clock.js';

const noJitter = () => 0;

describe('retryDelay', () => {
  it('webhooks (§18): 30 s, then 2 min, then park', () => {
    const p = WEBHOOK_POLICY.retry;
    expect([1, 2, 3, 4].map((n) => retryDelay(p, n, noJitter))).toEqual([30_000, 120_000, null, null]);
  });

  it('exponential: base * factor^(n-1), capped at maxMs, unbounded attempts', () => {
    const p: RetryPolicy = { baseMs: 1000, factor: 2, maxMs: 10_000, maxAttempts: Infinity, jitter: 0 };
    expect([1, 2, 3, 4, 5, 50].map((n) => retryDelay(p, n, noJitter))).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
  });

  it('maxAttempts parks after that many failures', () => {
    const p: RetryPolicy = { baseMs: 1000, factor: 2, maxMs: 10_000, maxAttempts: 3, jitter: 0 };
    expect([1, 2, 3].map((n) => retryDelay(p, n, noJitter))).toEqual([1000, 2000, null]);
  });

  it('jitter takes up to its share off each delay, never adds', () => {
    const p = DEFAULT_POLICY.retry; // jitter 0.2
    expect(retryDelay(p, 3, () => 0)).toBe(4000);
    expect(retryDelay(p, 3, () => 0.5)).toBe(3600);
    expect(retryDelay(p, 3, () => 0.999_999)).toBe(3200);
    // A seeded spread: every delay within [0.8 d, d], and not all the same.
    let seed = 42;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const delays = Array.from({ length: 200 }, () => retryDelay(p, 1, rand)!);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(800);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  it('withPolicy merges nested fields', () => {
    const p = withPolicy(DEFAULT_POLICY, { concurrency: 2, retry: { jitter: 0 }, breaker: { failures: 3 } });
    expect(p.concurrency).toBe(2);
    expect(p.retry).toEqual({ ...DEFAULT_POLICY.retry, jitter: 0 });
    expect(p.breaker).toEqual({ failures: 3, coolDownMs: DEFAULT_POLICY.breaker.coolDownMs });
  });
});

describe('Breaker', () => {
  const clock = new ManualClock();

  it('opens after N consecutive failures, pauses for the cool-down, then lets one probe through', () => {
    const b = new Breaker({ failures: 3, coolDownMs: 10_000 });
    expect(b.admit(clock.now())).toBe(Infinity);
    b.failure(clock.now());
    b.failure(clock.now());
    expect(b.state).toBe('closed');
    b.failure(clock.now());
    expect(b.state).toBe('open');
    clock.advance(9_999);
    expect(b.admit(clock.now())).toBe(0);
    clock.advance(1);
    expect(b.admit(clock.now())).toBe(1);
    expect(b.state).toBe('half-open');
    b.started();
    expect(b.admit(clock.now())).toBe(0); // one probe at a time
    b.success();
    expect(b.state).toBe('closed');
    expect(b.failures).toBe(0);
    expect(b.admit(clock.now())).toBe(Infinity);
  });

  it('a failed probe opens it again for a full cool-down', () => {
    const b = new Breaker({ failures: 1, coolDownMs: 5_000 });
    b.failure(clock.now());
    clock.advance(5_000);
    expect(b.admit(clock.now())).toBe(1);
    b.started();
    b.failure(clock.now());
    expect(b.state).toBe('open');
    expect(b.openUntil).toBe(clock.now() + 5_000);
    clock.advance(4_999);
    expect(b.admit(clock.now())).toBe(0);
  });

  it('a success between failures resets the count', () => {
    const b = new Breaker({ failures: 2, coolDownMs: 5_000 });
    b.failure(clock.now());
    b.success();
    b.failure(clock.now());
    expect(b.state).toBe('closed');
  });

  it('a neutral end of the probe lets another probe go', () => {
    const b = new Breaker({ failures: 1, coolDownMs: 1 });
    b.failure(clock.now());
    clock.advance(1);
    expect(b.admit(clock.now())).toBe(1);
    b.started();
    b.neutral();
    expect(b.admit(clock.now())).toBe(1);
  });
});

describe('ManualClock', () => {
  it('fires timers in time order only inside advance, and cancelled ones never', () => {
    const c = new ManualClock(0);
    const fired: string[] = [];
    c.setTimer(() => fired.push('b@20'), 20);
    c.setTimer(() => fired.push('a@10'), 10);
    c.setTimer(() => fired.push('x'), 15).cancel();
    expect(fired).toEqual([]);
    c.advance(15);
    expect(fired).toEqual(['a@10']);
    c.advance(5);
    expect(fired).toEqual(['a@10', 'b@20']);
    expect(c.now()).toBe(20);
  });
});
