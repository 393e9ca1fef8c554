// WebSocket connect and authenticate (spec §17.1, §17.2, §17.6, §17.7), raw `ws` client: the three
// ways in, every documented refusal with its exact frame and close code, the session limit,
// subprotocol negotiation and presence.

import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newKeypair, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { UpgradeRefused, closeAllWs, closeWs, openWs, signedAuthFrame, until, type WsClient } from '../helpers/ws.js';

let t: TestServer;
let limits: TestServer; // wsMaxSessions 2, wsAuthTimeout 1
let pres: TestServer; // presence only: nothing else connects here
let alice: Registered;
let carol: Registered; // has two queued messages
let dave: Registered; // must never receive anything
let sc: Registered; // scoped: full address ≠ short address
const sec = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  [t, limits, pres] = await Promise.all([
    startTestServer(),
    startTestServer({ wsMaxSessions: 2, wsAuthTimeout: 1 }),
    startTestServer(),
  ]);
  alice = await register(t.api, 'alice', 'acme');
  carol = await register(t.api, 'carol', 'acme');
  dave = await register(t.api, 'dave', 'acme');
  sc = await register(t.api, 'sc', 'acme', { scope: { platform: 'github', repo: 'web' } });
  for (const subject of ['one', 'two']) {
    const r = await call('POST', `${t.api}/route`, {
      key: alice.api_key,
      json: { to: 'carol', subject, payload: { type: 'notification', message: subject } },
    });
    expect(r.status).toBe(200);
  }
});
afterAll(async () => {
  await closeAllWs();
  await Promise.all([t, limits, pres].filter(Boolean).map((s) => s.close()));
});

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });
const refused = async (p: Promise<unknown>): Promise<UpgradeRefused> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UpgradeRefused);
  return e as UpgradeRefused;
};

function expectConnected(frame: any, who: Registered, pending = 0, subprotocol = 'amp.v1'): void {
  expect(frame).toEqual({
    type: 'connected',
    data: {
      address: who.address,
      pending_count: pending,
      agent_id: who.agent_id,
      session_id: expect.stringMatching(/^ses_[A-Za-z0-9_-]+$/),
      subprotocol,
      idle_timeout_seconds: 300,
    },
  });
  expect(who.agent_id).toMatch(/^agt_/);
}

describe('ways in', () => {
  it('Authorization: Bearer at upgrade → connected at once, then the backlog as replays', async () => {
    const c = await openWs(t.server.wsUrl, { headers: bearer(carol.api_key) });
    const first = await c.next();
    expectConnected(first, carol, 2);
    const r1 = await c.nextType('message.new');
    const r2 = await c.nextType('message.new');
    expect([r1.replay, r2.replay]).toEqual([true, true]);
    expect([r1.data.envelope.subject, r2.data.envelope.subject]).toEqual(['one', 'two']);
    await c.close();
  });

  it('first frame {"type":"auth","token"} → connected (on /api/v1/ws too)', async () => {
    for (const url of [t.server.wsUrl, t.server.wsUrl.replace('/v1/ws', '/api/v1/ws')]) {
      const c = await openWs(url);
      c.sendText({ type: 'auth', token: alice.api_key });
      expectConnected(await c.next(), alice);
      await c.close();
    }
  });

  it('signed auth frame, by the full and by the short address', async () => {
    expect(sc.address).not.toBe(sc.body.short_address);
    const now = sec();
    for (const [addr, ts] of [
      [sc.address, now],
      [sc.body.short_address as string, now - 1],
    ] as const) {
      const c = await openWs(t.server.wsUrl);
      c.sendText(signedAuthFrame(addr, sc.keys.privateKey, ts));
      expectConnected(await c.next(), sc);
      await c.close();
    }
  });

  it('signed auth with the timestamp as a digit string', async () => {
    const c = await openWs(t.server.wsUrl);
    const f = signedAuthFrame(alice.address, alice.keys.privateKey, sec() - 2);
    c.sendText({ ...f, timestamp: String(f.timestamp) });
    expectConnected(await c.next(), alice);
    await c.close();
  });
});

