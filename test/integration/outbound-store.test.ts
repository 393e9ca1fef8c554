// The OutboundStore of the LMDB store, driven directly (temp dirs): due lists (order, limit, skip,
// next due time), duplicates, attempts, parking and release, removal, counts, what a reopen finds,
// and a refused enqueue (no room) leaving nothing behind.

import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LmdbStore } from '../../src/store/lmdb.js';
import { tempDir } from '../helpers/server.js';
import { afterEachCleanup, testStores } from '../helpers/store.js';

const defer = afterEachCleanup();
const openStore = testStores('amp-outbound-store-', defer);
const T0 = 1_767_225_600_000;

describe('OutboundStore (LMDB)', () => {
  it('due lists: enqueue order, only due pending items, limit and skip, and when the next is due', async () => {
    const s = openStore();
    for (const [id, nextAt] of [
      ['a', T0],
      ['b', T0 + 500],
      ['c', T0],
      ['d', T0 + 100],
    ] as const) {
      await s.outboundEnqueue('mesh:p', { id, body: `{"${id}":1}`, createdAt: T0, nextAt });
    }
    await s.outboundEnqueue('mesh:q', { id: 'a', body: '{}', createdAt: T0 });
    const due = s.outboundDue('mesh:p', T0, 10);
    expect(due.items.map((i) => [i.id, i.body, i.target])).toEqual([
      ['a', '{"a":1}', 'mesh:p'],
      ['c', '{"c":1}', 'mesh:p'],
    ]);
    expect(due.nextAt).toBe(T0 + 100);
    expect(s.outboundDue('mesh:p', T0, 1)).toMatchObject({ items: [{ id: 'a' }], nextAt: T0 });
    expect(s.outboundDue('mesh:p', T0, 0)).toEqual({ items: [], nextAt: T0 });
    expect(s.outboundDue('mesh:p', T0 + 100, 10, (id) => id === 'a').items.map((i) => i.id)).toEqual(['c', 'd']);
    expect(s.outboundDue('mesh:none', T0, 10)).toEqual({ items: [], nextAt: null });
    expect(s.outboundTargets().sort()).toEqual(['mesh:p', 'mesh:q']);
    expect(s.outboundCount('mesh:p')).toEqual({ pending: 4, parked: 0 });
  });

  it('a duplicate id is not queued twice, even while the first write is in flight', async () => {
    const s = openStore();
    const [one, two] = await Promise.all([
      s.outboundEnqueue('fed:b.example', { id: 'm', body: '{"v":1}', createdAt: T0 }),
      s.outboundEnqueue('fed:b.example', { id: 'm', body: '{"v":2}', createdAt: T0 + 1 }),
    ]);
    expect(one.added).toBe(true);
    expect(two).toMatchObject({ added: false, item: { body: '{"v":1}', createdAt: T0 } });
    expect(s.outboundCount('fed:b.example')).toEqual({ pending: 1, parked: 0 });
    // The same id for another target is another item.
    expect((await s.outboundEnqueue('fed:c.example', { id: 'm', body: '{}', createdAt: T0 })).added).toBe(true);
  });

  it('attempts, parking, release and removal are kept across a reopen', async () => {
    const dir = tempDir('amp-outbound-store-reopen-');
    defer(() => rmSync(dir, { recursive: true, force: true }));
    let s = new LmdbStore({ dataDir: dir });
    for (const id of ['a', 'b', 'c']) {
      await s.outboundEnqueue('webhook:agt_1', { id, body: `"${id}"`, createdAt: T0, expiresAt: T0 + 9e6 });
    }
    expect(await s.outboundAttempted('webhook:agt_1', 'a', 1, T0 + 30_000, 'HTTP 500')).toBe(true);
    expect(await s.outboundPark('webhook:agt_1', 'b', 1, 'HTTP 400')).toBe(true);
    expect(await s.outboundRemove('webhook:agt_1', 'c')).toBe(true);
    expect(await s.outboundRemove('webhook:agt_1', 'c')).toBe(false);
    expect(await s.outboundAttempted('webhook:agt_1', 'c', 1, T0, 'x')).toBe(false);
    await s.close();

    s = new LmdbStore({ dataDir: dir });
    defer(() => s.close());
    expect(s.outboundGet('webhook:agt_1', 'a')).toEqual({
      target: 'webhook:agt_1',
      id: 'a',
      body: '"a"',
      createdAt: T0,
      expiresAt: T0 + 9e6,
      attempts: 1,
      nextAt: T0 + 30_000,
      state: 'pending',
      lastError: 'HTTP 500',
    });
    expect(s.outboundGet('webhook:agt_1', 'b')).toMatchObject({ state: 'parked', attempts: 1, lastError: 'HTTP 400' });
    expect(s.outboundGet('webhook:agt_1', 'c')).toBeUndefined();
    expect(s.outboundCount('webhook:agt_1')).toEqual({ pending: 1, parked: 1 });
    expect(s.outboundDue('webhook:agt_1', T0 + 60_000, 10).items.map((i) => i.id)).toEqual(['a']);
    expect(await s.outboundRelease('webhook:agt_1', T0 + 1)).toBe(1);
    expect(s.outboundDue('webhook:agt_1', T0 + 1, 10).items.map((i) => [i.id, i.state])).toEqual([['b', 'pending']]);
    // A new enqueue after the reopen sorts after the old items.
    await s.outboundEnqueue('webhook:agt_1', { id: 'd', body: '"d"', createdAt: T0 });
    expect(s.outboundDue('webhook:agt_1', T0 + 60_000, 10).items.map((i) => i.id)).toEqual(['a', 'b', 'd']);
    for (const id of ['a', 'b', 'd']) await s.outboundRemove('webhook:agt_1', id);
    expect(s.outboundTargets()).toEqual([]);
    expect(s.dataStats().dbs.outbound!.entries).toBe(0);
  });

  it('an enqueue refused for lack of room (507) leaves nothing behind', async () => {
    const s = openStore({ diskFreeFloorBytes: Number.MAX_SAFE_INTEGER });
    await expect(s.outboundEnqueue('mesh:p', { id: 'm', body: '{}', createdAt: T0 })).rejects.toMatchObject({
      code: 'insufficient_storage',
    });
    expect(s.outboundTargets()).toEqual([]);
    expect(s.outboundGet('mesh:p', 'm')).toBeUndefined();
  });
});
