// KeyedLock: calls for one key run one at a time in call order, whatever the earlier ones did;
// calls for other keys do not wait; the map forgets a key once its queue is empty.
import { describe, expect, it } from 'vitest';
import { KeyedLock } from '../../src/store/keyed-lock.js';

/** A promise and the function that settles it, so a test decides when a call ends. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('KeyedLock', () => {
  it('runs calls for one key one at a time, in call order', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const first = gate();
    const a = lock.run('k', async () => {
      log.push('a start');
      await first.promise;
      log.push('a end');
      return 'a';
    });
    const b = lock.run('k', async () => {
      log.push('b');
      return 'b';
    });
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['a start']);
    first.open();
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    expect(log).toEqual(['a start', 'a end', 'b']);
  });

  it('runs the next call after a failed one, and hands each caller its own outcome', async () => {
    const lock = new KeyedLock();
    const failed = lock.run('k', async () => {
      throw new Error('boom');
    });
    const next = lock.run('k', async () => 42);
    await expect(failed).rejects.toThrow('boom');
    expect(await next).toBe(42);
  });

  it('does not hold other keys back', async () => {
    const lock = new KeyedLock();
    const held = gate();
    const slow = lock.run('a', () => held.promise);
    expect(await lock.run('b', async () => 'b')).toBe('b');
    held.open();
    await slow;
  });

  it('forgets a key once nothing is queued for it', async () => {
    const lock = new KeyedLock();
    await Promise.all([lock.run('a', async () => {}), lock.run('a', async () => {}), lock.run('b', async () => {})]);
    await new Promise((r) => setImmediate(r));
    expect(lock.size()).toBe(0);
  });
});
