// Slow consumers (spec §17.6) and at-least-once replay (§17.4): a socket that stops reading has its
// pushes paused (messages stay queued) without stalling anyone else, gets everything in queue
// order once it reads again, and if it stays stalled past the slow-consumer limit it is closed
// with 4501 `slow_consumer`, losing nothing. Small limits make this quick: soft buffer 64 KiB.
//
// A client "stops reading" by pausing its TCP socket. The kernel absorbs a few MiB first, so
// large filler messages are routed until the server reports `queued` (its buffer passed the soft
// limit). No sleeps: every wait is on frames, or a bounded poll of REST.

import { afterEach, describe, expect, it } from 'vitest';
import type { AmpSocket } from '../../src/client/index.js';
import { Inbox } from '../helpers/events.js';
import { routeMany, sdkAgent } from '../helpers/sdk.js';
import { call, register, routeOk, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs, type WsClient } from '../helpers/ws.js';

const SOFT = 64 * 1024;
const HARD = 4 * 1024 * 1024;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Frame = Record<string, any>;

/** A socket authenticated by header; its collector records message ids in order of first arrival. */
const connect = (wsUrl: string, apiKey: string): Promise<WsClient> =>
  connectWs(wsUrl, apiKey, { protocols: ['amp.v1'] });

const servers: TestServer[] = [];
const sdkSockets: AmpSocket[] = [];

afterEach(async () => {
  for (const s of sdkSockets.splice(0)) s.close();
  await closeAllWs();
  for (const s of servers.splice(0)) await s.close();
});

async function server(slowSeconds: number): Promise<TestServer> {
  const t = await startTestServer({
    wsSoftBuffer: SOFT,
    wsHardBuffer: HARD,
    wsSlowConsumerSeconds: slowSeconds,
    maxQueue: 100_000,
    rateLimits: 'off',
  });
  servers.push(t);
  return t;
}

/** A notification to `to` (its body `message`), with any `extra` top-level fields. */
const note = (to: Registered, subject: string, message: string, extra: Record<string, unknown> = {}) => ({
  to: to.address,
  subject,
  payload: { type: 'notification', message },
  ...extra,
});

/** Route large messages until one answers `queued`: the server has paused pushes to `to`. */
async function stallRecipient(
  t: TestServer,
  from: Registered,
  to: Registered,
): Promise<{ ids: string[]; firstQueuedSentAt: number }> {
  const big = 'f'.repeat(60_000);
  const ids: string[] = [];
  for (let i = 0; i < 400; i++) {
    const sentAt = Date.now();
    const r = await routeOk(t.api, from, note(to, `filler ${i}`, big));
    ids.push(r.id);
    if (r.status === 'queued') {
      expect(r.method).toBe('relay');
      return { ids, firstQueuedSentAt: sentAt };
    }
    expect(r).toMatchObject({ status: 'delivered', method: 'websocket' });
  }
  throw new Error('the server never paused pushes to a socket that stopped reading (400 x 60 KB routed)');
}

/** Run `fn` over `items` one at a time, in order. */
async function lane<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await fn(item));
  return out;
}

