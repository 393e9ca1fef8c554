// Attack table, message side (spec §11, §12, §15, §17.6, §20): one test per row, each asserting the
// exact refusal (status, error code, field where the spec names one) AND that nothing changed —
// the victim's queue, the other agent's message, the socket that must stay open.
// Key, registration and account rows are in attacks-keys.test.ts.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  register,
  route,
  signMessage,
  startTestServer,
  type Registered,
  type Reply,
  type TestServer,
} from '../helpers/server.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

const DOMAIN = 'aimaestro.local';
let srv: TestServer;
const servers: TestServer[] = [];
let seq = 0;
/** A fresh agent per row, so no row sees another's messages. */
const agent = (who: string, tenant = 'acme') => register(srv.api, `${who}-${++seq}`, tenant);

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await closeAllWs();
  await Promise.all([srv, ...servers].filter(Boolean).map((s) => s.close()));
});

function expectError(r: Reply, status: number, error: string, field?: string): void {
  expect({ status: r.status, error: r.body?.error }, JSON.stringify(r.body)).toEqual({ status, error });
  expect(typeof r.body.message).toBe('string');
  if (field !== undefined) expect(r.body.field).toBe(field);
}

/** Ids pending for the agent behind `key` (oldest first). */
async function pending(key: string, api = srv.api): Promise<string[]> {
  const r = await call('GET', `${api}/messages/pending?limit=100`, { key });
  expect(r.status).toBe(200);
  return r.body.messages.map((m: { id: string }) => m.id);
}

async function sendOne(from: Registered, to: Registered): Promise<string> {
  const r = await route(srv.api, from, {
    to: to.address,
    subject: 'hello',
    payload: { type: 'notification', message: 'hi' },
  });
  expect(r.status).toBe(200);
  return r.body.id as string;
}

