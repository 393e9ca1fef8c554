// Token buckets: capacity, continuous refill, headers (spec §20). A fake clock, no timers.
import { describe, expect, it } from 'vitest';
import { Limiter, mostConstrained, rateLimitHeaders } from '../../src/relay/ratelimit.js';

describe('Limiter', () => {
  it('allows a burst of `limit`, then refuses until a token refills', () => {
    const l = new Limiter('t', { limit: 10, windowMs: 60_000 });
    const t0 = 1_000_000;
    for (let i = 0; i < 10; i++) expect(l.take('ip', t0).ok).toBe(true);
    const refused = l.take('ip', t0);
    expect(refused).toMatchObject({ ok: false, limit: 10, remaining: 0, retryAfter: 6 });
    // One token every 6 s.
    expect(l.take('ip', t0 + 5_999).ok).toBe(false);
    expect(l.take('ip', t0 + 6_000 + 5_999).ok).toBe(true);
    // Other keys have their own bucket.
    expect(l.take('other', t0).remaining).toBe(9);
  });

  it('reports the reset time when full again, rounded up to a second', () => {
    const l = new Limiter('t', { limit: 60, windowMs: 60_000 });
    const t = l.take('k', 10_500);
    expect(t.remaining).toBe(59);
    expect(t.resetAt).toBe(Math.ceil((10_500 + 1000) / 1000));
  });

  it('honours a burst smaller than the limit', () => {
    const l = new Limiter('t', { limit: 6000, windowMs: 60_000, burst: 600 });
    let ok = 0;
    for (let i = 0; i < 700; i++) if (l.take('a', 0).ok) ok++;
    expect(ok).toBe(600);
    expect(l.take('a', 10).ok).toBe(true); // 100 tokens/s refill: 1 token after 10 ms
  });

  it('forgets refilled buckets so memory follows active keys', () => {
    const l = new Limiter('t', { limit: 1, windowMs: 1000 });
    for (let i = 0; i < 4095; i++) l.take(`k${i}`, 0);
    expect(l.size()).toBe(4095);
    l.take('late', 10_000); // the 4096th take sweeps
    expect(l.size()).toBe(1);
  });
});

describe('headers', () => {
  it('picks the refusal, else the fewest tokens, and adds Retry-After only on refusal', () => {
    const a = { ok: true, limit: 10, remaining: 5, resetAt: 100, retryAfter: 0 };
    const b = { ok: true, limit: 100, remaining: 2, resetAt: 200, retryAfter: 0 };
    const c = { ok: false, limit: 50, remaining: 0, resetAt: 300, retryAfter: 3 };
    expect(mostConstrained([a, b])).toBe(b);
    expect(mostConstrained([a, c, b])).toBe(c);
    expect(rateLimitHeaders(b)).toEqual({
      'X-RateLimit-Limit': '100',
      'X-RateLimit-Remaining': '2',
      'X-RateLimit-Reset': '200',
    });
    expect(rateLimitHeaders(c)['Retry-After']).toBe('3');
  });
});