/** Bounded REST poll (each iteration awaits a request); true once `probe` holds. */
async function poll(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

async function pendingTotal(t: TestServer, who: Registered): Promise<number> {
  const r = await call('GET', `${t.api}/messages/pending?limit=1`, { key: who.api_key });
  expect(r.status).toBe(200);
  return r.body.count + r.body.remaining;
}

describe('slow consumer (§17.6)', () => {
  it('a stalled socket does not stall others and, once it reads again, gets every message in queue order', async () => {
    const t = await server(60);
    const sender = await register(t.api, 'bp-sender', 'acme');
    const slowAgent = await register(t.api, 'bp-slow', 'acme');
    const fastAgent = await register(t.api, 'bp-fast', 'acme');
    const slow = await connect(t.server.wsUrl, slowAgent.api_key);
    const fast = await connect(t.server.wsUrl, fastAgent.api_key);
    slow.pauseReading();

    const filler = await stallRecipient(t, sender, slowAgent);

    // 2000 x 1 KB to the stalled agent in 4 sequential lanes, 200 to the fast one in a fifth.
    const body = 'm'.repeat(1000);
    const lanes = [0, 1, 2, 3].map((l) => Array.from({ length: 500 }, (_, i) => `s${l}-${i}`));
    const fastSubjects = Array.from({ length: 200 }, (_, i) => `f-${i}`);
    const [fastResults, ...slowResults] = await Promise.all([
      lane(fastSubjects, (s) => routeOk(t.api, sender, note(fastAgent, s, body))),
      ...lanes.map((subjects) => lane(subjects, (s) => routeOk(t.api, sender, note(slowAgent, s, body)))),
    ]);

    // The fast consumer: every route answered delivered/websocket, every frame arrived, in order.
    for (const r of fastResults) expect(r).toMatchObject({ status: 'delivered', method: 'websocket' });
    const fastIds = fastResults.map((r) => r.id);
    await fast.until(() => fast.frames.firstSeen.length >= fastIds.length, 'the fast consumer’s 200 messages', 5000);
    expect(fast.frames.firstSeen).toEqual(fastIds);
    expect(fast.frames.messageFrames).toBe(200);

    // Every route to the stalled one still answered 200, as queued/relay or delivered/websocket.
    const slowAll = slowResults.flat();
    expect(slowAll).toHaveLength(2000);
    for (const r of slowAll) expect(['queued/relay', 'delivered/websocket']).toContain(`${r.status}/${r.method}`);
    const expectedTotal = filler.ids.length + 2000;
    expect(await pendingTotal(t, slowAgent)).toBe(expectedTotal);
    expect(slow.frames.closeInfo).toBeUndefined();

    // Reading again: pushes resume on drain and everything arrives.
    slow.resumeReading();
    await slow.until(
      () => slow.frames.seen.size >= expectedTotal,
      `all ${expectedTotal} messages on the resumed socket`,
      20_000,
    );
    expect(slow.frames.closeInfo).toBeUndefined();
    // Each message at most once per session (§17.4).
    expect(slow.frames.messageFrames).toBe(expectedTotal);
    // Nothing was a replay: all were committed after this socket's `connected`.
    expect(slow.frames.list().filter((f) => f.type === 'message.new' && f.replay === true)).toEqual([]);
    // Per lane, first appearances follow route order (each lane routed one after another).
    const pos = new Map(slow.frames.firstSeen.map((id, i) => [id, i]));
    const filledIds = filler.ids.map((id) => pos.get(id));
    expect(filledIds).toEqual(filler.ids.map((_, i) => i));
    for (const results of slowResults) {
      const positions = results.map((r) => pos.get(r.id)!);
      expect(positions.every((p, i) => p !== undefined && (i === 0 || p > positions[i - 1]!))).toBe(true);
    }

    // The queue order (pending pages, oldest first) is exactly the order of first appearance.
    // Walking the pages acks everything: pending ends at 0.
    const queueOrder: string[] = [];
    for (let i = 0; i < 40; i++) {
      const page = await call('GET', `${t.api}/messages/pending?limit=100`, { key: slowAgent.api_key });
      expect(page.status).toBe(200);
      if (page.body.count === 0) break;
      const ids = page.body.messages.map((m: Frame) => m.id as string);
      queueOrder.push(...ids);
      const ack = await call('POST', `${t.api}/messages/pending/ack`, { key: slowAgent.api_key, json: { ids } });
      expect(ack).toMatchObject({ status: 200, body: { acknowledged: ids.length } });
    }
    expect(queueOrder).toHaveLength(expectedTotal);
    expect(slow.frames.firstSeen).toEqual(queueOrder);
    expect(new Set(queueOrder)).toEqual(new Set([...filler.ids, ...slowAll.map((r) => r.id)]));
    expect(await pendingTotal(t, slowAgent)).toBe(0);
  }, 90_000);

  it('a socket stalled past wsSlowConsumerSeconds is closed with 4501 slow_consumer; its messages stay queued and are replayed oldest first', async () => {
    const t = await server(2);
    const sender = await register(t.api, 'sc-sender', 'acme');
    const slowAgent = await register(t.api, 'sc-slow', 'acme');
    const slow = await connect(t.server.wsUrl, slowAgent.api_key);
    slow.pauseReading();

    const filler = await stallRecipient(t, sender, slowAgent);
    const answeredQueuedAt = Date.now();
    const extra: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await routeOk(t.api, sender, note(slowAgent, `extra ${i}`, `extra ${i}`));
      expect(r).toMatchObject({ status: 'queued', method: 'relay' });
      extra.push(r.id);
    }
    const routed = [...filler.ids, ...extra];

    // The server sweeps once a second; the socket leaves `agents_online` when it is closed.
    const gone = await poll(async () => (await call('GET', `${t.api}/health`)).body.agents_online === 0, 8000);
    const closedAt = Date.now();
    expect(gone).toBe(true);
    expect(closedAt - filler.firstQueuedSentAt).toBeGreaterThanOrEqual(1900);
    expect(closedAt - answeredQueuedAt).toBeLessThanOrEqual(2000 + 1000 + 1500);

    // Messages stay queued: nothing was lost, nothing acked.
    expect(await pendingTotal(t, slowAgent)).toBe(routed.length);

    // The client reads what the kernel held, then the close frame.
    slow.resumeReading();
    await slow.until(() => slow.frames.closeInfo !== undefined, 'the close', 10_000);
    expect(slow.frames.closeInfo).toEqual({ code: 4501, reason: 'slow_consumer' });
    // The operator sees it: both counters moved (GET /metrics, Prometheus text).
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^amp_ws_slow_consumer_closes_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^amp_ws_slow_consumer_pauses_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    // What it did get was a prefix of the queue, in order.
    expect(slow.frames.firstSeen).toEqual(routed.slice(0, slow.frames.firstSeen.length));

    // Reconnect: everything is replayed, flagged replay, oldest first.
    const again = await connect(t.server.wsUrl, slowAgent.api_key);
    expect(again.connected.data.pending_count).toBe(routed.length);
    await again.until(() => again.frames.seen.size >= routed.length, 'the replay', 10_000);
    expect(again.frames.firstSeen).toEqual(routed);
    const replayFlags = again.frames
      .list()
      .filter((f) => f.type === 'message.new')
      .map((f) => f.replay);
    expect(replayFlags.every((r) => r === true)).toBe(true);
    expect(again.frames.messageFrames).toBe(routed.length);
    const first = again.frames.list().find((f) => f.type === 'message.new')!;
    expect(first.data).toMatchObject({
      id: routed[0],
      envelope: { subject: 'filler 0', from: sender.address, to: slowAgent.address },
    });
    expect(first.data.queued_at).toMatch(ISO_MS);
  }, 60_000);

  it('large frames after a backpressure pause all arrive (drain work runs outside the uWS callback)', async () => {
    const t = await startTestServer({ rateLimits: 'off', wsSoftBuffer: 64 * 1024, maxQueue: 10_000 });
    servers.push(t);
    const a = await sdkAgent(t, 'big-a');
    const b = await sdkAgent(t, 'big-b');
    const big = 'x'.repeat(100_000);
    const ids = await routeMany(a.client, 'big-b', 200, 4, () => ({
      payload: { type: 'notification', message: '', context: { big } },
    }));
    const socket = b.client.connect({ reconnect: false });
    sdkSockets.push(socket);
    const inbox = new Inbox(socket);
    await socket.ready();
    await inbox.has(ids, 20_000);
    expect(new Set(inbox.ids()).size).toBe(200);
  });
});

