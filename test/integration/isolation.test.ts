// Agents cannot see or acknowledge each other's messages (spec §15, §20 "Tenant isolation"):
// another agent's message id answers 404, batch acks skip it, and the owner still sees it. Also
// the §15 list shape (count, remaining, oldest first), the /v1 + /api/v1 mounts (§1) and the
// list/ack aliases (§15, §24 CLI-11/12).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';

type Who = 'bob' | 'carol' | 'dave';
const MOUNTS = ['/v1', '/api/v1'] as const;
const UNKNOWN_ID = 'msg_1767225600_00000000deadbeef';

let srv: TestServer;
let alice: Registered;
const agents = {} as Record<Who, Registered>;
/** Ids routed to each agent, in route order. */
const sent: Record<Who, string[]> = { bob: [], carol: [], dave: [] };

beforeAll(async () => {
  srv = await startTestServer();
  alice = await register(srv.api, 'alice', 'acme');
  agents.bob = await register(srv.api, 'bob', 'acme');
  agents.carol = await register(srv.api, 'carol', 'acme');
  agents.dave = await register(srv.api, 'dave', 'globex');
  // Interleaved, so a per-recipient list in route order is not just "everything in order".
  const order: Who[] = ['bob', 'carol', 'bob', 'dave', 'bob', 'carol', 'bob', 'bob'];
  for (const [i, who] of order.entries()) {
    const r = await call('POST', `${srv.api}/route`, {
      key: alice.api_key,
      json: {
        to: agents[who].address,
        subject: `${who} #${i}`,
        payload: { type: 'notification', message: `for ${who}` },
      },
    });
    expect(r.status).toBe(200);
    sent[who].push(r.body.id);
  }
});
afterAll(async () => {
  await srv?.close();
});

const keyOf = (who: Who | 'alice') => (who === 'alice' ? alice.api_key : agents[who].api_key);

async function list(who: Who, path = '/api/v1/messages/pending?limit=100') {
  const r = await call('GET', srv.url + path, { key: keyOf(who) });
  expect(r.status).toBe(200);
  return r.body as {
    messages: Array<{ id: string; envelope: Record<string, any>; payload: Record<string, any> }>;
    count: number;
    remaining: number;
  };
}
const ids = async (who: Who, path?: string) => (await list(who, path)).messages.map((m) => m.id);

describe('each API key lists only its own inbox', () => {
  it.each(['bob', 'carol', 'dave'] as const)('%s sees exactly the messages routed to it, oldest first', async (who) => {
    expect([sent.bob.length, sent.carol.length, sent.dave.length]).toEqual([5, 2, 1]);
    const l = await list(who);
    expect(l.messages.map((m) => m.id)).toEqual(sent[who]);
    expect(l.count).toBe(sent[who].length);
    expect(l.remaining).toBe(0);
    for (const m of l.messages) {
      expect(m.envelope.id).toBe(m.id);
      expect(m.envelope.to).toBe(agents[who].address);
      expect(m.envelope.from).toBe('alice@acme.aimaestro.local');
      expect(m.payload).toEqual({ type: 'notification', message: `for ${who}` });
    }
  });

  it("no list ever contains another agent's ids", async () => {
    const everyone: Who[] = ['bob', 'carol', 'dave'];
    for (const who of everyone) {
      const mine = new Set(await ids(who));
      for (const other of everyone.filter((o) => o !== who)) {
        for (const id of sent[other]) expect(mine.has(id), `${who} sees ${other}'s ${id}`).toBe(false);
      }
    }
  });
});

describe('mounts and list aliases', () => {
  it('/v1 and /api/v1 × /messages/pending, /messages, /inbox answer the same list', async () => {
    const reference = await list('bob', '/api/v1/messages/pending');
    expect(reference.messages.map((m) => m.id)).toEqual(sent.bob);
    for (const mount of MOUNTS) {
      for (const path of ['/messages/pending', '/messages', '/inbox']) {
        expect(await list('bob', mount + path), mount + path).toEqual(reference);
      }
    }
  });

  it.each(MOUNTS)('%s: count and remaining follow §15 (oldest first)', async (mount) => {
    const cases: Array<[string, number, number]> = [
      ['?limit=2', 2, 3],
      ['?limit=4', 4, 1],
      ['?limit=5', 5, 0],
      ['?limit=1000', 5, 0], // clamped to 100, not refused
      ['', 5, 0], // default 10
    ];
    for (const [query, count, remaining] of cases) {
      for (const path of ['/messages/pending', '/inbox']) {
        const l = await list('bob', mount + path + query);
        expect({ q: path + query, ids: l.messages.map((m) => m.id), count: l.count, remaining: l.remaining }).toEqual({
          q: path + query,
          ids: sent.bob.slice(0, count),
          count,
          remaining,
        });
      }
    }
  });
});