describe('refusals', () => {
  it.each(['token', 'api_key', 'key'])('?%s= in the URL → HTTP 400 invalid_request, never opens', async (q) => {
    for (const url of [`${t.server.wsUrl}?${q}=${alice.api_key}`, `${t.server.wsUrl}?x=1&${q}=${alice.api_key}`]) {
      const e = await refused(openWs(url, { headers: bearer(alice.api_key) }));
      expect(e.status).toBe(400);
      expect(e.body).toMatchObject({ error: 'invalid_request' });
      expect(typeof e.body.message).toBe('string');
    }
  });

  it('bad Bearer at upgrade → HTTP 401 unauthorized', async () => {
    const e = await refused(openWs(t.server.wsUrl, { headers: bearer('amp_live_sk_' + 'f'.repeat(64)) }));
    expect(e.status).toBe(401);
    expect(e.body).toMatchObject({ error: 'unauthorized' });
  });

  it('bad token frame → unauthorized error frame, close 4003 invalid_token', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText({ type: 'auth', token: 'amp_live_sk_nope' });
    expect(await c.closed()).toEqual({ code: 4003, reason: 'invalid_token' });
    expect(c.frames.all.map((e) => e.data)).toEqual([
      { type: 'error', error: 'unauthorized', message: 'Invalid or expired API key' },
    ]);
  });

  it('signed with the wrong key → signature_invalid error frame, close 4003 signature_invalid', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText(signedAuthFrame(alice.address, newKeypair().privateKey, sec()));
    expect(await c.closed()).toEqual({ code: 4003, reason: 'signature_invalid' });
    expect(c.frames.all).toHaveLength(1);
    expect(c.frames.all[0]!.data).toMatchObject({ type: 'error', error: 'signature_invalid' });
  });

  it('timestamp 120 s old → close 4003 timestamp_out_of_window', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText(signedAuthFrame(alice.address, alice.keys.privateKey, sec() - 120));
    expect(await c.closed()).toEqual({ code: 4003, reason: 'timestamp_out_of_window' });
    expect(['unauthorized', 'signature_invalid']).toContain(c.frames.all[0]?.data?.error);
  });

  it('the same signed frame twice → the second gets 4003 replay_detected', async () => {
    const frame = signedAuthFrame(alice.address, alice.keys.privateKey, sec() - 5);
    const a = await openWs(t.server.wsUrl);
    a.sendText(frame);
    expectConnected(await a.next(), alice);
    await a.close();
    const b = await openWs(t.server.wsUrl);
    b.sendText(frame);
    expect(await b.closed()).toEqual({ code: 4003, reason: 'replay_detected' });
    expect(b.frames.all.some((e) => e.data?.type === 'connected')).toBe(false);
  });

  it('unknown address → close 4003', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText(signedAuthFrame('nobody@acme.aimaestro.local', newKeypair().privateKey, sec()));
    const { code, reason } = await c.closed();
    expect(code).toBe(4003);
    expect(['invalid_token', 'signature_invalid']).toContain(reason);
    expect(['unauthorized', 'signature_invalid']).toContain(c.frames.all[0]?.data?.error);
  });

  it('first frame not auth (ping) → invalid_request error frame, then close 4002', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText({ type: 'ping', request_id: 'p0' });
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all).toHaveLength(1);
    expect(c.frames.all[0]!.data).toMatchObject({ type: 'error', error: 'invalid_request' });
  });

  it('first frame invalid JSON → close 4002', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText('{"type": "auth", "token": ');
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all.map((e) => e.data?.error)).toEqual(['invalid_request']);
  });

  it('first frame a well-formed-looking but incomplete auth → 4002', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText({ type: 'auth' });
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all[0]?.data).toMatchObject({ type: 'error', error: 'invalid_request' });
  });

  it('no auth within the timeout → close 4001, not before ~1 s', async () => {
    const t0 = performance.now();
    const c = await openWs(limits.server.wsUrl);
    const info = await c.closed(4000);
    const elapsed = performance.now() - t0;
    expect(info.code).toBe(4001);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3000);
  });

  it('auth on an authenticated socket → invalid_request (already authenticated), socket stays open', async () => {
    const c = await openWs(t.server.wsUrl, { headers: bearer(alice.api_key) });
    expectConnected(await c.next(), alice);
    c.sendText({ type: 'auth', token: alice.api_key, request_id: 'again' });
    const err = await c.nextType('error');
    expect(err).toMatchObject({ type: 'error', error: 'invalid_request' });
    expect(err.message).toContain('already authenticated');
    c.sendText({ type: 'ping', request_id: 'still-there' });
    const pong = await c.nextType('pong', 'still-there');
    expect(Date.parse(pong.timestamp)).not.toBeNaN();
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    await c.close();
  });

  it('a first frame over 4 KiB is refused unread: invalid_request, close 4002, even a valid auth', async () => {
    // A valid token auth frame padded past MAX_PREAUTH_FRAME_BYTES (4096): before, it authenticated.
    const big = JSON.stringify({ type: 'auth', token: alice.api_key, pad: 'x'.repeat(4096) });
    const c = await openWs(t.server.wsUrl);
    c.sendText(big);
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all).toHaveLength(1);
    expect(c.frames.all[0]!.data).toMatchObject({ type: 'error', error: 'invalid_request' });
    expect(c.frames.all[0]!.data.message).toContain('before authentication (at most 4096)');
  });

  it('a 540k-deep JSON first frame gets the 4 KiB refusal, not a parse; a 4096-byte auth still works', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText('['.repeat(540_000) + ']'.repeat(540_000));
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all[0]!.data.message).toContain('before authentication');
    const frame = JSON.stringify({ type: 'auth', token: alice.api_key, pad: '' });
    const exact = frame.replace('"pad":""', `"pad":"${'x'.repeat(4096 - frame.length)}"`);
    expect(Buffer.byteLength(exact)).toBe(4096);
    const ok = await openWs(t.server.wsUrl);
    ok.sendText(exact);
    expect((await ok.nextType('connected')).data.address).toBe(alice.address);
    await ok.close();
  });

  it('a route frame before auth is not honoured: 4002 and the recipient gets nothing', async () => {
    const c = await openWs(t.server.wsUrl);
    c.sendText({
      type: 'route',
      request_id: 'r0',
      data: { to: 'dave', subject: 'sneaky', payload: { type: 'notification', message: 'x' } },
    });
    expect((await c.closed()).code).toBe(4002);
    expect(c.frames.all.map((e) => e.data?.type)).toEqual(['error']);
    const p = await call('GET', `${t.api}/messages/pending?limit=100`, { key: dave.api_key });
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ messages: [], count: 0, remaining: 0 });
  });
});