describe('identity and isolation', () => {
  it("spoofed `from` (another agent's address) → 403 forbidden, field from; nothing queued", async () => {
    const [mallory, alice, bob] = await Promise.all([agent('mallory'), agent('alice'), agent('bob')]);
    const payload = { type: 'request', message: 'wire the money' };
    const flat = await route(srv.api, mallory, {
      from: alice.address,
      to: bob.address,
      subject: 'from alice',
      payload,
    });
    expectError(flat, 403, 'forbidden', 'from');
    const short = await route(srv.api, mallory, {
      from: `${alice.name}@acme.${DOMAIN}`.toUpperCase(),
      to: bob.address,
      subject: 'x',
      payload,
    });
    expectError(short, 403, 'forbidden', 'from');
    const env = await route(srv.api, mallory, {
      envelope: { from: alice.address, to: bob.address, subject: 'from alice' },
      payload,
    });
    expectError(env, 403, 'forbidden', 'from');
    // Even a valid signature by the real sender does not let mallory's key speak for alice.
    const signed = { from: alice.address, to: bob.address, subject: 'signed', payload };
    expectError(
      await route(srv.api, mallory, { ...signed, signature: signMessage(alice.keys.privateKey, signed) }),
      403,
      'forbidden',
      'from',
    );
    expect(await pending(bob.api_key)).toEqual([]);
  });

  it("another agent's API key on my inbox sees only its own messages and cannot ack mine (404)", async () => {
    const [alice, bob, carol] = await Promise.all([agent('alice'), agent('bob'), agent('carol')]);
    const mine = await sendOne(alice, bob);
    const theirs = await sendOne(alice, carol);
    expect(await pending(carol.api_key)).toEqual([theirs]);
    const ack = await call('DELETE', `${srv.api}/messages/pending?id=${mine}`, { key: carol.api_key });
    expectError(ack, 404, 'not_found');
    expect(await pending(bob.api_key)).toEqual([mine]);
    expect(await pending(carol.api_key)).toEqual([theirs]);
  });

  it("ack / read of someone else's message id, every form → 404 or {acknowledged: 0}; it stays pending", async () => {
    const [alice, bob, carol] = await Promise.all([agent('alice'), agent('bob'), agent('carol')]);
    const id = await sendOne(alice, bob);
    for (const thief of [carol, alice]) {
      // alice sent it, but only the recipient may ack or read it.
      for (const [method, path] of [
        ['DELETE', `/messages/pending?id=${id}`],
        ['DELETE', `/messages/pending/${id}`],
        ['POST', `/inbox/${id}/ack`],
        ['DELETE', `/inbox/${id}`],
        ['POST', `/messages/${id}/read`],
      ] as const) {
        expectError(await call(method, srv.api + path, { key: thief.api_key }), 404, 'not_found');
      }
      for (const path of ['/messages/pending/ack', '/messages/pending', '/inbox/ack']) {
        const r = await call('POST', srv.api + path, { key: thief.api_key, json: { ids: [id] } });
        expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { acknowledged: 0 } });
      }
    }
    const ws = await connectWs(srv.server.wsUrl, carol.api_key);
    ws.sendText({ type: 'ack', ids: [id], request_id: 'a1' });
    expect(await ws.nextType('ack.result', 'a1')).toEqual({
      type: 'ack.result',
      request_id: 'a1',
      data: { acknowledged: 0 },
    });
    expect(await pending(bob.api_key)).toEqual([id]);
    // Not silently marked acked either: the owner's ack is the first one.
    const own = await call('DELETE', `${srv.api}/messages/pending/${id}`, { key: bob.api_key });
    expect({ status: own.status, body: own.body }).toEqual({ status: 200, body: { acknowledged: true } });
  });

  it('cross-tenant listing → 403 forbidden; plain list and bare-name resolve stay in the caller tenant', async () => {
    const [alice, mate, both, onlyB, bothB] = await Promise.all([
      register(srv.api, 'alice', 'row4a'),
      register(srv.api, 'mate', 'row4a'),
      register(srv.api, 'both', 'row4a'),
      register(srv.api, 'onlyb', 'row4b'),
      register(srv.api, 'both', 'row4b'),
    ]);
    for (const t of ['row4b', 'ROW4B', 'acme']) {
      expectError(
        await call('GET', `${srv.api}/agents?tenant=${t}`, { key: alice.api_key }),
        403,
        'forbidden',
        'tenant',
      );
    }
    const own = [alice, both, mate].map((a) => a.address).sort();
    for (const q of ['', '?tenant=row4a']) {
      const r = await call('GET', `${srv.api}/agents${q}`, { key: alice.api_key });
      expect(r.status).toBe(200);
      expect(r.body.agents.map((a: { address: string }) => a.address)).toEqual(own);
      expect(r.body.total).toBe(3);
    }
    const s = await call('GET', `${srv.api}/agents?search=onlyb`, { key: alice.api_key });
    expect({ agents: s.body.agents, total: s.body.total }).toEqual({ agents: [], total: 0 });
    // A bare name resolves in the caller's tenant only.
    expectError(await call('GET', `${srv.api}/agents/resolve/onlyb`, { key: alice.api_key }), 404, 'not_found');
    expectError(
      await call('GET', `${srv.api}/agents/resolve/onlyb@row4a.${DOMAIN}`, { key: alice.api_key }),
      404,
      'not_found',
    );
    const bare = await call('GET', `${srv.api}/agents/resolve/both`, { key: alice.api_key });
    expect({ status: bare.status, address: bare.body.address }).toEqual({ status: 200, address: both.address });
    expect(bare.body.fingerprint).not.toBe(bothB.body.fingerprint);
    // The other agent exists (§7.5: full addresses resolve anywhere), so the 404 above is scoping.
    const full = await call('GET', `${srv.api}/agents/resolve/${encodeURIComponent(onlyB.address)}`, {
      key: alice.api_key,
    });
    expect({ status: full.status, address: full.body.address }).toEqual({ status: 200, address: onlyB.address });
    // Routing by the bare name does not cross tenants either.
    expectError(
      await route(srv.api, alice, { to: 'onlyb', subject: 'x', payload: { type: 'notification', message: 'x' } }),
      404,
      'not_found',
      'to',
    );
    expect(await pending(onlyB.api_key)).toEqual([]);
  });
});

