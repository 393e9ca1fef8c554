// Receipts (spec §16) as the sender's socket sees them: `message.delivered` once, at the first
// hand-over (push → "websocket"; first pending list or an earlier ack → "relay"), only when the
// route asked for one; `message.read` when the recipient says so; both kept in an outbox while the
// sender is offline and flushed after its next `connected`.
//
// "No second frame" without sleeping: receipts are written during the triggering request, before
// its HTTP answer (or, for a push at connect, before the recipient sees the pushed frame). A ping
// on the sender's socket answered by a pong afterwards is therefore a barrier: every receipt the
// server produced so far arrived before that pong.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AmpSocket } from '../../src/client/index.js';
import { Inbox, waitFor } from '../helpers/events.js';
import { routeMany, sdkAgent } from '../helpers/sdk.js';
import { call, register, routeOk, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs, type WsClient } from '../helpers/ws.js';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Frame = Record<string, any>;

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});
afterEach(closeAllWs);
afterAll(() => t.close());

/** A socket authenticated by header, past its `connected` frame (barriers report what came after it). */
const connect = (t: TestServer, who: Registered): Promise<WsClient> =>
  connectWs(t.server.wsUrl, who.api_key, { protocols: ['amp.v1'] });

let n = 0;
async function pair(): Promise<{ a: Registered; b: Registered }> {
  n++;
  return { a: await register(t.api, `rc-a${n}`, 'acme'), b: await register(t.api, `rc-b${n}`, 'acme') };
}

/** A request to `to` whose message is its subject; `options` only when given. */
function request(to: Registered, subject: string, options?: Record<string, unknown>) {
  const json: Record<string, unknown> = { to: to.address, subject, payload: { type: 'request', message: subject } };
  if (options !== undefined) json.options = options;
  return json;
}

const list = (who: Registered) => call('GET', `${t.api}/messages/pending?limit=100`, { key: who.api_key });
const ack = (who: Registered, id: string) => call('DELETE', `${t.api}/messages/pending?id=${id}`, { key: who.api_key });
const read = (who: Registered, id: string, mount = t.api) =>
  call('POST', `${mount}/messages/${id}/read`, { key: who.api_key });

function delivered(id: string, to: Registered, method: string): Frame {
  return {
    type: 'message.delivered',
    data: { id, to: to.address, delivered_at: expect.stringMatching(ISO_MS), method },
  };
}

function readFrame(id: string, reader: Registered): Frame {
  return { type: 'message.read', data: { id, read_at: expect.stringMatching(ISO_MS), reader: reader.address } };
}

