import { describe, expect, it } from 'vitest';
import { AmpError } from '../../proto/index.js';
import type { LmdbStore } from '../../src/store/lmdb.js';
import { until } from '../helpers/ws.js';
import { queuedInput, testStores } from '../helpers/store.js';

const HOUR = 3600 * 1000;
const AGENT = 'agt_0000000000000000000000bb';
const SENDER = 'agt_000000000000000000000001';
const RECOVERY_TIMEOUT_MS = 5000;

const open = testStores('amp-failcommit-');
const openStore = () => open({ diskFreeFloorBytes: 0 });
const input = (subject: string) =>
  queuedInput({ senderId: SENDER, subject, expiresAtMs: Date.now() + HOUR, receipt: true });

/** What lmdb-js returns for a write whose transaction failed to commit on a full disk. */
function commitFailure(): Promise<never> {
  const cause = Object.assign(new Error('No space left on device: Attempting to write page'), { code: 28 });
  const commitError = Promise.reject(cause);
  return Promise.reject(Object.assign(new Error('Commit failed (see commitError for details)'), { commitError }));
}

type Writable = { put: (...a: unknown[]) => unknown; remove: (...a: unknown[]) => unknown };

/** The next `method` call on each of the queue's databases fails to commit. */
function failNext(store: LmdbStore, method: 'put' | 'remove'): void {
  const q = (store as unknown as { queue: { queue: Writable; msgindex: Writable } }).queue;
  for (const db of [q.queue, q.msgindex]) {
    const real = db[method];
    db[method] = () => {
      db[method] = real;
      return commitFailure();
    };
  }
}

const pendingIds = (store: LmdbStore) => store.listPending(AGENT, 100, Date.now()).messages.map((m) => m.id);
const storedIds = (store: LmdbStore) => store.readFrom(AGENT, 0, 100, Date.now()).entries.map((e) => e.id);

describe('a failed commit leaves no ghost', () => {
  it('an append that failed is not counted, listed, replayed or ackable', async () => {
    const store = openStore();
    const a = input('a');
    await store.append(AGENT, a).committed;
    failNext(store, 'put');
    const b = input('b');
    const failed = store.append(AGENT, b);
    const err = await failed.committed.then(
      () => undefined,
      (e: unknown) => e,
    );
    const c = input('c');
    const later = store.append(AGENT, c);
    await later.committed;

    expect(store.pendingCount(AGENT, Date.now())).toBe(2);
    expect(pendingIds(store)).toEqual([a.msg.id, c.msg.id]);
    expect(storedIds(store)).toEqual([a.msg.id, c.msg.id]);
    expect(store.committedSeq(AGENT)).toBe(later.seq);
    expect(store.message(b.msg.id)).toBeUndefined();
    expect(await store.ack(AGENT, [b.msg.id], Date.now())).toEqual(['unknown']);
    expect(err).toBeInstanceOf(AmpError);
    expect((err as AmpError).code).toBe('insufficient_storage');
    expect((err as AmpError).retryAfter).toBeGreaterThan(0);

    // The store says writes fail, then recovers by itself once a probe commits.
    const state = store.writeState();
    expect(state.ok).toBe(false);
    if (!state.ok) expect(state.reason).toMatch(/space/i);
    const recovered = async () => {
      await new Promise((resolve) => setImmediate(resolve)); // let the probe's timer run
      return store.writeState().ok;
    };
    expect(await until(recovered, RECOVERY_TIMEOUT_MS)).toBe(true);
  });

  it('an ack whose removal failed leaves the message pending, in its place', async () => {
    const store = openStore();
    const msgs = [input('a'), input('b'), input('c')];
    for (const m of msgs) await store.append(AGENT, m).committed;
    failNext(store, 'remove');
    const owed: string[] = [];
    const err = await store
      .ack(AGENT, [msgs[0]!.msg.id], Date.now(), (id) => owed.push(id))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(pendingIds(store)).toEqual(msgs.map((m) => m.msg.id));
    expect(store.pendingCount(AGENT, Date.now())).toBe(3);
    expect((err as AmpError).code).toBe('insufficient_storage');
    expect(await store.ack(AGENT, [msgs[0]!.msg.id], Date.now())).toEqual(['acked']);
    expect(pendingIds(store)).toEqual([msgs[1]!.msg.id, msgs[2]!.msg.id]);
  });
});
