// The directory's listing index (spec §7.4, issue 13 item 9): a page of a tenant's agents costs the
// page, not the tenant. Checked by counting the store's agent-record reads, never by timing: with
// 5,000 agents in a tenant a page of 20 reads at most 21 records, with or without `search`, while
// `total` stays exact; and the index follows inserts, alias changes and deletes.

import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LmdbStore } from '../../src/store/lmdb.js';
import type { AgentRecord } from '../../src/store/types.js';
import { tempDir } from '../helpers/server.js';

const N = 5_000;
let dir: string;
let store: LmdbStore;

function agent(tenant: string, name: string, alias?: string): AgentRecord {
  const address = `${name}@${tenant}.aimaestro.local`;
  return {
    id: `agt_${tenant}_${name}`,
    name,
    tenant,
    address,
    short_address: address,
    ...(alias ? { alias } : {}),
    public_key_pem: '',
    public_key_hex: '',
    fingerprint: `SHA256:${tenant}-${name}`,
    fingerprint_raw: `raw-${tenant}-${name}`,
    prefer_websocket: true,
    metadata_json: '{}',
    capabilities: [],
    status: 'active',
    key_hashes: [],
    registered_at: 0,
  };
}
const name = (i: number) => `a${String(i).padStart(5, '0')}`;

beforeEach(async () => {
  dir = tempDir('amp-listing-');
  store = new LmdbStore({ dataDir: dir });
  const writes: Promise<void>[] = [];
  for (let i = 0; i < N; i++) writes.push(store.putAgent(agent('big', name(i), i % 100 === 0 ? 'Hundred' : undefined)));
  writes.push(store.putAgent(agent('small', 'x')));
  await Promise.all(writes);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Spy on the agent-record reads of the store (its `agents` database). */
function countReads(s: LmdbStore) {
  const db = (s as unknown as { agents: { get: (id: string) => unknown } }).agents;
  return vi.spyOn(db, 'get');
}

describe('LmdbStore.listAgentPage', () => {
  it(`reads only the page (≤ limit + 1 records) out of ${N}, from the start, after a cursor, and with search`, () => {
    const reads = countReads(store);
    const first = store.listAgentPage('big', { after: '', limit: 20, search: '' });
    expect(first.agents.map((a) => a.name)).toEqual(Array.from({ length: 20 }, (_, i) => name(i)));
    expect([first.total, first.more]).toEqual([N, true]);
    expect(reads.mock.calls.length).toBeLessThanOrEqual(21);

    reads.mockClear();
    const deep = store.listAgentPage('big', { after: `${name(4000)}@big.aimaestro.local`, limit: 20, search: '' });
    expect(deep.agents[0].name).toBe(name(4001));
    expect(reads.mock.calls.length).toBeLessThanOrEqual(21);

    reads.mockClear();
    const found = store.listAgentPage('big', { after: '', limit: 20, search: 'hundred' });
    expect(found.agents.map((a) => a.name)).toEqual(Array.from({ length: 20 }, (_, i) => name(i * 100)));
    expect([found.total, found.more]).toEqual([N / 100, true]);
    expect(reads.mock.calls.length).toBeLessThanOrEqual(21);

    const last = store.listAgentPage('big', { after: `${name(N - 3)}@big.aimaestro.local`, limit: 20, search: '' });
    expect([last.agents.map((a) => a.name), last.more]).toEqual([[name(N - 2), name(N - 1)], false]);
    expect(store.listAgentPage('none', { after: '', limit: 5, search: '' })).toEqual({
      agents: [],
      total: 0,
      more: false,
    });
  });

  it('follows inserts, alias changes and deletes; a reopened store rebuilds the same index', async () => {
    const a1 = agent('big', name(1));
    await store.deleteAgent(a1, 0);
    await store.putAgent(agent('big', 'a00001x'));
    await store.putAgent({ ...agent('big', name(2)), alias: 'Renamed' });
    const page = store.listAgentPage('big', { after: '', limit: 3, search: '' });
    expect(page.agents.map((a) => a.name)).toEqual([name(0), 'a00001x', name(2)]);
    expect(page.total).toBe(N);
    expect(store.listAgentPage('big', { after: '', limit: 5, search: 'renamed' }).agents.map((a) => a.name)).toEqual([
      name(2),
    ]);
    await store.close();
    store = new LmdbStore({ dataDir: dir });
    const again = store.listAgentPage('big', { after: '', limit: 3, search: '' });
    expect([again.agents.map((a) => a.name), again.total]).toEqual([[name(0), 'a00001x', name(2)], N]);
    expect(store.listAgentPage('small', { after: '', limit: 5, search: '' }).total).toBe(1);
  });
});
