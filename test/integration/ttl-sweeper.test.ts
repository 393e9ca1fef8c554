// The TTL sweeper (spec §14, §12.5, §15) on a real LMDB store in a temp dir: expired queue entries,
// old acked message ids and expired idempotency records are removed, in slices that leave the
// event loop free; and end to end, an expired message is never listed or pushed.

import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { QueuedMessage } from '../../proto/index.js';
import { AmpClient, type AmpSocket } from '../../src/client/index.js';
import { LmdbStore } from '../../src/store/lmdb.js';
import { sweepOnce } from '../../src/store/sweeper.js';
import { Inbox } from '../helpers/events.js';
import { call, register, startTestServer, tempDir } from '../helpers/server.js';
import { afterEachCleanup, queuedInput, testStores } from '../helpers/store.js';

const HOUR = 3600 * 1000;
const SENDER = 'agt_000000000000000000000001';

const defer = afterEachCleanup();
const openStore = testStores('amp-ttl-', defer);
/** A queued message as route() builds it, expiring at `expiresAtMs`. */
const input = (expiresAtMs: number, subject: string, nowMs = Date.now()) =>
  queuedInput({ senderId: SENDER, expiresAtMs, subject, nowMs, domain: 'ttl.aimaestro.local' });

/** Append and wait for the commit; returns the message id. */
async function append(store: LmdbStore, agentId: string, expiresAtMs: number, subject: string): Promise<string> {
  const inp = input(expiresAtMs, subject);
  await store.append(agentId, inp).committed;
  return inp.msg.id;
}

/** Ids physically in the queue (readFrom leaves out only entries expired at `nowMs`; 0 = none). */
const stored = (store: LmdbStore, agentId: string) => store.readFrom(agentId, 0, 100_000, 0).entries.map((e) => e.id);

