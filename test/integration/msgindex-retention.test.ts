import { describe, expect, it } from 'vitest';
import type { LmdbStore } from '../../src/store/lmdb.js';
import { sweepOnce } from '../../src/store/sweeper.js';
import { call, register, routeOk, startTestServer } from '../helpers/server.js';
import { afterEachCleanup, queuedInput, testStores } from '../helpers/store.js';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const RELAY_TTL_MS = 7 * DAY;
const AGENT = 'agt_0000000000000000000000cc';
const SENDER = 'agt_000000000000000000000002';
/** What one acked message may leave in msgindex, pages included (it was ~250 B). */
const MAX_BYTES_PER_ACKED = 160;

const defer = afterEachCleanup();
const openStore = testStores('amp-retention-', defer);
const input = (nowMs: number, expiresAtMs: number) => queuedInput({ senderId: SENDER, nowMs, expiresAtMs });

/** Append `n` messages expiring at `expiresAtMs` and ack them all at `nowMs`; their ids. */
async function routeAndAck(store: LmdbStore, n: number, nowMs: number, expiresAtMs: number): Promise<string[]> {
  const batch = Array.from({ length: n }, () => input(nowMs, expiresAtMs));
  await Promise.all(batch.map((b) => store.append(AGENT, b).committed));
  const ids = batch.map((b) => b.msg.id);
  expect(await store.ack(AGENT, ids, nowMs)).toEqual(ids.map(() => 'acked'));
  return ids;
}

const index = (store: LmdbStore) => store.dataStats().dbs.msgindex!;

/** A sweep, and the commit of its removals. */
async function sweep(store: LmdbStore, atMs: number): Promise<void> {
  await sweepOnce(store, atMs);
  await store.settled();
}

describe('msgindex after acks', () => {
  it('keeps a small record per acked message, until max(relay expiry, ack + 24 h)', async () => {
    const store = openStore();
    const now = Date.now();
    const N = 2000;
    const ids = await routeAndAck(store, N, now, now + RELAY_TTL_MS);
    expect(store.dataStats().dbs.queue!.entries).toBe(0);
    expect(index(store).entries).toBe(N);
    expect(index(store).bytes / N).toBeLessThan(MAX_BYTES_PER_ACKED);

    // A day later: still answers already_acked, and still a read receipt's until relay expiry.
    await sweep(store, now + DAY + 60_000);
    expect(index(store).entries).toBe(N);
    expect(await store.ack(AGENT, [ids[0]!], now + DAY + 60_000)).toEqual(['already_acked']);
    expect(store.message(ids[1]!)?.senderId).toBe(SENDER);

    // Past relay expiry (and a day after the ack), nothing is left.
    await sweep(store, now + RELAY_TTL_MS + 1);
    expect(index(store).entries).toBe(0);
    expect(await store.ack(AGENT, [ids[0]!], now + RELAY_TTL_MS + 1)).toEqual(['unknown']);
  });

  it('a message expiring soon is remembered 24 h after its ack, then forgotten', async () => {
    const store = openStore();
    const now = Date.now();
    const ids = await routeAndAck(store, 50, now, now + HOUR);
    await sweep(store, now + 2 * HOUR);
    expect(await store.ack(AGENT, [ids[0]!], now + 2 * HOUR)).toEqual(['already_acked']);
    await sweep(store, now + DAY + 1);
    expect(index(store).entries).toBe(0);
  });

  it('/metrics reports the data file and each database', async () => {
    const t = await startTestServer({ rateLimits: 'off' });
    defer(() => t.close());
    const alice = await register(t.api, 'alice');
    const bob = await register(t.api, 'bob');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const msg = { to: bob.address, subject: `m${i}`, payload: { type: 'notification', message: 'hi' } };
      ids.push((await routeOk(t.api, alice, msg)).id);
    }
    const acked = await call('POST', `${t.api}/messages/pending/ack`, { key: bob.api_key, json: { ids } });
    expect(acked.body.acknowledged).toBe(20);
    const again = await call('DELETE', `${t.api}/messages/pending/${ids[0]}`, { key: bob.api_key });
    expect(again.body).toEqual({ acknowledged: true, already_acked: true });

    const text = (await call('GET', `${t.url}/metrics`)).body as string;
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    expect(value('amp_store_file_bytes')).toBeGreaterThan(0);
    expect(value('amp_store_entries\\{db="queue"\\}')).toBe(0);
    expect(value('amp_store_entries\\{db="msgindex"\\}')).toBe(20);
    expect(value('amp_store_db_bytes\\{db="msgindex"\\}')).toBeGreaterThan(0);
    expect(value('amp_store_writable')).toBe(1);
  });
});