const singleForms: Array<[string, string, (id: string) => string]> = [
  ['query form', 'DELETE', (id) => `/messages/pending?id=${id}`],
  ['path form', 'DELETE', (id) => `/messages/pending/${id}`],
  ['inbox ack alias', 'POST', (id) => `/inbox/${id}/ack`],
  ['inbox delete alias', 'DELETE', (id) => `/inbox/${id}`],
];
const batchPaths = ['/messages/pending/ack', '/messages/pending', '/inbox/ack'];
const attackers = ['carol', 'dave'] as const;

describe("acking another agent's message", () => {
  const cases = singleForms.flatMap(([name, method, path]) =>
    MOUNTS.flatMap((mount) => attackers.map((who) => ({ name, method, path, mount, who }))),
  );

  it.each(cases)('$who via $name on $mount -> 404 not_found, bob keeps it', async ({ method, path, mount, who }) => {
    for (const id of [sent.bob[0], sent.bob[4]]) {
      const r = await call(method, srv.url + mount + path(id), { key: keyOf(who) });
      expect(r.status).toBe(404);
      expect(r.body.error).toBe('not_found');
      expect(typeof r.body.message).toBe('string');
      expect(r.body.message.length).toBeGreaterThan(0);
    }
    expect(await ids('bob')).toEqual(sent.bob);
  });

  const batchCases = batchPaths.flatMap((path) =>
    MOUNTS.flatMap((mount) => attackers.map((who) => ({ path, mount, who }))),
  );

  it.each(batchCases)(
    '$who batch POST $mount$path -> {acknowledged: 0}, bob keeps all',
    async ({ path, mount, who }) => {
      const r = await call('POST', srv.url + mount + path, { key: keyOf(who), json: { ids: sent.bob } });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ acknowledged: 0 });
      expect(await ids('bob')).toEqual(sent.bob);
    },
  );

  it("the sender cannot ack what it sent: alice's inbox is empty and bob's ids are 404 for her", async () => {
    const r = await call('DELETE', `${srv.api}/messages/pending?id=${sent.bob[1]}`, { key: alice.api_key });
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('not_found');
    const mine = await call('GET', `${srv.api}/messages/pending`, { key: alice.api_key });
    expect(mine.body).toEqual({ messages: [], count: 0, remaining: 0 });
    expect(await ids('bob')).toEqual(sent.bob);
  });

  it('an unknown well-formed id is 404 for its would-be owner too', async () => {
    const r = await call('DELETE', `${srv.api}/messages/pending/${UNKNOWN_ID}`, { key: keyOf('bob') });
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('not_found');
  });
});

describe('ack semantics (§15)', () => {
  // Runs last: it consumes bob's and carol's queues.
  it('repeat acks say already_acked; batches count only newly acked ids; others stay 404', async () => {
    const [b0, b1, b2, b3, b4] = sent.bob;
    const q = (id: string) => `${srv.api}/messages/pending?id=${id}`;

    expect((await call('DELETE', q(b0), { key: keyOf('bob') })).body).toEqual({ acknowledged: true });
    // Every single-ack form, on both mounts, remembers it.
    for (const [, method, path] of singleForms) {
      for (const mount of MOUNTS) {
        const r = await call(method, srv.url + mount + path(b0), { key: keyOf('bob') });
        expect({ status: r.status, body: r.body }).toEqual({
          status: 200,
          body: { acknowledged: true, already_acked: true },
        });
      }
    }
    // Acked by bob is still "never queued for this agent" for carol: 404, not already_acked.
    const stolen = await call('DELETE', q(b0), { key: keyOf('carol') });
    expect(stolen.status).toBe(404);
    expect(stolen.body.error).toBe('not_found');

    // Batch: b0 already acked, b1 twice, carol's id, an unknown id → only b1 and b2 count.
    const batch = await call('POST', `${srv.api}/messages/pending/ack`, {
      key: keyOf('bob'),
      json: { ids: [b0, b1, b2, b1, sent.carol[0], UNKNOWN_ID] },
    });
    expect(batch.status).toBe(200);
    expect(batch.body).toEqual({ acknowledged: 2 });
    expect(await ids('carol')).toEqual(sent.carol);

    const again = await call('POST', `${srv.url}/v1/inbox/ack`, { key: keyOf('bob'), json: { ids: [b0, b1, b2] } });
    expect(again.body).toEqual({ acknowledged: 0 });

    const page = await list('bob', '/v1/inbox?limit=1');
    expect({ ids: page.messages.map((m) => m.id), count: page.count, remaining: page.remaining }).toEqual({
      ids: [b3],
      count: 1,
      remaining: 1,
    });
    expect(await ids('bob')).toEqual([b3, b4]);

    // Carol's mixed batch: her own id counts, bob's does not, and bob keeps his.
    const mixed = await call('POST', `${srv.api}/messages/pending`, {
      key: keyOf('carol'),
      json: { ids: [b3, sent.carol[1]] },
    });
    expect(mixed.body).toEqual({ acknowledged: 1 });
    expect(await ids('carol')).toEqual([sent.carol[0]]);
    expect(await ids('bob')).toEqual([b3, b4]);
    expect(await ids('dave')).toEqual(sent.dave);
  });
});