describe('sweepOnce on a real LMDB store', () => {
  it('removes expired queue entries and keeps unexpired ones in order', async () => {
    const store = openStore();
    const now = Date.now();
    const agent = 'agt_0000000000000000000000aa';
    const kept: string[] = [];
    const expired: string[] = [];
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) expired.push(await append(store, agent, now - 1000 - i, `old-${i}`));
      else kept.push(await append(store, agent, now + HOUR, `new-${i}`));
    }
    // Before the sweep everything is still stored; reads at `now` already hide the expired ones.
    expect(stored(store, agent)).toHaveLength(6);
    expect(store.readFrom(agent, 0, 100, now).entries.map((e) => e.id)).toEqual(kept);

    // 3 expired queue entries + their 3 (unacked, expired) message-index entries.
    expect(await sweepOnce(store, now)).toBe(6);
    await store.settled();
    expect(stored(store, agent)).toEqual(kept);
    expect(store.pendingCount(agent, now)).toBe(3);
    expect(store.pendingCount(agent, 0)).toBe(3); // gone from the in-memory index too, not just filtered
    const page = store.listPending(agent, 100, now);
    expect(page.messages.map((m) => m.id)).toEqual(kept);
    expect(page.remaining).toBe(0);
    for (const id of expired) expect(store.message(id)).toBeUndefined();
    for (const id of kept) expect(store.message(id)).toMatchObject({ recipientId: agent, senderId: SENDER });
    // A second sweep finds nothing more.
    expect(await sweepOnce(store, now)).toBe(0);
  });

  it('forgets acks older than 24 h after expiry, remembers recent ones (already_acked still answered)', async () => {
    const store = openStore();
    const now = Date.now();
    const agent = 'agt_0000000000000000000000bb';
    const oldAcked = await append(store, agent, now - 48 * HOUR, 'old acked');
    const recentAcked = await append(store, agent, now - 60_000, 'recently acked');
    const liveAcked = await append(store, agent, now + HOUR, 'live acked');
    const staleUnacked = await append(store, agent, now - 48 * HOUR, 'never acked');
    expect(await store.ack(agent, [oldAcked], now - 30 * HOUR)).toEqual(['acked']);
    expect(await store.ack(agent, [recentAcked], now - 1000)).toEqual(['acked']);
    expect(await store.ack(agent, [liveAcked], now)).toEqual(['acked']);

    // Forgotten: oldAcked (acked 30 h ago, expired 48 h ago) and staleUnacked's queue entry + index.
    expect(await sweepOnce(store, now)).toBe(3);
    await store.settled();
    expect(store.message(oldAcked)).toBeUndefined();
    expect(store.message(staleUnacked)).toBeUndefined();
    expect(store.message(recentAcked)).toMatchObject({ recipientId: agent, ackedAt: now - 1000 });
    expect(store.message(liveAcked)).toMatchObject({ recipientId: agent, ackedAt: now });
    expect(await store.ack(agent, [recentAcked, liveAcked], now)).toEqual(['already_acked', 'already_acked']);
    expect(await store.ack(agent, [oldAcked], now)).toEqual(['unknown']);
    expect(stored(store, agent)).toEqual([]);
  });

  it('an ack far from expiry removes the queue entry, leaves the index as it was, and still answers already_acked; expired unacked is unknown', async () => {
    const dir = tempDir('amp-ack-');
    let store = new LmdbStore({ dataDir: dir });
    defer(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const now = Date.now();
    const agent = 'agt_0000000000000000000000cc';
    const far = await append(store, agent, now + 7 * 24 * HOUR, 'expires in a week');
    const withReceipt = input(now + 7 * 24 * HOUR, 'receipt asked');
    withReceipt.receipt = true;
    await store.append(agent, withReceipt).committed;
    const before = store.message(far);
    const owed: string[] = [];
    expect(await store.ack(agent, [far, withReceipt.msg.id, far], now, (id) => owed.push(id))).toEqual([
      'acked',
      'acked',
      'already_acked',
    ]);
    expect(owed).toEqual([withReceipt.msg.id]); // only the message that asked for a delivery receipt
    await store.settled();
    expect(stored(store, agent)).toEqual([]);
    expect(store.message(far)).toEqual(before); // kept until expiry, no ack mark needed
    expect(await store.ack(agent, [far], now + HOUR)).toEqual(['already_acked']);
    expect(await store.ack('agt_0000000000000000000000dd', [far], now)).toEqual(['unknown']); // not theirs
    // After a restart the pending index is rebuilt from the queue: still acked.
    await store.close();
    store = new LmdbStore({ dataDir: dir });
    expect(await store.ack(agent, [far], now)).toEqual(['already_acked']);
    expect(stored(store, agent)).toEqual([]);

    // Expired and never acked: once out of the pending index it is unknown, not already acked.
    const lapsed = await append(store, agent, now - 1000, 'expired unacked');
    expect(store.pendingCount(agent, now)).toBe(0); // prunes it from the pending index
    expect(store.message(lapsed)).toMatchObject({ recipientId: agent });
    expect(await store.ack(agent, [lapsed], now)).toEqual(['unknown']);
  });

  it('removes expired idempotency records and keeps live ones', async () => {
    const store = openStore();
    const now = Date.now();
    await store.putIdempotency(SENDER, 'idk_gone', {
      digest: 'digest-1',
      result: { id: 'msg_1_a' },
      expiresAt: now - 1,
    });
    await store.putIdempotency(SENDER, 'idk_kept', {
      digest: 'digest-2',
      result: { id: 'msg_1_b' },
      expiresAt: now + HOUR,
    });
    expect(store.getIdempotency(SENDER, 'idk_gone', 0)).toBeDefined(); // stored until swept
    expect(store.getIdempotency(SENDER, 'idk_gone', now)).toBeUndefined(); // but never honoured once expired
    expect(await sweepOnce(store, now)).toBe(1);
    await store.settled();
    expect(store.getIdempotency(SENDER, 'idk_gone', 0)).toBeUndefined();
    expect(store.getIdempotency(SENDER, 'idk_kept', now)).toEqual({
      digest: 'digest-2',
      result: { id: 'msg_1_b' },
      expiresAt: now + HOUR,
    });
  });

  it('sweeps 5,000 expired entries in bounded time without holding the event loop', async ({ annotate }) => {
    const store = openStore();
    const now = Date.now();
    const agents = Array.from({ length: 10 }, (_, i) => `agt_${String(i).padStart(24, '0')}`);
    const commits: Promise<void>[] = [];
    const keptIds = new Map<string, string[]>(agents.map((a) => [a, []]));
    for (let i = 0; i < 5100; i++) {
      const agent = agents[i % agents.length]!;
      const live = i % 51 === 50; // 100 unexpired among 5,000 expired
      const inp = input(live ? now + HOUR : now - 1000, `m${i}`);
      if (live) keptIds.get(agent)!.push(inp.msg.id);
      commits.push(store.append(agent, inp).committed);
    }
    await Promise.all(commits);
    expect(agents.reduce((n, a) => n + stored(store, a).length, 0)).toBe(5100);

    // Longest gap between setImmediate ticks while the sweep runs (the first slice runs at once).
    let maxGap = 0;
    let ticks = 0;
    let running = true;
    let last = performance.now();
    const tick = () => {
      const t = performance.now();
      maxGap = Math.max(maxGap, t - last);
      last = t;
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const started = performance.now();
    const removed = await sweepOnce(store, now);
    const elapsed = performance.now() - started;
    running = false;
    await annotate(
      `sweep of 5,000 expired queue entries (+ 5,000 index entries): ${elapsed.toFixed(1)} ms, longest event-loop gap ${maxGap.toFixed(1)} ms, ${ticks} ticks`,
    );

    expect(removed).toBe(10_000);
    expect(elapsed).toBeLessThan(5000);
    expect(ticks).toBeGreaterThan(1); // it did yield between slices
    expect(maxGap).toBeLessThan(100);
    await store.settled();
    for (const a of agents) {
      expect(stored(store, a)).toEqual(keptIds.get(a));
      expect(store.pendingCount(a, now)).toBe(keptIds.get(a)!.length);
    }
  });
});