describe('delivery receipts (§16)', () => {
  it('push to a connected recipient: one message.delivered, method websocket, never again', async () => {
    const { a, b } = await pair();
    const sender = await connect(t, a);
    let recipient = await connect(t, b);
    const before = Date.now();
    const r = await routeOk(t.api, a, request(b, 'pushed', { receipt: true }));
    const after = Date.now();
    expect(r).toMatchObject({ status: 'delivered', method: 'websocket' });
    await recipient.until(() => recipient.frames.of('message.new', r.id).length === 1, 'the push');

    expect(await sender.barrier()).toEqual([delivered(r.id, b, 'websocket')]);
    const at = Date.parse(sender.frames.of('message.delivered', r.id)[0]!.data.delivered_at);
    expect(at).toBeGreaterThanOrEqual(before - 5);
    expect(at).toBeLessThanOrEqual(after + 5);

    // Listed (twice), pushed again on a new connection, then acked: no second receipt.
    for (let i = 0; i < 2; i++) expect((await list(b)).body.messages.map((m: Frame) => m.id)).toEqual([r.id]);
    await recipient.close();
    recipient = await connect(t, b);
    await recipient.until(() => recipient.frames.of('message.new', r.id).length === 1, 'the replay');
    expect(recipient.frames.of('message.new', r.id)[0]!.replay).toBe(true);
    expect(await ack(b, r.id)).toMatchObject({ status: 200, body: { acknowledged: true } });
    expect(await sender.barrier()).toEqual([]);
    expect(sender.frames.of('message.delivered')).toHaveLength(1);
  });

  it('recipient offline, first pending list: one message.delivered, method relay', async () => {
    const { a, b } = await pair();
    const sender = await connect(t, a);
    const r = await routeOk(t.api, a, request(b, 'listed', { receipt: true }));
    expect(r).toMatchObject({ status: 'queued', method: 'relay' });
    expect(await sender.barrier()).toEqual([]);

    const first = await list(b);
    expect(first.body.messages.map((m: Frame) => m.id)).toEqual([r.id]);
    expect(await sender.barrier()).toEqual([delivered(r.id, b, 'relay')]);

    // Listed again, then pushed at connect: nothing more.
    expect((await list(b)).body.messages.map((m: Frame) => m.id)).toEqual([r.id]);
    const recipient = await connect(t, b);
    await recipient.until(() => recipient.frames.of('message.new', r.id).length === 1, 'the replay');
    expect(await sender.barrier()).toEqual([]);
    expect(sender.frames.of('message.delivered')).toHaveLength(1);
  });

  it('recipient acks before any hand-over: one message.delivered, method relay', async () => {
    const { a, b } = await pair();
    const sender = await connect(t, a);
    const r = await routeOk(t.api, a, request(b, 'acked blind', { receipt: true }));
    expect(r.status).toBe('queued');
    expect(await sender.barrier()).toEqual([]);

    expect(await ack(b, r.id)).toMatchObject({ status: 200, body: { acknowledged: true } });
    expect(await sender.barrier()).toEqual([delivered(r.id, b, 'relay')]);

    expect(await ack(b, r.id)).toMatchObject({ status: 200, body: { acknowledged: true, already_acked: true } });
    expect((await list(b)).body).toMatchObject({ messages: [], count: 0, remaining: 0 });
    const recipient = await connect(t, b);
    expect(recipient.frames.list()[0]).toMatchObject({ type: 'connected', data: { pending_count: 0 } });
    expect(await sender.barrier()).toEqual([]);
    expect(sender.frames.of('message.delivered')).toHaveLength(1);
  });

  it('a route over the sender’s own socket gets route.result and the receipt on that socket', async () => {
    const { a, b } = await pair();
    const recipient = await connect(t, b);
    const sender = await connect(t, a);
    sender.sendText({
      type: 'route',
      request_id: 'r1',
      data: { to: b.address, subject: 'ws', payload: { type: 'request', message: 'ws' }, options: { receipt: true } },
    });
    await sender.until(() => sender.frames.list().some((f) => f.type === 'route.result'), 'route.result');
    const result = sender.frames.list().find((f) => f.type === 'route.result')!;
    expect(result).toMatchObject({ request_id: 'r1', data: { status: 'delivered', method: 'websocket' } });
    await recipient.until(() => recipient.frames.of('message.new', result.data.id).length === 1, 'the push');
    await sender.barrier();
    expect(sender.frames.of('message.delivered')).toEqual([delivered(result.data.id, b, 'websocket')]);
  });

  it('without options.receipt (absent or false) no message.delivered is ever sent', async () => {
    const { a, b } = await pair();
    const sender = await connect(t, a);
    const recipient = await connect(t, b);
    const pushed = await routeOk(t.api, a, request(b, 'no receipt'));
    const pushedFalse = await routeOk(t.api, a, request(b, 'receipt false', { receipt: false }));
    await recipient.until(() => recipient.frames.of('message.new').length === 2, 'two pushes');
    await recipient.close();
    const queued = await routeOk(t.api, a, request(b, 'queued, no receipt'));
    expect(queued.status).toBe('queued');
    expect((await list(b)).body.count).toBe(3);
    for (const id of [pushed.id, pushedFalse.id, queued.id]) expect((await ack(b, id)).status).toBe(200);
    expect(await sender.barrier()).toEqual([]);
    expect(sender.frames.of('message.delivered')).toEqual([]);
  });
});