describe('catch-up (§17.4)', () => {
  // presence.catchUp reads the committed queue in batches of 256 and stops at the first short
  // batch; store.readFrom drops expired entries *after* applying the limit, so a batch holding an
  // expired (not yet removed) entry comes back short, and the cursor then jumps to the committed
  // end, skipping everything after the batch on this session.
  it('replays every queued message after `connected`, even when an expired one sits in the backlog', async () => {
    const t = await server(60);
    const sender = await register(t.api, 'cu-sender', 'acme');
    const rcpt = await register(t.api, 'cu-rcpt', 'acme');
    // 255 long-lived, then one that expires in 2 s (the last of the first batch of 256), then 45
    // more. Routes prune expired entries, so all must be routed before it expires.
    const keep = (from: number, count: number) =>
      lane(
        Array.from({ length: count }, (_, i) => `keep ${from + i}`),
        async (s) => (await routeOk(t.api, sender, note(rcpt, s, s))).id,
      );
    const ids = await keep(0, 255);
    const expiresAt = Date.now() + 2000;
    const short = await routeOk(
      t.api,
      sender,
      note(rcpt, 'short-lived', 'x', { expires_at: new Date(expiresAt).toISOString() }),
    );
    expect(short.status).toBe('queued');
    ids.push(...(await keep(255, 45)));
    if (Date.now() >= expiresAt)
      throw new Error('precondition: routing took longer than the 2 s expiry; the expired entry was already pruned');
    // Wait (bounded) until the short-lived one has expired, without touching the recipient's queue.
    expect(await poll(async () => Date.now() > expiresAt + 20, 5000)).toBe(true);

    const peer = await connect(t.server.wsUrl, rcpt.api_key);
    expect(peer.connected.data.pending_count).toBe(300);
    await peer.until(() => peer.frames.seen.size >= 300, 'the replay of 300 messages', 5000).catch(() => {});
    // A message routed now must come after all 300 (queue order), not in place of the missing ones.
    const live = await routeOk(t.api, sender, note(rcpt, 'live', 'live'));
    await peer.until(() => peer.frames.seen.has(live.id), 'the live message', 5000);
    expect({
      received: peer.frames.seen.size,
      firstMissingIndex: ids.findIndex((id) => !peer.frames.seen.has(id)),
      missing: ids.filter((id) => !peer.frames.seen.has(id)).length,
      livePosition: peer.frames.firstSeen.indexOf(live.id),
    }).toEqual({ received: 301, firstMissingIndex: -1, missing: 0, livePosition: 300 });
    expect(peer.frames.firstSeen).toEqual([...ids, live.id]);
  }, 30_000);
});