describe('end to end: an expired message is never listed or pushed', () => {
  it('route with expires_at = now + 1.5 s: listed until then, then gone from lists and socket replays', async () => {
    const t = await startTestServer();
    const sockets: AmpSocket[] = [];
    defer(async () => {
      for (const s of sockets) s.close();
      await t.close();
    });
    const a = await register(t.api, 'ttl-a', 'ttl');
    const b = await register(t.api, 'ttl-b', 'ttl');
    const c = await register(t.api, 'ttl-c', 'ttl'); // never lists: only a socket ever looks at its queue
    const expMs = Date.now() + 1500;
    const expiresAt = new Date(expMs).toISOString();
    const body = (to: string) => ({
      to,
      subject: 'short-lived',
      expires_at: expiresAt,
      payload: { type: 'notification', message: 'soon gone' },
    });
    const toB = await call('POST', `${t.api}/route`, { key: a.api_key, json: body(b.address) });
    const toC = await call('POST', `${t.api}/route`, { key: a.api_key, json: body(c.address) });
    expect([toB.status, toC.status]).toEqual([200, 200]);

    const list = () => call('GET', `${t.api}/messages/pending?limit=100`, { key: b.api_key });
    const first = await list();
    expect(first.body.messages.map((m: QueuedMessage) => m.id)).toEqual([toB.body.id]);
    // Relay expiry = min(envelope.expires_at, queued_at + 7 d) = the envelope's.
    expect(first.body.messages[0]).toMatchObject({ expires_at: expiresAt, envelope: { expires_at: expiresAt } });

    // Bounded poll (≤ 5 s, each iteration awaits the answer, paced to stay inside the pending bucket).
    const deadline = Date.now() + 5000;
    let lastSeenAskedAt = 0;
    let goneAt: number | undefined;
    let goneBody: any;
    while (Date.now() < deadline) {
      const askedAt = Date.now();
      const r = await list();
      expect(r.status).toBe(200);
      if (r.body.messages.some((m: QueuedMessage) => m.id === toB.body.id)) {
        lastSeenAskedAt = askedAt;
        await sleep(50);
        continue;
      }
      goneAt = Date.now();
      goneBody = r.body;
      break;
    }
    expect(goneAt, 'the message was still listed 5 s after routing').toBeDefined();
    expect(lastSeenAskedAt).toBeLessThan(expMs); // listed only before its expiry
    expect(goneAt!).toBeGreaterThanOrEqual(expMs); // and not dropped early
    expect(goneBody).toEqual({ messages: [], count: 0, remaining: 0 });

    // Sockets connecting afterwards: pending_count 0, no replay; a new message is the first push.
    for (const who of [b, c]) {
      const s = new AmpClient({ baseUrl: t.url, apiKey: who.api_key }).connect({ reconnect: false });
      sockets.push(s);
      const inbox = new Inbox(s);
      const connected = await s.ready();
      expect(connected.pending_count).toBe(0);
      const fresh = await call('POST', `${t.api}/route`, {
        key: a.api_key,
        json: { to: who.address, subject: 'fresh', payload: { type: 'notification', message: 'x' } },
      });
      await inbox.has([fresh.body.id]);
      expect(inbox.ids()).toEqual([fresh.body.id]);
    }
    const cList = await call('GET', `${t.api}/messages/pending?limit=100`, { key: c.api_key });
    expect(cList.body.messages.map((m: QueuedMessage) => m.id)).not.toContain(toC.body.id);
  });
});