describe('signatures and replay', () => {
  it('the same signed body twice → 200, Idempotent-Replayed: true, the same answer; queued once', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const m = { from: alice.address, to: bob.address, subject: 'pay', payload: { type: 'request', message: 'pay 10' } };
    const body = { ...m, signature: signMessage(alice.keys.privateKey, m) };
    const first = await route(srv.api, alice, body);
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const second = await route(srv.api, alice, body);
    expect(second.status).toBe(200);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(second.body.id).toBe(first.body.id);
    expect(await pending(bob.api_key)).toEqual([first.body.id]);
  });

  it('tampered payload / subject / priority / in_reply_to / to under a valid signature → 403 signature_invalid; nothing queued', async () => {
    const [alice, bob, carol] = await Promise.all([agent('alice'), agent('bob'), agent('carol')]);
    const m = {
      from: alice.address,
      to: bob.address,
      subject: 'pay',
      priority: 'normal',
      in_reply_to: 'msg_1767225600_aaaaaaaaaaaaaaaa',
      payload: { type: 'request', message: 'pay 10', context: { iban: 'X1' } },
    };
    const signature = signMessage(alice.keys.privateKey, m);
    const tampered: Array<[string, Record<string, unknown>]> = [
      ['payload.message', { payload: { ...m.payload, message: 'pay 10000' } }],
      ['payload.context', { payload: { ...m.payload, context: { iban: 'EVIL' } } }],
      ['extra payload key', { payload: { ...m.payload, urgent: true } }],
      ['subject', { subject: 'pay now' }],
      ['priority', { priority: 'urgent' }],
      ['in_reply_to', { in_reply_to: 'msg_1767225600_bbbbbbbbbbbbbbbb' }],
      ['in_reply_to dropped', { in_reply_to: null }],
      ['to', { to: carol.address }],
    ];
    for (const [what, change] of tampered) {
      const r = await route(srv.api, alice, { ...m, signature, ...change });
      expectError(r, 403, 'signature_invalid');
      expect(r.body.details, what).toEqual({ from: alice.address });
    }
    expect(await pending(bob.api_key)).toEqual([]);
    expect(await pending(carol.api_key)).toEqual([]);
    // Control: the untampered body verifies, so the refusals above were about the changes.
    const ok = await route(srv.api, alice, { ...m, signature });
    expect(ok.status).toBe(200);
    expect(await pending(bob.api_key)).toEqual([ok.body.id]);
  });
});

describe('floods', () => {
  it('the 6th route in a burst (route=5/min) → 429 rate_limited, scope sender; not queued; WS route shares the bucket', async () => {
    const s = await startTestServer({ rateLimitOverrides: ['route=5/min'] });
    servers.push(s);
    const [alice, bob, carol] = await Promise.all([
      register(s.api, 'alice', 'acme'),
      register(s.api, 'bob', 'acme'),
      register(s.api, 'carol', 'acme'),
    ]);
    const msg = (i: number) => ({
      to: bob.address,
      subject: `n${i}`,
      payload: { type: 'notification', message: String(i) },
    });
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = await route(s.api, alice, msg(i));
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBe('5');
      ids.push(r.body.id);
    }
    const r = await route(s.api, alice, msg(6));
    expectError(r, 429, 'rate_limited');
    expect(r.body.details.scope).toBe('sender');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    const retry = Number(r.headers.get('retry-after'));
    expect(Number.isInteger(retry) && retry >= 1).toBe(true);
    expect(r.body.retry_after).toBe(retry);
    expect(await pending(bob.api_key, s.api)).toEqual(ids);
    const ws = await connectWs(s.server.wsUrl, alice.api_key);
    ws.sendText({ type: 'route', request_id: 'r1', data: msg(7) });
    const res = await ws.nextType('route.result', 'r1');
    expect({ error: res.error, data: res.data }).toEqual({ error: 'rate_limited', data: undefined });
    expect(await pending(bob.api_key, s.api)).toEqual(ids);
    // The bucket is the sender's: another sender to the same recipient is untouched.
    const other = await route(s.api, carol, msg(8));
    expect(other.status).toBe(200);
    expect(await pending(bob.api_key, s.api)).toEqual([...ids, other.body.id]);
    expect(ws.frames.closeInfo).toBeUndefined();
  });

  it('the 21st ping in a burst (ws_frames=20/min) → error frame rate_limited, no pong; the socket stays open', async () => {
    const s = await startTestServer({ rateLimitOverrides: ['ws_frames=20/min'] });
    servers.push(s);
    const [alice, bob] = await Promise.all([register(s.api, 'alice', 'acme'), register(s.api, 'bob', 'acme')]);
    const ws = await connectWs(s.server.wsUrl, alice.api_key);
    for (let i = 1; i <= 21; i++) ws.sendText({ type: 'ping', request_id: `p${i}` });
    for (let i = 1; i <= 20; i++) expect((await ws.nextType('pong', `p${i}`)).type).toBe('pong');
    const err = await ws.next((f) => f?.type === 'error' && f.request_id === 'p21');
    expect(err.error).toBe('rate_limited');
    // Route frames use the sender's bucket, not this one; their answer comes after any p21 pong would have.
    ws.sendText({
      type: 'route',
      request_id: 'r1',
      data: { to: bob.address, subject: 's', payload: { type: 'notification', message: 'm' } },
    });
    const res = await ws.nextType('route.result', 'r1');
    expect(res.data?.status).toBe('queued');
    expect(ws.frames.all.filter((e) => e.data?.type === 'pong').map((e) => e.data.request_id)).toEqual(
      Array.from({ length: 20 }, (_, i) => `p${i + 1}`),
    );
    expect(ws.frames.closeInfo).toBeUndefined();
    expect(ws.ws.readyState).toBe(ws.ws.OPEN);
  });
});

