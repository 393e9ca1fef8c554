// ReplayCache: a proof is accepted once while remembered, again after its TTL or a release; parts
// are joined so that different splits of the same bytes are different proofs. A fake clock.
import { describe, expect, it } from 'vitest';
import { ReplayCache } from '../../src/crypto/replay.js';

describe('ReplayCache', () => {
  it('accepts parts once within the TTL, and again after it', () => {
    const c = new ReplayCache(1000);
    expect(c.claim(['acme', Buffer.from([1, 2, 3])], 0)).toBe(true);
    expect(c.claim(['acme', Buffer.from([1, 2, 3])], 999)).toBe(false);
    expect(c.claim(['acme', Buffer.from([1, 2, 3])], 1000)).toBe(true);
  });

  it('tells different parts apart, including the same bytes split differently', () => {
    const c = new ReplayCache(1000);
    expect(c.claim(['ab', 'c'], 0)).toBe(true);
    expect(c.claim(['a', 'bc'], 0)).toBe(true);
    expect(c.claim(['abc'], 0)).toBe(true);
    expect(c.claim(['other', 'ab', 'c'], 0)).toBe(true);
    expect(c.claim(['ab', 'c'], 0)).toBe(false);
  });

  it('lets a released claim be made again (its proof failed after all)', () => {
    const c = new ReplayCache(1000);
    expect(c.claim(['p'], 0)).toBe(true);
    c.release(['p']);
    expect(c.claim(['p'], 10)).toBe(true);
    expect(c.claim(['p'], 20)).toBe(false);
  });

  it('forgets expired entries as time passes, so memory follows the TTL', () => {
    const c = new ReplayCache(1000);
    for (let i = 0; i < 100; i++) c.claim([String(i)], i);
    expect(c.size()).toBe(100);
    c.claim(['late'], 1050);
    // Entries 0..50 expired at 1000..1050; 51..99 and 'late' remain.
    expect(c.size()).toBe(50);
  });
});