describe('read receipts (§16)', () => {
  it('read flow: exact bodies, one frame, repeat is already_read, allowed after the ack', async () => {
    const { a, b } = await pair();
    const sender = await connect(t, a);
    const m1 = await routeOk(t.api, a, request(b, 'one'));
    const first = await read(b, m1.id);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ read_receipt_sent: true });
    expect(await sender.barrier()).toEqual([readFrame(m1.id, b)]);

    const repeat = await read(b, m1.id, `${t.url}/v1`);
    expect(repeat.status).toBe(200);
    expect(repeat.body).toEqual({ read_receipt_sent: true, already_read: true });
    expect(await sender.barrier()).toEqual([]);

    // Not an ack: the message is still pending. After the ack a read is still accepted.
    expect((await list(b)).body.messages.map((m: Frame) => m.id)).toEqual([m1.id]);
    const m2 = await routeOk(t.api, a, request(b, 'two'));
    expect((await ack(b, m2.id)).status).toBe(200);
    const afterAck = await read(b, m2.id);
    expect(afterAck).toMatchObject({ status: 200, body: { read_receipt_sent: true } });
    expect(afterAck.body).toEqual({ read_receipt_sent: true });
    expect(await sender.barrier()).toEqual([readFrame(m2.id, b)]);
    expect(sender.frames.of('message.read')).toHaveLength(2);
    // No delivery receipt was asked for.
    expect(sender.frames.of('message.delivered')).toEqual([]);
  });

  it('only the recipient may mark read: others (the sender too) get 404; malformed ids 400', async () => {
    const { a, b } = await pair();
    const c = await register(t.api, `rc-c${n}`, 'acme');
    const sender = await connect(t, a);
    const m = await routeOk(t.api, a, request(b, 'private'));
    for (const who of [c, a]) {
      const r = await read(who, m.id);
      expect(r.status).toBe(404);
      expect(r.body.error).toBe('not_found');
    }
    const unknown = await read(b, 'msg_1767225600_00000000deadbeef');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('not_found');
    for (const bad of ['not-a-message-id', 'msg_abc_def', `msg_1_${'a'.repeat(130)}`]) {
      const r = await read(b, bad);
      expect(r.status, bad).toBe(400);
      expect(r.body.error, bad).toBe('invalid_field');
    }
    expect(await sender.barrier()).toEqual([]);
    // The refused attempts marked nothing: the recipient's first read is not a repeat.
    expect((await read(b, m.id)).body).toEqual({ read_receipt_sent: true });
    expect(await sender.barrier()).toEqual([readFrame(m.id, b)]);
  });
});

describe('receipt outbox (§16)', () => {
  it('sender offline: delivered and read receipts are kept and come after the next connected, once', async () => {
    const { a, b } = await pair();
    const r = await routeOk(t.api, a, request(b, 'while away', { receipt: true }));
    expect(r.status).toBe('queued');
    expect((await list(b)).body.messages.map((m: Frame) => m.id)).toEqual([r.id]);
    expect((await read(b, r.id)).body).toEqual({ read_receipt_sent: true });

    const sender = await connect(t, a);
    await sender.until(
      () => sender.frames.of('message.read').length === 1 && sender.frames.of('message.delivered').length === 1,
      'the kept receipts',
    );
    expect(sender.frames.list()[0]!.type).toBe('connected');
    expect(await sender.barrier()).toEqual([delivered(r.id, b, 'relay'), readFrame(r.id, b)]);

    // Taken from the outbox: the next connection gets none of them.
    await sender.close();
    const again = await connect(t, a);
    await again.barrier();
    expect(await again.barrier()).toEqual([]);
    expect(again.frames.list().filter((f) => f.type.startsWith('message.'))).toEqual([]);
  });
});

describe('receipt outbox limit (§16)', () => {
  // Its own server: thousands of routes from one sender (no rate limit) to a queue of 10 000.
  const servers: TestServer[] = [];
  const sdkSockets: AmpSocket[] = [];
  afterEach(() => {
    for (const s of sdkSockets.splice(0)) s.close();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('an offline sender keeps at most 1000 receipts, counting exactly what was dropped', async () => {
    const t = await startTestServer({ rateLimits: 'off', maxQueue: 10_000 });
    servers.push(t);
    const a = await sdkAgent(t, 'rc-a');
    const b = await sdkAgent(t, 'rc-b');
    const ids = await routeMany(a.client, 'rc-b', 1100, 64, () => ({ options: { receipt: true } }));
    // The recipient collects everything over a socket while the sender is offline.
    const rs = b.client.connect({ reconnect: false });
    sdkSockets.push(rs);
    const inbox = new Inbox(rs);
    await rs.ready();
    await inbox.has(ids, 20_000);
    const metrics = async () =>
      Number(/^amp_receipts_outbox_dropped_total (\d+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1]);
    expect(await metrics()).toBe(100);
    // The sender connects and gets exactly the newest 1000 receipts after `connected`.
    const ss = a.client.connect({ reconnect: false });
    sdkSockets.push(ss);
    const receipts: string[] = [];
    ss.on('delivered', (d) => receipts.push(d.id));
    const all = waitFor(ss, 'delivered', () => receipts.length === 1000, 10_000);
    await ss.ready();
    await all;
    // Nothing more is on its way: frames sent before the pong have all arrived.
    await ss.ping();
    expect(receipts).toEqual(inbox.ids().slice(100));
  });
});