describe('session limit (wsMaxSessions 2)', () => {
  it('a third session closes the oldest with 4009; the other two stay open', async () => {
    const zed = await register(limits.api, 'zed', 'acme');
    const s: WsClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await openWs(limits.server.wsUrl, { headers: bearer(zed.api_key) });
      expectConnected(await c.nextType('connected'), zed);
      s.push(c);
    }
    expect((await s[0]!.closed()).code).toBe(4009);
    for (const [i, c] of [s[1]!, s[2]!].entries()) {
      c.sendText({ type: 'ping', request_id: `alive-${i}` });
      await c.nextType('pong', `alive-${i}`);
      expect(c.ws.readyState).toBe(c.ws.OPEN);
    }
    await Promise.all(s.map((c) => c.close()));
  });
});

describe('subprotocols', () => {
  it.each([
    [['foo', 'amp.v1+msgpack'], 'amp.v1+msgpack'],
    [['amp.v1+msgpack', 'amp.v1'], 'amp.v1+msgpack'],
    [['amp.v1', 'amp.v1+msgpack'], 'amp.v1'],
  ])('offer %j → %s', async (offer, picked) => {
    const c = await openWs(t.server.wsUrl, { protocols: offer, headers: bearer(alice.api_key) });
    expect(c.ws.protocol).toBe(picked);
    const entry = await c.frames.nextEntry();
    expect(entry.binary).toBe(picked === 'amp.v1+msgpack');
    expectConnected(entry.data, alice, 0, picked);
    c.sendText({ type: 'ping', request_id: 'enc' });
    const pong = await c.frames.nextEntry((f) => f?.type === 'pong');
    expect(pong.binary).toBe(picked === 'amp.v1+msgpack');
    await c.close();
  });

  it('no offer → no subprotocol header, JSON text frames', async () => {
    const c = await openWs(t.server.wsUrl, { headers: bearer(alice.api_key) });
    expect(c.ws.protocol).toBe('');
    const entry = await c.frames.nextEntry();
    expect(entry.binary).toBe(false);
    expectConnected(entry.data, alice, 0, 'amp.v1');
    await c.close();
  });
});

describe('presence', () => {
  const health = async () => {
    const r = await call('GET', `${pres.api}/health`);
    expect(r.status).toBe(200);
    return r.body.agents_online as number;
  };
  const online = async (who: Registered) =>
    (await call('GET', `${pres.api}/agents/me`, { key: who.api_key })).body.online;

  it('agents_online and agents/me online follow authenticated sockets', async () => {
    const erin = await register(pres.api, 'erin', 'acme');
    expect(await health()).toBe(0);
    expect(await online(erin)).toBe(false);

    // An open but unauthenticated socket does not count.
    const anon = await openWs(pres.server.wsUrl);
    const c = await openWs(pres.server.wsUrl, { headers: bearer(erin.api_key) });
    await c.nextType('connected');
    expect(await health()).toBe(1);
    expect(await online(erin)).toBe(true);

    await closeWs(c.ws);
    await closeWs(anon.ws);
    expect(await until(async () => (await health()) === 0, 2000)).toBe(true);
    expect(await online(erin)).toBe(false);
  });
});