describe('malformed and oversized input', () => {
  it('oversized context → 413 payload_too_large (payload.context); depth-100 context → 400 invalid_request; nothing queued', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const LIMIT = 262_144;
    const wrap = 11; // {"blob":""}
    const big = await route(srv.api, alice, {
      to: bob.address,
      subject: 'big',
      payload: { type: 'notification', message: '', context: { blob: 'x'.repeat(LIMIT - wrap + 1) } },
    });
    expectError(big, 413, 'payload_too_large', 'payload.context');
    expect(big.body.details).toEqual({ limit: LIMIT, actual: LIMIT + 1 });
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 1; i < 100; i++) deep = { a: deep };
    expectError(
      await route(srv.api, alice, {
        to: bob.address,
        subject: 'deep',
        payload: { type: 'notification', message: '', context: deep },
      }),
      400,
      'invalid_request',
    );
    expect(await pending(bob.api_key)).toEqual([]);
    // Control: a context of exactly the limit is accepted.
    const edge = await route(srv.api, alice, {
      to: bob.address,
      subject: 'edge',
      payload: { type: 'notification', message: '', context: { blob: 'x'.repeat(LIMIT - wrap) } },
    });
    expect(edge.status).toBe(200);
    expect(await pending(bob.api_key)).toEqual([edge.body.id]);
  });

  it('past expires_at → 400 invalid_field; envelope timestamp one hour ahead → 400 timestamp_future; nothing queued', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const payload = { type: 'notification', message: 'late' };
    const past = await route(srv.api, alice, {
      to: bob.address,
      subject: 'old',
      expires_at: new Date(Date.now() - 60_000).toISOString(),
      payload,
    });
    expectError(past, 400, 'invalid_field', 'expires_at');
    const envelope = {
      version: 'amp/0.1',
      id: 'msg_1767225600_0123456789abcdef',
      from: alice.address,
      to: bob.address,
      subject: 'future',
      priority: 'normal',
      signature: '',
    };
    const future = await route(srv.api, alice, {
      envelope: { ...envelope, timestamp: new Date(Date.now() + 3_600_000).toISOString() },
      payload,
    });
    expectError(future, 400, 'timestamp_future');
    expect(await pending(bob.api_key)).toEqual([]);
    // Control: the same envelope with a current timestamp is accepted (and gets our own id).
    const now = await route(srv.api, alice, {
      envelope: { ...envelope, timestamp: new Date().toISOString() },
      payload,
    });
    expect(now.status).toBe(200);
    expect(now.body.id).not.toBe(envelope.id);
    expect(await pending(bob.api_key)).toEqual([now.body.id]);
  });

  it('path-traversal message ids on ack / read → 400 invalid_field; nothing acked', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const id = await sendOne(alice, bob);
    const bad = ['../../etc/passwd', '..%2F..%2Fx'];
    const attempts: Array<[string, string, unknown, string]> = [];
    for (const b of bad) {
      const q = encodeURIComponent(b);
      attempts.push(['DELETE', `/messages/pending?id=${q}`, undefined, 'id']);
      attempts.push(['POST', '/messages/pending/ack', { ids: [b] }, 'ids']);
      attempts.push(['POST', '/inbox/ack', { ids: [id, b] }, 'ids']); // one bad id refuses the whole batch
    }
    for (const seg of ['..%2F..%2Fx', '..%2F..%2Fetc%2Fpasswd', '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd']) {
      attempts.push(['DELETE', `/messages/pending/${seg}`, undefined, 'id']);
      attempts.push(['POST', `/inbox/${seg}/ack`, undefined, 'id']);
      attempts.push(['DELETE', `/inbox/${seg}`, undefined, 'id']);
      attempts.push(['POST', `/messages/${seg}/read`, undefined, 'id']);
    }
    for (const [method, path, json, field] of attempts) {
      const r = await call(method, srv.api + path, { key: bob.api_key, json });
      expect({ path, status: r.status, error: r.body?.error, field: r.body?.field }).toEqual({
        path,
        status: 400,
        error: 'invalid_field',
        field,
      });
    }
    const ws = await connectWs(srv.server.wsUrl, bob.api_key);
    await ws.next((f) => f?.type === 'message.new' && f.data?.id === id);
    ws.sendText({ type: 'ack', ids: ['../../etc/passwd'], request_id: 'a1' });
    const err = await ws.next((f) => f?.type === 'error' || f?.type === 'ack.result');
    expect({ type: err.type, error: err.error }).toEqual({ type: 'error', error: 'invalid_field' });
    expect(await pending(bob.api_key)).toEqual([id]);
    expect(ws.frames.closeInfo).toBeUndefined();
  });
});
