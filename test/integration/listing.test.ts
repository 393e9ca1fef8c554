// GET agents (spec §7.4, issue 13 item 9) against the real server, on the ordered listing index:
// paging with the opaque cursor (still base64url of the last address, so cursors given out before
// stay valid) across inserts and deletes between pages, `search` paging with an exact `total`, and
// a tenant of thousands written straight into the data dir before the server opened it.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LmdbStore } from '../../src/store/lmdb.js';
import type { AgentRecord } from '../../src/store/types.js';
import { call, ROOT, register, startTestServer, tempDir, type Registered, type TestServer } from '../helpers/server.js';

const BIG = 3_000;
let t: TestServer;
let dir: string;
let me: Registered;

const stored = (i: number): AgentRecord => {
  const name = `bulk-${String(i).padStart(5, '0')}`;
  const address = `${name}@big.aimaestro.local`;
  return {
    id: `agt_bulk_${i}`,
    name,
    tenant: 'big',
    address,
    short_address: address,
    public_key_pem: '',
    public_key_hex: '',
    fingerprint: `SHA256:bulk-${i}`,
    fingerprint_raw: `raw-bulk-${i}`,
    prefer_websocket: true,
    metadata_json: '{}',
    capabilities: [],
    status: 'active',
    key_hashes: [],
    registered_at: 0,
  };
};

beforeAll(async () => {
  dir = tempDir('amp-listing-');
  const store = new LmdbStore({ dataDir: dir });
  await Promise.all(Array.from({ length: BIG }, (_, i) => store.putAgent(stored(i))));
  await store.close();
  t = await startTestServer({ dataDir: dir });
  me = await register(t.api, 'zz-lister', 'big');
});
afterAll(async () => {
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const list = async (key: string, q: string) => {
  const r = await call('GET', `${t.api}/agents?${q}`, { key });
  expect(r.status).toBe(200);
  return r.body;
};

describe('GET agents: paging on the ordered index', () => {
  // First in the file: no listing has warmed the server's record cache yet. Every record lmdb-js
  // reads from disk is decoded by its own msgpackr (nested under lmdb/), so counting that module's
  // decode() calls counts what a listing reads, with no timing involved.
  it(`one page of 20 decodes about 20 records, not the ${BIG + 1} of the tenant`, async () => {
    const entry = join(ROOT, 'node_modules/lmdb/node_modules/msgpackr/node-index.js');
    const { Unpackr } = await import(pathToFileURL(entry).href);
    const reads = vi.spyOn(Unpackr.prototype, 'decode');
    try {
      const body: any = await list(me.api_key, 'limit=20');
      expect([body.agents.length, body.total, body.has_more]).toEqual([20, BIG + 1, true]);
      const deep = Buffer.from(stored(2500).address, 'utf8').toString('base64url');
      const later: any = await list(me.api_key, `limit=20&cursor=${deep}`);
      expect(later.agents[0].address).toBe(stored(2501).address);
      // The spy does see reads (the page's own records), just not the tenant's.
      expect(reads.mock.calls.length).toBeGreaterThan(0);
      expect(reads.mock.calls.length).toBeLessThan(100);
    } finally {
      reads.mockRestore();
    }
  });

  it(`pages through a tenant of ${BIG + 1} agents with limit=200: every agent once, in address order`, async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 100; page++) {
      const body: any = await list(me.api_key, `limit=200${cursor ? `&cursor=${cursor}` : ''}`);
      expect(body.total).toBe(BIG + 1);
      seen.push(...body.agents.map((a: any) => a.address));
      cursor = body.cursor;
      if (!body.has_more) break;
      // The wire format is kept: base64url of the last address listed.
      expect(Buffer.from(cursor!, 'base64url').toString('utf8')).toBe(seen[seen.length - 1]);
    }
    expect(cursor).toBeNull();
    expect(seen.length).toBe(BIG + 1);
    expect(seen).toEqual([...seen].sort());
    expect(seen[seen.length - 1]).toBe(me.address);
  });

  it('a cursor stays valid across inserts and deletes between pages; total follows them', async () => {
    const names = ['p-b', 'p-d', 'p-f', 'p-h', 'p-j', 'p-l'];
    const regs = new Map<string, Registered>();
    for (const n of names) regs.set(n, await register(t.api, n, 'pagetest'));
    const caller = regs.get('p-b')!;
    const addr = (n: string) => `${n}@pagetest.aimaestro.local`;
    const first = await list(caller.api_key, 'limit=2');
    expect(first.agents.map((a: any) => a.address)).toEqual([addr('p-b'), addr('p-d')]);
    expect([first.total, first.has_more]).toEqual([6, true]);
    // Between pages: one agent before the cursor and one after it arrive; the cursor's own agent
    // and one not yet listed leave.
    await register(t.api, 'p-a', 'pagetest');
    await register(t.api, 'p-g', 'pagetest');
    expect((await call('DELETE', `${t.api}/agents/me`, { key: regs.get('p-d')!.api_key })).status).toBe(200);
    expect((await call('DELETE', `${t.api}/agents/me`, { key: regs.get('p-h')!.api_key })).status).toBe(200);
    const second = await list(caller.api_key, `limit=2&cursor=${first.cursor}`);
    expect(second.agents.map((a: any) => a.address)).toEqual([addr('p-f'), addr('p-g')]);
    expect([second.total, second.has_more]).toEqual([6, true]);
    const third = await list(caller.api_key, `limit=2&cursor=${second.cursor}`);
    expect(third.agents.map((a: any) => a.address)).toEqual([addr('p-j'), addr('p-l')]);
    expect([third.has_more, third.cursor]).toEqual([false, null]);
  });

  it('search pages by address too, with total = all matches; an alias change is found at once', async () => {
    const q = 'search=bulk-000&limit=40';
    const a = await list(me.api_key, q);
    expect([a.total, a.agents.length, a.has_more]).toEqual([100, 40, true]);
    const b = await list(me.api_key, `${q}&cursor=${a.cursor}`);
    const c = await list(me.api_key, `${q}&cursor=${b.cursor}`);
    expect([b.agents.length, c.agents.length, c.has_more]).toEqual([40, 20, false]);
    const all = [...a.agents, ...b.agents, ...c.agents].map((x: any) => x.address);
    expect(all).toEqual(Array.from({ length: 100 }, (_, i) => stored(i).address));
    const patched = await call('PATCH', `${t.api}/agents/me`, { key: me.api_key, json: { alias: 'Needle In Stack' } });
    expect(patched.status).toBe(200);
    const found = await list(me.api_key, 'search=needle');
    expect([found.total, found.agents.map((x: any) => [x.address, x.alias])]).toEqual([
      1,
      [[me.address, 'Needle In Stack']],
    ]);
  });
});
